"""The four verification problems: patch tests, cantilever, Lame sphere, Eshelby inclusion.

Each ``*_rows(quick)`` solves its problem and returns table rows (:mod:`fembone.apps.verify.table`)
comparing with the closed forms of :mod:`fembone.apps.verify.exact`. Units: mm, N, MPa.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fembone.apps.verify.exact import (
    BEAM_B,
    BEAM_E,
    BEAM_H,
    BEAM_L,
    BEAM_NU,
    BEAM_P,
    BLOCK,
    INCLUSION_A,
    INCLUSIONS,
    MATRIX,
    PATCH_E,
    PATCH_NU,
    REMOTE_STRESS,
    SPHERE_A,
    SPHERE_B,
    SPHERE_E,
    SPHERE_NU,
    SPHERE_P,
    eshelby_exact,
    lame_sphere_displacement,
    lame_sphere_hoop,
    patch_field,
    saint_venant_flexure,
    timoshenko_tip_deflection,
)
from fembone.apps.verify.meshes import (
    _beam,
    distorted_box,
    face_mean,
    inclusion_mesh,
    quadrature_positions,
    sphere_octant_mesh,
    surface_stress,
)
from fembone.apps.verify.table import ELEMENT_NAMES, make_row, order_row
from fembone.cases import build_model
from fembone.core.analysis import solve
from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.loads import face_quadrature, total_force_load
from fembone.core.materials import Isotropic, Material
from fembone.core.mesh import Mesh
from fembone.core.model import Model

# ---------------------------------------------------------------------------------------------
# small helpers


def isotropic_model(name: str, mesh: Mesh, material: Material, solver: str | None = "auto") -> Model:
    """A one-material model without constraints or loads (to be added by the caller)."""
    layout = DofLayout(mesh.n_nodes)
    C = np.broadcast_to(material.stiffness(), (mesh.n_elements, 6, 6)).copy()
    return Model(
        name=name, mesh=mesh, materials=[material], material_id=np.zeros(mesh.n_elements, int), C=C,
        layout=layout, constraints=ConstraintSet(layout), solver=solver,
    )


def _solver_for(n_dofs: int) -> str:
    """PARDISO for the larger verification models when it is installed (several x faster here)."""
    from fembone.core.solvers import Pardiso

    return "pardiso" if n_dofs > 5000 and Pardiso.available() else "auto"

# ---------------------------------------------------------------------------------------------
# 1. patch tests


@dataclass
class PatchResult:
    element: str
    field: str
    dofs: int
    u_error: float  # max |u_h - u| over interior nodes / max |u|
    u_max: tuple[float, float]  # (max |u_h|, max |u|) over interior nodes
    stress_error: float  # max |sigma_h - sigma| at quadrature points / max |sigma|
    stress_max: tuple[float, float]
    equilibrium_error: float


def patch_test(order: int = 1, kind: str = "linear", divisions: int = 4, seed: int = 7) -> PatchResult:
    """Prescribe the field on all boundary nodes of a distorted box, solve, compare the interior."""
    mesh = distorted_box(divisions, seed=seed, order=order)
    u_ex, s_ex = patch_field(kind)
    model = isotropic_model(f"patch-{kind}", mesh, Isotropic(name="patch", E=PATCH_E, nu=PATCH_NU), solver="superlu")
    faces, _ = mesh.boundary_faces()
    bnodes = np.unique(faces)
    model.constraints.fix(model.node_dofs(bnodes), u_ex(mesh.points[bnodes]).ravel(), label="patch boundary")
    model.loads["patch"] = np.zeros(model.n_dofs)
    res = solve(model)
    lc = res.loadcases["patch"]
    interior = np.setdiff1d(np.arange(mesh.n_nodes), bnodes)
    uh, ue = lc.displacement[interior], u_ex(mesh.points[interior])
    xq = quadrature_positions(mesh, res.geometry.qpoints).reshape(-1, 3)
    sh = lc.fields.stress_q.reshape(-1, 3, 3)
    se = s_ex(xq)
    return PatchResult(
        ELEMENT_NAMES[mesh.order], kind, model.n_dofs,
        float(np.abs(uh - ue).max() / np.abs(ue).max()), (float(np.abs(uh).max()), float(np.abs(ue).max())),
        float(np.abs(sh - se).max() / np.abs(se).max()), (float(np.abs(sh).max()), float(np.abs(se).max())),
        lc.equilibrium_error,
    )


PATCH_TOL_U = 1e-10
PATCH_TOL_STRESS = 1e-9


def patch_rows(quick: bool = False) -> list[dict]:
    rows = []
    for order, kind in ((1, "linear"), (2, "linear"), (2, "quadratic")):
        r = patch_test(order, kind)
        prob = f"patch test, {kind} field"
        rows.append(make_row(prob, r.element, r.dofs, "interior u, max-norm", *r.u_max, PATCH_TOL_U, error=r.u_error))
        rows.append(make_row(prob, r.element, r.dofs, "stress at q-points, max-norm", *r.stress_max, PATCH_TOL_STRESS,
                             error=r.stress_error))
    return rows

# ---------------------------------------------------------------------------------------------
# 2. cantilever


def cantilever(n_section: int, order: int, clamped: bool = True) -> tuple[float, int]:
    """Tip deflection (mm, positive down: area-weighted mean of -u_z over x = L) and DOFs.

    Mesh: 10 n elements along, n x n across (6 tetrahedra per cube; tet10 by promotion).
    ``clamped``: nu = 0.3, every node of x = 0 fixed, tip force P spread uniformly over
    x = L (the setting of cases/cantilever.yaml).  Otherwise the nu = 0 exact flexure problem:
    root nodes carry the exact displacement (warping included), the tip the parabolic shear
    traction (integrated with the face quadrature); the sides are free in both.
    """
    mesh = _beam(n_section, order)
    nu = BEAM_NU if clamped else 0.0
    model = isotropic_model(f"cantilever-{n_section}", mesh, Isotropic(name="beam", E=BEAM_E, nu=nu))
    model.solver = _solver_for(3 * mesh.n_nodes)
    root = np.flatnonzero(np.abs(mesh.points[:, 0]) < 1e-9 * BEAM_L)
    tip = mesh.facet_sets["xmax"]
    if clamped:
        model.constraints.fix(model.node_dofs(root), 0.0, label="root: clamped")
        f = total_force_load(mesh.points, tip, [0.0, 0.0, -BEAM_P], mesh.n_nodes)
    else:
        u_ex, t_z = saint_venant_flexure(BEAM_P, BEAM_L, BEAM_B, BEAM_H, BEAM_E)
        model.constraints.fix(model.node_dofs(root), u_ex(mesh.points[root]).ravel(), label="root: exact warping")
        N, nda, xq = face_quadrature(mesh.points, tip)
        fz = np.einsum("qn,fq->fn", N, t_z(xq) * np.linalg.norm(nda, axis=2))
        f = np.zeros((mesh.n_nodes, 3))
        f[:, 2] = np.bincount(tip.ravel(), fz.ravel(), minlength=mesh.n_nodes)
    model.loads["tip"] = f.ravel()
    res = solve(model)
    uz = res.loadcases["tip"].displacement[:, 2]
    return -face_mean(mesh, tip, uz), model.n_dofs


def fit_order(h, err) -> float:
    """Least-squares slope of log(error) against log(h)."""
    return float(np.polyfit(np.log(np.asarray(h, float)), np.log(np.abs(np.asarray(err, float))), 1)[0])


def richardson(h, values) -> tuple[float, float]:
    """(limit, order) of v(h) = v0 + C h^p through three (h, v) points (Richardson; Roache 1998).

    The meshes need not be in a constant ratio: p solves (v1-v2)/(v2-v3) = (h1^p-h2^p)/(h2^p-h3^p).
    Returns (nan, nan) when the values do not converge monotonically.
    """
    from scipy.optimize import brentq

    h = np.asarray(h, float)
    v = np.asarray(values, float)
    order = np.argsort(-h)
    h, v = h[order], v[order]
    R = (v[0] - v[1]) / (v[1] - v[2])
    if not np.isfinite(R) or R <= 0:
        return math.nan, math.nan

    def g(p):
        return (h[0] ** p - h[1] ** p) / (h[1] ** p - h[2] ** p) - R

    lo, hi = 0.05, 12.0
    if g(lo) * g(hi) > 0:
        return math.nan, math.nan
    p = brentq(g, lo, hi, xtol=1e-12)
    C = (v[0] - v[1]) / (h[0] ** p - h[1] ** p)
    return float(v[2] - C * h[2] ** p), float(p)


@dataclass
class ConvergenceStudy:
    """Tip deflections of one element family on a sequence of meshes, with the observed order."""

    element: str
    h: np.ndarray  # element size across the section (mm)
    dofs: list[int]
    values: np.ndarray  # tip deflection (mm)
    reference: float  # exact value or extrapolated FE limit (mm)
    order: float = math.nan
    seconds: float = 0.0

    @property
    def errors(self) -> np.ndarray:
        return np.abs(self.values - self.reference) / abs(self.reference)


def _study(run, order: int, divisions, reference: float | None = None) -> ConvergenceStudy:
    t = time.perf_counter()
    out = [run(n, order) for n in divisions]
    h = BEAM_H / np.asarray(divisions, float)
    values = np.array([d for d, _ in out])
    st = ConvergenceStudy(ELEMENT_NAMES[order], h, [n for _, n in out], values, math.nan, seconds=time.perf_counter() - t)
    if reference is None:
        st.reference, st.order = richardson(h, values)
    else:
        st.reference = reference
        st.order = fit_order(h, st.errors)
    return st


#: meshes (elements across the 10 mm section) of the convergence studies
TET4_DIVISIONS = (4, 6, 8)
TET10_DIVISIONS_SMOOTH = (2, 3, 4)
TET10_DIVISIONS_CLAMPED = (2, 3, 4)


def smooth_convergence(tet4=TET4_DIVISIONS, tet10=TET10_DIVISIONS_SMOOTH) -> tuple[ConvergenceStudy, ConvergenceStudy]:
    """Observed orders against the exact nu = 0 solution (no modelling error, smooth field)."""
    exact = timoshenko_tip_deflection(BEAM_P, BEAM_L, BEAM_B, BEAM_H, BEAM_E, 0.0)

    def run(n, o):
        return cantilever(n, o, clamped=False)

    return _study(run, 1, tet4, exact), _study(run, 2, tet10, exact)


def clamped_convergence(tet4=TET4_DIVISIONS, tet10=TET10_DIVISIONS_CLAMPED) -> tuple[ConvergenceStudy, ConvergenceStudy]:
    """Observed orders of the clamped cantilever: reference = Richardson limit of the tet10 meshes.

    Beam theory cannot be the reference here: it differs from the 3-D clamped solution by its
    own modelling error (~0.7 %), which tet10 reaches on coarse meshes.  The tet10 order is the
    Richardson order of its three meshes; the tet4 order is the fitted slope of its errors
    against that limit.
    """
    s10 = _study(cantilever, 2, tet10)
    s4 = _study(cantilever, 1, tet4, s10.reference)
    return s4, s10


def cantilever_rows(quick: bool = False) -> list[dict]:
    """Clamped beam vs Timoshenko; convergence orders (full run only; quick: one mesh each)."""
    exact = timoshenko_tip_deflection(BEAM_P, BEAM_L, BEAM_B, BEAM_H, BEAM_E, BEAM_NU)
    exact0 = timoshenko_tip_deflection(BEAM_P, BEAM_L, BEAM_B, BEAM_H, BEAM_E, 0.0)
    p1, p2 = "cantilever, clamped root", "cantilever, exact 3-D field"
    if quick:
        d, n = cantilever(3, 2)
        d0, n0 = cantilever(2, 2, clamped=False)
        return [
            make_row(p1, "tet10", n, "tip deflection (mm)", d, exact, 0.01),
            make_row(p2, "tet10", n0, "tip deflection (mm)", d0, exact0, 1e-3),
        ]
    c4, c10 = clamped_convergence()
    s4, s10 = smooth_convergence()
    return [
        make_row(p1, "tet10", c10.dofs[-1], "tip deflection (mm)", c10.values[-1], exact, 0.01),
        make_row(p1, "tet4", c4.dofs[-1], "tip deflection (mm)", c4.values[-1], exact, 0.10),
        make_row(p1, "tet10", c10.dofs[-1], "FE limit (Richardson)", c10.reference, exact, 0.01),
        order_row(p1, "tet4", c4.dofs[-1], f"order, h={_hs(c4.h)}", c4.order, 2.0),
        order_row(p1, "tet10", c10.dofs[-1], f"order, h={_hs(c10.h)}", c10.order, 2.0,
                  ok=bool(c10.order >= 1.5 and c10.order > c4.order)),
        make_row(p2, "tet10", s10.dofs[-1], "tip deflection (mm)", s10.values[-1], exact0, 1e-4),
        order_row(p2, "tet4", s4.dofs[-1], f"order, h={_hs(s4.h)}", s4.order, 2.0),
        order_row(p2, "tet10", s10.dofs[-1], f"order, h={_hs(s10.h)}", s10.order, 4.0,
                  ok=bool(s10.order >= 3.0 and s10.order > s4.order)),
    ]


def _hs(h) -> str:
    return "..".join(f"{x:.3g}" for x in (h[0], h[-1]))

# ---------------------------------------------------------------------------------------------
# 3. Lame hollow sphere


def lame_sphere(h: float, order: int, h_outer: float | None = None) -> dict:
    """Solve the pressurised octant; area-weighted radial displacements and inner hoop stress."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sphere.msh"
        sphere_octant_mesh(h, order, path, h_outer=h_outer)
        case = {
            "name": f"lame-sphere-{ELEMENT_NAMES[order]}",
            "mesh": path.name,
            "materials": {"cortical": {"E": SPHERE_E, "nu": SPHERE_NU}},
            "constraints": [
                {"where": {"plane": {"x": 0.0}}, "fix": ["x"]},
                {"where": {"plane": {"y": 0.0}}, "fix": ["y"]},
                {"where": {"plane": {"z": 0.0}}, "fix": ["z"]},
            ],
            "loadcases": {"pressure": [{"where": {"set": "inner"}, "pressure": SPHERE_P}]},
        }
        model = build_model(case, base=tmp, source="verify:lame")
    model.solver = _solver_for(model.n_dofs)
    res = solve(model)
    mesh = model.mesh
    lc = res.loadcases["pressure"]
    x = mesh.points
    ur = (lc.displacement * x).sum(axis=1) / np.linalg.norm(x, axis=1)
    inner, outer = mesh.facet_sets["inner"], mesh.facet_sets["outer"]
    # hoop stress on r = a from the element fields: spherical symmetry makes both tangential
    # stresses equal, sigma_t = (tr sigma - n.sigma.n) / 2
    sig, xq, dA = surface_stress(mesh, model.C, lc.displacement, inner)
    n = xq / np.linalg.norm(xq, axis=2)[..., None]
    hoop = 0.5 * (np.trace(sig, axis1=2, axis2=3) - np.einsum("fqi,fqij,fqj->fq", n, sig, n))
    return {
        "dofs": model.n_dofs,
        "u_inner": face_mean(mesh, inner, ur),
        "u_outer": face_mean(mesh, outer, ur),
        "hoop_inner": float((hoop * dA).sum() / dA.sum()),
        "equilibrium_error": lc.equilibrium_error,
    }


