"""Materially nonlinear static analysis: displacement-controlled Newton path following.

The model's elements are linear elastic except a :class:`PlasticSet` of elements whose
quadrature points follow :class:`fembone.core.plasticity.DruckerPrager`.  Because the law
is isotropic-elastic with sigma = C (eps - eps_p), the internal force splits into the
linear part and a plastic correction,

    f_int(u) = K u - sum_e int B^T C eps_p dV,

so the global stiffness K (and the sparsity pattern and element geometry of
:class:`fembone.core.assembly.Assembler`) is built once; each iteration evaluates strains and
the return mapping on the plastic elements only (vectorised, einsum over elements) and adds
the tangent correction int B^T (D - C) B dV of the elements that yielded to K's 3x3 blocks
(same pattern, so a kept PARDISO analysis is reused).

Constraints stay u = T q + g(lambda): prescribed displacements ``control_values`` scale with
the load factor lambda (displacement control).  Each step: extrapolated predictor, Newton
iterations on T^T f_int = 0 with a line search (Crisfield, *Non-linear Finite Element
Analysis of Solids and Structures*, vol. 1, 1991, sec. 9.3), the step halved when Newton
fails and grown again after easy steps.  Linear solves reuse the engine's solvers
(:mod:`fembone.core.solvers`): ``linear='reuse'`` keeps one factorisation or AMG hierarchy
as preconditioner of CG on the current tangent and renews it only when CG slows down;
``linear='refactor'`` sets the solver up again at every iteration.  Small strains.
Units: mm, N, MPa.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from fembone.core.assembly import Assembler, blocks_to_matrix, csr_positions
from fembone.core.constraints import (
    ConstraintSet,
    Reduction,
    check_constrained,
    reduce_system,
)
from fembone.core.errors import ModelError, SolverError
from fembone.core.model import Model
from fembone.core.plasticity import (
    ONE,
    DruckerPrager,
    TangentCoefficients,
    YieldCurve,
    beta_from_yield,
    mandel_from_tensor,
    tensor_from_mandel,
)
from fembone.core.results import displacement_gradient, strain_from_gradient
from fembone.core.solvers import SMALL_LIMIT, Pardiso, choose_solver

log = logging.getLogger("fembone.nonlinear")


@dataclass
class PlasticSet:
    """Elements with an elastic-plastic law: ``law`` has one row per (element, quadrature point),
    element-major (point k * nq + q), in the order of ``elements``."""

    elements: np.ndarray
    law: DruckerPrager


def isotropic_moduli(C: np.ndarray, rtol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Bulk and shear moduli (MPa) of isotropic Voigt stiffnesses (ne, 6, 6); ValueError when one is not isotropic."""
    C = np.asarray(C, float)
    lam, mu = C[:, 0, 1], C[:, 3, 3]
    iso = np.zeros_like(C)
    iso[:, :3, :3] = lam[:, None, None]
    for i in range(3):
        iso[:, i, i] += 2 * mu
        iso[:, 3 + i, 3 + i] = mu
    bad = np.flatnonzero(np.abs(C - iso).max(axis=(1, 2)) > rtol * np.abs(C).max(axis=(1, 2)))
    if len(bad):
        raise ValueError(f"{len(bad)} element(s) are not isotropic (first: {bad[0]}); the plastic law needs isotropic elasticity")
    return lam + 2.0 * mu / 3.0, mu


def plastic_set(model: Model, elements: np.ndarray, curve: YieldCurve, tension_ratio,
                tangent_floor: float | None = 1e-3, nq: int | None = None) -> PlasticSet:
    """A :class:`PlasticSet` from per-element data: elasticity from ``model.C`` (isotropic),
    ``curve`` (one row per element: compressive yield stress vs compressive plastic strain,
    MPa) and ``tension_ratio`` = sigma_t0 / sigma_c0 (scalar or per element, in (1/3, 1])."""
    elements = np.asarray(elements, np.int64)
    nq = nq or model.mesh.element.quadrature(None).points.shape[0]
    K, G = isotropic_moduli(model.C[elements])
    r = np.broadcast_to(np.asarray(tension_ratio, float), elements.shape)
    if np.any(r <= 1.0 / 3.0) or np.any(r > 1.0):
        raise ValueError("tension_ratio = sigma_t / sigma_c must lie in (1/3, 1]")
    beta = beta_from_yield(1.0, r)
    rep = np.repeat(np.arange(len(elements)), nq)
    law = DruckerPrager(K[rep], G[rep], beta[rep], curve.take(rep), tangent_floor)
    return PlasticSet(elements, law)


