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
the load factor lambda (displacement control).  Each step: secant predictor (the last
increment extrapolated, exact on a linear path), then equilibrium iterations on T^T f_int = 0
(:mod:`fembone.core.nonlinear_solve`: inexact Newton with Eisenstat-Walker forcing terms on the
consistent softening tangent solved by MINRES, an optional limited-memory BFGS stage, line
searches), the step halved when they fail or their rate predicts a long tail, and grown again
after easy steps.  Small strains.
Units: mm, N, MPa.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from fembone.core.assembly import Assembler, blocks_to_matrix, csr_positions
from fembone.core.constraints import ConstraintSet, check_constrained, reduce_system
from fembone.core.errors import ModelError
from fembone.core.model import Model
from fembone.core.nonlinear_solve import LinearSolves, extrapolate, line_search, newton  # noqa: F401 (re-exported)
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

log = logging.getLogger("fembone.nonlinear")
#: tet10 DOFs from which ``auto`` takes p-multigrid (MINRES/CG on a two-level cycle) for the path: its set-up
#: (0.9 s at 113k) can follow the softening tangent, where a PARDISO factor costs 38-53 s at 323k and 106 s
#: at 403k; at 113k both give the same path time (142 / 151 s, benchmarks/README.md)
PATH_PMG_FROM = 150_000