def lame_rows(quick: bool = False) -> list[dict]:
    """tet10 on a mesh graded from h at r = a to 3 mm at r = b; tet4 on a finer one.

    The hoop stress is the element stress on r = a itself (a one-sided trace, no nodal
    averaging), where the stress gradient is steepest: it needs h ~ a/8 there for 1-2 %.
    """
    prob = "Lame sphere, internal p"
    rows = []
    for order, h, h_out, tol_u, tol_s in (
        (2, 1.5 if quick else 1.25, 3.0, 0.01, 0.02),
        (1, 1.5 if quick else 1.0, 2.5 if quick else 2.0, 0.05, None),
    ):
        r = lame_sphere(h, order, h_out)
        el = ELEMENT_NAMES[order]
        rows.append(make_row(prob, el, r["dofs"], "u_r(a) (mm)", r["u_inner"], lame_sphere_displacement(SPHERE_A), tol_u))
        rows.append(make_row(prob, el, r["dofs"], "u_r(b) (mm)", r["u_outer"], lame_sphere_displacement(SPHERE_B), tol_u))
        if tol_s is not None:
            rows.append(make_row(prob, el, r["dofs"], "hoop stress(a) (MPa)", r["hoop_inner"], lame_sphere_hoop(SPHERE_A), tol_s))
    return rows

