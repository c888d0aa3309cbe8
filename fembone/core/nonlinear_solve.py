"""Equilibrium iterations of the nonlinear path (:mod:`fembone.core.nonlinear`): linear solves,
inexact Newton, a secant (L-BFGS) stage and the line search.

* Linear solves (:class:`LinearSolves`) go through the engine's solvers
  (:mod:`fembone.core.solvers`): ``linear='reuse'`` keeps one factorisation, AMG hierarchy or
  p-multigrid cycle as preconditioner of CG (MINRES) on the current tangent and renews it only
  when that slows down;
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
* Softening tangent: the consistent tangent with the softening slope may be indefinite; it is
  solved by MINRES (Paige & Saunders 1975) preconditioned by the kept factor of a positive
  definite (elastic or floored) tangent, refactorised on the floored tangent when MINRES gets
  slow, and its Newton steps are damped by backtracking on the residual norm
  (:func:`residual_search`), for which Newton's direction is a descent direction whatever the
  tangent's inertia.  A step whose contraction rate predicts more than ``predict_cut``
  iterations, or (``min_step_length``) whose residual line search has to shorten a Newton step
  below that fraction, is given up early and halved (the smaller step keeps Newton in its
  quadratic range).
* Line search (positive definite tangents): Crisfield, *Non-linear Finite Element Analysis of
  Solids and Structures*, vol. 1, 1991, sec. 9.3.

Units: mm, N, MPa.
"""

from __future__ import annotations

import functools
import logging
import time

import numpy as np
import scipy.sparse as sp

from fembone.core.constraints import Reduction
from fembone.core.errors import SolverError
from fembone.core.solvers import PMG, SMALL_LIMIT, Pardiso, choose_solver

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
                 near_nullspace: np.ndarray | None, options: dict | None = None):
        if mode not in ("reuse", "refactor"):
            raise ValueError(f"linear mode must be reuse or refactor, got {mode!r}")
        self.n, self.requested, self.mode = n_dofs, requested, mode
        self.cg_rtol, self.refresh, self.B = cg_rtol, refresh, near_nullspace
        self.options = options or {}  # solver attributes (model.solver_options; pmg: its tet10 cells)
        self.solver = None
        self.M = None
        self.renew = False  # set when CG on the kept preconditioner cost more than a new set-up
        self.last_setup_s = 0.0
        self.fewest, self.excess_s = None, 0.0
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
            for k, v in self.options.items():
                setattr(self.solver, k, v)
            self.stats["solver"] = self.solver.name
        self.solver.rtol = self.cg_rtol
        try:
            self.solver.setup(Kq, near_nullspace=self.B)
        except SolverError:
            self.M = None  # a failed factorisation (an indefinite tangent) leaves nothing to reuse
            raise
        self.M = _preconditioner(self.solver)
        self.renew = False
        self.fewest, self.excess_s = None, 0.0  # MINRES on this set-up: fewest iterations, time beyond them
        self.last_setup_s = time.perf_counter() - t
        self.stats["setups"] += 1
        self.stats["setup_s"] += self.last_setup_s

    @property
    def needs_setup(self) -> bool:
        """True when the next solve must set the solver up (nothing kept, refactor mode, or CG got slow)."""
        return self.mode == "refactor" or self.M is None or self.renew

    def setup(self, Kq: sp.csr_matrix) -> None:
        """Set the solver up on ``Kq`` (positive definite): its factor or hierarchy becomes the kept preconditioner."""
        t = time.perf_counter()
        try:
            self._setup(Kq)
        finally:
            self.stats["solve_s"] += time.perf_counter() - t

    def solve(self, Kq: sp.csr_matrix, b: np.ndarray, rtol: float | None = None,
              may_setup: bool = True) -> np.ndarray | None:
        """x with |Kq x - b| <= rtol |b| (default ``cg_rtol``; exact where a fresh double factor solves).

        ``may_setup`` False (a symmetric, possibly indefinite tangent, which a Cholesky-type
        factorisation must not meet): MINRES on the kept (positive definite) preconditioner within
        ``refresh`` iterations; None when that is not enough or nothing is kept."""
        t = time.perf_counter()
        rtol = self.cg_rtol if rtol is None else rtol
        self.stats["solves"] += 1
        try:
            if not may_setup:
                if self.M is None:
                    return None
                t_it = time.perf_counter()
                x, it, ok = _minres(Kq, b, self.M, rtol, self.refresh)
                self.stats["cg_iterations"] += it
                self.stats["minres_iterations"] = self.stats.get("minres_iterations", 0) + it
                dt = time.perf_counter() - t_it
                log.debug("  MINRES: %d iterations to %.1e (%s), %.2f s", it, rtol, "converged" if ok else "not converged", dt)
                if not ok:
                    return None
                # renew once the iterations beyond the fewest seen on this set-up have cost more than the
                # set-up itself (rent-or-buy: at most twice the better of the two choices), or one solve did
                self.fewest = it if self.fewest is None else min(self.fewest, it)
                self.excess_s += dt * (it - self.fewest) / max(it, 1)
                self.renew = dt > self.last_setup_s or self.excess_s > self.last_setup_s
                return x
            if self.needs_setup:
                self._setup(Kq)
                self.solver.rtol = rtol
                x = self.solver.solve(b)
                it = self.solver.info.get("iterations", [0])
                self.stats["cg_iterations"] += int(np.sum(it))
                return x
            t_cg = time.perf_counter()
            x, it, ok = _pcg(Kq, b, self.M, rtol, self.refresh)
            self.stats["cg_iterations"] += it
            if ok:
                # renew before the next solve once CG on the kept preconditioner costs more than a set-up
                self.renew = time.perf_counter() - t_cg > self.last_setup_s
                return x
            self._setup(Kq)  # the tangent has moved away from the kept preconditioner: renew it
            x, it, ok = _pcg(Kq, b, self.M, rtol, 20 * self.refresh)
            self.stats["cg_iterations"] += it
            if not ok:
                raise SolverError(f"CG on the tangent stiffness did not converge in {it} iterations")
            return x
        finally:
            self.stats["solve_s"] += time.perf_counter() - t


