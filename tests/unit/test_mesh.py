"""Meshes: read/write round trips with named sets, checks, tet4 -> tet10 promotion, boundary faces."""

from __future__ import annotations

import warnings

import meshio
import numpy as np
import pytest

from fembone.core.assembly import element_geometry
from fembone.core.elements import TET10_EDGES, TRI6_EDGES
from fembone.core.errors import InputError
from fembone.core.loads import face_quadrature
from fembone.core.mesh import Mesh, check_mesh, from_meshio, promote_to_tet10, read_mesh, tet_quality, tet_volumes
from fembone.core.meshgen import box_mesh, write_mesh

SIDES = ("xmin", "xmax", "ymin", "ymax", "zmin", "zmax")


def _box(order=1) -> Mesh:
    mesh = box_mesh((3.0, 2.0, 1.0), (3, 2, 2), order=order)
    mesh.cell_sets["left"] = np.flatnonzero(mesh.centroids()[:, 0] < 1.0)
    return mesh


def _distorted(seed=0, order=1, curve=0.0) -> Mesh:
    """A box with interior nodes moved at random (valid elements); ``curve`` bends tet10 edges."""
    mesh = box_mesh((3.0, 2.0, 1.0), (3, 2, 2))
    rng = np.random.default_rng(seed)
    p = mesh.points.copy()
    inner = np.all((p > 1e-9) & (p < np.array([3.0, 2.0, 1.0]) - 1e-9), axis=1)
    p[inner] += rng.uniform(-0.12, 0.12, size=(inner.sum(), 3))
    p += 0.05 * np.sin(p[:, [1, 2, 0]])  # bends the outer faces too
    mesh = Mesh(p, mesh.cells, facet_sets=mesh.facet_sets)
    if order == 2:
        mesh = promote_to_tet10(mesh)
        if curve:
            mid = np.arange(len(p), mesh.n_nodes)
            mesh.points[mid] += curve * rng.uniform(-1, 1, size=(len(mid), 3))
    return mesh


def _faceset(f: np.ndarray) -> set:
    return {tuple(r) for r in np.asarray(f)}


def _unique_edges(cells4: np.ndarray) -> int:
    e = np.sort(cells4[:, TET10_EDGES].reshape(-1, 2), axis=1)
    return len(np.unique(e, axis=0))


# -- read / write ----------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2])
def test_msh_round_trip_keeps_sets(tmp_path, order):
    mesh = _box(order)
    write_mesh(mesh, tmp_path / "m.msh")
    back = read_mesh(tmp_path / "m.msh")
    assert back.order == order
    np.testing.assert_allclose(back.points, mesh.points)
    np.testing.assert_array_equal(back.cells, mesh.cells)
    assert set(back.cell_sets) == {"left"}
    np.testing.assert_array_equal(back.cell_sets["left"], mesh.cell_sets["left"])
    assert set(back.facet_sets) == set(SIDES)
    for name in SIDES:
        assert back.facet_sets[name].shape[1] == (3 if order == 1 else 6)
        assert _faceset(back.facet_sets[name]) == _faceset(mesh.facet_sets[name])
    assert back.source == str(tmp_path / "m.msh")


@pytest.mark.parametrize("order", [1, 2])
def test_vtu_round_trip(tmp_path, order):
    """VTU keeps nodes and elements (meshio cannot write named sets to VTU)."""
    mesh = _box(order)
    write_mesh(mesh, tmp_path / "m.vtu")
    back = read_mesh(tmp_path / "m.vtu")
    np.testing.assert_allclose(back.points, mesh.points)
    np.testing.assert_array_equal(back.cells, mesh.cells)
    assert back.order == order


def test_abaqus_node_set_becomes_facet_set(tmp_path):
    mesh = _box()
    top = np.flatnonzero(np.isclose(mesh.points[:, 2], 1.0))
    m = meshio.Mesh(mesh.points, [("tetra", mesh.cells)], point_sets={"TOP": top})
    meshio.write(tmp_path / "m.inp", m)
    back = read_mesh(tmp_path / "m.inp")
    assert _faceset(back.facet_sets["TOP"]) == _faceset(mesh.facet_sets["zmax"])


