"""Verification of the screw-bone coupling over the screw's surface (fembone.spine.screw_coupling).

The box of test_embedded_screws.py: 10 x 10 x 40 mm (x, y in [-5, 5], z in [0, 40]) of an
isotropic "bone" (E_b = 100 MPa, nu = 0.3), a bar along z at (x, y) = (0.31, 0.17).

* Iso-strain (top face moved by -delta, lateral faces free): the ring coupling follows a
  uniform strain field exactly (the mean of a linear field over a circle is its value at
  the centre, and the ring's rotation is zero), and the bone inside the bar's core is removed
  down to a residual r = 1e-3 of its stiffness, the removed volume integrated exactly
  (pi R^2 L).  The uniform field is kinematically admissible, so the stiffness is bounded by
  its energy, k <= k_V = (E_b (A - a (1 - r)) + E_s a) / L (Voigt with the core removed); the
  partly softened elements make the material piecewise constant, so the discrete optimum
  may lie a little below k_V (3.5e-5 on tet10; on these tet4 meshes it is k_V to round-off).
  The overlapping rule (bone kept in the core) is 9.7e-4 higher: the test tells them apart.
* Convergence (the point of the surface coupling): under a pressure on the top face the
  load enters the bar through the bone (shear lag).  A beam embedded along a line takes
  load through a line: in 3D a line load has unbounded energy, so its stiffness and load
  share keep falling with refinement (0.93 -> 0.87 on the suite's own box).  The ring
  coupling spreads the load over the bar's surface, so both converge.  Checked on tet10
  meshes of 2, 4 and 8 elements across (h = 5, 2.5, 1.25 mm) with a 4 mm bar between z = 5
  and 35 mm (so h/R goes below 1): the change in the bar's mid-length share and in the
  stiffness must shrink and be small at the last step; the line embedding's must not.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fembone.cases import build_model
from fembone.core.analysis import solve
from fembone.core.constraints import check_constrained
from fembone.core.meshgen import box_mesh, write_mesh
from fembone.spine.screw_coupling import (
    CORE_RESIDUAL,
    distributing_coefficients,
    ring_points,
)
from fembone.spine.screws import screw_results

W, L = 10.0, 40.0
A_BLOCK = W * W
E_B, NU_B = 100.0, 0.3
XY = (0.31, 0.17)
TOL = 1e-3
ROLLERS = [
    {"where": {"set": "zmin"}, "fix": ["z"]},
    {"where": {"box": {"min": [-W / 2 - TOL, -W / 2 - TOL, -TOL], "max": [-W / 2 + TOL, -W / 2 + TOL, TOL]}}, "fix": ["x", "y"]},
    {"where": {"box": {"min": [W / 2 - TOL, -W / 2 - TOL, -TOL], "max": [W / 2 + TOL, -W / 2 + TOL, TOL]}}, "fix": ["y"]},
]


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    d = tmp_path_factory.mktemp("surface-boxes")
    made: dict = {}

    def get(div: int, order: int) -> str:
        if (div, order) not in made:
            p = d / f"box_{div}_{order}.msh"
            write_mesh(box_mesh((W, W, L), (div, div, 4 * div), origin=(-W / 2, -W / 2, 0.0), order=order), p)
            made[(div, order)] = str(p)
        return made[(div, order)]

    return get


def bar(d=2.0, E=1.0e5, z0=0.0, z1=L, coupling="surface", **kw) -> dict:
    spec = {"name": "bar", "entry": [XY[0], XY[1], z0], "target": [XY[0], XY[1], z1], "diameter": d, "core_diameter": d,
            "material": {"E": E, "nu": 0.3, "yield": 1000.0}, "coupling": coupling}
    spec.update(kw)
    return spec


def case(mesh_file, screws, constraints=ROLLERS, loads=None) -> dict:
    return {"name": "block", "mesh": mesh_file, "materials": {"bone": {"E": E_B, "nu": NU_B}}, "constraints": constraints,
            "loadcases": loads or {"push": [{"where": {"set": "zmax"}, "pressure": 1.0}]}, "screws": screws}


def build(c):
    return build_model(c, base=".", source="test_screw_surface_coupling")


def mid_force(model, lc) -> float:
    s = model.meta["_screws"][0]
    N = screw_results(model, s, lc.u)["_axial_force"]
    pts = model.layout.extra_points[s.nodes]
    mid = 0.5 * (pts[:-1] + pts[1:])
    return float(N[int(np.argmin(np.abs(mid[:, 2] - L / 2)))])


# ------------------------------------------------------------------ the coupling itself
def test_ring_average_of_a_linear_field_is_its_centre_value():
    """RBE3 over a ring: u_ref = u(centre), theta = the field's rotation (curl u)/2, for any linear field."""
    rng = np.random.default_rng(3)
    axis = np.array([0.3, -0.2, 0.93])
    c = np.array([[1.0, 2.0, 3.0]])
    P = ring_points(c, axis, 1.7, 11)
    G, u0 = rng.normal(size=(3, 3)), rng.normal(size=3)
    u = u0 + (P[0] - c[0]) @ G.T + c[0] @ G.T
    Tu, Th = distributing_coefficients(P, np.ones((1, 11)), c)
    ref = np.einsum("mac,mc->a", Tu[0], u)
    theta = np.einsum("mac,mc->a", Th[0], u)
    W_ = 0.5 * (G - G.T)  # rotation part: W r = omega x r
    omega = np.array([W_[2, 1], W_[0, 2], W_[1, 0]])
    assert np.allclose(ref, u0 + c[0] @ G.T, atol=1e-12), ref
    # a ring sees the in-plane rotation exactly; out-of-plane it sees the section's mean rotation,
    # which for a linear field is the rotation omega plus a symmetric-gradient part along the axis
    a = axis / np.linalg.norm(axis)
    assert theta @ a == pytest.approx(omega @ a, abs=1e-12)
    rigid = u0 + np.cross(omega, P[0])  # a rigid motion: exactly its translation and rotation
    assert np.allclose(np.einsum("mac,mc->a", Th[0], rigid), omega, atol=1e-12)
    assert np.allclose(np.einsum("mac,mc->a", Tu[0], rigid), u0 + np.cross(omega, c[0]), atol=1e-12)


