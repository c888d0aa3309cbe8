"""The constraint layer u = T q + g: supports, prescribed values, couplings, free rigid-body motions."""

from __future__ import annotations

import numpy as np
import pytest

from fembone.core.analysis import solve
from fembone.cases import build_model
from fembone.core.constraints import ConstraintSet, DofLayout, check_constrained, free_rigid_body_modes
from fembone.core.errors import InputError, ModelError
from fembone.core.mesh import Mesh
from fembone.core.meshgen import box_mesh, write_mesh

ALL6 = ["translation x", "translation y", "translation z", "rotation about x", "rotation about y", "rotation about z"]
H = 2.0  # box height (mm); the box is 1 x 1 x H


@pytest.fixture(scope="module")
def box_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("constraints") / "box.msh"
    write_mesh(box_mesh((1.0, 1.0, H), (2, 2, 4)), path)
    return path


def _model(box_file, constraints, loads, order=1, nu=0.3):
    case = {
        "mesh": {"file": str(box_file), "order": order},
        "materials": {"m": {"E": 1000.0, "nu": nu}},
        "constraints": constraints,
        "loadcases": {"lc": loads},
    }
    return build_model(case, base=box_file.parent, source="test.yaml")


def _modes(mesh: Mesh, cset: ConstraintSet) -> list[str]:
    red = cset.build()
    return free_rigid_body_modes(cset.layout, mesh.points, mesh.cells, cset, red)


def _face_dofs(mesh: Mesh, side: str, comps) -> np.ndarray:
    nodes = np.unique(mesh.facet_sets[side])
    return (3 * nodes[:, None] + np.asarray(comps)).ravel()


# -- fixed DOFs and prescribed values ------------------------------------------------------
def test_fix_builds_a_selection():
    layout = DofLayout(4)
    cs = ConstraintSet(layout)
    cs.fix([0, 1, 2], label="support")
    cs.fix([5, 7], [0.1, -0.2], label="pulled")
    red = cs.build()
    assert red.is_selection
    np.testing.assert_array_equal(np.flatnonzero(red.dependent), [0, 1, 2, 5, 7])
    np.testing.assert_array_equal(red.fixed, red.dependent)
    np.testing.assert_allclose(red.g[[5, 7]], [0.1, -0.2])
    q = np.arange(12, dtype=float)
    u = red.expand(q)
    np.testing.assert_allclose(u[red.dependent], [0, 0, 0, 0.1, -0.2])
    np.testing.assert_allclose(u[~red.dependent], q[~red.dependent])


def test_a_dof_carries_one_condition():
    cs = ConstraintSet(DofLayout(4))
    cs.fix([0, 1, 2], label="constraints[0]")
    cs.fix([2, 3], label="constraints[1]")
    with pytest.raises(InputError, match=r"constraints\[1\]: node 0 DOF uz is already constrained by constraints\[0\]"):
        cs.build()
    cs = ConstraintSet(DofLayout(4))
    cs.fix([99])
    with pytest.raises(InputError, match="out of range"):
        cs.build()


def test_fix_and_value_from_case(box_file):
    model = _model(
        box_file,
        [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]},
         {"where": {"set": "zmax"}, "fix": ["x"], "value": [0.01, None, -0.02]}],
        [{"where": {"set": "zmax"}, "force": [0, 0, 0]}],
    )
    red = model.constraints.build()
    mesh = model.mesh
    top = _face_dofs(mesh, "zmax", [0])
    np.testing.assert_allclose(red.g[top], 0.01)
    np.testing.assert_allclose(red.g[_face_dofs(mesh, "zmax", [2])], -0.02)
    assert not red.dependent[_face_dofs(mesh, "zmax", [1])].any()
    assert red.fixed[_face_dofs(mesh, "zmin", [0, 1, 2])].all()