def test_unused_nodes_are_dropped_and_sets_renumbered():
    mesh = _box()
    pts = np.vstack([[[9.0, 9.0, 9.0]], mesh.points])  # node 0: a gmsh geometry point, used by no tet
    m = meshio.Mesh(pts, [("tetra", mesh.cells + 1), ("triangle", mesh.facet_sets["zmax"] + 1)],
                    cell_sets={"top": [np.array([], int), np.arange(len(mesh.facet_sets["zmax"]))]})
    back = from_meshio(m)
    assert back.n_nodes == mesh.n_nodes
    np.testing.assert_array_equal(back.cells, mesh.cells)
    assert _faceset(back.facet_sets["top"]) == _faceset(mesh.facet_sets["zmax"])


def test_read_mesh_order_options(tmp_path):
    write_mesh(_box(), tmp_path / "m4.msh")
    assert read_mesh(tmp_path / "m4.msh").order == 1
    assert read_mesh(tmp_path / "m4.msh", order=2).order == 2
    write_mesh(_box(order=2), tmp_path / "m10.msh")
    with pytest.raises(InputError, match="does not demote"):
        read_mesh(tmp_path / "m10.msh", order=1)
    with pytest.raises(InputError, match="not found"):
        read_mesh(tmp_path / "nothere.msh")


def test_mixed_and_flat_meshes_rejected():
    mesh = _box()
    tet10 = promote_to_tet10(mesh)
    mixed = meshio.Mesh(tet10.points, [("tetra", mesh.cells), ("tetra10", tet10.cells)])
    with pytest.raises(InputError, match="mixes tet4 and tet10"):
        from_meshio(mixed)
    flat = meshio.Mesh(mesh.points[:, :2], [("tetra", mesh.cells)])
    with pytest.raises(InputError, match="two-dimensional"):
        from_meshio(flat)


# -- checks ----------------------------------------------------------------------------------
def test_check_mesh_stats():
    mesh = _box()
    stats = check_mesh(mesh)
    assert stats["volume"] == pytest.approx(6.0)
    assert 0 < stats["min_quality"] <= stats["mean_quality"] <= 1


def test_regular_tet_quality_is_one():
    pts = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)
    cells = np.array([[0, 1, 2, 3]])
    if tet_volumes(pts, cells)[0] < 0:
        cells = cells[:, [0, 2, 1, 3]]
    assert tet_quality(pts, cells)[0] == pytest.approx(1.0)
    assert tet_volumes(pts, cells)[0] == pytest.approx(8.0 / 3.0)


def test_check_mesh_rejects_inverted_and_degenerate():
    mesh = _box()
    bad = mesh.cells.copy()
    bad[5] = bad[5][[0, 2, 1, 3]]  # inverted
    with pytest.raises(InputError, match=r"1 inverted or degenerate element\(s\); worst: element 5 \(inverted"):
        check_mesh(Mesh(mesh.points, bad, source="inv.msh"))
    pts = mesh.points.copy()
    flat = Mesh(np.vstack([pts, pts[mesh.cells[7, :3]].mean(axis=0)]), mesh.cells.copy(), source="flat.msh")
    flat.cells[7, 3] = len(pts)  # 4th corner in the plane of the other three
    with pytest.raises(InputError, match="degenerate") as exc:
        check_mesh(flat)
    assert str(exc.value).startswith("flat.msh:")


def test_check_mesh_rejects_tangled_tet10():
    mesh = promote_to_tet10(_box())
    mid = mesh.cells[0, 4]
    a, b = mesh.cells[0, TET10_EDGES[0]]
    mesh.points[mid] = mesh.points[a] + 3.0 * (mesh.points[b] - mesh.points[a])  # far beyond its edge
    with pytest.raises(InputError, match="inverted or degenerate"):
        check_mesh(mesh)


def test_check_mesh_warns_on_poor_quality():
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.3, 0.3, 0.01]], float)
    with pytest.warns(UserWarning, match="poor quality"):
        check_mesh(Mesh(pts, np.array([[0, 1, 2, 3]])))


def test_check_mesh_empty_and_nonfinite():
    with pytest.raises(InputError, match="no tetrahedra"):
        check_mesh(Mesh(np.zeros((0, 3)), np.zeros((0, 4), int)))
    mesh = _box()
    mesh.points[0, 0] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        check_mesh(mesh)


