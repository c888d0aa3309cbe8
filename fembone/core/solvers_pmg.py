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
MKL is missing), post-smoothing.  Smoother: Chebyshev polynomial of D^-1 K_r, D the diagonal capped from
below by a quarter of the l1 row sums (:func:`smoother_diagonal`), on [lambda_max / ratio, 1.1 lambda_max] (Adams, Brezina, Hu & Tuminaro 2003,
J. Comput. Phys. 188:593), run on a single-precision copy of K_r and on all load cases at
once (sparse times dense block).  CG stays in double precision.  The solver needs the
model's tet10 cells: segment cases attach them (``solver_options``); without them it falls
back to the smoothed-aggregation cycle of :mod:`fembone.core.solvers_amg`.
"""

from __future__ import annotations

import ctypes
import functools
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
#: ``capped`` smoother diagonal: max(K_ii, sum_j |K_ij| / L1_CAP) (:func:`smoother_diagonal`)
L1_CAP = 4.0


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


def smoother_diagonal(K: sp.csr_matrix, kind: str = "capped") -> np.ndarray:
    """The diagonal D that scales the smoother, D^-1 K (K symmetric, positive diagonal).

    ``jacobi``: diag(K).  ``l1``: the absolute row sums r_i = sum_j |K_ij| (l1-Jacobi,
    lambda_max(D^-1 K) <= 1; Baker, Falgout, Kolev & Yang 2011, SIAM J. Sci. Comput.
    33:2864).  ``capped`` (default): max(K_ii, r_i / :data:`L1_CAP`), Jacobi where the row sum
    is below ``L1_CAP`` times the diagonal, lambda_max(D^-1 K) <= ``L1_CAP`` (Gershgorin).
    On tied and coupled segments the rows of T^T K T at the ties and couplings have row sums
    20-44 times their diagonal (all rows: median 4.6, 99 % below 11): plain Jacobi puts
    lambda_max at 12-42, and the Chebyshev interval [lambda_max / 30, 1.1 lambda_max] then
    misses most element modes (benchmarks/README.md: 81 -> 42 CG iterations at 0.92M DOFs).
    """
    if kind == "jacobi":
        return K.diagonal()
    if kind not in ("l1", "capped"):
        raise SolverError(f"pmg: diagonal '{kind}' is not one of jacobi, l1, capped")
    K = K.tocsr()
    r = np.zeros(K.shape[0])
    rows = np.flatnonzero(np.diff(K.indptr))
    r[rows] = np.add.reduceat(np.abs(K.data), K.indptr[rows])
    return r if kind == "l1" else np.maximum(K.diagonal(), r / L1_CAP)


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

    ``apply(X, R, B)`` returns X improved by ``degree`` steps for A X = B and its residual
    B - A X (X None: zero; R: the residual of the X given, None: computed here; ``residual``
    False: the last product is skipped and None returned).  Works on blocks of right-hand
    sides in the work precision of A (float32 for ``precision: single``), in place on X, R.
    """

    def __init__(self, A, dinv: np.ndarray, lmax: float, degree: int = 3, ratio: float = 30.0):
        self.A, self.degree = A, degree
        self.dinv = dinv.astype(A.dtype)[:, None]
        hi, lo = 1.1 * lmax, 1.1 * lmax / ratio
        self.theta, self.delta = 0.5 * (hi + lo), 0.5 * (hi - lo)

    def apply(self, X: np.ndarray | None, R: np.ndarray | None, B: np.ndarray,
              residual: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        A, dinv = self.A, self.dinv
        if X is None:
            R = np.array(B, A.dtype)
            X = np.zeros_like(R)
        elif R is None:
            R = B - A @ X
        sigma = self.theta / self.delta
        rho = 1.0 / sigma
        D = dinv * R
        D *= 1.0 / self.theta
        for k in range(self.degree):
            X += D
            if k == self.degree - 1:
                if residual:
                    R -= A @ D
                break
            R -= A @ D
            rho_new = 1.0 / (2.0 * sigma - rho)
            D *= rho_new * rho
            D += (2.0 * rho_new / self.delta) * (dinv * R)
            rho = rho_new
        return X, R


class TwoLevel:
    """Symmetric two-level cycle: smooth, coarse correction P A_c^-1 P^T, smooth.

    The post-smoother's starting residual is R_1 - (A P) e_c, R_1 the pre-smoother's and e_c
    the coarse correction: ``AP`` = A P (sparse, about 40 % of the non-zeros of A on tet10
    segments) replaces one product by A.  2 ``degree`` products by A or A P per cycle.
    """

    def __init__(self, A, smoother: Chebyshev, P: sp.csr_matrix, coarse_solve, AP: sp.csr_matrix):
        dt = A.dtype
        self.A, self.S = A, smoother
        self.P, self.R = MKLSparse(P.astype(dt)), MKLSparse(P.T.tocsr().astype(dt))
        self.AP = MKLSparse(AP.astype(dt))
        self.coarse_solve = coarse_solve

    def __call__(self, B: np.ndarray) -> np.ndarray:
        X, R = self.S.apply(None, None, B)
        e = np.asarray(self.coarse_solve(self.R @ R), X.dtype)
        X += self.P @ e
        R -= self.AP @ e
        return self.S.apply(X, R, B, residual=False)[0].astype(np.float64)


@register
class PMG(Solver):
    """Block CG preconditioned by a two-level p-multigrid cycle (module docstring).

    ``cells`` (tet10 connectivity) and ``n_mesh_nodes`` are set through the model's
    ``solver_options``; ``degree``, ``ratio`` and ``diagonal`` (:func:`smoother_diagonal`)
    shape the Chebyshev smoother.
    """

    name = "pmg"
    cells: np.ndarray | None = None
    n_mesh_nodes: int | None = None
    keep_cells: np.ndarray | None = None
    degree: int = 3
    ratio: float = 30.0
    diagonal: str = "capped"
    precision: str = "single"

    def setup(self, K, near_nullspace=None):
        t = time.perf_counter()
        self.K = K.tocsr()
        n = K.shape[0]
        self.M = self._Kmkl = None
        dtype = np.float32 if self.precision == "single" else np.float64
        A = sp.csr_matrix((self.K.data.astype(dtype), self.K.indices, self.K.indptr), shape=K.shape)
        d = self.K.diagonal()
        if np.any(d <= 0):
            raise SolverError("pmg: a non-positive diagonal entry: the stiffness matrix is not positive definite")
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
        KP = (self.K @ P).tocsr()
        Ac = (P.T @ KP).tocsr()
        Ac = 0.5 * (Ac + Ac.T)
        t_g = time.perf_counter()
        dinv = 1.0 / smoother_diagonal(self.K, self.diagonal)
        self._Kmkl = MKLSparse(self.K)  # the double-precision products of Lanczos and CG
        lmax = spectral_radius_dinv(self._Kmkl, dinv, CHEB_LANCZOS)
        A = MKLSparse(A)
        smoother = Chebyshev(A, dinv, lmax, self.degree, self.ratio)
        if Pardiso.available():
            coarse = Pardiso()
            coarse.precision = self.precision
            coarse.setup(Ac.tocsr())
            solve_c = functools.partial(coarse._call, 33)  # in the factor's precision
            fill = coarse.info["factor_nnz"]
        else:
            lu = spla.splu(Ac.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
            solve_c, fill = lu.solve, int(lu.L.nnz + lu.U.nnz)
        self.M = TwoLevel(A, smoother, P, solve_c, KP)
        del KP
        self._coarse = coarse if Pardiso.available() else lu
        self.info.update(setup_s=time.perf_counter() - t, coarse_dofs=int(Ac.shape[0]), coarse_nnz=int(Ac.nnz),
                         coarse_factor_nnz=int(fill), galerkin_s=t_g - t_p, lambda_max=lmax,
                         coarse_factor_s=time.perf_counter() - t_g, precision=self.precision,
                         smoother_diagonal=self.diagonal)

    def trim(self) -> None:
        self.M = None
        self._coarse = None
        self._Kmkl = None

    def solve(self, b):
        b = np.asarray(b, float)
        cols = b.reshape(b.shape[0], -1)
        Kd = getattr(self, "_Kmkl", None) or MKLSparse(self.K)
        out, iters = _block_pcg(Kd, cols, lambda R: self.M(R).reshape(R.shape), self.rtol, self.maxiter)
        self.info["iterations"] = iters
        self.info["residual"] = self._residual(Kd, out, cols)
        return out.reshape(b.shape)