@pytest.mark.parametrize("order", [1, 2])
def test_prescribed_stretch_gives_the_exact_linear_field(box_file, order):
    """Symmetry supports + u_z = d on top: u = d/H (-nu x, -nu y, z) exactly (a patch test)."""
    d, nu = 0.01, 0.3
    model = _model(
        box_file,
        [{"where": {"set": "xmin"}, "fix": ["x"]}, {"where": {"set": "ymin"}, "fix": ["y"]},
         {"where": {"set": "zmin"}, "fix": ["z"]}, {"where": {"set": "zmax"}, "value": [None, None, d]}],
        [{"where": {"set": "zmax"}, "force": [0, 0, 0]}],
        order=order, nu=nu,
    )
    res = solve(model).loadcases["lc"]
    x = model.mesh.points
    exact = d / H * np.column_stack([-nu * x[:, 0], -nu * x[:, 1], x[:, 2]])
    np.testing.assert_allclose(res.displacement, exact, atol=1e-12)
    # strain energy of the uniform stretch: E eps^2 / 2 * volume
    assert res.strain_energy == pytest.approx(0.5 * 1000.0 * (d / H) ** 2 * H, rel=1e-10)
    assert res.equilibrium_error < 1e-8


# -- couplings -----------------------------------------------------------------------------
FORCE = np.array([3.0, -2.0, -40.0])
MOMENT = np.array([25.0, 10.0, -6.0])
AT = np.array([0.5, 0.5, H + 0.5])


def _coupled(box_file, kind, order=1, moment=MOMENT, force=FORCE):
    model = _model(
        box_file,
        [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]},
         {"coupling": kind, "where": {"set": "zmax"}, "point": "top", "at": AT.tolist()}],
        [{"point": "top", "force": list(force), "moment": list(moment)}],
        order=order,
    )
    return model, solve(model).loadcases["lc"]


def _rigid_fit_residual(x, u) -> float:
    """Relative misfit of displacements u (n, 3) at points x to the best small rigid motion."""
    c = x.mean(axis=0)
    r = x - c
    A = np.zeros((3 * len(x), 6))
    for k in range(3):
        A[k::3, k] = 1.0
        e = np.zeros(3)
        e[k] = 1.0
        A[:, 3 + k] = np.cross(e, r).ravel()
    sol, *_ = np.linalg.lstsq(A, u.ravel(), rcond=None)
    return float(np.linalg.norm(A @ sol - u.ravel()) / np.linalg.norm(u))


@pytest.mark.parametrize("kind", ["rigid", "distributing"])
@pytest.mark.parametrize("order", [1, 2])
def test_coupling_transmits_force_and_moment(box_file, kind, order):
    model, res = _coupled(box_file, kind, order)
    np.testing.assert_allclose(res.applied_force, FORCE, rtol=1e-14)
    np.testing.assert_allclose(res.applied_moment, MOMENT + np.cross(AT, FORCE), rtol=1e-13)
    fscale = np.linalg.norm(FORCE)
    mscale = np.linalg.norm(res.applied_moment) + fscale * H
    assert np.linalg.norm(res.reaction_force + res.applied_force) <= 1e-8 * fscale
    assert np.linalg.norm(res.reaction_moment + res.applied_moment) <= 1e-8 * mscale
    assert res.equilibrium_error < 1e-8
    assert model.points["top"].kind == kind


@pytest.mark.parametrize("order", [1, 2])
def test_rigid_coupling_moves_the_surface_rigidly(box_file, order):
    model, res = _coupled(box_file, "rigid", order)
    nodes = model.points["top"].nodes
    ref = np.array(res.points["top"])
    expected = ref[:3] + np.cross(ref[3:], model.mesh.points[nodes] - AT)
    np.testing.assert_allclose(res.displacement[nodes], expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("order", [1, 2])
def test_distributing_coupling_lets_the_surface_deform(box_file, order):
    """Under a moment about x the top of a rigidly coupled box stays plane; distributed, it warps."""
    m_only = np.array([30.0, 0.0, 0.0])
    residual = {}
    for kind in ("rigid", "distributing"):
        model, res = _coupled(box_file, kind, order, moment=m_only, force=np.zeros(3))
        nodes = model.points["top"].nodes
        x, u = model.mesh.points[nodes], res.displacement[nodes]
        assert np.ptp(u[:, 2]) > 0.1 * np.abs(u[:, 2]).max()  # uz varies over the top face
        residual[kind] = _rigid_fit_residual(x, u)
        assert res.equilibrium_error < 1e-8
    assert residual["rigid"] < 1e-9
    assert residual["distributing"] > 1e-3


def test_distributing_reference_follows_the_weighted_mean(box_file):
    """Without 'at', the reference sits at the area centroid and moves with the weighted mean."""
    from fembone.core.loads import traction_load

    model = _model(
        box_file,
        [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]},
         {"coupling": "distributing", "where": {"set": "zmax"}, "point": "top"}],
        [{"point": "top", "force": [1.0, 2.0, -3.0]}],
    )
    rp = model.points["top"]
    np.testing.assert_allclose(rp.position, [0.5, 0.5, H])
    res = solve(model).loadcases["lc"]
    mesh = model.mesh
    w = traction_load(mesh.points, mesh.facet_sets["zmax"], np.array([1.0, 0, 0]), mesh.n_nodes)[:, 0]
    ubar = w @ res.displacement / w.sum()
    np.testing.assert_allclose(res.points["top"][:3], ubar, rtol=1e-10)


