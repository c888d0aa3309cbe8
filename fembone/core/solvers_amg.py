"""CG preconditioned by smoothed-aggregation algebraic multigrid: the large-model solver.

Smoothed aggregation (Vanek, Mandel & Brezina 1996, Computing 56:179-196) with the six
rigid-body modes as near-null space, built here from pyamg's pieces (strength of
connection, aggregation, tentative prolongator) rather than pyamg's driver, because two
things dominated that driver's set-up on tet10 elasticity (shared/design/solvers.md,
benchmarks/README.md):

* the prolongator smoother P = (I - omega/rho D^-1 A) T needs rho(D^-1 A); pyamg estimates
  it with a restarted Arnoldi on a random vector (half of the set-up at 205k DOFs).  Here
  a short Lanczos run on the symmetric D^-1/2 A D^-1/2 (same spectrum) from a fixed start
  vector gives rho in a few products, reproducibly (Saad, *Numerical Methods for Large
  Eigenvalue Problems*, 2011, ch. 6);
* the fine operator was copied twice (BSR for the set-up, CSR for the smoother).  Here the
  fine level smooths with a single-precision copy of K that shares K's index arrays, and
  the set-up's BSR copy lives only while the hierarchy is built.

The V-cycle (one forward point Gauss-Seidel sweep down, one backward sweep up: symmetric)
runs in single precision by default (``precision='single'``): it is a preconditioner,
and halving the bytes per non-zero made a cycle 1.5x cheaper at 205k DOFs with the same
54 CG iterations; CG itself, the residual test and the answer stay in double precision
(flexible CG, Notay 2000, SIAM J. Sci. Comput. 22:1444, absorbs the rounding asymmetry of
a single-precision cycle).  The coarsest level is solved by sparse LU in double precision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from fembone.core.solvers_base import Solver, pcg, register

#: Lanczos steps for rho(D^-1 A) (6 gave the same CG iteration count as pyamg's estimate)
LANCZOS_STEPS = 6
#: at most this many levels
MAX_LEVELS = 10


class MaskedMatrix:
    """K_q = D K D + I_dep of a symmetric CSR ``K`` without copying it (D = diag(not dependent)).

    This is what :func:`fembone.core.constraints.reduce_system` builds for a reduction that
    only drops DOFs (supports), as an operator: products, the diagonal and single-precision
    or block copies for the multigrid set-up, while K itself stays the one matrix in memory.
    """

    def __init__(self, K: sp.csr_matrix, dependent: np.ndarray):
        self.K = K.tocsr()
        self.dep = np.asarray(dependent, bool)
        self.free = (~self.dep).astype(float)
        self.shape = self.K.shape
        self.dtype = np.dtype(float)
        self.nnz = self.K.nnz
        self._diag = self._dependent_diagonal(self.K, self.dep)
        if self._diag is None:
            raise ValueError("a dependent DOF has no stored diagonal entry")

    @staticmethod
    def _dependent_diagonal(K: sp.csr_matrix, dep: np.ndarray) -> np.ndarray | None:
        """Positions in K.data of the dependent DOFs' diagonal entries (None if one is missing)."""
        counts = np.diff(K.indptr)
        rows = np.flatnonzero(dep)
        sel = np.repeat(K.indptr[:-1][dep], counts[dep]) + (np.arange(counts[dep].sum()) - np.repeat(
            np.cumsum(counts[dep]) - counts[dep], counts[dep]))
        on_diag = sel[K.indices[sel] == np.repeat(rows, counts[dep])]
        return on_diag if len(on_diag) == len(rows) else None

    @classmethod
    def fits(cls, K: sp.spmatrix, dependent: np.ndarray) -> bool:
        """True when K (CSR, square, 3 DOFs per block) stores every dependent DOF's diagonal."""
        return (sp.issparse(K) and K.format == "csr" and K.shape[0] == K.shape[1] and K.shape[0] % 3 == 0
                and cls._dependent_diagonal(K, np.asarray(dependent, bool)) is not None)

    def __matmul__(self, x):
        x = np.asarray(x)
        f = self.free if x.ndim == 1 else self.free[:, None]
        d = self.dep if x.ndim == 1 else self.dep[:, None]
        y = self.K @ (x * f)
        y *= f
        return y + np.where(d, x, 0.0)

    def diagonal(self) -> np.ndarray:
        return np.where(self.dep, 1.0, self.K.diagonal())

    def _masked_data(self, dtype) -> np.ndarray:
        """K's values with dependent rows/columns zeroed and a unit diagonal on them, in ``dtype``."""
        K = self.K
        data = K.data.astype(dtype, copy=True)
        data[np.repeat(self.dep, np.diff(K.indptr)) | self.dep[K.indices]] = 0
        data[self._diag] = 1
        return data

    def bsr(self, bs: int) -> sp.bsr_matrix:
        """The masked matrix in double precision on ``bs`` x ``bs`` blocks (one copy of K's values)."""
        A = sp.bsr_matrix(self.K, blocksize=(bs, bs))
        dep = self.dep.reshape(-1, bs)
        brow = np.repeat(np.arange(len(dep)), np.diff(A.indptr))
        dr, dc = dep[brow], dep[A.indices]  # (nnzb, bs) each
        A.data[dr[:, :, None] | dc[:, None, :]] = 0.0
        on_diag = np.flatnonzero(brow == A.indices)
        a = np.arange(bs)
        d = A.data[on_diag][:, a, a]
        d[dr[on_diag]] = 1.0
        A.data[on_diag[:, None], a, a] = d
        if np.count_nonzero(dr[on_diag]) != np.count_nonzero(self.dep):
            raise ValueError("a dependent DOF has no stored diagonal block")
        return A

    def csr(self, dtype=np.float64) -> sp.csr_matrix:
        """The masked matrix in CSR, sharing K's index arrays (values copied in ``dtype``)."""
        A = sp.csr_matrix((self._masked_data(dtype), self.K.indices, self.K.indptr), shape=self.shape, copy=False)
        A.has_sorted_indices = self.K.has_sorted_indices
        return A

    def tocsr(self) -> sp.csr_matrix:
        return self.csr(np.float64)


