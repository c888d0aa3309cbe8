"""What every linear solver shares: the interface, the registry and preconditioned CG.

Units: the matrices are stiffnesses (N/mm), right-hand sides forces (N), solutions mm.
CG (Hestenes & Stiefel 1952) reports its progress on the ``fembone.solvers`` logger.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from fembone.core.errors import SolverError

SOLVERS: dict[str, type[Solver]] = {}
log = logging.getLogger("fembone.solvers")

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

    def trim(self) -> None:
        """Drop work data that a later :meth:`setup` rebuilds anyway (kept: what it reuses)."""

    def _residual(self, K, x, b) -> float:
        """Largest relative residual ||b - K x|| / ||b|| over the columns; per column in info['residuals']."""
        r = b - K @ x
        nb = np.linalg.norm(b, axis=0)
        res = np.atleast_1d(np.linalg.norm(r, axis=0) / np.where(nb > 0, nb, 1.0))
        self.info["residuals"] = [float(v) for v in res]
        return float(res.max())


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


def _coldot(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Column-wise dot products of two (n, k) blocks, without a temporary."""
    return np.einsum("ij,ij->j", U, V)


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
    rz = _coldot(R, Z)
    iters = np.zeros(B.shape[1], int)
    report = CGProgress(rtol, "refinement CG")
    scale = np.where(nb > 0, nb, 1.0)
    for k in range(maxiter):
        rel = np.sqrt(_coldot(R, R)) / scale
        active = (rel > rtol) & (nb > 0)
        if not active.any():
            break
        report(k, float(rel[active].max()))
        iters += active
        AP = A @ P
        pap = _coldot(P, AP)
        alpha = np.where(active, rz / np.where(pap != 0, pap, 1.0), 0.0)
        X += alpha * P
        AP *= alpha
        R -= AP
        del AP
        Z = M(R)
        rz_new = _coldot(R, Z)
        beta = np.where(active, rz_new / np.where(rz != 0, rz, 1.0), 0.0)
        P *= beta
        P += Z
        rz = rz_new
    else:
        res = np.linalg.norm(R, axis=0) / np.where(nb > 0, nb, 1.0)
        if res.max() > rtol * 100:
            raise SolverError(f"CG did not converge in {maxiter} iterations (relative residual {res.max():.2e})")
    X[:, nb == 0] = 0.0
    return X, iters.tolist()


def pcg(A, b, M, x0, rtol, maxiter, label: str = "CG", flexible: bool = False) -> tuple[np.ndarray, int]:
    """Preconditioned conjugate gradients (Hestenes & Stiefel 1952), stop at ||r|| <= rtol ||b||.

    ``flexible``: beta = r_new . (z_new - z_old) / (r_old . z_old) (Polak-Ribiere; Notay 2000,
    SIAM J. Sci. Comput. 22:1444), robust to a preconditioner that is symmetric only up to
    rounding (single precision); one extra dot product per iteration.
    """
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
        z_old = z
        z = M @ r
        rz_new = r @ z
        beta = (rz_new - r @ z_old) / rz if flexible else rz_new / rz
        p = z + beta * p
        rz = rz_new
    if np.linalg.norm(r) > rtol * nb * 100:
        raise SolverError(f"CG did not converge in {maxiter} iterations (relative residual {np.linalg.norm(r) / nb:.2e})")
    return x, maxiter




_pcg = pcg  # the name used before the split