def path_solver(requested: str | None, order: int, n_dofs: int) -> str | None:
    """The path's solver: ``pmg`` for ``auto`` (or None) on tet10 models from :data:`PATH_PMG_FROM`
    DOFs, else what was requested (the engine's rule decides ``auto`` in :class:`LinearSolves`)."""
    if requested in (None, "auto") and order == 2 and n_dofs >= PATH_PMG_FROM:
        return "pmg"
    return requested


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
    cg_rtol: float = 1e-7  # relative residual of the linear solves (fixed forcing; the floor of "ew")
    refresh_iterations: int = 60  # renew the preconditioner when CG needs more iterations
    forcing: str = "ew"  # ew: Eisenstat-Walker inner tolerance (nonlinear_solve.forcing_term) | fixed: cg_rtol
    eta_max: float = 0.1  # largest inner tolerance of "ew"
    secant: float | None = None  # L-BFGS on the frozen tangent once |r| falls by less than this factor per
    # iteration (None: off; measured slower than the softening tangent, benchmarks/README.md)
    secant_memory: int = 20  # secant pairs kept
    softening_tangent: str = "exact"  # exact: consistent tangent with the softening slope, possibly indefinite
    # (MINRES on the kept positive definite factor, residual-norm line search) | floored: the law's tangent_floor
    predict_cut: int | None = 12  # give a step up (it is halved) once its contraction rate predicts more
    # Newton iterations than this twice in a row (None: only max_iter)
    min_step_length: float | None = 0.2  # give a step up (it is halved) when the residual line search of the
    # softening tangent shortens a Newton step below this
    floored_retry: bool = False  # a step the softening tangent failed is redone floored before it is halved
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
        self.tangent_map: tuple | None = None  # (K, positions in K.data, block entry of each)
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
        with mu' = b1 / 2, lam' = b4 - b1 / 3.  Per element and pair of directions x, y, with the
        nen x nq matrices g_x, v_x of the points' gradient and n-gradient components, the lam', a2,
        a3 terms are [lam' g_x + a3 v_x, a2 v_x + a3 g_x] [g_y, v_y]^T and B_xy = mu' g_x g_y^T gives
        the others (B_yx, and sum_z B_zz on x = y): two batched matrix products, no 6x6 algebra per
        point and no loop over node pairs.  D - C is symmetric, so a block the pattern stores
        mirrored (``swap``) is the element's (j, i) block.
        """
        pat = self.pattern
        nb = pat.n_blocks
        out = np.zeros(9 * nb)
        act = np.flatnonzero(yielded.reshape(len(self.el), self.nq).any(axis=1))
        if len(act) == 0:
            return out.reshape(9, nb).T.reshape(-1, 3, 3)
        nen, nq = self.cells.shape[1], self.nq
        iu, ju = np.triu_indices(nen)
        K, G = self.law.K, self.law.G
        d3 = np.arange(3)
        for s0 in range(0, len(act), 4096):
            a = act[s0 : s0 + 4096]
            na = len(a)
            rows = (a[:, None] * nq + np.arange(nq)).reshape(-1)
            w = self.wdet[:, a].T  # (na, nq)
            b1 = (D.a1[rows] - 2.0 * G[rows]).reshape(na, nq)
            sh = (na, 1, 1, nq)
            lam = (w * ((D.a4[rows] - K[rows]).reshape(na, nq) - b1 / 3.0)).reshape(sh)
            mu = (w * b1 / 2.0).reshape(sh)
            c2, c3 = (w * D.a2[rows].reshape(na, nq)).reshape(sh), (w * D.a3[rows].reshape(na, nq)).reshape(sh)
            nt = tensor_from_mandel(D.n[rows]).reshape(na, nq, 3, 3)
            g = self.grads[..., a].transpose(3, 2, 1, 0)  # (na, 3, nen, nq): g_x
            v = np.einsum("eqxc,ecjq->exjq", nt, g)  # v_x = (n g_i)_x
            Z = np.concatenate([g, v], axis=3)[:, None].swapaxes(3, 4)  # (na, 1, 3, 2 nq, nen): y
            Wl = np.concatenate([lam * g + c3 * v, c2 * v + c3 * g], axis=3)[:, :, None]  # (na, 3, 1, nen, 2 nq)
            Ke = np.matmul(Wl, Z)  # (na, 3, 3, nen, nen)
            Bm = np.matmul((mu * g)[:, :, None], g[:, None].swapaxes(3, 4))
            Ke += Bm.swapaxes(1, 2)  # mu' g_j g_i^T: B_yx
            Ke[:, d3, d3] += Bm[:, d3, d3].sum(axis=1)[:, None]  # mu' (g_i . g_j) I
            ga = self.el[a]  # global element numbers: the pattern is the whole mesh's
            sw = pat.swap[:, ga].T  # (na, npair): the pattern keeps the block of (j, i)
            pidx = np.where(sw, ju * nen + iu, iu * nen + ju)
            Kb = np.take_along_axis(Ke.reshape(na, 9, nen * nen), pidx[:, None, :], axis=2)  # (na, 9, npair)
            idx = pat.inv[:, ga].T[:, None, :] + (nb * np.arange(9))[None, :, None]
            out += np.bincount(idx.ravel(), weights=Kb.ravel(), minlength=9 * nb)
        return np.ascontiguousarray(out.reshape(9, nb).T).reshape(-1, 3, 3)


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
    if opt.softening_tangent not in ("exact", "floored"):
        raise ValueError(f"softening_tangent must be exact or floored, got {opt.softening_tangent!r}")
    if opt.forcing not in ("ew", "fixed"):
        raise ValueError(f"forcing must be ew or fixed, got {opt.forcing!r}")
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
    reduced = ReducedTangent(K, red, kern)
    law = plastic.law
    Bnull = model.layout.rigid_modes(mesh.points, scale=float(np.ptp(mesh.points, axis=0).max()))
    Bnull[red.dependent] = 0.0
    requested = path_solver(opt.solver or model.solver, mesh.order, model.n_dofs)
    options = dict(model.solver_options)
    if requested == "pmg" and "cells" not in options:  # p-multigrid's coarse space: the model's own tet10 cells
        from fembone.core.solvers_pmg import coarse_options

        options.update(coarse_options(mesh.cells, mesh.n_nodes, model.C))
    lin = LinearSolves(model.n_dofs, requested, opt.linear, opt.cg_rtol, opt.refresh_iterations, Bnull, options)
    npts = law.n
    vol = (kern.wdet.T).ravel()  # (n_points,) element-major, like the law
    # converged state
    eps_p = np.zeros((npts, 6))
    alpha = np.zeros(npts)
    q = np.zeros(model.n_dofs)
    q_prev, lam_prev = q.copy(), 0.0
    T = red.T

    def evaluate(qv: np.ndarray, lam: float, tangent: bool, tlaw: DruckerPrager = law):
        u = T @ qv + g0 + lam * (g1 - g0)
        upd = tlaw.update(kern.strain(u), eps_p, alpha, tangent=tangent)
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
        q_el = -lin.solve(reduced.Kq, T.T @ (K @ g1))
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
    peak, bracketed = 0.0, False
    message = ""
    finished = True
    ls_total = 0
    counts = {"secant_iterations": 0, "floored_steps": 0, "floored_retries": 0}
    # the iterations' tangent: the consistent one with softening (may be indefinite), or the law's floored one
    law_it = law.with_tangent_floor(None) if opt.softening_tangent == "exact" else law

    def tangent(upd):  # T^T K_t T + I_dep, straight from the element blocks
        return reduced(upd)

    def floored(qv, lam):  # the stress update with the law's floored tangent
        return evaluate(qv, lam, True)[1]

    while lam < 1.0 - 1e-12:
        dl = min(dlam, 1.0 - lam)
        lam_new = lam + dl
        # predictor: extrapolate the last increment
        if lam > lam_prev:
            q_try = extrapolate(q, q_prev, lam, lam_prev, lam_new)
        else:
            q_try = lam_new * q_el if q_el is not None else q.copy()
        ok, its, state, ls = newton(functools.partial(evaluate, tlaw=law_it), q_try, lam_new, red, tangent, lin, opt,
                                    counts, floored if law_it is not law else None)
        if not ok and law_it is not law and opt.floored_retry:  # this step again with the floored tangent
            log.debug("step to %.5f failed with the softening tangent (%s); again with the floored one", lam_new, state)
            counts["floored_retries"] += 1
            ok, its2, state, ls2 = newton(evaluate, q_try, lam_new, red, tangent, lin, opt, counts)
            its, ls = its + its2, ls + ls2
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
        if not bracketed and len(out["force"]) >= 3 and out["force"][-3] <= out["force"][-2] > F:
            bracketed = True  # the strength (the first local maximum) is known from here on
            log.info("first peak bracketed: %.6g N at step %d (%.1f s into the path)", out["force"][-2],
                     len(out["lam"]) - 2, time.perf_counter() - t0)
        peak = max(peak, F)
        if opt.stop_drop is not None and peak > 0 and F < (1.0 - opt.stop_drop) * peak:
            message = f"stopped after the peak: force fell {100 * opt.stop_drop:.0f} % below it"
            break
    stats = dict(lin.stats, **elastic, wall_s=time.perf_counter() - t0, line_search_evaluations=ls_total,
                 newton_iterations=int(np.sum(out["iterations"])), steps=len(out["lam"]) - 1,
                 step_cuts=int(np.sum(out["cuts"])), plastic_points=int(npts), **counts)
    return PathResult(np.array(out["lam"]), np.array(out["force"]), np.array(out["iterations"]),
                      np.array(out["cuts"]), np.array(out["yielded"]), np.array(out["ratio"]), states, vol,
                      stats, finished, message)


def _tangent(K, kern: _PlasticKernels, upd) -> sp.csr_matrix:
    """K + int B^T (D - C) B over the elements that yielded (K's block pattern; springs stay in K).

    The block entries are added into a copy of K's values through an index map found once
    (block entry -> position in K.data), so the tangent keeps K's structure (a kept PARDISO
    analysis stays valid) and neither a sparse sum nor a CSR of the update is formed
    (benchmarks/README.md "Strength")."""
    if not upd.yielded.any():
        return K
    U = kern.tangent_blocks(upd.tangent, upd.yielded)
    if kern.tangent_map is None or kern.tangent_map[0] is not K:
        # once: the CSR of blocks numbered 0..9 nb - 1 tells which block entry each stored value is
        ids = blocks_to_matrix(kern.pattern, np.arange(U.size, dtype=float).reshape(U.shape), "csr")
        pos = csr_positions(K, ids)
        kern.tangent_map = (K, pos, ids.data.astype(np.int64) if pos is not None else None)
    _, pos, src = kern.tangent_map
    if pos is None:  # K lacks an entry of the pattern (an exact zero dropped): the general sum
        return (K + blocks_to_matrix(kern.pattern, U, "csr")).tocsr()
    data = K.data.copy()
    data[pos] += U.ravel()[src]  # each stored entry of K takes one block entry (mirrored ones transposed)
    return sp.csr_matrix((data, K.indices, K.indptr), shape=K.shape)


class ReducedTangent:
    """T^T K_t T + I_dep of the tangent K_t = K + int B^T (D - C) B, written into the values of
    the reduced elastic matrix through maps found once (same structure every time).

    When every row of T has at most one entry (supports and one-master ties, the vertebra set-ups),
    each stored entry (i, j) of K lands in one entry (a, b) of the reduced matrix with weight
    T_ia T_jb, so the reduced values are one weighted bincount of the plastic block entries added
    to the reduced elastic values: no tangent CSR, no sparse products (0.7 s of 1.7 s per tangent
    at 113k DOFs, benchmarks/README.md).  Otherwise (or when K lacks an entry of the block
    pattern): :func:`_tangent` and :func:`fembone.core.constraints.reduce_system`.
    """

    def __init__(self, K: sp.csr_matrix, red, kern: _PlasticKernels):
        self.K, self.red, self.kern = K, red, kern
        self.map: tuple | None = None  # (reduced position, block entry, weight) per contribution
        T = red.T.tocsr()
        one = np.diff(T.indptr)
        nb = kern.pattern.n_blocks
        ids = blocks_to_matrix(kern.pattern, np.arange(9 * nb, dtype=float).reshape(nb, 3, 3), "csr")
        pos = csr_positions(K, ids) if K.has_sorted_indices else None
        if one.max(initial=0) > 1 or pos is None:
            self.Kq = reduce_system(K, red)
            return
        n = K.shape[0]
        col = np.full(n, -1, np.int64)
        coef = np.zeros(n)
        col[one == 1], coef[one == 1] = T.indices, T.data
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(K.indptr))
        a, b, w = col[rows], col[K.indices], coef[rows] * coef[K.indices]
        ok = np.flatnonzero((a >= 0) & (b >= 0) & (w != 0))
        dep = np.flatnonzero(red.dependent).astype(np.int64)
        # the reduced structure: every (a, b) a stored entry of K reaches, and the unit diagonal of I_dep
        ukeys, inv = np.unique(np.concatenate([a[ok] * n + b[ok], dep * n + dep]), return_inverse=True)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(ukeys // n, minlength=n), out=indptr[1:])
        m = len(ok)
        data = np.bincount(inv[:m], weights=K.data[ok] * w[ok], minlength=len(ukeys))
        data += np.bincount(inv[m:], minlength=len(ukeys))
        idx_t = np.int32 if len(ukeys) < 2**31 - 1 and n < 2**31 - 1 else np.int64
        self.Kq = sp.csr_matrix((data, (ukeys % n).astype(idx_t), indptr.astype(idx_t)), shape=(n, n))
        posq = np.full(K.nnz, -1, np.int64)  # reduced position of every stored entry of K
        wk = np.zeros(K.nnz)
        posq[ok], wk[ok] = inv[:m], w[ok]
        keep = posq[pos] >= 0
        self.map = (posq[pos][keep], ids.data.astype(np.int64)[keep], wk[pos][keep])

    def __call__(self, upd) -> sp.csr_matrix:
        if not upd.yielded.any():
            return self.Kq
        if self.map is None:
            return reduce_system(_tangent(self.K, self.kern, upd), self.red)
        pq, src, w = self.map
        U = self.kern.tangent_blocks(upd.tangent, upd.yielded).ravel()
        data = self.Kq.data + np.bincount(pq, weights=U[src] * w, minlength=self.Kq.nnz)
        return sp.csr_matrix((data, self.Kq.indices, self.Kq.indptr), shape=self.Kq.shape)
