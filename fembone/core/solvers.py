"""Sparse symmetric positive definite solvers behind one interface, registered by name.

* ``pardiso``  - Intel MKL PARDISO (pip wheel ``mkl``) called through ctypes as a
  symmetric positive definite factorisation (matrix type 2, upper triangle), in single
  precision by default, refined to double precision with preconditioned CG.  Fastest
  direct solver installable from PyPI; many load cases share one factorisation.  The
  runtime (``libmkl_rt.so*``, ``libmkl_rt*.dylib``, ``mkl_rt*.dll``) is found from
  ``$FEMBONE_MKL_RT`` (or ``$PYPARDISO_MKL_RT``), the ``mkl`` distribution's file list,
  then the system loader; wheels exist for x86-64 Linux, 64-bit Windows and Intel macOS.
* ``amg``      - conjugate gradients preconditioned by smoothed-aggregation algebraic
  multigrid (pyamg) with the six rigid-body modes as near-null space (Vanek, Mandel &
  Brezina 1996).  Least memory; the choice for large models.
* ``superlu``  - SciPy's SuperLU; always available, fine for small models.
* ``cholmod``  - SuiteSparse CHOLMOD, when scikit-sparse is installed (optional).

``choose_solver`` picks by size and availability; a case file's ``solver:`` overrides.
Every solver reports the relative residual of its solution.
"""

from __future__ import annotations

import ctypes
import fnmatch
import functools
import importlib.metadata
import logging
import os
import platform
import sys
import time
from ctypes.util import find_library
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from fembone.core.errors import InputError, SolverError

SOLVERS: dict[str, type[Solver]] = {}
log = logging.getLogger("fembone.solvers")

#: models up to this many DOFs use a direct factorisation by default.  Measured on the
#: vertebra-like tet10 body (benchmarks/README.md): single-precision PARDISO was 4x faster
#: than AMG-CG at 49k DOFs and 1.3x slower at 205k (factor work grows ~n^2, AMG ~n), so the
#: cross-over is near 150k; above it AMG-CG is also the one that fits in memory.
DIRECT_LIMIT = 150_000
#: models up to this many DOFs use SuperLU (no set-up cost worth avoiding)
SMALL_LIMIT = 20_000
#: relative residual the iterative solvers (and refinement) aim for
RTOL = 1e-10


def register(cls):
    SOLVERS[cls.name] = cls
    return cls


