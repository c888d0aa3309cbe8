"""Two-level p-multigrid preconditioned block CG for tet10 models (``solver: pmg``).

The coarse space is the tet4 space on the tet10 corner nodes: a mid-edge node's
displacement is the mean of its two corners' (the linear interpolant), corner nodes and
the 6-DOF extra nodes (coupling reference points, beam nodes) are kept.  Linear fields,
hence the six rigid-body motions, are reproduced exactly.  p-multigrid: Ronquist & Patera
(1987), Int. J. Numer. Meth. Eng. 24:2273; Fidkowski, Oliver, Lu & Darmofal (2005),
J. Comput. Phys. 207:92.

The constraint layer solves (T^T K T + I_dep) q = T^T (f - K g) on the full DOF numbering
(dependent DOFs decoupled by the identity, :func:`fembone.core.constraints.reduce_system`).
The prolongation acts on q: rows of the full-space interpolation for the independent DOFs,
zero rows for dependent ones, columns left without an entry dropped.  A rigid motion that
satisfies the ties is then reproduced exactly in q as well.

Cycle (symmetric, so CG applies): pre-smoothing from zero, coarse correction with the
Galerkin matrix A_c = P^T K_r P factorised by PARDISO (single precision, or SuperLU where
MKL is missing), post-smoothing.  Smoother: Chebyshev polynomial of the Jacobi-scaled
operator on [lambda_max / ratio, 1.1 lambda_max] (Adams, Brezina, Hu & Tuminaro 2003,
J. Comput. Phys. 188:593), run on a single-precision copy of K_r and on all load cases at
once (sparse times dense block).  CG stays in double precision.  The solver needs the
model's tet10 cells: segment cases attach them (``solver_options``); without them it falls
back to the smoothed-aggregation cycle of :mod:`fembone.core.solvers_amg`.
"""

from __future__ import annotations

import ctypes
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from fembone.core.elements import TET10_EDGES
from fembone.core.errors import SolverError
from fembone.core.solvers_amg import VCycle, build_hierarchy, spectral_radius_dinv
from fembone.core.solvers_base import Solver, _block_pcg, log, register
from fembone.core.solvers_pardiso import Pardiso

#: Lanczos steps for lambda_max(D^-1 K_r) of the Chebyshev smoother
CHEB_LANCZOS = 12
#: cells whose (Voigt-averaged) Poisson ratio exceeds this stay quadratic in the coarse space
#: (lambda/mu = 24 at 0.48): a tet4 coarse space locks there (nucleus, nu = 0.499)
LOCKING_NU = 0.48


def voigt_poisson(C: np.ndarray) -> np.ndarray:
    """Poisson ratio per cell from the Voigt bulk and shear moduli of (ne, 6, 6) stiffness C (MPa).

    K_V = (C11 + C22 + C33 + 2 (C12 + C13 + C23)) / 9, G_V = (C11 + C22 + C33 - (C12 + C13 +
    C23) + 3 (C44 + C55 + C66)) / 15 (Voigt 1928, engineering shear strains), nu = (3K - 2G) /
    (2 (3K + G)); exact for isotropic C.
    """
    C = np.asarray(C, float)
    d = C[:, 0, 0] + C[:, 1, 1] + C[:, 2, 2]
    o = C[:, 0, 1] + C[:, 0, 2] + C[:, 1, 2]
    s = C[:, 3, 3] + C[:, 4, 4] + C[:, 5, 5]
    K, G = (d + 2 * o) / 9.0, (d - o + 3 * s) / 15.0
    return (3 * K - 2 * G) / (2 * (3 * K + G))


def coarse_options(cells: np.ndarray, n_mesh_nodes: int, C: np.ndarray) -> dict:
    """``solver_options`` that give :class:`PMG` its coarse space: the cells, the mesh-node count
    and the nearly incompressible cells (nu > :data:`LOCKING_NU`) kept quadratic; empty for
    other than tet10 cells (PMG then uses its smoothed-aggregation fallback)."""
    if np.ndim(cells) != 2 or np.shape(cells)[1] != 10:
        return {}
    return {"cells": np.asarray(cells), "n_mesh_nodes": int(n_mesh_nodes),
            "keep_cells": voigt_poisson(C) > LOCKING_NU}


