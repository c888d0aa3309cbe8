"""Point location: no inside point is missed, outside points are reported or refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fembone.core.errors import InputError
from fembone.core.locate import locate
from fembone.core.mesh import read_mesh
from fembone.core.meshgen import box_mesh

L1 = Path(__file__).resolve().parents[2] / "meshes" / "L1_coarse.msh"


@pytest.fixture(scope="module")
def l1():
    return read_mesh(L1)


def inside_points(mesh, n: int, seed: int = 0):
    """Points sampled uniformly inside random elements: (points, element, barycentric)."""
    rng = np.random.default_rng(seed)
    e = rng.integers(0, mesh.n_elements, n)
    L = rng.dirichlet(np.ones(4), n)
    return np.einsum("nk,nkj->nj", L, mesh.points[mesh.cells[e, :4]]), e, L


def outside_points(mesh, offset: float):
    """Boundary-face centroids moved ``offset`` x (face size) along the outward normal."""
    faces, elem = mesh.boundary_faces()
    x = mesh.points[faces[:, :3]]
    c = x.mean(axis=1)
    nrm = np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0])
    size = np.sqrt(np.linalg.norm(nrm, axis=1))
    nrm /= np.linalg.norm(nrm, axis=1)[:, None]
    away = np.sign(np.einsum("ij,ij->i", nrm, c - mesh.centroids()[elem]))  # outward: away from the owner
    return c + (offset * size * away)[:, None] * nrm


def check_located(mesh, p, host, L):
    assert (host >= 0).all(), f"{(host < 0).sum()} inside points not located"
    assert L.min() >= -1e-9 and L.max() <= 1 + 1e-9, (L.min(), L.max())
    back = np.einsum("nk,nkj->nj", L, mesh.points[mesh.cells[host, :4]])
    scale = np.ptp(mesh.points, axis=0).max()
    assert np.abs(back - p).max() <= 1e-9 * scale, np.abs(back - p).max()


def test_20k_inside_points_of_the_coarse_l1_are_all_located(l1):
    p, _, _ = inside_points(l1, 20_000)
    host, L, score, _ = locate(l1, p)
    check_located(l1, p, host, L)
    assert (score >= -1e-9).all()


def test_exact_pass_finds_what_a_one_candidate_search_misses(l1):
    p, e, _ = inside_points(l1, 3_000, seed=1)
    host, L, _, _ = locate(l1, p, k=1)  # the nearest centroid alone misses ~30 % of them
    check_located(l1, p, host, L)
    # interior points (not on a face) have exactly one host: the element they were drawn in
    p2, e2, L2 = inside_points(l1, 500, seed=2)
    deep = L2.min(axis=1) > 1e-3
    h2, *_ = locate(l1, p2[deep], k=1)
    assert np.array_equal(h2, e2[deep])


def test_points_just_outside_the_surface_are_outside(l1):
    q = outside_points(l1, 1e-3)
    host, _, score, nearest = locate(l1, q)
    assert (host == -1).all(), f"{(host >= 0).sum()} outside points taken as inside"
    assert (score < -1e-9).all() and (nearest >= 0).all()


def test_outside_point_with_where_is_an_input_error_naming_it(l1):
    p, _, _ = inside_points(l1, 10, seed=3)
    far = l1.points.max(axis=0) + 5.0
    with pytest.raises(InputError, match=r"screws\[1\].*screw 'left' node at \(.*\) mm lies outside the mesh \(1 of 11"):
        locate(l1, np.vstack([p, far]), where="screws[1]", label="screw 'left' node")
    host, *_ = locate(l1, p, where="screws[1]", label="screw 'left' node")  # all inside: no error
    assert (host >= 0).all()


def test_candidate_subset_and_graded_box():
    # a box graded 1:64 along x: element reach spans several factors of two
    xs = np.concatenate([[0.0], np.cumsum(2.0 ** np.arange(7))]) / 127.0 * 10.0
    m = box_mesh((10.0, 1.0, 1.0), coords=(xs, np.linspace(0, 1, 3), np.linspace(0, 1, 3)))
    p, e, _ = inside_points(m, 5_000, seed=4)
    host, L, _, _ = locate(m, p, k=2)
    check_located(m, p, host, L)
    # only the elements left of the grid line x = xs[6] are candidates: points right of it are outside
    left = np.flatnonzero(m.centroids()[:, 0] < xs[6])
    h, *_ = locate(m, p, elements=left)
    right = p[:, 0] > xs[6] + 1e-9
    assert (h[right] == -1).all() and (h[~right] >= 0).all() and np.isin(h[~right], left).all()
    outside = np.array([[10.0 + 1e-6, 0.5, 0.5], [-1e-6, 0.5, 0.5], [5.0, 1.0 + 1e-6, 0.3]])
    assert (locate(m, outside)[0] == -1).all()
