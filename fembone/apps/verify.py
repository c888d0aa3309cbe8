"""Verification problems with exact solutions: what ``fembone verify`` runs. Units: mm, N, MPa.

Each problem builds a model (through a case dictionary and :func:`fembone.cases.build_model`
where the case-file language can say it, through :class:`fembone.core.model.Model` directly where
it cannot, e.g. a prescribed field on every boundary node), solves it with
:func:`fembone.core.analysis.solve`, and compares with a closed-form value.  The result is a list
of rows::

    {"problem", "element", "dofs", "quantity", "computed", "exact", "error", "tolerance", "ok"}

``error`` is relative (|computed - exact| / |exact|) unless the quantity says otherwise:
rows whose exact value is 0 (round-off checks) give the measured relative residual, and
convergence-order rows give the relative shortfall below the expected order
(max(0, 1 - computed / exact)); being faster than expected is not an error.

Problems (exact solutions: shared/design/field.md, "Exact solutions for verification"):

1. Patch tests (Irons & Razzaque 1972; Zienkiewicz & Taylor vol. 1, §9.3): a linear field
   (tet4, tet10) and an equilibrated quadratic field (tet10: two Saint-Venant pure bendings
   plus a torsion, body-force free for any nu) prescribed on every boundary node of a box
   whose interior nodes are randomly moved; interior displacements and stresses must be
   reproduced to round-off.
2. Cantilever L = 100, 10 x 10, tip load P: Timoshenko deflection P L^3/(3EI) + P L/(kGA)
   with Cowper's k = 10(1+nu)/(12+11nu), for the clamped root face the case files use
   (beam theory is then only ~0.7 % off: the clamp stiffens the root); and convergence
   orders, both for that clamped beam (singular along the clamped edges: asymptotically both
   elements converge below order 2 there; on affordable meshes tet4 shows ~1.7, still leaving
   its bending-locking regime, and tet10 ~1.9) and for an exact 3-D solution with a smooth
   field (nu = 0, Saint-Venant flexure: root face carrying the exact warping, parabolic
   tip shear; Timoshenko with k = 5/6 is then exact), where tet4 and tet10 must reach their
   design orders 2 and 4 (the tip deflection is a compliance, error O(h^2p)).
3. Lame thick-walled hollow sphere under internal pressure: an octant meshed with gmsh,
   symmetry planes fixed normal-only; radial displacement at both radii, hoop stress at the
   inner radius.
4. Eshelby (1957) spherical inclusion, soft (lytic tumour in trabecular bone) and stiff
   (PMMA cement), in a block 10 radii wide under remote uniaxial stress: the uniform interior
   strain, volumetric and deviatoric parts.

Besides the four problems, two consistency checks run on small meshes: the stiffness is
symmetric with the six rigid-body motions in its null space (tet4/tet10, isotropic and
transversely isotropic), and every installed solver balances the reactions with the applied
loads and agrees with the others.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fembone.core.analysis import Result, solve
from fembone.core.assembly import Assembler
from fembone.cases import build_model
from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.loads import face_quadrature, total_force_load
from fembone.core.materials import Isotropic, Material, TransverseIsotropic
from fembone.core.mesh import Mesh, check_mesh, promote_to_tet10
from fembone.core.meshgen import beam_mesh, box_mesh, write_mesh
from fembone.core.model import Model

ROW_KEYS = ("problem", "element", "dofs", "quantity", "computed", "exact", "error", "tolerance", "ok")
ELEMENT_NAMES = {1: "tet4", 2: "tet10"}


# ---------------------------------------------------------------------------------------------
# rows and table


def make_row(
    problem: str, element: str, dofs: int, quantity: str, computed: float, exact: float, tolerance: float,
    error: float | None = None, ok: bool | None = None,
) -> dict:
    """One table row; ``error`` defaults to the relative error, ``ok`` to error <= tolerance."""
    computed, exact = float(computed), float(exact)
    if error is None:
        error = abs(computed - exact) / abs(exact) if exact != 0 else abs(computed)
    error = float(error)
    if ok is None:
        ok = bool(np.isfinite(error) and error <= tolerance)
    return {
        "problem": problem, "element": element, "dofs": int(dofs), "quantity": quantity,
        "computed": computed, "exact": exact, "error": error, "tolerance": float(tolerance), "ok": bool(ok),
    }


def order_row(problem: str, element: str, dofs: int, quantity: str, order: float, expected: float,
              tolerance: float = 0.25, ok: bool | None = None) -> dict:
    """A convergence-order row: error = relative shortfall below ``expected``."""
    shortfall = max(0.0, 1.0 - order / expected) if np.isfinite(order) else math.inf
    if ok is None:
        ok = shortfall <= tolerance
    return make_row(problem, element, dofs, quantity, order, expected, tolerance, error=shortfall, ok=ok)


def describe(row: dict) -> str:
    """One line for assertion messages: computed, exact, error and tolerance of a row."""
    return (
        f"{row['problem']} [{row['element']}, {row['dofs']} DOFs] {row['quantity']}: computed {row['computed']:.10g}, "
        f"exact {row['exact']:.10g}, error {row['error']:.3e} (tolerance {row['tolerance']:.1e})"
    )


def print_table(rows: list[dict], file=None) -> None:
    """Print rows as an aligned table: problem, element, DOFs, quantity, computed, exact, error."""
    head = ("problem", "element", "DOFs", "quantity", "computed", "exact", "error", "tol", "")
    body = [
        (
            r["problem"], r["element"], f"{r['dofs']:,}", r["quantity"], f"{r['computed']:.6g}", f"{r['exact']:.6g}",
            f"{r['error']:.2e}", f"{r['tolerance']:.3g}", "ok" if r["ok"] else "FAIL",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    right = {2, 4, 5, 6, 7}

    def fmt(cells):
        return "  ".join(
            (str(c).rjust(w) if i in right else str(c).ljust(w)) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(fmt(head), file=file)
    print("  ".join("-" * w for w in widths).rstrip(), file=file)
    for cells in body:
        print(fmt(cells), file=file)
    n_bad = sum(not r["ok"] for r in rows)
    print(f"{len(rows)} checks, {len(rows) - n_bad} passed, {n_bad} failed", file=file)


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


def face_mean(mesh: Mesh, faces: np.ndarray, values: np.ndarray) -> float:
    """Area-weighted mean over ``faces`` of a nodal scalar field ``values`` (nn,)."""
    N, nda, _ = face_quadrature(mesh.points, faces)
    dA = np.linalg.norm(nda, axis=2)
    vq = np.einsum("qn,fn...->fq...", N, values[faces])
    return float((vq * dA).sum() / dA.sum())


def quadrature_positions(mesh: Mesh, qpoints: np.ndarray) -> np.ndarray:
    """Physical coordinates (ne, nq, 3) of reference points ``qpoints`` in every element."""
    N = mesh.element.shape(qpoints)  # (nq, nen)
    return np.einsum("qn,enj->eqj", N, mesh.points[mesh.cells])


def surface_stress(mesh: Mesh, C: np.ndarray, u_nodes: np.ndarray, faces: np.ndarray):
    """Element stresses on boundary ``faces``: the one-sided trace, without nodal averaging.

    Each face is matched to its element; the element's stress field is evaluated at the face
    quadrature points.  Returns stress (nf, nq, 3, 3) MPa, positions (nf, nq, 3) mm and area
    weights (nf, nq) mm^2, faces in the order given.
    """
    from fembone.core.assembly import gradients_at
    from fembone.core.elements import TET4_FACES, TET10_FACES, face_element
    from fembone.core.results import displacement_gradient, strain_from_gradient, stress_from_strain

    bfaces, belem = mesh.boundary_faces()
    nn = mesh.n_nodes

    def key(f):
        c = np.sort(f[:, :3], axis=1).astype(np.int64)
        return (c[:, 0] * nn + c[:, 1]) * nn + c[:, 2]

    bk = key(bfaces)
    order = np.argsort(bk)
    pos = order[np.minimum(np.searchsorted(bk, key(faces), sorter=order), len(bk) - 1)]
    if np.any(bk[pos] != key(faces)):
        raise ValueError("surface_stress: some faces are not on the mesh boundary")
    bf, el = bfaces[pos], belem[pos]
    local = TET4_FACES if mesh.order == 1 else TET10_FACES
    k = np.full(len(bf), -1)
    for j in range(4):
        k[np.all(mesh.cells[el][:, local[j, :3]] == bf[:, :3], axis=1)] = j
    fe = face_element(bf.shape[1])
    eta = fe.quadrature(4 if fe.order == 2 else 2).points
    L = np.column_stack([1.0 - eta.sum(axis=1), eta])  # tri3 shape functions (nq, 3)
    N, nda, xq = face_quadrature(mesh.points, bf)
    sig = np.empty((len(bf), len(eta), 3, 3))
    for j in range(4):
        g = np.flatnonzero(k == j)
        if not len(g):
            continue
        xi = L @ mesh.element.node_coords()[local[j, :3]]
        grads, _ = gradients_at(mesh, xi, el[g])
        H = displacement_gradient(u_nodes, mesh.cells[el[g]], grads)
        sig[g] = stress_from_strain(strain_from_gradient(H).transpose(3, 0, 1, 2), C[el[g]])
    return sig, xq, np.linalg.norm(nda, axis=2)


class _Gmsh:
    """``with _Gmsh() as gmsh:`` a quiet gmsh session, finalised (or its model removed) on exit."""

    def __enter__(self):
        import gmsh

        self.gmsh = gmsh
        self.owner = not gmsh.isInitialized()
        if self.owner:
            try:
                gmsh.initialize(readConfigFiles=False, interruptible=False)
            except TypeError:  # older gmsh without these keywords
                gmsh.initialize()
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("fembone-verify")
        return gmsh

    def __exit__(self, *exc):
        try:
            self.gmsh.model.remove()
        finally:
            if self.owner:
                self.gmsh.finalize()
        return False


# ---------------------------------------------------------------------------------------------
# 1. patch tests

PATCH_E, PATCH_NU = 10000.0, 0.3


def distorted_box(divisions: int = 4, size: float = 10.0, amplitude: float = 0.2, seed: int = 7, order: int = 1) -> Mesh:
    """Box [-size/2, size/2]^3 with interior corner nodes moved randomly by up to ``amplitude`` x h.

    tet10 meshes are promoted after the perturbation, so mid-edge nodes sit at edge midpoints
    (straight-sided elements: the isoparametric map is affine and quadratic fields stay exact).
    """
    mesh = box_mesh((size,) * 3, (divisions,) * 3, origin=(-size / 2,) * 3)
    faces, _ = mesh.boundary_faces()
    interior = np.ones(mesh.n_nodes, bool)
    interior[np.unique(faces)] = False
    h = size / divisions
    rng = np.random.default_rng(seed)
    mesh.points[interior] += rng.uniform(-amplitude * h, amplitude * h, (interior.sum(), 3))
    check_mesh(mesh)
    return promote_to_tet10(mesh) if order == 2 else mesh


def patch_field(kind: str, E: float = PATCH_E, nu: float = PATCH_NU):
    """(u(x) -> (n, 3), sigma(x) -> (n, 3, 3)) of a body-force-free field; units mm, MPa.

    ``linear``: u = u0 + A x with a general A (stretch, shear and rotation), uniform stress.
    ``quadratic``: linear part plus Saint-Venant pure bending about y (sigma_xx = E k1 z) and
    about z (sigma_xx = E k2 y) and a torsion (sigma_xz = -mu t y, sigma_yz = mu t x).  Each
    is an exact elasticity solution for any nu: div sigma = 0 with no body force.
    """
    u0 = np.array([1.0e-3, -2.0e-3, 0.5e-3])
    A = 1e-3 * np.array([[1.0, 0.4, -0.3], [-0.2, -0.5, 0.6], [0.7, 0.1, 0.8]])
    C = Isotropic(E=E, nu=nu).stiffness()
    eps = 0.5 * (A + A.T)
    ev = np.array([eps[0, 0], eps[1, 1], eps[2, 2], 2 * eps[0, 1], 2 * eps[1, 2], 2 * eps[0, 2]])
    sv = C @ ev
    sig0 = np.array([[sv[0], sv[3], sv[5]], [sv[3], sv[1], sv[4]], [sv[5], sv[4], sv[2]]])
    k1, k2, tw = 2e-4, -1.5e-4, 3e-4  # curvatures (1/mm) and twist rate (rad/mm)
    mu = E / (2 * (1 + nu))

    def u(x):
        out = u0 + x @ A.T
        if kind == "quadratic":
            X, Y, Z = x.T
            out = out + np.column_stack([
                k1 * X * Z + k2 * X * Y - tw * Y * Z,
                -nu * k1 * Y * Z - 0.5 * k2 * (X**2 + nu * (Y**2 - Z**2)) + tw * X * Z,
                -0.5 * k1 * (X**2 + nu * (Z**2 - Y**2)) - nu * k2 * Y * Z,
            ])
        return out

    def sigma(x):
        s = np.broadcast_to(sig0, (len(x), 3, 3)).copy()
        if kind == "quadratic":
            X, Y, Z = x.T
            s[:, 0, 0] += E * (k1 * Z + k2 * Y)
            s[:, 0, 2] += -mu * tw * Y
            s[:, 2, 0] += -mu * tw * Y
            s[:, 1, 2] += mu * tw * X
            s[:, 2, 1] += mu * tw * X
        return s

    if kind not in ("linear", "quadratic"):
        raise ValueError(f"patch field must be 'linear' or 'quadratic', got {kind!r}")
    return u, sigma


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

BEAM_L, BEAM_B, BEAM_H, BEAM_P = 100.0, 10.0, 10.0, 10.0  # mm, mm, mm, N (tip force along -z)
BEAM_E, BEAM_NU = 10000.0, 0.3


def cowper_k_rectangle(nu: float) -> float:
    """Cowper (1966) shear coefficient of a rectangle: 10 (1 + nu) / (12 + 11 nu)."""
    return 10.0 * (1.0 + nu) / (12.0 + 11.0 * nu)


def timoshenko_tip_deflection(P: float, L: float, b: float, h: float, E: float, nu: float) -> float:
    """Tip deflection (mm) of a rectangular cantilever: P L^3/(3 E I) + P L/(k G A), Cowper's k."""
    I = b * h**3 / 12.0
    G = E / (2.0 * (1.0 + nu))
    return P * L**3 / (3 * E * I) + P * L / (cowper_k_rectangle(nu) * G * b * h)