def p_prolongation(cells: np.ndarray, n_mesh_nodes: int, n_dofs: int,
                   dependent: np.ndarray | None = None, keep: np.ndarray | None = None) -> sp.csr_matrix:
    """(n_dofs, n_coarse) prolongation from the tet4 space on the corners to the tet10 DOFs.

    Mesh node i owns DOFs 3i..3i+2, extra nodes the 6 DOFs each after 3 n_mesh_nodes.
    Corner nodes (every node that is not a mid-edge node) and extra DOFs map by identity,
    a mid-edge DOF to 0.5 (corner a) + 0.5 (corner b).  Rows of ``dependent`` DOFs are zero
    and columns without an entry are dropped (the prolongation on q of u = T q + g).
    ``keep`` (bool per cell) keeps every node of those cells, mid-edge ones included, in the
    coarse space (quadratic there: nearly incompressible regions, where tet4 locks).
    """
    cells = np.asarray(cells)
    if cells.ndim != 2 or cells.shape[1] != 10:
        raise SolverError(f"pmg: the p-multigrid coarse space needs tet10 cells (got shape {cells.shape})")
    nn = int(n_mesh_nodes)
    n_extra = n_dofs - 3 * nn
    if n_extra < 0 or n_extra % 6:
        raise SolverError(f"pmg: {n_dofs} DOFs do not fit {nn} mesh nodes plus 6-DOF extra nodes")
    mid, first = np.unique(cells[:, 4:].ravel(), return_index=True)
    ends = cells[:, TET10_EDGES].reshape(-1, 2)[first]
    is_mid = np.zeros(nn, bool)
    is_mid[mid] = True
    if keep is not None and np.any(keep):
        is_mid[np.unique(cells[np.asarray(keep, bool)])] = False
        ends, mid = ends[is_mid[mid]], mid[is_mid[mid]]
    if is_mid[ends].any():
        raise SolverError("pmg: a mid-edge node is also a corner node of another element (mixed orders?)")
    corners = np.flatnonzero(~is_mid)
    num = np.full(nn, -1)
    num[corners] = np.arange(len(corners))
    a = np.arange(3)
    n_c = 3 * len(corners) + n_extra
    rows = [(3 * corners[:, None] + a).ravel(), np.repeat((3 * mid[:, None] + a).ravel(), 2),
            3 * nn + np.arange(n_extra)]
    cols = [(3 * num[corners][:, None] + a).ravel(),
            (3 * num[ends][:, :, None] + a).transpose(0, 2, 1).reshape(-1),
            3 * len(corners) + np.arange(n_extra)]
    vals = [np.ones(3 * len(corners)), np.full(6 * len(mid), 0.5), np.ones(n_extra)]
    P = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_dofs, n_c))
    if dependent is not None:
        P = (sp.diags((~np.asarray(dependent, bool)).astype(float)) @ P).tocsr()
        P.eliminate_zeros()
        used = np.flatnonzero(np.diff(P.tocsc().indptr) > 0)
        P = P[:, used].tocsr()
    return P


class _Descr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("mode", ctypes.c_int), ("diag", ctypes.c_int)]