def test_rigid_coupling_ties_each_node():
    mesh = box_mesh((1.0, 1.0, 1.0), (1, 1, 1))
    layout = DofLayout(mesh.n_nodes)
    j = int(layout.add_extra([0.5, 0.5, 2.0])[0])
    cs = ConstraintSet(layout)
    nodes = np.unique(mesh.facet_sets["zmax"])
    cs.rigid_coupling(nodes, j, mesh.points)
    red = cs.build()
    q = np.zeros(layout.n_dofs)
    ref = layout.extra_dofs(j)[0]
    q[ref] = [0.1, 0.2, 0.3, 0.01, -0.02, 0.03]
    u = red.expand(q)
    for n in nodes:
        want = q[ref[:3]] + np.cross(q[ref[3:]], mesh.points[n] - layout.extra_points[j])
        np.testing.assert_allclose(u[3 * n : 3 * n + 3], want, rtol=1e-13)


def test_distributing_coupling_rejects_collinear_nodes():
    mesh = box_mesh((1.0, 1.0, 1.0), (1, 1, 1))
    layout = DofLayout(mesh.n_nodes)
    j = int(layout.add_extra([0.0, 0.0, 0.0])[0])
    line = np.flatnonzero((mesh.points[:, 1] == 0) & (mesh.points[:, 2] == 0))
    with pytest.raises(InputError, match="collinear"):
        ConstraintSet(layout).distributing_coupling(line, np.ones(len(line)), j, mesh.points)


# -- free rigid-body motions ---------------------------------------------------------------
@pytest.fixture(scope="module")
def mesh():
    return box_mesh((1.0, 1.0, H), (2, 2, 4))


def test_free_modes_nothing_fixed(mesh):
    msgs = _modes(mesh, ConstraintSet(DofLayout(mesh.n_nodes)))
    assert msgs == ["the model is free to move: " + ", ".join(ALL6)]


def test_free_modes_face_fixed_in_z_only(mesh):
    cs = ConstraintSet(DofLayout(mesh.n_nodes))
    cs.fix(_face_dofs(mesh, "zmin", [2]))
    assert _modes(mesh, cs) == ["the model is free to move: translation x, translation y, rotation about z"]


def test_free_modes_fully_fixed(mesh):
    cs = ConstraintSet(DofLayout(mesh.n_nodes))
    cs.fix(_face_dofs(mesh, "zmin", [0, 1, 2]))
    assert _modes(mesh, cs) == []
    check_constrained(cs.layout, mesh.points, mesh.cells, cs, cs.build())  # does not raise


def test_free_modes_one_node_pinned(mesh):
    cs = ConstraintSet(DofLayout(mesh.n_nodes))
    cs.fix([0, 1, 2])
    assert _modes(mesh, cs) == ["the model is free to move: rotation about x, rotation about y, rotation about z"]


def test_free_modes_symmetry_supports(mesh):
    cs = ConstraintSet(DofLayout(mesh.n_nodes))
    cs.fix(_face_dofs(mesh, "xmin", [0]), label="a")
    cs.fix(_face_dofs(mesh, "ymin", [1]), label="b")
    cs.fix(_face_dofs(mesh, "zmin", [2]), label="c")
    assert _modes(mesh, cs) == []