@dataclass
class Solver:
    """Factorise/set up once with :meth:`setup`, then :meth:`solve` any number of right-hand sides."""

    name = "base"
    rtol: float = RTOL
    maxiter: int = 2000
    info: dict = field(default_factory=dict)

    @classmethod
    def available(cls) -> bool:
        return True

    def setup(self, K: sp.csr_matrix, near_nullspace: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def solve(self, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _residual(self, K, x, b) -> float:
        """Largest relative residual ||b - K x|| / ||b|| over the columns; per column in info['residuals']."""
        r = b - K @ x
        nb = np.linalg.norm(b, axis=0)
        res = np.atleast_1d(np.linalg.norm(r, axis=0) / np.where(nb > 0, nb, 1.0))
        self.info["residuals"] = [float(v) for v in res]
        return float(res.max())


@register
class SuperLU(Solver):
    name = "superlu"

    def setup(self, K, near_nullspace=None):
        t = time.perf_counter()
        self.K = K
        try:
            self.lu = spla.splu(
                K.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
            )
        except RuntimeError as exc:
            raise SolverError(f"SuperLU factorisation failed ({exc}): the stiffness matrix is singular") from None
        self.info.update(factor_s=time.perf_counter() - t, factor_nnz=int(self.lu.L.nnz + self.lu.U.nnz))

    def solve(self, b):
        x = self.lu.solve(np.asarray(b, float))
        self.info["residual"] = self._residual(self.K, x, b)
        return x


#: file names of MKL's single dynamic runtime in the ``mkl`` wheels: Linux, macOS, Windows
MKL_RT_PATTERNS = ("libmkl_rt.so*", "libmkl_rt*.dylib", "mkl_rt*.dll")
#: environment variables naming the runtime explicitly (pypardiso's name kept working)
MKL_ENV = ("FEMBONE_MKL_RT", "PYPARDISO_MKL_RT")


def _mkl_from_distribution() -> str | None:
    """MKL's runtime listed in the installed ``mkl`` distribution's RECORD (no directory walk).

    The wheels put it in ``<prefix>/lib`` (``libmkl_rt.so.2``, ``libmkl_rt.2.dylib``) or
    ``<prefix>/Library/bin`` (``mkl_rt.2.dll``); the file list says which, wherever the
    prefix is (virtual environment, ``--user``, system).
    """
    try:
        files = importlib.metadata.files("mkl")
    except importlib.metadata.PackageNotFoundError:
        return None
    hits = [f for f in files or () if any(fnmatch.fnmatch(PurePath(str(f)).name, pat) for pat in MKL_RT_PATTERNS)]
    for f in sorted(hits, key=lambda f: len(PurePath(str(f)).name)):
        path = Path(f.locate())
        if path.is_file():
            return str(path.resolve())
    return None


def _mkl_search() -> tuple[str | None, str]:
    """(path of libmkl_rt or None, how it was found or why not).

    Order: $FEMBONE_MKL_RT / $PYPARDISO_MKL_RT, the ``mkl`` distribution's file list, then
    the system loader's search path (``ctypes.util.find_library``).  Never walks directories.
    """
    for var in MKL_ENV:
        if os.environ.get(var):
            return os.environ[var], f"${var}"
    path = _mkl_from_distribution()
    if path:
        return path, "the mkl wheel"
    path = find_library("mkl_rt")
    if path:
        return path, "the system library path"
    if not _mkl_platform():
        return None, f"no MKL wheel exists for this platform ({sys.platform} {platform.machine()})"
    return None, "MKL runtime not found (pip install mkl, or set FEMBONE_MKL_RT to libmkl_rt)"


def _mkl_platform() -> bool:
    """True where PyPI has ``mkl`` wheels: x86-64 Linux, 64-bit Windows, Intel macOS."""
    return platform.machine().lower() in ("x86_64", "amd64")


@functools.lru_cache(maxsize=1)
def _find_mkl() -> str | None:
    """Path of MKL's runtime library, or None (see :func:`_mkl_search`)."""
    return _mkl_search()[0]


_PARDISO_ERRORS = {
    -1: "input inconsistent",
    -2: "not enough memory",
    -3: "reordering problem",
    -4: "zero pivot: the matrix is not positive definite (check for free rigid-body motions or a nu near 0.5)",
    -5: "unclassified internal error",
    -6: "reordering failed",
    -7: "diagonal matrix is singular",
    -8: "32-bit integer overflow",
    -9: "not enough memory for out-of-core",
}


@register
class Pardiso(Solver):
    """MKL PARDISO, symmetric positive definite (mtype 2), upper triangle, zero-based indices.

    ``precision='single'`` factorises in float32 (half the memory, ~2x faster) and refines
    with CG in double precision, the factorisation serving as preconditioner.
    """

    name = "pardiso"
    precision: str = "single"

    _lib = None
    _why_not: str | None = None

    @classmethod
    def _load(cls):
        if cls._lib is None:
            path, how = _mkl_search()
            if path is None:
                raise SolverError(f"{how}; use solver: amg")
            if sys.platform == "win32" and os.path.isdir(os.path.dirname(path)):
                os.add_dll_directory(os.path.dirname(path))  # mkl_rt loads mkl_core etc. beside it
            try:
                lib = ctypes.CDLL(path)
                lib.pardiso.restype = None
            except (OSError, AttributeError) as exc:
                raise SolverError(f"MKL runtime {path} (from {how}) could not be loaded: {exc}") from None
            cls._lib = lib
        return cls._lib

    @classmethod
    def available(cls) -> bool:
        return cls.unavailable_reason() is None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when PARDISO can be used, else one line saying why not (remembered)."""
        if cls._lib is not None:
            return None
        if cls._why_not is None:
            try:
                cls._load()
                return None
            except SolverError as exc:
                cls._why_not = str(exc)
        return cls._why_not

    def _call(self, phase: int, b: np.ndarray | None = None) -> np.ndarray | None:
        lib = self._load()
        i32 = ctypes.POINTER(ctypes.c_int32)
        n = self.n
        nrhs = 1 if b is None or b.ndim == 1 else b.shape[1]
        if b is None:
            bb = np.zeros(n, self.dtype)
        else:
            bb = np.asfortranarray(b, dtype=self.dtype)
        x = np.zeros_like(bb)
        err = ctypes.c_int32(0)
        lib.pardiso(
            self.pt.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(ctypes.c_int32(1)),
            ctypes.byref(ctypes.c_int32(1)),
            ctypes.byref(ctypes.c_int32(2)),
            ctypes.byref(ctypes.c_int32(phase)),
            ctypes.byref(ctypes.c_int32(n)),
            self.a.ctypes.data_as(ctypes.c_void_p),
            self.ia.ctypes.data_as(i32),
            self.ja.ctypes.data_as(i32),
            ctypes.c_void_p(),
            ctypes.byref(ctypes.c_int32(nrhs)),
            self.iparm.ctypes.data_as(i32),
            ctypes.byref(ctypes.c_int32(0)),
            bb.ctypes.data_as(ctypes.c_void_p),
            x.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(err),
        )
        if err.value != 0:
            raise SolverError(f"PARDISO error {err.value}: {_PARDISO_ERRORS.get(err.value, 'unknown')}")
        return x if b is not None else None

    def setup(self, K, near_nullspace=None):
        """Factorise K.  A solver set up before on a matrix with the same sparsity pattern (the
        parametric-study case: only material values change) keeps PARDISO's fill-reducing
        ordering and symbolic analysis and redoes only the numerical factorisation (phase 22)."""
        t = time.perf_counter()
        self.K = K.tocsr()
        U = sp.triu(self.K, format="csr")
        U.sort_indices()
        dtype = np.float32 if self.precision == "single" else np.float64
        ia = U.indptr.astype(np.int32)
        ja = U.indices.astype(np.int32)
        reuse = (
            getattr(self, "pt", None) is not None and self.pt.any() and self.dtype == dtype
            and self.n == K.shape[0] and np.array_equal(self.ia, ia) and np.array_equal(self.ja, ja)
        )
        if not reuse and getattr(self, "pt", None) is not None and self.pt.any():
            self._call(-1)  # release the previous factorisation
        self.dtype = dtype
        self.n = K.shape[0]
        self.a = U.data.astype(self.dtype)
        self.ia, self.ja = ia, ja
        if reuse:
            self._call(22)
        else:
            self.pt = np.zeros(64, np.int64)
            self.iparm = np.zeros(64, np.int32)
            ip = self.iparm
            ip[0] = 1  # user-supplied parameters
            ip[1] = 2  # METIS nested dissection
            ip[7] = 0  # no iterative refinement inside PARDISO (we refine with CG)
            ip[9] = 8
            ip[17] = -1  # report nnz of the factor
            ip[23] = 1  # parallel two-level factorisation
            ip[27] = 1 if self.dtype == np.float32 else 0
            ip[34] = 1  # zero-based indexing
            self._call(12)
        self.info.update(
            factor_s=time.perf_counter() - t, factor_nnz=int(self.iparm[17]), precision=self.precision,
            reused_analysis=bool(reuse),
        )

    def _apply(self, b):
        x = self._call(33, np.asarray(b))
        return x.astype(float)

    def solve(self, b):
        b = np.asarray(b, float)
        cols = b.reshape(self.n, -1)
        out = np.empty_like(cols)
        iters = []
        if self.dtype == np.float64:
            out[:] = self._apply(cols).reshape(cols.shape)
            iters = [0] * cols.shape[1]
        else:
            # all load cases refine together: one PARDISO call per CG step serves every column
            out[:], iters = _block_pcg(self.K, cols, lambda r: self._apply(r).reshape(r.shape), self.rtol, self.maxiter)
        self.info["iterations"] = iters
        self.info["residual"] = self._residual(self.K, out, cols)
        return out.reshape(b.shape)

    def __del__(self):
        try:
            if getattr(self, "pt", None) is not None and self.pt.any():
                self._call(-1)
        except Exception:
            pass


#: seconds between two CG progress lines (INFO on the ``fembone.solvers`` logger)
PROGRESS_S = 5.0


class CGProgress:
    """Logs CG progress at most every :data:`PROGRESS_S` seconds: iteration, relative residual
    and the time left, extrapolated from the mean convergence rate so far
    (log r_k ~ log r_0 + k log rho) and the mean time per iteration."""

    def __init__(self, rtol: float, label: str = "CG"):
        self.rtol = rtol
        self.label = label
        self.t0 = self.last = time.perf_counter()
        self.res0: float | None = None

    def __call__(self, it: int, res: float) -> None:
        if self.res0 is None:
            self.res0 = res
        now = time.perf_counter()
        if now - self.last < PROGRESS_S or it == 0:
            return
        self.last = now
        elapsed = now - self.t0
        log.info("%s iteration %d, relative residual %.2e (target %.0e), %s", self.label, it, res, self.rtol,
                 _eta(self.res0, res, self.rtol, it, elapsed))


def _eta(res0: float, res: float, rtol: float, it: int, elapsed: float) -> str:
    if not (0 < res < res0 and res > rtol):
        return "estimate pending"
    rate = np.log(res / res0) / it  # mean log-reduction per iteration (< 0)
    left = np.log(rtol / res) / rate
    return f"about {left * elapsed / it:.0f} s left ({left:.0f} more iterations)"


def _block_pcg(A, B: np.ndarray, M, rtol: float, maxiter: int) -> tuple[np.ndarray, list[int]]:
    """Independent preconditioned CG runs on the columns of B, advanced together.

    ``M(R)`` applies the preconditioner to all columns at once (one multi-RHS triangular
    solve instead of one per column); each column has its own step lengths and stops at
    ||r|| <= rtol ||b||.
    """
    nb = np.linalg.norm(B, axis=0)
    X = M(B)
    R = B - A @ X
    Z = M(R)
    P = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    iters = np.zeros(B.shape[1], int)
    report = CGProgress(rtol, "refinement CG")
    scale = np.where(nb > 0, nb, 1.0)
    for k in range(maxiter):
        rel = np.linalg.norm(R, axis=0) / scale
        active = (rel > rtol) & (nb > 0)
        if not active.any():
            break
        report(k, float(rel[active].max()))
        iters += active
        AP = A @ P
        pap = np.einsum("ij,ij->j", P, AP)
        alpha = np.where(active, rz / np.where(pap != 0, pap, 1.0), 0.0)
        X += alpha * P
        R -= alpha * AP
        Z = M(R)
        rz_new = np.einsum("ij,ij->j", R, Z)
        beta = np.where(active, rz_new / np.where(rz != 0, rz, 1.0), 0.0)
        P = Z + beta * P
        rz = rz_new
    else:
        res = np.linalg.norm(R, axis=0) / np.where(nb > 0, nb, 1.0)
        if res.max() > rtol * 100:
            raise SolverError(f"CG did not converge in {maxiter} iterations (relative residual {res.max():.2e})")
    X[:, nb == 0] = 0.0
    return X, iters.tolist()


def _pcg(A, b, M, x0, rtol, maxiter, label: str = "CG") -> tuple[np.ndarray, int]:
    """Preconditioned conjugate gradients (Hestenes & Stiefel 1952), stop at ||r|| <= rtol ||b||."""
    x = x0.copy()
    r = b - A @ x
    nb = np.linalg.norm(b)
    if nb == 0:
        return np.zeros_like(b), 0
    z = M @ r
    p = z.copy()
    rz = r @ z
    report = CGProgress(rtol, label)
    for it in range(1, maxiter + 1):
        nr = np.linalg.norm(r)
        if nr <= rtol * nb:
            return x, it - 1
        report(it - 1, float(nr / nb))
        Ap = A @ p
        alpha = rz / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        z = M @ r
        rz_new = r @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
    if np.linalg.norm(r) > rtol * nb * 100:
        raise SolverError(f"CG did not converge in {maxiter} iterations (relative residual {np.linalg.norm(r) / nb:.2e})")
    return x, maxiter


class _VCycle:
    """Symmetric V-cycle of a pyamg hierarchy: forward Gauss-Seidel down, backward up.

    pyamg's ``aspreconditioner`` wraps ``MultilevelSolver.solve``, which also forms the
    residual before and after every cycle (two extra fine-level products per CG
    iteration); this applies exactly one cycle from a zero initial guess.
    """

    def __init__(self, ml):
        from pyamg.relaxation.relaxation import gauss_seidel

        self.gs = gauss_seidel
        self.levels = ml.levels
        n = ml.levels[0].A.shape[0]
        self.shape = (n, n)
        self.dtype = np.dtype(float)
        coarse = ml.levels[-1].A
        self.coarse = spla.splu(sp.csc_matrix(coarse), permc_spec="MMD_AT_PLUS_A")

    def _cycle(self, k: int, b: np.ndarray) -> np.ndarray:
        lvl = self.levels[k]
        if k == len(self.levels) - 1:
            return self.coarse.solve(b)
        A = lvl.A
        x = np.zeros_like(b)
        self.gs(A, x, b, iterations=1, sweep="forward")
        r = b - A @ x
        x += lvl.P @ self._cycle(k + 1, lvl.R @ r)
        self.gs(A, x, b, iterations=1, sweep="backward")
        return x

    def __matmul__(self, b):
        return self._cycle(0, np.asarray(b, float).ravel())

    matvec = __matmul__


@register
class AMG(Solver):
    """CG + smoothed-aggregation AMG, rigid-body modes as near-null space.

    Settings measured on this kind of machine (shared/design/solvers.md, then
    benchmarks/README.md on the vertebra-like body): symmetric strength with theta 0.05
    (0.02 gave 67 CG iterations at 205k DOFs, 0.05 gives 54; 0.1 makes the operator
    complexity grow faster than the iterations fall), no candidate improvement, one forward
    / one backward point Gauss-Seidel sweep on CSR level operators, coarsening down to
    about 100 aggregates (``max_coarse`` counts blocks: 1000 left a 6000-DOF coarse grid
    whose sparse LU cost more than the rest of the cycle), and our own V-cycle.
    """

    name = "amg"
    theta: float = 0.05
    max_coarse: int = 100

    def setup(self, K, near_nullspace=None):
        import pyamg

        t = time.perf_counter()
        self.K = K.tocsr()
        n = K.shape[0]
        A = self.K.tobsr(blocksize=(3, 3)) if n % 3 == 0 else self.K
        B = near_nullspace if near_nullspace is not None else np.ones((n, 1))
        ml = pyamg.smoothed_aggregation_solver(
            A,
            B=B,
            strength=("symmetric", {"theta": self.theta}),
            improve_candidates=None,
            presmoother=("gauss_seidel", {"sweep": "forward"}),
            postsmoother=("gauss_seidel", {"sweep": "backward"}),
            max_coarse=self.max_coarse,
            coarse_solver="splu",
            keep=False,
        )
        del A
        ml.levels[0].A = self.K  # the fine level shares K instead of holding a converted copy
        for lvl in ml.levels[1:]:
            lvl.A = lvl.A.tocsr()
        self.ml = ml
        self.M = _VCycle(ml)
        self.info.update(
            setup_s=time.perf_counter() - t, levels=len(ml.levels),
            level_sizes=[int(lvl.A.shape[0]) for lvl in ml.levels],
            operator_complexity=float(ml.operator_complexity()),
        )

    def solve(self, b):
        b = np.asarray(b, float)
        cols = b.reshape(b.shape[0], -1)
        out = np.empty_like(cols)
        iters = []
        for k in range(cols.shape[1]):
            label = f"AMG-CG (load case {k + 1}/{cols.shape[1]})" if cols.shape[1] > 1 else "AMG-CG"
            out[:, k], it = _pcg(self.K, cols[:, k], self.M, np.zeros(len(b)), self.rtol, self.maxiter, label)
            iters.append(it)
        self.info["iterations"] = iters
        self.info["residual"] = self._residual(self.K, out, cols)
        return out.reshape(b.shape)


@register
class Cholmod(Solver):
    """SuiteSparse CHOLMOD via scikit-sparse (optional: ``pip install scikit-sparse``)."""

    name = "cholmod"

    @classmethod
    def available(cls) -> bool:
        try:
            import sksparse.cholmod  # noqa: F401

            return True
        except ImportError:
            return False

    def setup(self, K, near_nullspace=None):
        from sksparse.cholmod import CholmodNotPositiveDefiniteError, cholesky

        t = time.perf_counter()
        self.K = K.tocsr()
        try:
            self.factor = cholesky(K.tocsc())
        except CholmodNotPositiveDefiniteError as exc:
            raise SolverError(f"CHOLMOD: matrix not positive definite ({exc})") from None
        self.info.update(factor_s=time.perf_counter() - t)

    def solve(self, b):
        x = self.factor(np.asarray(b, float))
        self.info["residual"] = self._residual(self.K, x, b)
        return x


#: never factorise above this many DOFs by default (the single-precision factor of a tet10
#: vertebra grows to several GB past it)
DIRECT_CAP = 500_000


def direct_limit(n_rhs: int = 1) -> int:
    """DOFs up to which a factorisation beats AMG-CG for ``n_rhs`` load cases.

    One factorisation serves every load case, while CG pays per load case: with the
    measured costs (benchmarks/README.md: PARDISO factor ~ n^1.6, AMG setup + CG ~ n per
    load case) the cross-over moves up roughly as n_rhs^0.8, capped by DIRECT_CAP.
    """
    return int(min(DIRECT_LIMIT * max(1, n_rhs) ** 0.8, DIRECT_CAP))


def choose_solver(n_dofs: int, requested: str | None = None, where: str = "solver", n_rhs: int = 1) -> Solver:
    """The solver named ``requested``, or by size and load-case count.

    SuperLU up to :data:`SMALL_LIMIT` DOFs; PARDISO up to :func:`direct_limit`; AMG-CG
    above it, and also from :data:`SMALL_LIMIT` on when PARDISO is not available (SuperLU's
    fill makes it 3.6x slower and 6x larger than AMG-CG at 49k DOFs, issue 13), with a
    one-line hint on the ``fembone.solvers`` logger saying why PARDISO was skipped.
    """
    if requested not in (None, "auto"):
        if requested not in SOLVERS:
            raise InputError(f"unknown solver '{requested}' (known: auto, {', '.join(SOLVERS)})", where)
        cls = SOLVERS[requested]
        if not cls.available():
            why = cls.unavailable_reason() if cls is Pardiso else None
            raise InputError(f"solver '{requested}' is not installed on this machine" + (f" ({why})" if why else ""), where)
        return cls()
    if n_dofs <= SMALL_LIMIT:
        return SuperLU()
    if n_dofs > direct_limit(n_rhs):
        return AMG()
    why = Pardiso.unavailable_reason()
    if why is None:
        return Pardiso()
    _hint_once(f"PARDISO skipped ({why}); AMG-CG for {n_dofs:,} DOFs")
    solver = AMG()
    solver.info["pardiso_skipped"] = why
    return solver


@functools.lru_cache(maxsize=8)
def _hint_once(message: str) -> None:
    log.warning(message)