class MKLSparse:
    """A CSR matrix (float32 or float64) multiplied by MKL's inspector-executor sparse BLAS
    (``mkl_sparse_?_mm``: threaded, vectorised), ``A @ X`` for X of shape (n,) or (n, k);
    SciPy's product where MKL is missing.  Intel oneMKL Developer Reference, "Inspector-executor
    Sparse BLAS Routines" (enum values from mkl_spblas.h)."""

    GENERAL, NON_TRANSPOSE, ROW_MAJOR, NON_UNIT, LOWER = 20, 10, 101, 50, 40

    def __init__(self, A: sp.csr_matrix, expected_calls: int = 500):
        self.A = A
        self.shape, self.dtype = A.shape, A.dtype
        self.handle = None
        try:
            self.lib = Pardiso._load()
        except SolverError:
            return
        f = "s" if A.dtype == np.float32 else "d"
        self._mm = getattr(self.lib, f"mkl_sparse_{f}_mm")
        self._scalar = ctypes.c_float if f == "s" else ctypes.c_double
        self.ia = np.ascontiguousarray(A.indptr, np.int32)
        self.ja = np.ascontiguousarray(A.indices, np.int32)
        self.va = np.ascontiguousarray(A.data)
        h = ctypes.c_void_p()
        i32 = ctypes.POINTER(ctypes.c_int32)
        st = getattr(self.lib, f"mkl_sparse_{f}_create_csr")(
            ctypes.byref(h), 0, ctypes.c_int32(A.shape[0]), ctypes.c_int32(A.shape[1]),
            self.ia[:-1].ctypes.data_as(i32), self.ia[1:].ctypes.data_as(i32), self.ja.ctypes.data_as(i32),
            self.va.ctypes.data_as(ctypes.c_void_p))
        if st != 0:
            return
        self.descr = _Descr(self.GENERAL, self.LOWER, self.NON_UNIT)
        self.lib.mkl_sparse_set_mm_hint(h, self.NON_TRANSPOSE, self.descr, self.ROW_MAJOR, 5, expected_calls)
        self.lib.mkl_sparse_optimize(h)
        self.handle = h

    def __matmul__(self, X: np.ndarray) -> np.ndarray:
        if self.handle is None:
            return self.A @ X
        X = np.ascontiguousarray(X, self.dtype)
        k = 1 if X.ndim == 1 else X.shape[1]
        Y = np.empty((self.shape[0],) + X.shape[1:], self.dtype)
        st = self._mm(self.NON_TRANSPOSE, self._scalar(1.0), self.handle, self.descr, self.ROW_MAJOR,
                      X.ctypes.data_as(ctypes.c_void_p), ctypes.c_int32(k), ctypes.c_int32(k), self._scalar(0.0),
                      Y.ctypes.data_as(ctypes.c_void_p), ctypes.c_int32(k))
        if st != 0:
            raise SolverError(f"MKL sparse product failed (status {st})")
        return Y

    def __del__(self):
        if getattr(self, "handle", None) is not None:
            self.lib.mkl_sparse_destroy(self.handle)
            self.handle = None


class Chebyshev:
    """Chebyshev polynomial smoother of D^-1 A on [lmax / ratio, 1.1 lmax] (Saad 2003, Alg. 12.1).

    ``apply(X, B)`` returns X improved by ``degree`` steps for A X = B (X may be None: zero).
    Works on blocks of right-hand sides; A in the work precision, results in float64.
    """

    def __init__(self, A, dinv: np.ndarray, lmax: float, degree: int = 3, ratio: float = 30.0):
        self.A, self.degree = A, degree
        self.dinv = dinv.astype(A.dtype)[:, None]
        hi, lo = 1.1 * lmax, 1.1 * lmax / ratio
        self.theta, self.delta = 0.5 * (hi + lo), 0.5 * (hi - lo)

    def apply(self, X: np.ndarray | None, B: np.ndarray) -> np.ndarray:
        A, dinv = self.A, self.dinv
        B = B.astype(A.dtype)
        R = B.copy() if X is None else B - A @ X.astype(A.dtype)
        X = np.zeros_like(B) if X is None else X.astype(A.dtype)
        sigma = self.theta / self.delta
        rho = 1.0 / sigma
        D = (dinv * R) / self.theta
        for k in range(self.degree):
            X += D
            if k == self.degree - 1:
                break
            R -= A @ D
            rho_new = 1.0 / (2.0 * sigma - rho)
            D *= rho_new * rho
            D += (2.0 * rho_new / self.delta) * (dinv * R)
            rho = rho_new
        return X.astype(np.float64)