def _preconditioner(solver):
    """The set-up solver as an operator r -> approx K^-1 r (one factor solve, V-cycle or two-level cycle)."""
    if isinstance(solver, PMG):  # p-multigrid: one symmetric two-level cycle on a block of one column
        return lambda r: solver.M(r.reshape(-1, 1)).reshape(r.shape)
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


def _minres(A, b: np.ndarray, M, rtol: float, maxiter: int) -> tuple[np.ndarray, int, bool]:
    """Preconditioned MINRES from x = M b for symmetric, possibly indefinite A and positive definite M.

    Lanczos on M A with Givens rotations (Paige & Saunders, SIAM J Numer Anal 12:617, 1975; the
    preconditioned three-term form of Elman, Silvester & Wathen, *Finite Elements and Fast Iterative
    Solvers*, 2005, alg. 2.4 [M]).  The rotations give the M-norm of the residual for free; when it
    has fallen by rtol the true residual is checked and, if still above rtol |b|, MINRES restarts
    from the current x (at most 3 cycles within ``maxiter`` iterations in all)."""
    nb = np.linalg.norm(b)
    if nb == 0:
        return np.zeros_like(b), 0, True
    x = M(b)
    total = 0
    for _cycle in range(3):
        v = b - A @ x
        if np.linalg.norm(v) <= rtol * nb:
            return x, total, True
        z = M(v)
        gamma = float(np.sqrt(max(float(v @ z), 0.0)))
        if not gamma > 0 or total >= maxiter:
            return x, total, False
        eta0 = eta = gamma
        v_old, w, w_old = np.zeros_like(b), np.zeros_like(b), np.zeros_like(b)
        gamma_old, c, c_old, s, s_old = 1.0, 1.0, 1.0, 0.0, 0.0
        while total < maxiter:
            z /= gamma
            Az = A @ z
            delta = float(Az @ z)
            v_new = Az - (delta / gamma) * v - (gamma / gamma_old) * v_old
            z_new = M(v_new)
            gamma_new = float(np.sqrt(max(float(v_new @ z_new), 0.0)))
            a0 = c * delta - c_old * s * gamma
            a1 = float(np.hypot(a0, gamma_new))
            a2, a3 = s * delta + c_old * c * gamma, s_old * gamma
            c_old, s_old = c, s
            c, s = a0 / a1, gamma_new / a1
            w_new = (z - a3 * w_old - a2 * w) / a1
            x += (c * eta) * w_new
            eta = -s * eta
            w_old, w, v_old, v, z = w, w_new, v, v_new, z_new
            gamma_old, gamma = gamma, gamma_new
            total += 1
            if abs(eta) <= rtol * eta0 or gamma == 0.0:
                break
    return x, total, bool(np.linalg.norm(b - A @ x) <= rtol * nb)