@dataclass
class Level:
    """One level: operator A (the cycle's precision), prolongator P and restriction R = P^T,
    and U, the strict upper triangle of A (the residual after a forward sweep from zero)."""

    A: sp.csr_matrix
    P: sp.csr_matrix | None = None
    R: sp.csr_matrix | None = None
    U: sp.csr_matrix | None = None


def spectral_radius_dinv(A, dinv: np.ndarray, steps: int = LANCZOS_STEPS) -> float:
    """Largest eigenvalue of D^-1 A (A symmetric positive semi-definite, D = diag(A)).

    Lanczos on the similar symmetric S = D^-1/2 A D^-1/2 from a fixed start vector; the
    largest Ritz value converges first (Saad 2011, ch. 6).
    """
    s = np.sqrt(dinv)
    n = A.shape[0]
    v = np.cos(np.arange(n) * 0.7548776662) + 0.1  # fixed, not orthogonal to smooth or rough modes
    v /= np.linalg.norm(v)
    v_prev = np.zeros(n)
    alpha: list[float] = []
    beta: list[float] = []
    b = 0.0
    for _ in range(min(steps, n)):
        w = s * (A @ (s * v))
        a = float(v @ w)
        alpha.append(a)
        w -= a * v + b * v_prev
        b = float(np.linalg.norm(w))
        if b <= 1e-12 * abs(a):
            break
        beta.append(b)
        v_prev, v = v, w / b
    k = len(alpha)
    T = np.diag(alpha) + np.diag(beta[: k - 1], 1) + np.diag(beta[: k - 1], -1)
    return float(np.linalg.eigvalsh(T).max())


