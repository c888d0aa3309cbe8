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
(:mod:`fembone.core.nonlinear_solve`: inexact Newton with Eisenstat-Walker forcing terms, a
limited-memory BFGS stage on a frozen tangent once Newton slows down, Crisfield's line
search), the step halved when they fail and grown again after easy steps.  Small strains.
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
    softening_tangent: str = "exact"  # exact: consistent tangent with the softening slope (a failed step is
    # retried with the floored one) | floored: the law's tangent_floor
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
    counts = {"secant_iterations": 0, "floored_steps": 0, "floored_retries": 0}
    # the iterations' tangent: the consistent one with softening (may be indefinite), or the law's floored one
    law_it = law.with_tangent_floor(None) if opt.softening_tangent == "exact" else law

    def tangent(upd):
        return _tangent(K, kern, upd)

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
        if not ok and law_it is not law:  # the softening tangent failed: this step again with the floored one
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