def saint_venant_flexure(P: float, L: float, b: float, h: float, E: float):
    """Exact 3-D displacement (mm) of an end-loaded rectangular cantilever with nu = 0.

    For nu = 0 the elementary stresses sigma_xx = P (L - x) z / I, tau_xz = P (z^2 - h^2/4) / (2 I)
    satisfy equilibrium and Beltrami-Michell compatibility exactly (Timoshenko & Goodier,
    Theory of Elasticity, §122, whose correction term vanishes with nu).  The rigid rotation is
    chosen so that the root section has zero mean rotation (integral of z u_x over it is 0);
    the tip deflection is then P L^3/(3EI) + P L/(k G A) with k = 5/6 exactly (Cowper, nu = 0).
    Tip load: -P along z, applied as the parabolic shear traction t_z = P (z^2 - h^2/4)/(2 I).
    """
    I = b * h**3 / 12.0
    G = E / 2.0
    a = P * h * h / (10.0 * G * I)

    def u(x):
        X, Z = x[:, 0], x[:, 2]
        ux = P / (E * I) * (L * X - X**2 / 2) * Z + P / (G * I) * (Z**3 / 6 - h * h * Z / 8) + a * Z
        uz = -P / (E * I) * (L * X**2 / 2 - X**3 / 6) - a * X
        return np.column_stack([ux, np.zeros_like(X), uz])

    def tip_traction_z(x):
        return P * (x[..., 2] ** 2 - h * h / 4) / (2 * I)

    return u, tip_traction_z