def build_hierarchy(
    A: sp.spmatrix | MaskedMatrix, B: np.ndarray, theta: float = 0.05, max_coarse: int = 100,
    omega: float = 4.0 / 3.0, steps: int = LANCZOS_STEPS, dtype=np.float32,
) -> tuple[list[Level], list[int], float]:
    """Smoothed-aggregation hierarchy of A with near-null space B.

    Per level: symmetric strength with ``theta`` on the node blocks, standard aggregation,
    tentative prolongator T from B (QR per aggregate), P = (I - omega/rho D^-1 A) T and the
    Galerkin product R A P in double precision on 3x3 (then 6x6) blocks; coarsening stops
    at ``max_coarse`` blocks.  Level operators, P and R are kept as CSR in ``dtype`` (the fine
    one shares A's index arrays).  Returns (levels, sizes, operator complexity).
    """
    from pyamg.aggregation.aggregate import standard_aggregation
    from pyamg.aggregation.tentative import fit_candidates
    from pyamg.strength import symmetric_strength_of_connection

    n = A.shape[0]
    bs = 3 if n % 3 == 0 else 1
    Ab = A.bsr(bs) if isinstance(A, MaskedMatrix) else sp.bsr_matrix(A.tocsr(), blocksize=(bs, bs))
    levels: list[Level] = []
    while len(levels) < MAX_LEVELS - 1 and Ab.shape[0] // bs > max_coarse:
        C = symmetric_strength_of_connection(Ab, theta)
        agg, _ = standard_aggregation(C)
        del C
        if agg.shape[1] == 0 or agg.shape[1] * B.shape[1] >= Ab.shape[0]:
            break  # aggregation no longer coarsens
        T, Bc = fit_candidates(agg, B)
        d = Ab.diagonal()
        dinv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1.0), 0.0)
        # on the fine level the caller's CSR (or masked) operator multiplies faster than the block copy
        rho = spectral_radius_dinv(A if not levels else Ab, dinv, steps)
        P = Ab @ T  # A T, scaled in place to -omega/rho D^-1 A T, plus T
        P.data *= -(omega / rho) * np.repeat(dinv.reshape(-1, bs), np.diff(P.indptr), axis=0)[:, :, None]
        P = (P + T).tobsr(T.blocksize)
        del T
        AP = Ab @ P
        # the level's operator in the cycle's precision; the fine one shares the caller's
        # index arrays and is made once the set-up's block copy is gone (peak memory)
        A_lvl = None if not levels else _bsr_to_csr(Ab, dtype)
        del Ab
        R = P.T.tobsr()
        P_lvl = _bsr_to_csr(P, dtype)
        del P
        Ac = R @ AP
        del AP
        R_lvl = _bsr_to_csr(R, dtype)
        del R
        levels.append(Level(A_lvl if A_lvl is not None else _as_csr(A, dtype), P_lvl, R_lvl))
        nb = Bc.shape[1]
        Ab, B, bs = Ac.tobsr((nb, nb)), Bc, nb
        del Ac
    levels.append(Level(Ab.tocsr()))  # coarsest: double precision, solved by sparse LU
    sizes = [int(lvl.A.shape[0]) for lvl in levels]
    complexity = float(sum(lvl.A.nnz for lvl in levels) / max(levels[0].A.nnz, 1))
    return levels, sizes, complexity


def _bsr_to_csr(M: sp.bsr_matrix, dtype) -> sp.csr_matrix:
    """CSR copy of a BSR matrix in ``dtype`` (values cast before the conversion: one copy)."""
    if M.dtype != dtype:
        M = sp.bsr_matrix((M.data.astype(dtype), M.indices, M.indptr), shape=M.shape)
    return M.tocsr()


def _csr_dtype(M: sp.csr_matrix, dtype) -> sp.csr_matrix:
    if M.dtype == dtype:
        return M
    out = sp.csr_matrix((M.data.astype(dtype), M.indices, M.indptr), shape=M.shape, copy=False)
    out.has_sorted_indices = M.has_sorted_indices
    return out


def _as_csr(A, dtype) -> sp.csr_matrix:
    """The fine operator in ``dtype``, sharing the index arrays of the caller's matrix."""
    if isinstance(A, MaskedMatrix):
        return A.csr(dtype)
    return _csr_dtype(A.tocsr(), dtype)


def strict_upper(A: sp.csr_matrix, chunk: int = 1 << 22) -> sp.csr_matrix:
    """Strict upper triangle of a CSR matrix, built row block by row block (at most ``chunk``
    entries of temporaries at a time, instead of SciPy's triu through a full COO copy)."""
    n = A.shape[0]
    counts = np.diff(A.indptr)
    data, indices, kept = [], [], np.zeros(n, np.int64)
    r0 = 0
    while r0 < n:
        r1 = int(np.searchsorted(A.indptr, A.indptr[r0] + chunk, side="right")) - 1
        r1 = min(max(r1, r0 + 1), n)
        seg = slice(int(A.indptr[r0]), int(A.indptr[r1]))
        rows = np.repeat(np.arange(r0, r1, dtype=A.indices.dtype), counts[r0:r1])
        keep = A.indices[seg] > rows
        data.append(A.data[seg][keep])
        indices.append(A.indices[seg][keep])
        kept[r0:r1] = np.bincount(rows[keep] - r0, minlength=r1 - r0)
        r0 = r1
    indptr = np.zeros(n + 1, A.indptr.dtype)
    np.cumsum(kept, out=indptr[1:])
    U = sp.csr_matrix((np.concatenate(data), np.concatenate(indices), indptr), shape=A.shape, copy=False)
    U.has_sorted_indices = A.has_sorted_indices
    return U