# ---------------------------------------------------------------------------------------------
# 4. Eshelby inclusion


def eshelby_case(mesh_file: str, inclusion: dict, a: float = INCLUSION_A, block: float = BLOCK) -> dict:
    """Case dictionary: octant, symmetry planes, uniaxial remote stress on z = B, strain probes."""
    B = block * a
    probe = {"sphere": {"center": [0.0, 0.0, 0.0], "radius": 0.6 * a}}
    return {
        "name": "eshelby",
        "mesh": mesh_file,
        "materials": {"matrix": dict(MATRIX), "inclusion": dict(inclusion)},
        "assign": [{"material": "matrix"}, {"material": "inclusion", "where": {"set": "inclusion"}}],
        "constraints": [
            {"where": {"plane": {"x": 0.0}}, "fix": ["x"]},
            {"where": {"plane": {"y": 0.0}}, "fix": ["y"]},
            {"where": {"plane": {"z": 0.0}}, "fix": ["z"]},
        ],
        "loadcases": {"uniaxial": [{"where": {"plane": {"z": B}}, "traction": [0.0, 0.0, REMOTE_STRESS]}]},
        "probes": {f"e{c}": {"field": f"strain.{c}", "where": probe, "reduce": "mean"} for c in ("xx", "yy", "zz")},
    }


