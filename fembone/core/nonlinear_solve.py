"""Equilibrium iterations of the nonlinear path (:mod:`fembone.core.nonlinear`): linear solves,
inexact Newton, a secant (L-BFGS) stage and the line search.

* Linear solves (:class:`LinearSolves`) go through the engine's solvers
  (:mod:`fembone.core.solvers`): ``linear='reuse'`` keeps one factorisation or AMG hierarchy as
  preconditioner of CG on the current tangent and renews it only when CG slows down;
  ``'refactor'`` sets the solver up again at every solve.
* Inexact Newton: CG stops at a relative residual eta_k set by the nonlinear residual
  (:func:`forcing_term`, Eisenstat & Walker, SIAM J Sci Comput 17:16, 1996, choice 2, with
  Kelley's floor against oversolving, *Iterative Methods for Linear and Nonlinear Equations*,
  SIAM 1995, sec. 6.3).  Newton's convergence test is on the true residual, so the equilibrium
  tolerance is met whatever eta.
* Secant stage: with post-yield softening the tangent is floored (positive definite), so Newton
  converges only linearly at the softening points.  Once an iteration reduces the residual by
  less than ``secant`` x, the last tangent is frozen and the iterations go on with limited-memory
  BFGS updates of its inverse (Matthies & Strang, IJNME 14:1613, 1979; two-loop recursion of
  Nocedal, Math Comp 35:773, 1980): the mismatch between the floored and the true softening
  tangent sits at a few points (low rank), which the secant pairs pick up, and no tangent is
  assembled in that stage.
* Line search: Crisfield, *Non-linear Finite Element Analysis of Solids and Structures*, vol. 1,
  1991, sec. 9.3.

Units: mm, N, MPa.
"""

from __future__ import annotations

import functools
import logging
import time

import numpy as np
import scipy.sparse as sp

from fembone.core.constraints import Reduction, reduce_system
from fembone.core.errors import SolverError
from fembone.core.solvers import SMALL_LIMIT, Pardiso, choose_solver

log = logging.getLogger("fembone.nonlinear")

#: load-case count a path's solves count as when ``auto`` picks the solver (fembone.core.solvers.direct_limit)
PATH_SOLVES = 3
#: Eisenstat-Walker choice 2 constants (gamma, alpha) as recommended in their paper
EW_GAMMA, EW_ALPHA = 0.9, 2.0


def forcing_term(rn: float, rn_prev: float | None, eta_prev: float | None, tol: float, eta_max: float,
                 eta_min: float) -> float:
    """Relative tolerance eta_k of the k-th linear solve of inexact Newton.

    Eisenstat & Walker (1996) choice 2: eta_k = gamma (|r_k| / |r_k-1|)^alpha, gamma = 0.9,
    alpha = 2, safeguarded by eta_k >= gamma eta_k-1^alpha when that exceeds 0.1 (no sudden
    drop), capped at ``eta_max`` (also the first term, ``rn_prev`` None).  Floor: eta_k >=
    0.5 tol / |r_k| (Kelley 1995, eq. 6.20: the linearised residual then ends at half the
    equilibrium tolerance ``tol``, no oversolving), and never below ``eta_min``.
    """
    if rn_prev is None or eta_prev is None or rn_prev <= 0:
        eta = eta_max
    else:
        eta = EW_GAMMA * (rn / rn_prev) ** EW_ALPHA
        guard = EW_GAMMA * eta_prev**EW_ALPHA
        if guard > 0.1:
            eta = max(eta, guard)
        eta = min(eta, eta_max)
    if rn > 0:
        eta = max(eta, min(0.5 * tol / rn, eta_max))
    return float(max(eta, eta_min))


def extrapolate(q: np.ndarray, q_prev: np.ndarray, lam: float, lam_prev: float, lam_new: float) -> np.ndarray:
    """Secant predictor: q + (lam_new - lam) / (lam - lam_prev) (q - q_prev), exact on a linear path."""
    return q + ((lam_new - lam) / (lam - lam_prev)) * (q - q_prev)