def _beam(n_section: int, order: int) -> Mesh:
    return beam_mesh(BEAM_L, BEAM_B, BEAM_H, n_length=10 * n_section, n_section=n_section, order=order)


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

SPHERE_A, SPHERE_B, SPHERE_P = 10.0, 20.0, 10.0  # inner, outer radius (mm), pressure (MPa)
SPHERE_E, SPHERE_NU = 12000.0, 0.3  # cortical bone


def lame_sphere_displacement(r, a=SPHERE_A, b=SPHERE_B, p=SPHERE_P, E=SPHERE_E, nu=SPHERE_NU):
    """u(r) = p a^3 / (E (b^3 - a^3)) [(1 - 2nu) r + (1 + nu) b^3 / (2 r^2)] (mm)."""
    r = np.asarray(r, float)
    return p * a**3 / (E * (b**3 - a**3)) * ((1 - 2 * nu) * r + (1 + nu) * b**3 / (2 * r**2))


def lame_sphere_hoop(r, a=SPHERE_A, b=SPHERE_B, p=SPHERE_P):
    """sigma_t(r) = p a^3 / (b^3 - a^3) (1 + b^3 / (2 r^3)) (MPa)."""
    r = np.asarray(r, float)
    return p * a**3 / (b**3 - a**3) * (1 + b**3 / (2 * r**3))


