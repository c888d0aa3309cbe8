"""``where:`` selectors on a 4 x 2 x 2 mm box of unit cubes (5 x 3 x 3 = 45 nodes, 96 tet4)."""

from __future__ import annotations

import numpy as np
import pytest

from fembone.core.errors import InputError
from fembone.core.loads import face_quadrature
from fembone.core.meshgen import box_mesh
from fembone.core.selectors import orient_faces, select_elements, select_faces, select_nodes


@pytest.fixture(scope="module")
def box():
    mesh = box_mesh((4.0, 2.0, 2.0), (4, 2, 2))
    mesh.cell_sets["left"] = np.flatnonzero(mesh.centroids()[:, 0] < 1.0)
    return mesh


def _nodes_where(mesh, cond) -> np.ndarray:
    x, y, z = mesh.points.T
    return np.flatnonzero(cond(x, y, z))


@pytest.mark.parametrize(
    "where, expected, n",
    [
        ({"plane": {"x": 0.0}}, lambda x, y, z: x == 0, 9),
        ({"plane": {"z": 2.0}}, lambda x, y, z: z == 2, 15),
        ({"plane": {"y": 1.0}}, lambda x, y, z: y == 1, 15),  # an interior plane
        ({"plane": {"x": 1.05, "tol": 0.1}}, lambda x, y, z: x == 1, 9),
        ({"box": {"min": [0, 0, 0], "max": [1, 2, 2]}}, lambda x, y, z: x <= 1, 18),
        ({"box": {"min": [1, 1, 1], "max": [1, 1, 1]}}, lambda x, y, z: (x == 1) & (y == 1) & (z == 1), 1),
        ({"sphere": {"center": [0, 0, 0], "radius": 1.01}}, lambda x, y, z: x**2 + y**2 + z**2 <= 1.1, 4),
        ({"ellipsoid": {"center": [2, 1, 1], "radii": [2.01, 0.01, 0.01]}}, lambda x, y, z: (y == 1) & (z == 1), 5),
        (
            {"ellipsoid": {"center": [2, 1, 1], "radii": [0.01, 2.01, 0.01], "axes": [[0, 3, 0], [1, 0, 0], [0, 0, 1]]}},
            lambda x, y, z: (y == 1) & (z == 1),
            5,
        ),
        ({"cylinder": {"start": [0, 1, 1], "end": [4, 1, 1], "radius": 1.01}},
         lambda x, y, z: (y - 1) ** 2 + (z - 1) ** 2 <= 1.1, 25),
        ({"cylinder": {"start": [0.5, 1, 1], "end": [3.5, 1, 1], "radius": 1.01}},  # capped ends
         lambda x, y, z: ((y - 1) ** 2 + (z - 1) ** 2 <= 1.1) & (x >= 1) & (x <= 3), 15),
        ({"set": "xmin"}, lambda x, y, z: x == 0, 9),
        ({"set": "left"}, lambda x, y, z: x <= 1, 18),
    ],
    ids=["plane-x0", "plane-z2", "plane-interior", "plane-tol", "box", "box-point", "sphere", "ellipsoid",
         "ellipsoid-axes", "cylinder", "cylinder-capped", "facet-set", "cell-set"],
)
def test_select_nodes(box, where, expected, n):
    ids = select_nodes(box, where)
    want = _nodes_where(box, expected)
    assert len(want) == n
    np.testing.assert_array_equal(ids, want)


@pytest.mark.parametrize(
    "where, n",
    [
        (None, 96),
        ({"box": {"min": [0, 0, 0], "max": [1, 2, 2]}}, 24),  # first column of cubes: 4 cubes x 6 tets
        ({"box": {"min": [0, 0, 0], "max": [1, 1, 1]}}, 6),
        ({"set": "left"}, 24),
        ({"sphere": {"center": [0.5, 0.5, 0.5], "radius": 0.2}}, 0),  # no centroid within 0.2 of the cube centre
        ({"sphere": {"center": [0.5, 0.5, 0.5], "radius": 0.5}}, 6),
        ({"cylinder": {"start": [0, 1, 1], "end": [4, 1, 1], "radius": 1.0}}, None),
    ],
)
def test_select_elements(box, where, n):
    if n == 0:
        with pytest.raises(InputError, match="selects no elements"):
            select_elements(box, where)
        return
    ids = select_elements(box, where)
    if n is None:  # against a direct count of centroids
        c = box.centroids()
        n = int((((c[:, 1] - 1) ** 2 + (c[:, 2] - 1) ** 2) <= 1.0).sum())
    assert len(ids) == n
    assert len(np.unique(ids)) == len(ids)


@pytest.mark.parametrize(
    "where, n_faces, area, normal",
    [
        ({"plane": {"x": 0.0}}, 8, 4.0, [-1, 0, 0]),
        ({"plane": {"z": 2.0}}, 16, 8.0, [0, 0, 1]),
        ({"set": "ymin"}, 16, 8.0, [0, -1, 0]),
        ({"box": {"min": [0, 0, 2], "max": [1, 1, 2]}}, 2, 1.0, [0, 0, 1]),
    ],
)
def test_select_faces(box, where, n_faces, area, normal):
    faces, on_b = select_faces(box, where)
    assert faces.shape == (n_faces, 3) and on_b.all()
    _, nda, _ = face_quadrature(box.points, faces)
    np.testing.assert_allclose(nda.sum(axis=(0, 1)), area * np.asarray(normal, float), atol=1e-12)


def test_interior_plane_has_no_boundary_faces_but_edges(box):
    """Faces come from the mesh boundary: an interior plane only touches boundary faces along its rim."""
    with pytest.raises(InputError, match="selects no boundary faces"):
        select_faces(box, {"plane": {"x": 2.0}})


