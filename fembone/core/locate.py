"""Point location in a tetrahedral mesh: host element and local coordinates. Units: mm.

Candidates come from a KD-tree of element centroids; the host is the candidate whose
barycentric coordinates (of its straight-sided corner tetrahedron) are all >= -tol.
Local coordinates (xi, eta, zeta) = barycentric L1..L3, valid for tet4 and straight tet10.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from fembone.core.mesh import Mesh


def barycentric(mesh: Mesh, elements: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (n, 4) of ``points`` (n, 3) in the corner tets of ``elements`` (n,)."""
    x = mesh.points[mesh.cells[elements, :4]]  # (n, 4, 3)
    A = (x[:, 1:] - x[:, :1]).transpose(0, 2, 1)  # columns x1-x0, x2-x0, x3-x0
    lam = np.linalg.solve(A, (points - x[:, 0])[:, :, None])[:, :, 0]
    return np.column_stack([1.0 - lam.sum(axis=1), lam])


def locate(mesh: Mesh, points: np.ndarray, k: int = 24, tol: float = 1e-9, elements: np.ndarray | None = None):
    """Host element of each point (-1 when outside) and its barycentric coordinates (n, 4).

    Only ``elements`` (default all) are candidates.  A point outside every candidate gets
    host -1 and the coordinates of the nearest candidate (most negative coordinate largest).
    """
    points = np.atleast_2d(np.asarray(points, float))
    cand_all = np.arange(mesh.n_elements) if elements is None else np.asarray(elements)
    tree = cKDTree(mesh.centroids()[cand_all])
    k = min(k, len(cand_all))
    _, idx = tree.query(points, k=k)
    idx = np.atleast_2d(idx).reshape(len(points), k)
    n = len(points)
    best = np.full(n, -1)
    best_score = np.full(n, -np.inf)
    best_L = np.zeros((n, 4))
    for j in range(k):  # k candidates per point: a short fixed loop, vectorised over points
        e = cand_all[idx[:, j]]
        L = barycentric(mesh, e, points)
        score = L.min(axis=1)
        better = score > best_score
        best[better] = e[better]
        best_score[better] = score[better]
        best_L[better] = L[better]
    host = np.where(best_score >= -tol, best, -1)
    return host, best_L, best_score, best


def isoparametric(mesh: Mesh, elements: np.ndarray, points: np.ndarray, L: np.ndarray, iters: int = 8) -> np.ndarray:
    """Barycentric coordinates refined by Newton so that sum N_i(xi) x_i = point (curved tet10).

    For tet4 (and straight-sided tet10) the corner barycentrics are already exact.
    """
    if mesh.order == 1:
        return L
    el = mesh.element
    x = mesh.points[mesh.cells[elements]]  # (n, nen, 3)
    xi = L[:, 1:].copy()
    for _ in range(iters):
        N = el.shape(xi)  # (n, nen)
        r = points - np.einsum("pn,pnj->pj", N, x)
        if np.abs(r).max() < 1e-12 * (1.0 + np.abs(points).max()):
            break
        J = np.einsum("pna,pnj->pja", el.grad(xi), x)  # dx_j / dxi_a
        xi += np.linalg.solve(J, r[:, :, None])[:, :, 0]
    return np.column_stack([1.0 - xi.sum(axis=1), xi])


def shape_values(mesh: Mesh, L: np.ndarray) -> np.ndarray:
    """Values (n, nen) of the host element's shape functions at barycentric coordinates L (n, 4)."""
    return mesh.element.shape(L[:, 1:])