def sphere_octant_mesh(h: float, order: int, path: str | Path, a=SPHERE_A, b=SPHERE_B, h_outer: float | None = None) -> None:
    """gmsh (OCC) octant of a hollow sphere; tet10 nodes lie on the spheres.

    Element size ``h`` at r = a, growing linearly to ``h_outer`` (default ``h``) at r = b.
    Physical groups: volume ``solid``; surfaces ``inner``, ``outer``, ``x0``, ``y0``, ``z0``.
    """
    with _Gmsh() as gmsh:
        occ = gmsh.model.occ
        shell, _ = occ.cut([(3, occ.addSphere(0, 0, 0, b))], [(3, occ.addSphere(0, 0, 0, a))])
        occ.intersect(shell, [(3, occ.addBox(0, 0, 0, 2 * b, 2 * b, 2 * b))])
        occ.synchronize()
        gmsh.model.addPhysicalGroup(3, [t for _, t in gmsh.model.getEntities(3)], name="solid")
        groups: dict[str, list[int]] = {}
        for _, tag in gmsh.model.getEntities(2):
            lo_hi = np.array(gmsh.model.getBoundingBox(2, tag))
            flat = [k for k in range(3) if lo_hi[3 + k] - lo_hi[k] < 1e-6 * b and abs(lo_hi[k]) < 1e-6 * b]
            if flat:
                name = "xyz"[flat[0]] + "0"
            else:
                c = np.array(occ.getCenterOfMass(2, tag))
                name = "inner" if np.linalg.norm(c) < 0.5 * (a + b) else "outer"
            groups.setdefault(name, []).append(tag)
        for name, tags in groups.items():
            gmsh.model.addPhysicalGroup(2, tags, name=name)
        h_outer = h if h_outer is None else h_outer
        fld = gmsh.model.mesh.field.add("MathEval")
        gmsh.model.mesh.field.setString(
            fld, "F", f"{h} + {(h_outer - h) / (b - a)} * (Sqrt(x*x + y*y + z*z) - {a})"
        )
        gmsh.model.mesh.field.setAsBackgroundMesh(fld)
        for opt in ("Mesh.MeshSizeExtendFromBoundary", "Mesh.MeshSizeFromPoints", "Mesh.MeshSizeFromCurvature"):
            gmsh.option.setNumber(opt, 0)
        gmsh.model.mesh.generate(3)
        if order == 2:
            gmsh.model.mesh.setOrder(2)
        gmsh.write(str(path))


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