@dataclass
class PathOptions:
    """Step control and tolerances of :func:`solve_path`."""

    steps: int = 20  # nominal number of equal increments to the full prescribed values
    max_iter: int = 25  # Newton iterations per step before the step is cut
    rtol: float = 1e-5  # ||T^T r|| <= rtol x ||reactions||
    max_cuts: int = 8  # a step may be halved this many times in a row
    line_search: bool = True
    stop_drop: float | None = None  # stop once the force has fallen this fraction below its peak
    linear: str = "reuse"  # reuse | refactor
    cg_rtol: float = 1e-7  # relative residual of the linear solves
    refresh_iterations: int = 60  # renew the preconditioner when CG needs more iterations
    solver: str | None = None  # engine solver name (None/auto: by size)
    keep_states: bool = True  # keep displacements and plastic variables of every step


@dataclass
class StepState:
    """What a converged step leaves for output (float32 to keep memory small)."""

    u: np.ndarray  # (n_dofs,) mm
    alpha: np.ndarray  # (n_points,) hardening variable of the plastic points


@dataclass
class PathResult:
    """The equilibrium path: load factor, control displacement, force, and per-step facts."""

    lam: np.ndarray
    force: np.ndarray  # N, w . reactions (see solve_path)
    iterations: np.ndarray
    cuts: np.ndarray  # step halvings before each converged step
    yielded_fraction: np.ndarray  # volume share of the plastic set with alpha > 0
    max_ratio: np.ndarray  # largest yield ratio of the converged stresses (1 once anything yielded)
    states: list[StepState]
    point_volume: np.ndarray  # (n_points,) mm^3
    stats: dict = field(default_factory=dict)
    finished: bool = True  # reached the full prescribed values (or stopped after the peak)
    message: str = ""

    @property
    def peak(self) -> int:
        return int(np.argmax(self.force))

    def first_yield(self) -> tuple[float, float]:
        """(lambda, force) at first yield anywhere: from the elastic solution of the full prescribed
        motion (the yield ratio of an elastic state scales with the load), else from the last
        wholly elastic step."""
        if "elastic_limit" in self.stats:
            return self.stats["elastic_limit"]
        el = np.flatnonzero((self.max_ratio < 1.0) & (self.lam > 0))
        if len(el) == 0 or self.max_ratio[el[-1]] <= 0:
            return float("nan"), float("nan")
        k = el[-1]
        return float(self.lam[k] / self.max_ratio[k]), float(self.force[k] / self.max_ratio[k])


def _elastic_stress(law: DruckerPrager, eps: np.ndarray) -> np.ndarray:
    """C eps (Mandel) without forming the 6x6 matrices: 2G dev(eps) + K tr(eps) 1."""
    tr = eps[:, :3].sum(axis=1)
    return 2.0 * law.G[:, None] * (eps - np.outer(tr / 3.0, ONE)) + np.outer(law.K * tr, ONE)