@pytest.mark.parametrize("div,order", [(2, 1), (4, 1), (2, 2)])
def test_iso_strain_removed_volume_rule(meshes, div, order):
    """Top face moved down by delta: k = (E_b (A - a (1 - r)) + E_s a) / L, the bar carries E_s a eps."""
    d, Es, delta = 2.0, 1.0e5, 0.04
    a = np.pi * d * d / 4
    cons = ROLLERS + [{"where": {"set": "zmax"}, "value": [None, None, -delta]}]
    model = build(case(meshes(div, order), [bar(d=d, E=Es)], cons, {"push": [{"where": {"set": "zmax"}, "force": [0, 0, 0]}]}))
    lc = solve(model).loadcases["push"]
    k = 2.0 * lc.strain_energy / delta**2
    k_exact = (E_B * (A_BLOCK - a * (1 - CORE_RESIDUAL)) + Es * a) / L
    k_overlap = (E_B * A_BLOCK + Es * a) / L
    err = k / k_exact - 1
    print(f"{div}x{div}x{4 * div} order {order}: k = {k:.10g} N/mm, removed-core rule {k_exact:.10g} (rel err {err:.2e}); "
          f"overlapping rule {k_overlap:.10g}; core volume {model.meta['screw_coupling']['bar']['core_volume_removed']:.6f} "
          f"vs pi R^2 L = {a * L:.6f}")
    assert -1e-4 < err < 1e-9, f"rel err {err:.2e} (must not exceed the Voigt bound, nor fall far below it)"
    assert abs(k / k_overlap - 1) > 5e-4, "cannot tell the removed-core rule from the overlapping one"
    assert model.meta["screw_coupling"]["bar"]["core_volume_removed"] == pytest.approx(a * L, rel=1e-9)
    N = screw_results(model, model.meta["_screws"][0], lc.u)["_axial_force"]
    assert np.abs(N / (-Es * a * delta / L) - 1).max() < (1e-8 if order == 1 else 1e-3), N


# -------------------------------------------------------------------------- convergence
def _pressure_run(mesh_file, coupling, d):
    model = build(case(mesh_file, [bar(d=d, z0=5.0, z1=35.0, coupling=coupling)]))
    lc = solve(model).loadcases["push"]
    assert lc.equilibrium_error < 1e-8
    top = np.unique(model.mesh.facet_sets["zmax"])
    k = A_BLOCK / abs(lc.fields.displacement[top, 2].mean())
    return k, -mid_force(model, lc) / A_BLOCK