INCLUSION_A = 5.0  # sphere radius (mm)
BLOCK = 10.0  # block edge / radius (octant: the full block is 20 radii wide)
MATRIX = {"E": 300.0, "nu": 0.3}  # trabecular bone
INCLUSIONS = {
    "soft": {"E": 15.0, "nu": 0.45},  # lytic tumour, E_i/E_m = 0.05
    "stiff": {"E": 3000.0, "nu": 0.4},  # PMMA cement, E_i/E_m = 10
}
REMOTE_STRESS = 1.0  # MPa, uniaxial along z


def eshelby_interior_strain(eps_inf: np.ndarray, E_m: float, nu_m: float, E_i: float, nu_i: float) -> np.ndarray:
    """Uniform strain (3x3) inside a spherical inclusion under remote strain ``eps_inf`` (Eshelby 1957).

    e_v = e_v_inf / [1 + alpha (K_i/K_m - 1)], alpha = (1 + nu_m) / (3 (1 - nu_m));
    e_dev = e_dev_inf / [1 + beta (mu_i/mu_m - 1)], beta = 2 (4 - 5 nu_m) / (15 (1 - nu_m)).
    """
    K = lambda E, nu: E / (3 * (1 - 2 * nu))  # noqa: E731
    mu = lambda E, nu: E / (2 * (1 + nu))  # noqa: E731
    alpha = (1 + nu_m) / (3 * (1 - nu_m))
    beta = 2 * (4 - 5 * nu_m) / (15 * (1 - nu_m))
    eps_inf = np.asarray(eps_inf, float)
    ev = np.trace(eps_inf) / (1 + alpha * (K(E_i, nu_i) / K(E_m, nu_m) - 1))
    dev = (eps_inf - np.trace(eps_inf) / 3 * np.eye(3)) / (1 + beta * (mu(E_i, nu_i) / mu(E_m, nu_m) - 1))
    return dev + ev / 3 * np.eye(3)