def test_free_modes_per_body():
    a = box_mesh((1.0, 1.0, 1.0), (1, 1, 1))
    b = box_mesh((1.0, 1.0, 1.0), (1, 1, 1), origin=(3.0, 0.0, 0.0))
    two = Mesh(np.vstack([a.points, b.points]), np.vstack([a.cells, b.cells + a.n_nodes]))
    cs = ConstraintSet(DofLayout(two.n_nodes))
    cs.fix(_face_dofs(a, "xmin", [0, 1, 2]))
    msgs = _modes(two, cs)
    assert msgs == ["body 2 of 2 (8 nodes) is free to move: " + ", ".join(ALL6)]
    with pytest.raises(ModelError, match="under-constrained: body 2 of 2"):
        check_constrained(cs.layout, two.points, two.cells, cs, cs.build())


def test_free_modes_through_a_coupling(mesh):
    layout = DofLayout(mesh.n_nodes)
    j = int(layout.add_extra([0.5, 0.5, H + 1.0])[0])
    cs = ConstraintSet(layout)
    cs.rigid_coupling(np.unique(mesh.facet_sets["zmax"]), j, mesh.points)
    assert _modes(mesh, cs) == ["the model is free to move: " + ", ".join(ALL6)]
    cs.fix(layout.extra_dofs(j)[0])  # clamping the reference point holds the whole body
    assert _modes(mesh, cs) == []
    cs2 = ConstraintSet(layout)
    cs2.rigid_coupling(np.unique(mesh.facet_sets["zmax"]), j, mesh.points)
    cs2.fix(layout.extra_dofs(j)[0][[2, 3, 4]])  # uz, rx, ry of the reference
    assert _modes(mesh, cs2) == ["the model is free to move: translation x, translation y, rotation about z"]


def test_solve_refuses_an_under_constrained_model(box_file):
    model = _model(box_file, [{"where": {"set": "zmin"}, "fix": ["z"]}], [{"where": {"set": "zmax"}, "force": [0, 0, -1]}])
    with pytest.raises(ModelError, match="translation x, translation y, rotation about z"):
        solve(model)


def test_per_loadcase_prescribed_platen_displacement(box_file):
    """Displacement control per load case: a column (E 1000 MPa, nu 0, 1 x 1 x 2 mm) squeezed by a
    rigid platen whose uz is prescribed per load case (base on rollers): uniform strain d / L and
    strain energy E A d^2 / (2 L) exactly; another load case keeps the platen's base value 0."""
    cons = [
        {"where": {"plane": {"z": 0.0}}, "fix": ["z"]},
        {"where": {"box": {"min": [0, 0, 0], "max": [0, 0, 0]}}, "fix": ["x", "y"]},
        {"where": {"box": {"min": [1, 0, 0], "max": [1, 0, 0]}}, "fix": ["y"]},
        {"coupling": "rigid", "where": {"plane": {"z": H}}, "point": "platen", "at": [0.5, 0.5, H]},
        {"point": "platen", "fix": ["x", "y", "z", "rx", "ry", "rz"]},
    ]
    model = _model(box_file, cons, [{"point": "platen", "force": [0, 0, 0]}], nu=0.0)
    model.loads["squeeze"] = np.zeros(model.n_dofs)
    dofs = model.layout.extra_dofs(model.points["platen"].index)[0]
    model.prescribed["squeeze"] = (dofs[2:3], np.array([-0.02]))
    res = solve(model)
    assert np.allclose(res.loadcases["lc"].u, 0.0, atol=1e-12)  # the other load case keeps value 0
    lc = res.loadcases["squeeze"]
    top = np.flatnonzero(np.isclose(model.mesh.points[:, 2], H))
    uz_top = lc.u[3 * top + 2]
    expected = 1000.0 * 1.0 * 0.02 / H  # E A |d| / L (N)
    assert np.allclose(uz_top, -0.02, atol=1e-12), f"top uz {uz_top.min()}..{uz_top.max()}, expected -0.02"
    mid = np.flatnonzero(np.isclose(model.mesh.points[:, 2], H / 2))
    assert np.allclose(lc.u[3 * mid + 2], -0.01, atol=1e-10)
    energy = 0.5 * expected * 0.02  # strain energy (N mm) = F d / 2
    assert abs(lc.strain_energy - energy) < 1e-9 * energy, f"strain energy {lc.strain_energy} N mm, expected {energy}"