class VCycle:
    """Symmetric V-cycle from a zero initial guess: forward point Gauss-Seidel down, backward up.

    Runs in the levels' precision; the coarsest level is solved by sparse LU in double.
    ``M @ r`` returns a float64 vector.
    """

    def __init__(self, levels: list[Level]):
        from pyamg import amg_core

        self.gs = amg_core.gauss_seidel
        self.levels = levels
        for lvl in levels[:-1]:
            if lvl.U is None:
                lvl.U = strict_upper(lvl.A)
        n = levels[0].A.shape[0]
        self.shape = (n, n)
        self.dtype = np.dtype(float)
        self.work = levels[0].A.dtype
        coarse = levels[-1].A
        self.coarse = spla.splu(sp.csc_matrix(coarse, dtype=np.float64), permc_spec="MMD_AT_PLUS_A")

    def _cycle(self, k: int, b: np.ndarray) -> np.ndarray:
        if k == len(self.levels) - 1:
            return self.coarse.solve(b.astype(np.float64)).astype(self.work)
        lvl = self.levels[k]
        A = lvl.A
        n = A.shape[0]
        x = np.zeros_like(b)
        self.gs(A.indptr, A.indices, A.data, x, b, 0, n, 1)
        # from zero the forward sweep solves (D + L) x = b, so r = b - A x = -U x: half a product
        x -= lvl.P @ self._cycle(k + 1, lvl.R @ (lvl.U @ x))
        self.gs(A.indptr, A.indices, A.data, x, b, n - 1, -1, -1)
        return x

    def __matmul__(self, b):
        b = np.asarray(b, float).ravel()
        if len(self.levels) == 1:
            return self.coarse.solve(b)
        return self._cycle(0, b.astype(self.work)).astype(np.float64)

    matvec = __matmul__


@register
class AMG(Solver):
    """CG + smoothed-aggregation AMG, rigid-body modes as near-null space.

    Settings measured on the vertebra-like tet10 body (benchmarks/README.md): symmetric
    strength with theta 0.05 (0.02: 71 CG iterations at 205k DOFs, cheaper set-up;
    0.05: 54; 0.08: 47 but operator complexity 1.8 and twice the set-up), no candidate
    improvement, coarsening to about 100 blocks, a single-precision symmetric Gauss-Seidel
    V-cycle (module docstring).  ``K`` may be a CSR matrix or a :class:`MaskedMatrix`.
    """

    name = "amg"
    theta: float = 0.05
    max_coarse: int = 100
    precision: str = "single"

    def setup(self, K, near_nullspace=None):
        t = time.perf_counter()
        self.K = K if isinstance(K, MaskedMatrix) else K.tocsr()
        n = K.shape[0]
        B = near_nullspace if near_nullspace is not None else np.ones((n, 1))
        self.M = None  # drop an earlier hierarchy before building the next one (memory)
        dtype = np.float32 if self.precision == "single" else np.float64
        levels, sizes, complexity = build_hierarchy(self.K, np.asarray(B, float), self.theta, self.max_coarse, dtype=dtype)
        self.M = VCycle(levels)
        self.info.update(
            setup_s=time.perf_counter() - t, levels=len(levels), level_sizes=sizes,
            operator_complexity=complexity, precision=self.precision,
        )

    def trim(self) -> None:
        self.M = None  # a new matrix gets a new hierarchy

    def solve(self, b):
        b = np.asarray(b, float)
        cols = b.reshape(b.shape[0], -1)
        out = np.empty_like(cols)
        iters = []
        for k in range(cols.shape[1]):
            label = f"AMG-CG (load case {k + 1}/{cols.shape[1]})" if cols.shape[1] > 1 else "AMG-CG"
            out[:, k], it = pcg(self.K, cols[:, k], self.M, np.zeros(len(b)), self.rtol, self.maxiter, label,
                                flexible=self.precision == "single")
            iters.append(it)
        self.info["iterations"] = iters
        self.info["residual"] = self._residual(self.K, out, cols)
        return out.reshape(b.shape)