def inclusion_mesh(h_inclusion: float, path1: str | Path | None, path2: str | Path | None,
                   a: float = INCLUSION_A, block: float = BLOCK) -> None:
    """gmsh octant [0, block a]^3 with an embedded sphere octant; sizes h at the sphere, ~block a/4 far.

    Physical volumes ``inclusion`` and ``matrix`` (conforming interface); ``path1`` gets the
    tet4 mesh, ``path2`` the tet10 mesh with nodes on the curved interface.
    """
    B = block * a
    with _Gmsh() as gmsh:
        occ = gmsh.model.occ
        ball = occ.intersect([(3, occ.addSphere(0, 0, 0, a))], [(3, occ.addBox(0, 0, 0, a, a, a))])[0]
        occ.fragment([(3, occ.addBox(0, 0, 0, B, B, B))], ball)
        occ.synchronize()
        inc, mat = [], []
        for _, tag in gmsh.model.getEntities(3):
            (inc if np.linalg.norm(occ.getCenterOfMass(3, tag)) < a else mat).append(tag)
        gmsh.model.addPhysicalGroup(3, inc, name="inclusion")
        gmsh.model.addPhysicalGroup(3, mat, name="matrix")
        sphere_faces = []
        for _, tag in gmsh.model.getBoundary([(3, t) for t in inc], oriented=False):
            lo_hi = np.array(gmsh.model.getBoundingBox(2, abs(tag)))
            if np.all(lo_hi[3:] - lo_hi[:3] > 1e-6 * a):  # not a symmetry plane
                sphere_faces.append(abs(tag))
        fld = gmsh.model.mesh.field
        dist = fld.add("Distance")
        fld.setNumbers(dist, "SurfacesList", sphere_faces)
        thr = fld.add("Threshold")
        fld.setNumber(thr, "InField", dist)
        fld.setNumber(thr, "SizeMin", h_inclusion)
        fld.setNumber(thr, "SizeMax", B / 4)
        fld.setNumber(thr, "DistMin", 0.0)
        fld.setNumber(thr, "DistMax", 0.6 * B)
        fld.setAsBackgroundMesh(thr)
        for opt in ("Mesh.MeshSizeExtendFromBoundary", "Mesh.MeshSizeFromPoints", "Mesh.MeshSizeFromCurvature"):
            gmsh.option.setNumber(opt, 0)
        gmsh.model.mesh.generate(3)
        if path1 is not None:
            gmsh.write(str(path1))
        if path2 is not None:
            gmsh.model.mesh.setOrder(2)
            gmsh.write(str(path2))


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


def eshelby_exact(inclusion: dict) -> np.ndarray:
    Em, num = MATRIX["E"], MATRIX["nu"]
    eps_inf = REMOTE_STRESS / Em * np.diag([-num, -num, 1.0])
    return eshelby_interior_strain(eps_inf, Em, num, inclusion["E"], inclusion["nu"])


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


# ---------------------------------------------------------------------------------------------
# consistency: stiffness symmetry, rigid-body modes, equilibrium and agreement of the solvers

TI_BONE = TransverseIsotropic(name="trabecular", E_axial=400.0, E_transverse=140.0, nu_axial=0.3,
                              nu_transverse=0.3, G_axial=100.0, axis=(1.0, 2.0, 3.0))


def stiffness_properties(order: int, material: Material) -> tuple[float, float, int]:
    """(max|K - K^T| / max|K|, max|K R| / (max|K| max|R|), DOFs) on a distorted box, no constraints."""
    mesh = distorted_box(3, order=order, seed=3)
    asm = Assembler(mesh)
    if isinstance(material, Isotropic):
        C = material.stiffness()
        lam, mu = np.full(mesh.n_elements, C[0, 1]), np.full(mesh.n_elements, C[3, 3])
        K = asm.matrix(lam, mu)
    else:
        K = asm.matrix(C=np.broadcast_to(material.stiffness(), (mesh.n_elements, 6, 6)))
    kmax = abs(K).max()
    sym = abs(K - K.T).max() / kmax
    R = DofLayout(mesh.n_nodes).rigid_modes(mesh.points, scale=float(np.ptp(mesh.points, axis=0).max()))
    null = np.abs(K @ R).max() / (kmax * np.abs(R).max())
    return float(sym), float(null), K.shape[0]