def eshelby(h_inclusion: float, order: int, kinds=("soft", "stiff")) -> dict[str, dict]:
    """Mean strain over a sphere of radius 0.6 a inside the inclusion, per inclusion kind."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inclusion.msh"
        inclusion_mesh(h_inclusion, path if order == 1 else None, path if order == 2 else None)
        for kind in kinds:
            model = build_model(eshelby_case(path.name, INCLUSIONS[kind]), base=tmp, source=f"verify:eshelby-{kind}")
            model.solver = _solver_for(model.n_dofs)
            lc = solve(model).loadcases["uniaxial"]
            e = np.diag([lc.probes["exx"], lc.probes["eyy"], lc.probes["ezz"]])
            out[kind] = {"dofs": model.n_dofs, "strain": e, "exact": eshelby_exact(INCLUSIONS[kind]),
                         "equilibrium_error": lc.equilibrium_error}
    return out


def volumetric_deviatoric(e: np.ndarray) -> tuple[float, float]:
    """(trace, zz component of the deviator) of a strain tensor."""
    ev = float(np.trace(e))
    return ev, float(e[2, 2] - ev / 3)


def eshelby_rows(quick: bool = False) -> list[dict]:
    # tolerance: tet10 2 % (measured < 0.3 %: discretisation and the finite block, whose effect
    # scales with the volume fraction (pi/6)(1/10)^3 = 5e-4); tet4 10 % (constant-strain
    # elements on a faceted sphere: measured 2-6 %)
    rows = []
    a = INCLUSION_A
    for order, h, tol in ((2, a / (3.5 if quick else 5.0), 0.02), (1, a / (6.0 if quick else 8.0), 0.10)):
        res = eshelby(h, order)
        for kind, r in res.items():
            ratio = INCLUSIONS[kind]["E"] / MATRIX["E"]
            prob = f"Eshelby {kind}, Ei/Em={ratio:g}"
            ev, ed = volumetric_deviatoric(r["strain"])
            xv, xd = volumetric_deviatoric(r["exact"])
            el = ELEMENT_NAMES[order]
            rows.append(make_row(prob, el, r["dofs"], "inclusion e_vol", ev, xv, tol))
            rows.append(make_row(prob, el, r["dofs"], "inclusion e_dev,zz", ed, xd, tol))
    return rows