# -- Newton iterations at one load factor -------------------------------------------------------
def newton(evaluate, q, lam, red: Reduction, tangent, lin: LinearSolves, opt, counts: dict, floored=None):
    """Newton iterations at load factor ``lam`` from ``q``; returns (ok, solves, state or reason, line-search evaluations).

    ``evaluate(q, lam, tangent)`` gives (u, stress update, f_int, T^T f_int); ``tangent(update)``
    the reduced tangent stiffness T^T K_t T + I_dep; ``opt`` a :class:`fembone.core.nonlinear.PathOptions`.
    ``floored(q, lam)``: where ``evaluate``'s tangent may be indefinite (softening), the stress
    update with the floored tangent: a set-up (factorisation) is only ever made of floored
    tangents, the softening one is solved by MINRES on it, and from an iteration where MINRES
    fails even on a fresh floored factor the floored tangent serves to the end of the step.
    ``counts`` collects secant-stage iterations, set-ups for MINRES and floored steps.
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
    slow = 0  # iterations in a row whose contraction rate predicts more than opt.predict_cut
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
        if rn_prev is not None and opt.predict_cut is not None:
            # contraction rate rho = |r_k| / |r_k-1|: tol is reached after log(tol / |r_k|) / log(rho) more
            # iterations; two predictions in a row beyond predict_cut: give the step up now (it is cut)
            rho = rn / rn_prev
            more = np.inf if rho >= 1.0 else np.log(tol / rn) / np.log(rho)
            slow = slow + 1 if it + more > opt.predict_cut else 0
            if slow >= 2:
                return False, it, f"slow convergence (rate {rho:.2f}, {it + more:.0f} iterations predicted)", ls
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
                    Kq = tangent(upd)
                    fresh = lin.needs_setup
                    if fresh:  # the preconditioner is always a factor of a positive definite (floored) tangent
                        _floored_setup(lin, tangent, floored, q, lam)
                    x = lin.solve(Kq, r, eta, may_setup=False)
                    if x is None and not fresh:
                        # MINRES on the kept factor was too slow: factorise the floored tangent, MINRES again
                        counts["soft_setups"] = counts.get("soft_setups", 0) + 1
                        _floored_setup(lin, tangent, floored, q, lam)
                        x = lin.solve(Kq, r, eta, may_setup=False)
                    if x is None:
                        # not even on a fresh floored factor: the floored tangent for the rest of this step
                        soft = False
                        counts["floored_steps"] = counts.get("floored_steps", 0) + 1
                if x is None:
                    Kq = tangent(upd if floored is None else floored(q, lam))
                    x = lin.solve(Kq, r, eta)
                x[red.dependent] = 0.0
                dq = -x
            else:
                dq = -qn.apply(r)
                dq[red.dependent] = 0.0
                counts["secant_iterations"] = counts.get("secant_iterations", 0) + 1
        except SolverError as exc:
            return False, it, str(exc), ls
        if soft and opt.line_search:  # a possibly indefinite tangent: backtrack on |r|, not on the energy
            s, state, n_eval = residual_search(evaluate, q, dq, rn, lam)
        else:
            s, state, n_eval = line_search(evaluate, q, dq, r, lam, opt.line_search)
        ls += n_eval
        log.debug("  step length %s after %d evaluation(s)", s, n_eval)
        if s is None:
            return False, it, "return mapping failed along the search direction", ls
        if soft and opt.min_step_length is not None and s < opt.min_step_length:
            # the residual norm falls only along a tenth of the Newton step: outside Newton's range (the
            # failed attempts near the peak all showed it, the converged steps had s >= 0.3); cut the step now
            return False, it + 1, f"line search on |r| stalled (step length {s:.2g})", ls
        r_old = r
        u, upd, fint, r = state
        q = q + s * dq
        last_pair = (s * dq, r - r_old)
        if qn is not None:
            qn.push(*last_pair)
        rn_prev = rn
    return False, opt.max_iter, "Newton iteration limit", ls


def _floored_setup(lin: LinearSolves, tangent, floored, q, lam) -> None:
    """Set ``lin`` up on the floored tangent at (q, lam); its cost, stress update and tangent included, is
    what MINRES on the kept factor is weighed against (LinearSolves.renew)."""
    t = time.perf_counter()
    Kf = tangent(floored(q, lam))
    lin.setup(Kf)
    lin.last_setup_s = time.perf_counter() - t


def _solve_dep(lin: LinearSolves, Kq, b: np.ndarray, rtol: float, red: Reduction) -> np.ndarray:
    x = lin.solve(Kq, b, rtol)
    x[red.dependent] = 0.0
    return x


def residual_search(evaluate, q, dq, rn0: float, lam, max_eval: int = 4):
    """Step length s along the Newton direction dq by backtracking on the residual norm.

    Newton's direction for J dq = -r is a descent direction of phi(s) = |r(q + s dq)|^2 whatever
    the sign of J's eigenvalues (phi'(0) = -2 |r|^2), so unlike the energy line search
    (:func:`line_search`) this one holds for the indefinite softening tangent: s is accepted
    when |r(s)| <= (1 - 1e-4 s) |r(0)| (Armijo), else reduced to the minimiser of the quadratic
    through phi(0), phi'(0), phi(s), kept in [0.1 s, 0.5 s] (Dennis & Schnabel, *Numerical Methods
    for Unconstrained Optimization and Nonlinear Equations*, 1983, sec. 6.3 [M]).  Returns
    (s, state, evaluations): the best trial when none passes, s None when no state could be evaluated.
    """
    s, best, n = 1.0, (None, None, np.inf), 0
    while n < max_eval:
        n += 1
        try:
            st = evaluate(q + s * dq, lam, True)
        except FloatingPointError:
            s *= 0.25
            continue
        rs = float(np.linalg.norm(st[3]))
        if rs < best[2]:
            best = (s, st, rs)
        if rs <= (1.0 - 1e-4 * s) * rn0:
            break
        p0, ps = rn0 * rn0, rs * rs
        s = float(np.clip(p0 * s * s / (ps - p0 + 2.0 * p0 * s), 0.1 * s, 0.5 * s))
    return best[0], best[1], n


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