# -- element-level kernels on the plastic set ------------------------------------------------
class _PlasticKernels:
    """Strains, plastic forces and tangent blocks of the plastic elements (vectorised)."""

    def __init__(self, asm: Assembler, plastic: PlasticSet):
        geo = asm.geometry
        self.el = np.asarray(plastic.elements)
        self.grads = np.ascontiguousarray(geo.grads[..., self.el])  # (nq, nen, 3, nep)
        self.wdet = geo.wdet[:, self.el]  # (nq, nep)
        self.cells = asm.mesh.cells[self.el]
        self.nq = self.grads.shape[0]
        self.n_nodes = asm.mesh.n_nodes
        self.pattern = asm.pattern
        self.law = plastic.law
        self.tangent_map: tuple | None = None  # (K, positions of the pattern's entries in K.data)
        if self.law.n != len(self.el) * self.nq:
            raise ValueError(f"plastic law has {self.law.n} points, expected {len(self.el)} x {self.nq}")

    def strain(self, u: np.ndarray) -> np.ndarray:
        """Mandel strains (n_points, 6) of the full displacement vector ``u``."""
        un = u[: 3 * self.n_nodes].reshape(-1, 3)
        H = displacement_gradient(un, self.cells, self.grads)  # (nq, 3, 3, nep)
        eps = strain_from_gradient(H).transpose(3, 0, 1, 2)  # (nep, nq, 3, 3)
        return mandel_from_tensor(eps).reshape(-1, 6)

    def plastic_force(self, eps_p: np.ndarray, n_dofs: int) -> np.ndarray:
        """sum_e int B^T C eps_p dV as a full DOF vector (N): the part of K u that plastic flow relieves."""
        active = np.flatnonzero(np.any(eps_p.reshape(len(self.el), self.nq, 6) != 0, axis=(1, 2)))
        f = np.zeros(n_dofs)
        if len(active) == 0:
            return f
        rows = (active[:, None] * self.nq + np.arange(self.nq)).ravel()
        ep = eps_p[rows]
        tr = ep[:, :3].sum(axis=1)
        # C eps_p = 2G dev(eps_p) + K tr(eps_p) 1
        sig = 2.0 * self.law.G[rows, None] * (ep - np.outer(tr / 3.0, ONE)) + np.outer(self.law.K[rows] * tr, ONE)
        s3 = tensor_from_mandel(sig).reshape(len(active), self.nq, 3, 3)
        s3 = s3 * self.wdet[:, active].T[:, :, None, None]
        fe = np.einsum("eqab,qnbe->ena", s3, self.grads[..., active], optimize=True)  # (nact, nen, 3)
        idx = (3 * self.cells[active][:, :, None] + np.arange(3)).ravel()
        f[: 3 * self.n_nodes] = np.bincount(idx, weights=fe.ravel(), minlength=3 * self.n_nodes)
        return f

    def tangent_blocks(self, D: TangentCoefficients, yielded: np.ndarray) -> np.ndarray:
        """Upper 3x3 node blocks (n_blocks, 3, 3) of int B^T (D - C) B dV over elements with a yielded point.

        With D - C = b1 I_dev + a2 n(x)n + a3 (n(x)1 + 1(x)n) + b4 1(x)1 (b1 = a1 - 2G,
        b4 = a4 - K) and g_i = grad N_i, v_i = n g_i (n as a symmetric tensor), the block of
        nodes i, j is, per point and times w |J|:
            lam' g_i g_j^T + mu' (g_j g_i^T + (g_i . g_j) I) + a2 v_i v_j^T + a3 (v_i g_j^T + g_i v_j^T)
        with mu' = b1 / 2, lam' = b4 - b1 / 3: outer products, no 6x6 algebra per element.
        """
        pat = self.pattern
        out = np.zeros((3, 3, pat.n_blocks))
        act = np.flatnonzero(yielded.reshape(len(self.el), self.nq).any(axis=1))
        if len(act) == 0:
            return np.ascontiguousarray(out.transpose(2, 0, 1))
        nen = self.cells.shape[1]
        iu, ju = np.triu_indices(nen)
        K, G = self.law.K, self.law.G
        for s0 in range(0, len(act), 8192):
            a = act[s0 : s0 + 8192]
            rows = (a[:, None] * self.nq + np.arange(self.nq)).reshape(-1)
            shape = (len(a), self.nq)
            b1 = (D.a1[rows] - 2.0 * G[rows]).reshape(shape).T  # (nq, na)
            b4 = (D.a4[rows] - K[rows]).reshape(shape).T
            a2, a3 = D.a2[rows].reshape(shape).T, D.a3[rows].reshape(shape).T
            nt = tensor_from_mandel(D.n[rows]).reshape(len(a), self.nq, 3, 3)
            Kb = np.zeros((len(iu), 3, 3, len(a)))
            for q in range(self.nq):
                w = self.wdet[q, a]
                g = self.grads[q][..., a]  # (nen, 3, na)
                v = np.einsum("ebc,ice->ibe", nt[:, q], g)  # v_i = n g_i
                gi, gj, vi, vj = g[iu], g[ju], v[iu], v[ju]  # (npair, 3, na)
                lam, mu = w * (b4[q] - b1[q] / 3.0), w * b1[q] / 2.0
                c2, c3 = w * a2[q], w * a3[q]
                dot = mu * (gi * gj).sum(axis=1)
                for x in range(3):
                    for y in range(3):
                        Kb[:, x, y] += (lam * gi[:, x] * gj[:, y] + mu * gj[:, x] * gi[:, y]
                                        + c2 * vi[:, x] * vj[:, y] + c3 * (vi[:, x] * gj[:, y] + gi[:, x] * vj[:, y]))
                    Kb[:, x, x] += dot
            ga = self.el[a]  # global element numbers: the pattern is the whole mesh's
            sw = pat.swap[:, ga][:, None, None, :]
            Kb = np.where(sw, Kb.transpose(0, 2, 1, 3), Kb)
            idx = pat.inv[:, ga].ravel()
            for x in range(3):
                for y in range(3):
                    out[x, y] += np.bincount(idx, weights=Kb[:, x, y].ravel(), minlength=pat.n_blocks)
        return np.ascontiguousarray(out.transpose(2, 0, 1))


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
            self.solver = choose_solver(self.n, self.requested)
            if self.requested in (None, "auto") and self.n <= SMALL_LIMIT and Pardiso.available():
                # a path solves many times: PARDISO's factor beats SuperLU's below SMALL_LIMIT too
                # (L1 5 mm tet4 strength path: 47 -> 22 s, same strength to 1e-9; benchmarks/README.md)
                self.solver = Pardiso()
            self.stats["solver"] = self.solver.name
        self.solver.rtol = self.cg_rtol
        self.solver.setup(Kq, near_nullspace=self.B)
        self.M = _preconditioner(self.solver)
        self.renew = False
        self.last_setup_s = time.perf_counter() - t
        self.stats["setups"] += 1
        self.stats["setup_s"] += self.last_setup_s

    def solve(self, Kq: sp.csr_matrix, b: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        self.stats["solves"] += 1
        try:
            if self.mode == "refactor" or self.M is None or self.renew:
                self._setup(Kq)
                x = self.solver.solve(b)
                it = self.solver.info.get("iterations", [0])
                self.stats["cg_iterations"] += int(np.sum(it))
                return x
            t_cg = time.perf_counter()
            x, it, ok = _pcg(Kq, b, self.M, self.cg_rtol, self.refresh)
            self.stats["cg_iterations"] += it
            if ok:
                # renew before the next solve once CG on the kept preconditioner costs more than a set-up
                self.renew = time.perf_counter() - t_cg > self.last_setup_s
                return x
            self._setup(Kq)  # the tangent has moved away from the kept preconditioner: renew it
            x, it, ok = _pcg(Kq, b, self.M, self.cg_rtol, 20 * self.refresh)
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


# -- the path ---------------------------------------------------------------------------------
def solve_path(
    model: Model, plastic: PlasticSet, control_dofs: np.ndarray, control_values: np.ndarray,
    options: PathOptions | None = None, constraints: ConstraintSet | None = None,
    force_weights: np.ndarray | None = None, assembler: Assembler | None = None,
) -> PathResult:
    """Follow the equilibrium path while the prescribed DOFs ``control_dofs`` go from 0 to ``control_values`` (mm).

    ``constraints`` (default ``model.constraints``) must prescribe ``control_dofs``; other
    prescribed values stay as given.  The reported force is ``w . R`` with R the support
    reactions (N) and ``w = force_weights`` (default: control_values / max |control_values|
    on the control DOFs, i.e. the resultant along the imposed motion).
    """
    from fembone.core.analysis import assemble

    opt = options or PathOptions()
    if opt.steps < 1:
        raise ValueError("steps must be >= 1")
    t0 = time.perf_counter()
    cset = constraints or model.constraints
    asm, K = assemble(model, assembler)
    red = cset.build()
    mesh = model.mesh
    check_constrained(model.layout, mesh.points, mesh.cells, cset, red, model.meta.get("_extra_edges"),
                      grounded=model.meta.get("_grounded"))
    control_dofs = np.asarray(control_dofs, np.int64).ravel()
    control_values = np.asarray(control_values, float).ravel()
    if not red.fixed[control_dofs].all():
        raise ModelError("the controlled DOFs must be prescribed (fixed) in the constraints")
    g0 = red.offset(control_dofs, np.zeros(len(control_dofs)))
    g1 = red.offset(control_dofs, control_values)
    if force_weights is None:
        w = np.zeros(model.n_dofs)
        w[control_dofs] = control_values / np.abs(control_values).max()
    else:
        w = np.asarray(force_weights, float)
    kern = _PlasticKernels(asm, plastic)
    law = plastic.law
    Bnull = model.layout.rigid_modes(mesh.points, scale=float(np.ptp(mesh.points, axis=0).max()))
    Bnull[red.dependent] = 0.0
    lin = LinearSolves(model.n_dofs, opt.solver or model.solver, opt.linear, opt.cg_rtol, opt.refresh_iterations, Bnull)
    npts = law.n
    vol = (kern.wdet.T).ravel()  # (n_points,) element-major, like the law
    # converged state
    eps_p = np.zeros((npts, 6))
    alpha = np.zeros(npts)
    q = np.zeros(model.n_dofs)
    q_prev, lam_prev = q.copy(), 0.0
    T = red.T

    def evaluate(qv: np.ndarray, lam: float, tangent: bool):
        u = T @ qv + g0 + lam * (g1 - g0)
        upd = law.update(kern.strain(u), eps_p, alpha, tangent=tangent)
        fint = K @ u - kern.plastic_force(upd.plastic_strain, model.n_dofs)
        return u, upd, fint, T.T @ fint

    out = {k: [] for k in ("lam", "force", "iterations", "cuts", "yielded", "ratio")}
    states: list[StepState] = []

    def record(lam, u, fint, upd, its, cuts):
        R = red.reactions(fint)
        out["lam"].append(lam)
        out["force"].append(float(w @ R))
        out["iterations"].append(its)
        out["cuts"].append(cuts)
        out["yielded"].append(float(vol[upd.alpha > 0].sum() / vol.sum()))
        out["ratio"].append(float(law.yield_ratio(upd.stress, upd.alpha).max()))
        if opt.keep_states:
            states.append(StepState(u.astype(np.float32), upd.alpha.astype(np.float32)))

    u0, upd0, f0, _ = evaluate(q, 0.0, False)
    record(0.0, u0, f0, upd0, 0, 0)
    elastic = {}
    q_el = None
    if not np.any(g0):  # elastic response to the full motion: elastic limit, and the first predictor
        q_el = -lin.solve(reduce_system(K, red), T.T @ (K @ g1))
        q_el[red.dependent] = 0.0
        u_el = T @ q_el + g1
        eps_el = kern.strain(u_el)
        sig_el = _elastic_stress(law, eps_el)
        ratio = float(law.yield_ratio(sig_el, np.zeros(npts)).max())
        if ratio > 0:
            elastic = {"elastic_limit": (1.0 / ratio, float(w @ red.reactions(K @ u_el)) / ratio),
                       "elastic_force_full": float(w @ red.reactions(K @ u_el))}
    dlam_nominal = 1.0 / opt.steps
    dlam = dlam_nominal
    lam = 0.0
    easy = 0
    cuts = 0
    peak = 0.0
    message = ""
    finished = True
    ls_total = 0
    while lam < 1.0 - 1e-12:
        dl = min(dlam, 1.0 - lam)
        lam_new = lam + dl
        # predictor: extrapolate the last increment
        if lam > lam_prev:
            q_try = q + (dl / (lam - lam_prev)) * (q - q_prev)
        else:
            q_try = lam_new * q_el if q_el is not None else q.copy()
        ok, its, state, ls = _newton(evaluate, q_try, lam_new, red, kern, K, lin, opt)
        ls_total += ls
        if not ok:
            cuts += 1
            if cuts > opt.max_cuts:
                finished = False
                message = (f"no convergence at control factor {lam_new:.4f} after {opt.max_cuts} step cuts "
                           f"(increment {dl:.2e}); path stopped at {lam:.4f}")
                log.warning(message)
                break
            dlam = dl / 2.0
            easy = 0
            log.debug("step to %.5f failed (%s); increment halved to %.2e", lam_new, state, dlam)
            continue
        q_new, u, upd, fint = state
        q_prev, lam_prev = q, lam
        q, lam = q_new, lam_new
        eps_p, alpha = upd.plastic_strain, upd.alpha
        record(lam, u, fint, upd, its, cuts)
        F = out["force"][-1]
        log.info("step %d: control %.4f of full, force %.6g N, %d Newton iteration(s)%s, yielded %.2f %%",
                 len(out["lam"]) - 1, lam, F, its, f" after {cuts} cut(s)" if cuts else "", 100 * out["yielded"][-1])
        cuts = 0
        easy = easy + 1 if its <= 4 else 0
        if easy >= 2 and dlam < dlam_nominal:
            dlam = min(dlam * 2.0, dlam_nominal)
            easy = 0
        peak = max(peak, F)
        if opt.stop_drop is not None and peak > 0 and F < (1.0 - opt.stop_drop) * peak:
            message = f"stopped after the peak: force fell {100 * opt.stop_drop:.0f} % below it"
            break
    stats = dict(lin.stats, **elastic, wall_s=time.perf_counter() - t0, line_search_evaluations=ls_total,
                 newton_iterations=int(np.sum(out["iterations"])), steps=len(out["lam"]) - 1,
                 step_cuts=int(np.sum(out["cuts"])), plastic_points=int(npts))
    return PathResult(np.array(out["lam"]), np.array(out["force"]), np.array(out["iterations"]),
                      np.array(out["cuts"]), np.array(out["yielded"]), np.array(out["ratio"]), states, vol,
                      stats, finished, message)


def _newton(evaluate, q, lam, red: Reduction, kern: _PlasticKernels, K, lin: LinearSolves, opt: PathOptions):
    """Newton iterations at load factor ``lam`` from ``q``; returns (ok, solves, state or reason, line-search evaluations)."""
    ls = 0
    try:
        u, upd, fint, r = evaluate(q, lam, True)
    except FloatingPointError as exc:
        return False, 0, str(exc), ls
    r0 = np.linalg.norm(r)
    for it in range(opt.max_iter + 1):
        Rn = np.linalg.norm(red.reactions(fint))
        rn = np.linalg.norm(r)
        if not np.isfinite(rn):
            return False, it, "non-finite residual", ls
        log.debug("  lambda %.5f iteration %d: |r| / |R| = %.2e, yielded points %d", lam, it, rn / max(Rn, 1e-300),
                  int(upd.yielded.sum()))
        if rn <= opt.rtol * max(Rn, 1e-300) or rn == 0.0:
            return True, it, (q, u, upd, fint), ls
        if rn > 1e6 * max(r0, 1e-300) or it == opt.max_iter:
            return False, it, "diverging" if rn > r0 else "Newton iteration limit", ls
        Kt = _tangent(K, kern, upd)
        Kq = reduce_system(Kt, red)
        try:
            dq = -lin.solve(Kq, r)
        except SolverError as exc:
            return False, it, str(exc), ls
        dq[red.dependent] = 0.0
        s, state, n_eval = _line_search(evaluate, q, dq, r, lam, opt.line_search)
        ls += n_eval
        log.debug("  step length %s after %d evaluation(s)", s, n_eval)
        if s is None:
            return False, it, "return mapping failed along the search direction", ls
        u, upd, fint, r = state
        q = q + s * dq
    return False, opt.max_iter, "Newton iteration limit", ls


def _tangent(K, kern: _PlasticKernels, upd) -> sp.csr_matrix:
    """K + int B^T (D - C) B over the elements that yielded (K's block pattern; springs stay in K).

    The update is added into a copy of K's values through an index map found once, so the
    tangent keeps K's structure (a kept PARDISO analysis stays valid) and no sparse sum is
    formed (43 s of a 600 s path at 323k DOFs, benchmarks/README.md "Strength")."""
    if not upd.yielded.any():
        return K
    dK = blocks_to_matrix(kern.pattern, kern.tangent_blocks(upd.tangent, upd.yielded), "csr")
    if kern.tangent_map is None or kern.tangent_map[0] is not K:
        kern.tangent_map = (K, csr_positions(K, dK))
    pos = kern.tangent_map[1]
    if pos is None:  # K lacks an entry of the pattern (an exact zero dropped): the general sum
        return (K + dK).tocsr()
    data = K.data.copy()
    data[pos] += dK.data
    return sp.csr_matrix((data, K.indices, K.indptr), shape=K.shape)


def _line_search(evaluate, q, dq, r0, lam, enabled: bool, max_eval: int = 4):
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
