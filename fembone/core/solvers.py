"""Sparse symmetric positive definite solvers behind one interface, registered by name.

* ``pardiso``  - Intel MKL PARDISO (:mod:`fembone.core.solvers_pardiso`): symmetric positive
  definite factorisation in single precision refined by CG in double; many load cases share
  one factorisation.  Fastest direct solver installable from PyPI.
* ``amg``      - conjugate gradients preconditioned by smoothed-aggregation algebraic
  multigrid (:mod:`fembone.core.solvers_amg`) with the six rigid-body modes as near-null
  space (Vanek, Mandel & Brezina 1996).  Least memory; the choice for large models.
* ``pmg``      - block CG preconditioned by a two-level p-multigrid cycle for tet10 models
  (:mod:`fembone.core.solvers_pmg`): tet4 coarse space on the corner nodes factorised by
  PARDISO, Chebyshev smoothing; needs the cells in ``solver_options`` (segment cases).
* ``superlu``  - SciPy's SuperLU; always available, fine for small models.
* ``cholmod``  - SuiteSparse CHOLMOD, when scikit-sparse is installed (optional).

``choose_solver`` picks by size, load-case count and availability; a case file's
``solver:`` overrides.  Every solver reports the relative residual of its solution.
The interface, registry and CG live in :mod:`fembone.core.solvers_base`; every name is
importable from here.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import scipy.sparse.linalg as spla

from fembone.core.errors import InputError, SolverError
from fembone.core.solvers_amg import AMG, LANCZOS_STEPS, Level, MaskedMatrix, VCycle, build_hierarchy, spectral_radius_dinv
from fembone.core.solvers_base import (
    PROGRESS_S, RTOL, SOLVERS, CGProgress, Solver, _block_pcg, _eta, _pcg, log, pcg, register,
)
from fembone.core.solvers_pardiso import (
    _PARDISO_ERRORS, MKL_ENV, MKL_RT_PATTERNS, Pardiso, _find_mkl, _mkl_from_distribution, _mkl_platform,
    _mkl_search,
)
from fembone.core.solvers_pmg import PMG

__all__ = [
    "AMG", "CGProgress", "Cholmod", "DIRECT_CAP", "DIRECT_LIMIT", "LANCZOS_STEPS", "Level", "MKL_ENV",
    "MKL_RT_PATTERNS", "MaskedMatrix", "PMG", "PROGRESS_S", "Pardiso", "RTOL", "SMALL_LIMIT", "SOLVERS", "Solver",
    "SuperLU", "VCycle", "AMG_SETUP_SHARE", "FACTOR_EXPONENT", "build_hierarchy", "choose_solver", "direct_limit", "pcg", "register",
    "spectral_radius_dinv", "_PARDISO_ERRORS", "_block_pcg", "_eta", "_find_mkl", "_mkl_from_distribution",
    "_mkl_platform", "_mkl_search", "_pcg", "log",
]

#: models up to this many DOFs use a direct factorisation by default (one load case; see
#: :func:`direct_limit` for several).  Re-measured on the vertebra-like tet10 body with the
#: single-precision AMG cycle (benchmarks/README.md, "Solver choice"): CPU s of set-up +
#: solve, PARDISO vs AMG-CG, 3.6 vs 8.6 at 49k DOFs, 14.9 vs 15.5 at 115k, 51 vs 21 at 205k.
DIRECT_LIMIT = 120_000
#: share of AMG-CG's one-load-case time spent in its set-up (the rest is paid per load case);
#: 3.9 of 15.5 s at 115k DOFs
AMG_SETUP_SHARE = 0.25
#: PARDISO's factorisation time grows about as n^1.6 (15 s at 115k, 51 s at 205k CPU)
FACTOR_EXPONENT = 1.6
#: models up to this many DOFs use SuperLU (no set-up cost worth avoiding)
SMALL_LIMIT = 20_000


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

    One factorisation (time a n^1.6) serves every load case, while AMG-CG pays its set-up
    once and CG per load case (time (s + k c) n, s = 0.25 of the one-case time): the two
    meet at n_k = n_1 ((s + k c) / (s + c))^(1 / 0.6), capped by :data:`DIRECT_CAP`
    (memory of the factor).  120k DOFs for one load case, 305k for two, 500k from three on.
    """
    k = max(1, n_rhs)
    grow = (AMG_SETUP_SHARE + (1.0 - AMG_SETUP_SHARE) * k) ** (1.0 / (FACTOR_EXPONENT - 1.0))
    return int(min(DIRECT_LIMIT * grow, DIRECT_CAP))


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