def test_interior_facet_set_is_marked_off_boundary(box):
    cells = box.cells
    faces = cells[:, [[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]]].reshape(-1, 3)
    mid = faces[np.all(np.isclose(box.points[faces, 0], 2.0), axis=1)]
    mid = np.unique(np.sort(mid, axis=1), axis=0)
    box.facet_sets["middle"] = mid
    try:
        faces, on_b = select_faces(box, {"set": "middle"})
        assert len(faces) == 8 and not on_b.any()
    finally:
        del box.facet_sets["middle"]


def test_orient_faces_restores_outward_normals(box):
    flipped = box.facet_sets["xmax"][:, [0, 2, 1]]
    out, hit = orient_faces(box, flipped)
    assert hit.all()
    _, nda, _ = face_quadrature(box.points, out)
    assert np.all(nda[..., 0] > 0)


def test_selectors_on_tet10():
    mesh = box_mesh((4.0, 2.0, 2.0), (4, 2, 2), order=2)
    assert len(select_nodes(mesh, {"plane": {"x": 0.0}})) == 25  # 5 x 5 with mid-edge nodes
    faces, _ = select_faces(mesh, {"plane": {"x": 0.0}})
    assert faces.shape == (8, 6)
    assert len(select_elements(mesh, {"box": {"min": [0, 0, 0], "max": [1, 2, 2]}})) == 24


def test_default_plane_tolerance_is_relative(box):
    big = box_mesh((4000.0, 2000.0, 2000.0), (4, 2, 2))
    assert len(select_nodes(big, {"plane": {"x": 1000.001}})) == 9  # within 1e-6 of the 4000 mm size
    with pytest.raises(InputError, match="selects no nodes"):
        select_nodes(box, {"plane": {"x": 1.001}})


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "where, path, fragment",
    [
        ({"plane": {"x": 10.0}}, "loadcases.tip[0].where", "selects no nodes"),
        ({"box": {"min": [10, 10, 10], "max": [11, 11, 11]}}, "loadcases.tip[0].where", "selects no nodes"),
        ({"set": "top"}, "loadcases.tip[0].where.set", "no set 'top'"),
        ({"set": 3}, "loadcases.tip[0].where.set", "expected a set name"),
        ({"slab": {}}, "loadcases.tip[0].where.slab", "unknown selector"),
        ({}, "loadcases.tip[0].where", "a selector is a mapping with one of"),
        ({"plane": {"x": 0}, "set": "xmin"}, "loadcases.tip[0].where", "a selector is a mapping with one of"),
        ("xmin", "loadcases.tip[0].where", "a selector is a mapping with one of"),
        ({"plane": {"x": 0, "y": 0}}, "loadcases.tip[0].where.plane", "exactly one of x, y, z"),
        ({"plane": {"w": 0}}, "loadcases.tip[0].where.plane.w", "unknown key"),
        ({"plane": 0.0}, "loadcases.tip[0].where.plane", "expected a mapping like {x: 0.0}"),
        ({"plane": {"x": "0"}}, "loadcases.tip[0].where.plane.x", "expected a number"),
        ({"plane": {"x": 0, "tol": 0}}, "loadcases.tip[0].where.plane.tol", "positive"),
        ({"box": {"min": [0, 0, 0]}}, "loadcases.tip[0].where.box", "missing key 'max'"),
        ({"box": {"min": [1, 0, 0], "max": [0, 1, 1]}}, "loadcases.tip[0].where.box", "is below min"),
        ({"box": {"min": [0, 0], "max": [1, 1, 1]}}, "loadcases.tip[0].where.box.min", "3 numbers"),
        ({"box": {"min": [0, 0, True], "max": [1, 1, 1]}}, "loadcases.tip[0].where.box.min", "3 numbers"),
        ({"box": [0, 1]}, "loadcases.tip[0].where.box", "expected a mapping"),
        ({"sphere": {"center": [0, 0, 0], "radius": -1}}, "loadcases.tip[0].where.sphere.radius", "positive"),
        ({"sphere": {"center": [0, 0, 0], "radius": 10**400}}, "loadcases.tip[0].where.sphere.radius", "number"),
        ({"ellipsoid": {"center": [0, 0, 0], "radii": [1, 0, 1]}}, "loadcases.tip[0].where.ellipsoid.radii", "positive"),
        ({"ellipsoid": {"center": [0, 0, 0], "radii": [1, 1, 1], "axes": [[1, 0, 0]]}},
         "loadcases.tip[0].where.ellipsoid.axes", "3 axis vectors"),
        ({"cylinder": {"start": [0, 0, 0], "end": [0, 0, 0], "radius": 1}}, "loadcases.tip[0].where.cylinder",
         "start and end coincide"),
    ],
)
def test_selector_errors_name_the_key_path(box, where, path, fragment):
    with pytest.raises(InputError) as exc:
        select_nodes(box, where, "loadcases.tip[0].where")
    msg = str(exc.value)
    assert msg.startswith(path + ":"), msg
    assert fragment in msg
    assert "\n" not in msg


def test_unknown_set_lists_available_sets(box):
    with pytest.raises(InputError) as exc:
        select_faces(box, {"set": "top"}, "constraints[0].where")
    msg = str(exc.value)
    for name in ("left", "xmax", "xmin", "ymax", "ymin", "zmax", "zmin"):
        assert name in msg


def test_facet_set_is_not_an_element_set(box):
    with pytest.raises(InputError, match="surface \\(facet\\) set"):
        select_elements(box, {"set": "xmin"}, "assign[0].where")