def stiffness_rows(quick: bool = False) -> list[dict]:
    rows = []
    for order in (1, 2):
        for mat in (Isotropic(name="iso", E=1000.0, nu=0.3), TI_BONE):
            sym, null, n = stiffness_properties(order, mat)
            law = "isotropic" if isinstance(mat, Isotropic) else "transv. isotropic"
            el = ELEMENT_NAMES[order]
            rows.append(make_row(f"stiffness, {law}", el, n, "max|K-K^T|/max|K|", sym, 0.0, 1e-12, error=sym))
            rows.append(make_row(f"stiffness, {law}", el, n, "rigid modes: |KR|/|K||R|", null, 0.0, 1e-12, error=null))
    return rows


def solver_problem(solver: str) -> Result:
    """A small tet10 block fixed at z = 0 under traction, pressure and an oblique force; ``solver``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "block.msh"
        write_mesh(box_mesh((10.0, 10.0, 20.0), (4, 4, 8)), path)
        case = {
            "name": f"equilibrium-{solver}",
            "mesh": {"file": path.name, "order": 2},
            "materials": {"bone": {"type": "transverse_isotropic", "E_axial": 400.0, "E_transverse": 140.0,
                                   "nu_axial": 0.3, "nu_transverse": 0.3, "G_axial": 100.0, "axis": [0.2, 0.1, 1.0]}},
            "constraints": [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]}],
            "loadcases": {
                "mixed": [
                    {"where": {"set": "zmax"}, "traction": [0.1, -0.2, -1.0]},
                    {"where": {"set": "xmax"}, "pressure": 0.3},
                    {"where": {"set": "ymin"}, "force": [5.0, 20.0, -7.0]},
                ],
            },
            "solver": {"name": solver, "rtol": 1e-13} if solver in ("amg", "pardiso") else solver,
        }
        model = build_model(case, base=tmp, source=f"verify:{solver}")
    return solve(model)


#: tolerances of the solver checks (relative)
EQUILIBRIUM_TOL = 1e-8
AGREEMENT_TOL = 1e-8


def available_solvers() -> list[str]:
    from fembone.core.solvers import SOLVERS

    return [name for name, cls in SOLVERS.items() if cls.available()]


def solver_rows(quick: bool = False) -> list[dict]:
    rows = []
    ref = None
    for name in available_solvers():
        res = solver_problem(name)
        lc = res.loadcases["mixed"]
        n = res.model.n_dofs
        rows.append(make_row(f"equilibrium, {name}", "tet10", n, "|reactions + loads| (rel.)", lc.equilibrium_error, 0.0,
                             EQUILIBRIUM_TOL, error=lc.equilibrium_error))
        if ref is None:
            ref_name, ref = name, lc.u
            continue
        diff = float(np.abs(lc.u - ref).max() / np.abs(ref).max())
        rows.append(make_row(f"agreement, {name}", "tet10", n, f"max|u - u_{ref_name}|/max|u|", diff, 0.0,
                             AGREEMENT_TOL, error=diff))
    return rows


# ---------------------------------------------------------------------------------------------

PROBLEMS = {
    "patch": patch_rows,
    "cantilever": cantilever_rows,
    "lame": lame_rows,
    "eshelby": eshelby_rows,
    "stiffness": stiffness_rows,
    "solvers": solver_rows,
}


def run_all(quick: bool = False, problems=None, progress=None) -> list[dict]:
    """Run the verification problems (all, or those named in ``problems``) and return their rows.

    ``quick`` uses coarser meshes and skips the clamped-cantilever convergence study.
    ``progress(name, seconds)`` is called after each problem.
    """
    rows = []
    for name in problems or PROBLEMS:
        t = time.perf_counter()
        rows.extend(PROBLEMS[name](quick=quick))
        if progress is not None:
            progress(name, time.perf_counter() - t)
    return rows
