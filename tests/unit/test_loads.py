"""Consistent nodal loads: tractions, pressures and total forces on tri3/tri6 faces. Units: N, MPa, mm."""

from __future__ import annotations

import numpy as np
import pytest

from fembone.core.loads import face_areas, pressure_load, resultant, total_force_load, traction_load
from fembone.core.mesh import Mesh, promote_to_tet10
from fembone.core.meshgen import box_mesh

L = (3.0, 2.0, 1.5)


def _box(order: int) -> Mesh:
    return box_mesh(L, (3, 2, 2), order=order)


def _curved(order: int, seed: int = 0) -> Mesh:
    """A box with wavy sides; tet10 also gets curved (perturbed) mid-edge nodes."""
    mesh = box_mesh(L, (3, 2, 2))
    p = mesh.points + 0.08 * np.sin(2.0 * mesh.points[:, [1, 2, 0]])
    mesh = Mesh(p, mesh.cells, facet_sets=mesh.facet_sets)
    if order == 2:
        mesh = promote_to_tet10(mesh)
        mid = np.arange(len(p), mesh.n_nodes)
        mesh.points[mid] += 0.03 * np.random.default_rng(seed).uniform(-1, 1, (len(mid), 3))
    return mesh


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("side, area", [("xmax", L[1] * L[2]), ("zmin", L[0] * L[1]), ("ymax", L[0] * L[2])])
def test_traction_total_is_t_times_area(order, side, area):
    mesh = _box(order)
    faces = mesh.facet_sets[side]
    t = np.array([0.3, -1.2, 2.5])
    assert face_areas(mesh.points, faces).sum() == pytest.approx(area, rel=1e-13)
    F = traction_load(mesh.points, faces, t, mesh.n_nodes)
    assert F.shape == (mesh.n_nodes, 3)
    np.testing.assert_allclose(F.sum(axis=0), t * area, rtol=1e-13)
    loaded = np.unique(faces)
    assert np.all(F[np.setdiff1d(np.arange(mesh.n_nodes), loaded)] == 0)


@pytest.mark.parametrize("order", [1, 2])
def test_traction_total_on_curved_faces(order):
    mesh = _curved(order)
    faces, _ = mesh.boundary_faces()
    t = np.array([1.0, 2.0, -0.5])
    area = face_areas(mesh.points, faces).sum()
    np.testing.assert_allclose(traction_load(mesh.points, faces, t, mesh.n_nodes).sum(axis=0), t * area, rtol=1e-12)


def test_tri3_and_tri6_nodal_shares():
    """Flat faces: tri3 corners get A/3 each; tri6 corners get 0 and mid-edge nodes A/3."""
    pts = np.array([[0, 0, 0], [2, 0, 0], [0, 1, 0], [1, 0, 0], [1, 0.5, 0], [0, 0.5, 0]], float)
    t = np.array([0.0, 0.0, 3.0])  # A = 1 mm^2 -> 3 N
    F3 = traction_load(pts, np.array([[0, 1, 2]]), t, 6)
    np.testing.assert_allclose(F3[:3, 2], 1.0)
    F6 = traction_load(pts, np.array([[0, 1, 2, 3, 4, 5]]), t, 6)
    np.testing.assert_allclose(F6[:3, 2], 0.0, atol=1e-14)
    np.testing.assert_allclose(F6[3:, 2], 1.0)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("shape", ["box", "curved"])
def test_pressure_on_closed_surface_sums_to_zero(order, shape):
    mesh = _box(order) if shape == "box" else _curved(order)
    faces, _ = mesh.boundary_faces()
    F = pressure_load(mesh.points, faces, 2.0, mesh.n_nodes)
    scale = 2.0 * face_areas(mesh.points, faces).sum()
    np.testing.assert_allclose(F.sum(axis=0), 0.0, atol=1e-12 * scale)
    _, M = resultant(mesh.points, F, center=mesh.points.mean(axis=0))
    np.testing.assert_allclose(M, 0.0, atol=1e-12 * scale * max(L))


@pytest.mark.parametrize("order", [1, 2])
def test_pressure_pushes_inward(order):
    mesh = _box(order)
    p = 1.5
    F = pressure_load(mesh.points, mesh.facet_sets["xmax"], p, mesh.n_nodes)
    np.testing.assert_allclose(F.sum(axis=0), [-p * L[1] * L[2], 0, 0], atol=1e-12)
    F = pressure_load(mesh.points, mesh.facet_sets["zmin"], -p, mesh.n_nodes)  # suction pulls outward (-z)
    np.testing.assert_allclose(F.sum(axis=0), [0, 0, -p * L[0] * L[1]], atol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("shape", ["box", "curved"])
def test_total_force_spreads_exactly_the_force(order, shape):
    mesh = _box(order) if shape == "box" else _curved(order)
    faces = mesh.facet_sets["xmax"]
    force = [10.0, -3.0, 250.0]
    F = total_force_load(mesh.points, faces, force, mesh.n_nodes)
    np.testing.assert_allclose(F.sum(axis=0), force, rtol=1e-13)
    # a uniform traction: every node's share is proportional to its area weight
    w = traction_load(mesh.points, faces, np.array([1.0, 0.0, 0.0]), mesh.n_nodes)[:, 0]
    np.testing.assert_allclose(F, np.outer(w, force) / w.sum(), atol=1e-13 * max(np.abs(force)))


def test_uniform_traction_on_symmetric_face_has_no_moment_about_its_centre():
    mesh = _box(2)
    faces = mesh.facet_sets["zmax"]
    F = total_force_load(mesh.points, faces, [0, 0, -100.0], mesh.n_nodes)
    _, M = resultant(mesh.points, F, center=[L[0] / 2, L[1] / 2, L[2]])
    np.testing.assert_allclose(M, 0.0, atol=1e-11)


def test_resultant():
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0]], float)
    F = np.array([[0, 0, 1.0], [0, 0, 2.0], [0, 0, -1.0]])
    f, m = resultant(pts, F)
    np.testing.assert_allclose(f, [0, 0, 2.0])
    np.testing.assert_allclose(m, [-2.0, -2.0, 0.0])
    f, m = resultant(pts, F, center=[1, 0, 0])
    np.testing.assert_allclose(m, [-2.0, 0.0, 0.0])