@pytest.mark.slow
def test_surface_coupling_converges_where_the_line_does_not(meshes):
    d = 4.0
    rows = {c: [(div, *_pressure_run(meshes(div, 2), c, d)) for div in (2, 4, 8)] for c in ("surface", "line")}
    print(f"bar d = {d} mm (E_s/E_b = 1000) from z = 5 to 35 mm, pressure 1 MPa on top; tet10")
    print("coupling  mesh      h (mm)   k (N/mm)  change   bar share at mid-length  change")
    change = {}
    for c, rr in rows.items():
        change[c] = []
        for i, (div, k, s) in enumerate(rr):
            dk = ds = float("nan")
            if i:
                dk, ds = k / rr[i - 1][1] - 1, s / rr[i - 1][2] - 1
                change[c].append((dk, ds))
            print(f"{c:8s}  {div}x{div}x{4 * div:<4d} {W / div:6.3f}  {k:9.2f}  {dk:+7.2%}  {s:.4f}  {ds:+7.2%}")
    (sk1, _), (sk2, ss2) = change["surface"]
    (_, ls1), (_, ls2) = change["line"]
    # surface: the last refinement changes the share by < 1 % and the stiffness by < 4 %, and the
    # stiffness change at least halves from one refinement to the next (first-order convergence)
    assert abs(ss2) < 0.01 and abs(sk2) < 0.04, change["surface"]
    assert abs(sk2) < 0.5 * abs(sk1), change["surface"]
    # line: the share still falls by more than 5 % per refinement (a line load does not converge)
    assert ls1 < -0.05 and ls2 < -0.05, change["line"]


# ------------------------------------------------------------------------- springs, spin
def test_interface_springs_on_the_ring(meshes):
    """Very stiff springs between the beam and its ring's mean motion reproduce the tied coupling;
    softer springs carry less."""
    f = meshes(4, 1)

    def run(k=None):
        spec = bar(d=2.0, z0=5.0, z1=35.0)
        if k is not None:
            spec["interface_stiffness"] = k
        model = build(case(f, [spec]))
        lc = solve(model).loadcases["push"]
        assert lc.equilibrium_error < 1e-8
        return abs(mid_force(model, lc))

    tied = run()
    forces = {k: run(k) for k in (1e9, 1e3, 10.0, 0.1)}
    print(f"tied: N = {tied:.7g} N; " + ", ".join(f"k = {k:g} N/mm/mm: N = {v:.7g}" for k, v in forces.items()))
    assert forces[1e9] == pytest.approx(tied, rel=1e-5)
    seq = [forces[k] for k in (1e9, 1e3, 10.0, 0.1)]
    assert all(a > b for a, b in itertools.pairwise(seq)), seq
    assert forces[0.1] < 0.2 * tied


def test_torque_at_protruding_head_reaches_the_support(meshes):
    """A protruding screw, surface-coupled, twisted at its head: not under-constrained
    (the ring gives the spin), the torque reaches the clamped base, and the free length twists
    by M l / (G J)."""
    M, d, Es, nu = 1000.0, 2.0, 1.0e5, 0.3
    clamped = [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]}]
    spec = bar(d=d, E=Es, z0=50.0, z1=15.0, protruding=True)
    model = build(case(meshes(4, 2), [spec], clamped, {"torque": [{"where": {"set": "zmax"}, "pressure": 0.0}]}))
    s = model.meta["_screws"][0]
    red = model.constraints.build()
    check_constrained(model.layout, model.mesh.points, model.mesh.cells, model.constraints, red, model.meta["_extra_edges"])
    dofs = model.layout.extra_dofs(s.nodes)
    f = np.zeros(model.n_dofs)
    f[dofs[0, 5]] = M
    model.loads["torque"] = f
    lc = solve(model).loadcases["torque"]
    twist = lc.u[dofs[:, 5]]
    first_in = int(np.argmax(s.embedded))
    l_free = float(np.linalg.norm(model.layout.extra_points[s.nodes[first_in]] - model.layout.extra_points[s.nodes[0]]))
    GJ = Es / (2 * (1 + nu)) * np.pi * d**4 / 32
    print(f"twist head {twist[0]:.4e}, at the bone {twist[first_in]:.4e} rad; free part {twist[0] - twist[first_in]:.6e} "
          f"vs M l / GJ {M * l_free / GJ:.6e}; reaction moment {lc.reaction_moment}; coupling {model.meta['screw_coupling']}")
    assert twist[0] - twist[first_in] == pytest.approx(M * l_free / GJ, rel=1e-8)
    assert lc.reaction_moment[2] == pytest.approx(-M, rel=1e-8)
    assert lc.equilibrium_error < 1e-8