class TwoLevel:
    """Symmetric two-level cycle: smooth, coarse correction P A_c^-1 P^T, smooth."""

    def __init__(self, A, smoother: Chebyshev, P: sp.csr_matrix, coarse_solve):
        P = P.astype(A.dtype)
        self.A, self.S, self.P, self.R = A, smoother, MKLSparse(P), MKLSparse(P.T.tocsr())
        self.coarse_solve = coarse_solve

    def __call__(self, B: np.ndarray) -> np.ndarray:
        X = self.S.apply(None, B)
        X += self.P @ self.coarse_solve(self.R @ (B - self.A @ X))
        return self.S.apply(X, B)


@register
class PMG(Solver):
    """Block CG preconditioned by a two-level p-multigrid cycle (module docstring).

    ``cells`` (tet10 connectivity) and ``n_mesh_nodes`` are set through the model's
    ``solver_options``; ``degree`` and ``ratio`` shape the Chebyshev smoother.
    """

    name = "pmg"
    cells: np.ndarray | None = None
    n_mesh_nodes: int | None = None
    keep_cells: np.ndarray | None = None
    degree: int = 3
    ratio: float = 30.0
    precision: str = "single"

    def setup(self, K, near_nullspace=None):
        t = time.perf_counter()
        self.K = K.tocsr()
        n = K.shape[0]
        self.M = None
        dtype = np.float32 if self.precision == "single" else np.float64
        A = sp.csr_matrix((self.K.data.astype(dtype), self.K.indices, self.K.indptr), shape=K.shape)
        d = self.K.diagonal()
        if np.any(d <= 0):
            raise SolverError("pmg: a non-positive diagonal entry: the stiffness matrix is not positive definite")
        dinv = 1.0 / d
        if self.cells is None or self.n_mesh_nodes is None:
            log.info("pmg: no tet10 cells attached to the model; smoothed-aggregation cycle instead")
            B = near_nullspace if near_nullspace is not None else np.ones((n, 1))
            levels, _, _ = build_hierarchy(self.K, np.asarray(B, float), dtype=dtype)
            vc = VCycle(levels)
            self.M = lambda R: np.column_stack([vc @ R[:, k] for k in range(R.shape[1])])
            self.info.update(setup_s=time.perf_counter() - t, coarse="smoothed aggregation")
            return
        # dependent DOFs: the decoupled unit rows of I_dep (one missed only widens the coarse space)
        dep = np.isclose(d, 1.0) & (np.diff(self.K.indptr) == 1)
        P = p_prolongation(self.cells, self.n_mesh_nodes, n, dep, self.keep_cells)
        t_p = time.perf_counter()
        Ac = (P.T @ (self.K @ P)).tocsr()
        Ac = 0.5 * (Ac + Ac.T)
        t_g = time.perf_counter()
        lmax = spectral_radius_dinv(self.K, dinv, CHEB_LANCZOS)
        A = MKLSparse(A)
        smoother = Chebyshev(A, dinv, lmax, self.degree, self.ratio)
        if Pardiso.available():
            coarse = Pardiso()
            coarse.precision = self.precision
            coarse.setup(Ac.tocsr())
            solve_c = coarse._apply
            fill = coarse.info["factor_nnz"]
        else:
            lu = spla.splu(Ac.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
            solve_c, fill = lu.solve, int(lu.L.nnz + lu.U.nnz)
        self.M = TwoLevel(A, smoother, P, solve_c)
        self._coarse = coarse if Pardiso.available() else lu
        self.info.update(setup_s=time.perf_counter() - t, coarse_dofs=int(Ac.shape[0]), coarse_nnz=int(Ac.nnz),
                         coarse_factor_nnz=int(fill), galerkin_s=t_g - t_p, lambda_max=lmax,
                         coarse_factor_s=time.perf_counter() - t_g, precision=self.precision)

    def trim(self) -> None:
        self.M = None
        self._coarse = None

    def solve(self, b):
        b = np.asarray(b, float)
        cols = b.reshape(b.shape[0], -1)
        out, iters = _block_pcg(MKLSparse(self.K), cols, lambda R: self.M(R).reshape(R.shape), self.rtol, self.maxiter)
        self.info["iterations"] = iters
        self.info["residual"] = self._residual(self.K, out, cols)
        return out.reshape(b.shape)