class LBFGS:
    """Limited-memory BFGS inverse of the residual's Jacobian around a fixed operator ``H0``
    (two-loop recursion, Nocedal 1980); pairs with s.y <= 0 are skipped (curvature condition)."""

    def __init__(self, H0, memory: int):
        self.H0, self.memory = H0, memory
        self.pairs: list[tuple[np.ndarray, np.ndarray, float]] = []

    def push(self, s: np.ndarray, y: np.ndarray) -> bool:
        sy = float(s @ y)
        if not sy > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):
            return False
        self.pairs.append((s, y, 1.0 / sy))
        if len(self.pairs) > self.memory:
            self.pairs.pop(0)
        return True

    def apply(self, r: np.ndarray) -> np.ndarray:
        """H r: the step is -H r."""
        v = r.copy()
        a = []
        for s, y, rho in reversed(self.pairs):
            ai = rho * float(s @ v)
            v -= ai * y
            a.append(ai)
        z = self.H0(v)
        for (s, y, rho), ai in zip(self.pairs, reversed(a), strict=True):
            z += (ai - rho * float(y @ z)) * s
        return z


# -- linear solves: reuse a preconditioner or set the solver up again ---------------------------
class LinearSolves:
    """Tangent solves through the engine's solvers, counting what they cost."""

    def __init__(self, n_dofs: int, requested: str | None, mode: str, cg_rtol: float, refresh: int,
                 near_nullspace: np.ndarray | None):
        if mode not in ("reuse", "refactor"):
            raise ValueError(f"linear mode must be reuse or refactor, got {mode!r}")
        self.n, self.requested, self.mode = n_dofs, requested, mode
        self.cg_rtol, self.refresh, self.B = cg_rtol, refresh, near_nullspace
        self.solver = None
        self.M = None
        self.renew = False  # set when CG on the kept preconditioner cost more than a new set-up
        self.last_setup_s = 0.0
        self.stats = {"mode": mode, "setups": 0, "setup_s": 0.0, "solves": 0, "solve_s": 0.0, "cg_iterations": 0}

    def _setup(self, Kq: sp.csr_matrix) -> None:
        t = time.perf_counter()
        if self.solver is None:
            # a path solves tens of times on one pattern, like many load cases: PARDISO up to its memory cap
            # (L1 1.5 mm tet10, 323k DOFs: 7 steps in 241 s against 326 s with AMG-CG; benchmarks/README.md)
            self.solver = choose_solver(self.n, self.requested, n_rhs=PATH_SOLVES)
            if self.requested in (None, "auto") and self.n <= SMALL_LIMIT and Pardiso.available():
                # a path solves many times: PARDISO's factor beats SuperLU's below SMALL_LIMIT too
                # (L1 5 mm tet4 strength path: 47 -> 22 s, same strength to 1e-9; benchmarks/README.md)
                self.solver = Pardiso()
            self.stats["solver"] = self.solver.name
        self.solver.rtol = self.cg_rtol
        try:
            self.solver.setup(Kq, near_nullspace=self.B)
        except SolverError:
            self.M = None  # a failed factorisation (an indefinite tangent) leaves nothing to reuse
            raise
        self.M = _preconditioner(self.solver)
        self.renew = False
        self.last_setup_s = time.perf_counter() - t
        self.stats["setups"] += 1
        self.stats["setup_s"] += self.last_setup_s

    def solve(self, Kq: sp.csr_matrix, b: np.ndarray, rtol: float | None = None,
              may_setup: bool = True) -> np.ndarray | None:
        """x with |Kq x - b| <= rtol |b| (default ``cg_rtol``; exact where a fresh double factor solves).

        ``may_setup`` False (a possibly indefinite tangent, which a Cholesky-type factorisation
        must not meet): CG on the kept preconditioner only; None when that is not enough (or a
        set-up is due)."""
        t = time.perf_counter()
        rtol = self.cg_rtol if rtol is None else rtol
        self.stats["solves"] += 1
        try:
            if self.mode == "refactor" or self.M is None or self.renew:
                if not may_setup:
                    return None
                self._setup(Kq)
                self.solver.rtol = rtol
                x = self.solver.solve(b)
                it = self.solver.info.get("iterations", [0])
                self.stats["cg_iterations"] += int(np.sum(it))
                return x
            t_cg = time.perf_counter()
            # a possibly indefinite tangent gets half the budget before the caller falls back
            x, it, ok = _pcg(Kq, b, self.M, rtol, self.refresh if may_setup else self.refresh // 2)
            self.stats["cg_iterations"] += it
            if ok:
                # renew before the next solve once CG on the kept preconditioner costs more than a set-up
                self.renew = time.perf_counter() - t_cg > self.last_setup_s
                return x
            if not may_setup:
                return None
            self._setup(Kq)  # the tangent has moved away from the kept preconditioner: renew it
            x, it, ok = _pcg(Kq, b, self.M, rtol, 20 * self.refresh)
            self.stats["cg_iterations"] += it
            if not ok:
                raise SolverError(f"CG on the tangent stiffness did not converge in {it} iterations")
            return x
        finally:
            self.stats["solve_s"] += time.perf_counter() - t


def _preconditioner(solver):
    """The set-up solver as an operator r -> approx K^-1 r (one factor solve or one V-cycle)."""
    if hasattr(solver, "M"):  # AMG: one V-cycle
        return solver.M.__matmul__
    if hasattr(solver, "_apply"):  # PARDISO (single-precision factor)
        return lambda r: solver._apply(r)
    if hasattr(solver, "lu"):  # SuperLU
        return solver.lu.solve
    if hasattr(solver, "factor"):  # CHOLMOD
        return solver.factor
    raise SolverError(f"solver {solver.name} cannot serve as a preconditioner")


def _pcg(A, b: np.ndarray, M, rtol: float, maxiter: int) -> tuple[np.ndarray, int, bool]:
    """Preconditioned CG from x = M b (Hestenes & Stiefel 1952); stops at ||r|| <= rtol ||b||."""
    nb = np.linalg.norm(b)
    if nb == 0:
        return np.zeros_like(b), 0, True
    x = M(b)
    r = b - A @ x
    z = M(r)
    p = z.copy()
    rz = r @ z
    for it in range(maxiter + 1):
        if np.linalg.norm(r) <= rtol * nb:
            return x, it, True
        if it == maxiter:
            break
        Ap = A @ p
        pap = p @ Ap
        if pap <= 0:
            return x, it, False
        alpha = rz / pap
        x += alpha * p
        r -= alpha * Ap
        z = M(r)
        rz_new = r @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, maxiter, False


# -- Newton iterations at one load factor -------------------------------------------------------
def newton(evaluate, q, lam, red: Reduction, tangent, lin: LinearSolves, opt, counts: dict, floored=None):
    """Newton iterations at load factor ``lam`` from ``q``; returns (ok, solves, state or reason, line-search evaluations).

    ``evaluate(q, lam, tangent)`` gives (u, stress update, f_int, T^T f_int); ``tangent(update)``
    the full tangent stiffness; ``opt`` a :class:`fembone.core.nonlinear.PathOptions`.
    ``floored(q, lam)``: where ``evaluate``'s tangent may be indefinite (softening), the stress
    update with the floored tangent, used from the first iteration whose softening tangent CG
    cannot solve on the kept preconditioner to the end of the step (a factorisation is only ever
    made of floored tangents).  ``counts`` collects secant-stage iterations and floored steps.
    """
    ls = 0
    try:
        u, upd, fint, r = evaluate(q, lam, True)
    except FloatingPointError as exc:
        return False, 0, str(exc), ls
    r0 = np.linalg.norm(r)
    rn_prev = eta = None
    qn = None  # L-BFGS of the secant stage, None while Newton
    soft = floored is not None  # evaluate's (softening) tangent still in use in this step
    Kq = last_pair = None
    for it in range(opt.max_iter + 1):
        Rn = np.linalg.norm(red.reactions(fint))
        rn = np.linalg.norm(r)
        if not np.isfinite(rn):
            return False, it, "non-finite residual", ls
        tol = opt.rtol * max(Rn, 1e-300)
        log.debug("  lambda %.5f iteration %d: |r| / |R| = %.2e, yielded points %d%s", lam, it, rn / max(Rn, 1e-300),
                  int(upd.yielded.sum()), " (secant)" if qn is not None else "")
        if rn <= tol or rn == 0.0:
            return True, it, (q, u, upd, fint), ls
        if rn > 1e6 * max(r0, 1e-300) or it == opt.max_iter:
            return False, it, "diverging" if rn > r0 else "Newton iteration limit", ls
        if opt.forcing == "ew":
            eta = forcing_term(rn, rn_prev, eta, tol, opt.eta_max, opt.cg_rtol)
        else:
            eta = opt.cg_rtol
        if (qn is None and rn_prev is not None and opt.secant is not None and last_pair is not None
                and rn > opt.secant * rn_prev):
            # linear convergence: freeze the last tangent, go on with secant updates of its inverse
            qn = LBFGS(functools.partial(_solve_dep, lin, Kq, rtol=eta, red=red), opt.secant_memory)
            qn.push(*last_pair)
        try:
            if qn is None:
                x = None
                if soft:
                    Kq = reduce_system(tangent(upd), red)
                    x = lin.solve(Kq, r, eta, may_setup=False)
                    if x is None:
                        # the softening tangent is indefinite or too far from the kept preconditioner: the
                        # floored one for the rest of this step (renewing the preconditioner on every such
                        # iteration cost 307 s of set-ups in 600 s at 323k DOFs; benchmarks/README.md)
                        soft = False
                        counts["floored_steps"] = counts.get("floored_steps", 0) + 1
                if x is None:
                    Kq = reduce_system(tangent(upd if floored is None else floored(q, lam)), red)
                    x = lin.solve(Kq, r, eta)
                x[red.dependent] = 0.0
                dq = -x
            else:
                dq = -qn.apply(r)
                dq[red.dependent] = 0.0
                counts["secant_iterations"] = counts.get("secant_iterations", 0) + 1
        except SolverError as exc:
            return False, it, str(exc), ls
        s, state, n_eval = line_search(evaluate, q, dq, r, lam, opt.line_search)
        ls += n_eval
        log.debug("  step length %s after %d evaluation(s)", s, n_eval)
        if s is None:
            return False, it, "return mapping failed along the search direction", ls
        r_old = r
        u, upd, fint, r = state
        q = q + s * dq
        last_pair = (s * dq, r - r_old)
        if qn is not None:
            qn.push(*last_pair)
        rn_prev = rn
    return False, opt.max_iter, "Newton iteration limit", ls


def _solve_dep(lin: LinearSolves, Kq, b: np.ndarray, rtol: float, red: Reduction) -> np.ndarray:
    x = lin.solve(Kq, b, rtol)
    x[red.dependent] = 0.0
    return x


def line_search(evaluate, q, dq, r0, lam, enabled: bool, max_eval: int = 4):
    """Step length s along dq: Crisfield's line search, G(s) = dq . r(q + s dq) driven towards 0.

    dq comes from a positive definite tangent, so G(0) < 0 (a descent direction of the
    incremental potential).  s = 1 is kept while G(1) <= 0 or |G(1)| <= |G(0)|/2; otherwise
    regula falsi on the bracket [0, 1], s >= 0.1.  Returns (s, state, evaluations), s None
    when no trial state could be evaluated.
    """
    G0 = float(dq @ r0)
    try:
        st = evaluate(q + dq, lam, True)
    except FloatingPointError:
        st = None
    if st is not None and (not enabled or G0 >= 0):
        return 1.0, st, 1
    if st is not None:
        G1 = float(dq @ st[3])
        if G1 <= 0 or abs(G1) <= 0.5 * abs(G0):
            return 1.0, st, 1
    elif not enabled:
        return None, None, 1
    else:
        G1 = -G0  # a full step the law cannot take counts as a strong overshoot
    sa, Ga, sb, Gb = 0.0, G0, 1.0, G1
    best, best_val = (1.0, st), (abs(G1) if st is not None else np.inf)
    n = 1
    while n < max_eval:
        s = float(np.clip(sb - Gb * (sb - sa) / (Gb - Ga), 0.1, 1.0))
        n += 1
        try:
            st = evaluate(q + s * dq, lam, True)
        except FloatingPointError:
            sb, Gb = s, -G0
            continue
        Gs = float(dq @ st[3])
        if abs(Gs) < best_val:
            best, best_val = (s, st), abs(Gs)
        if abs(Gs) <= 0.5 * abs(G0):
            break
        if Gs > 0:
            sb, Gb = s, Gs
        else:
            sa, Ga = s, Gs
    if best[1] is None:
        return None, None, n
    return best[0], best[1], n