# -- tet10 promotion -------------------------------------------------------------------------
def test_promote_shares_mid_edge_nodes():
    mesh = _box()
    t10 = promote_to_tet10(mesh)
    assert t10.order == 2 and t10.cells.shape == (mesh.n_elements, 10)
    assert t10.n_nodes == mesh.n_nodes + _unique_edges(mesh.cells)
    np.testing.assert_array_equal(t10.cells[:, :4], mesh.cells)
    np.testing.assert_allclose(t10.points[: mesh.n_nodes], mesh.points)
    # every mid-edge node is the midpoint of its edge, and is used by every tet sharing that edge
    for k, (a, b) in enumerate(TET10_EDGES):
        mid = t10.points[t10.cells[:, 4 + k]]
        np.testing.assert_allclose(mid, 0.5 * (t10.points[t10.cells[:, a]] + t10.points[t10.cells[:, b]]))
    used = np.bincount(t10.cells.ravel(), minlength=t10.n_nodes)
    assert used.min() >= 1
    assert used[mesh.n_nodes :].max() > 1  # interior edges are shared
    check_mesh(t10)
    assert promote_to_tet10(t10) is t10
    np.testing.assert_allclose(t10.volumes(), mesh.volumes())


def test_promote_facet_sets_to_tri6():
    mesh = _box()
    t10 = promote_to_tet10(mesh)
    bfaces, _ = t10.boundary_faces()
    boundary = _faceset(bfaces)
    for name in SIDES:
        f6 = t10.facet_sets[name]
        assert f6.shape == (len(mesh.facet_sets[name]), 6)
        np.testing.assert_array_equal(f6[:, :3], mesh.facet_sets[name])
        for k, (a, b) in enumerate(TRI6_EDGES):
            np.testing.assert_allclose(t10.points[f6[:, 3 + k]], 0.5 * (t10.points[f6[:, a]] + t10.points[f6[:, b]]))
        assert _faceset(f6) <= boundary  # the same mid-edge nodes as the tetrahedra
    assert t10.cell_sets.keys() == mesh.cell_sets.keys()


def test_promote_rejects_foreign_facets():
    mesh = _box()
    mesh.facet_sets["bad"] = np.array([[0, 5, mesh.n_nodes - 1]])
    with pytest.raises(InputError, match="facet set 'bad'"):
        promote_to_tet10(mesh)


# -- boundary faces --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mesh",
    [_box(), _box(order=2), _distorted(), _distorted(order=2), _distorted(1, order=2, curve=0.05)],
    ids=["box-tet4", "box-tet10", "distorted-tet4", "distorted-tet10", "curved-tet10"],
)
def test_boundary_is_closed_and_outward(mesh):
    """Closed surface: sum of n dA = 0; divergence theorem: sum of x.n dA / 3 = volume."""
    faces, elems = mesh.boundary_faces()
    assert faces.shape[1] == (3 if mesh.order == 1 else 6)
    _, nda, xq = face_quadrature(mesh.points, faces)
    area = np.linalg.norm(nda, axis=2).sum()
    np.testing.assert_allclose(nda.sum(axis=(0, 1)), 0.0, atol=1e-12 * area)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        volume = element_geometry(mesh, degree=4).volumes.sum()
    assert volume > 0
    assert np.einsum("fqj,fqj->", xq, nda) / 3.0 == pytest.approx(volume, rel=1e-12)
    # each boundary face is outward for its own element: the opposite corner lies behind it
    centroids = mesh.centroids()[elems]
    n = np.cross(mesh.points[faces[:, 1]] - mesh.points[faces[:, 0]], mesh.points[faces[:, 2]] - mesh.points[faces[:, 0]])
    assert np.all(np.einsum("ij,ij->i", n, mesh.points[faces[:, 0]] - centroids) > 0)


def test_boundary_face_count_of_box():
    mesh = box_mesh((1.0, 1.0, 1.0), (2, 3, 4))
    faces, _ = mesh.boundary_faces()
    assert len(faces) == 2 * 2 * (2 * 3 + 3 * 4 + 2 * 4)
    assert sum(len(mesh.facet_sets[s]) for s in SIDES) == len(faces)
