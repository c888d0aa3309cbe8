"""Point location in a tetrahedral mesh: host element and local coordinates. Units: mm.

Two passes:

1. fast: the ``k`` elements with the nearest centroids (KD-tree) are tried; the host is the
   candidate whose barycentric coordinates (of its straight-sided corner tetrahedron) are
   all >= -tol.  This finds almost every point (it missed about 1 in 5,000 interior points
   of the coarse L1 with k = 24: a large neighbour's centroid can be farther than 24 small
   ones).
2. exact, for what the fast pass missed: a point inside a tetrahedron lies within the
   tetrahedron's *reach* r_e = max_i |x_i - c_e| of its centroid c_e (a convex hull lies in
   the ball around any interior point that holds its vertices).  Elements are grouped by
   reach in factors of two; each group's centroids are searched with a ball of the group's
   largest reach, so every element that can hold the point is tested and none is missed,
   while each ball stays about one element wide.

Local coordinates (xi, eta, zeta) = barycentric L1..L3, valid for tet4 and straight tet10
(:func:`isoparametric` refines them for curved tet10).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from fembone.core.errors import InputError
from fembone.core.mesh import Mesh

#: point-element pairs tested at once in the exact pass (bounds its memory)
PAIR_CHUNK = 200_000


def barycentric(mesh: Mesh, elements: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (n, 4) of ``points`` (n, 3) in the corner tets of ``elements`` (n,)."""
    x = mesh.points[mesh.cells[elements, :4]]  # (n, 4, 3)
    A = (x[:, 1:] - x[:, :1]).transpose(0, 2, 1)  # columns x1-x0, x2-x0, x3-x0
    lam = np.linalg.solve(A, (points - x[:, 0])[:, :, None])[:, :, 0]
    return np.column_stack([1.0 - lam.sum(axis=1), lam])


def locate(
    mesh: Mesh, points: np.ndarray, k: int = 24, tol: float = 1e-9, elements: np.ndarray | None = None,
    where: str | None = None, label: str = "point",
):
    """Host element of each point and its barycentric coordinates (n, 4).

    Returns ``(host, L, score, nearest)``: ``host`` (n,) the element holding the point, -1
    when it lies outside every candidate; ``L`` (n, 4) the barycentric coordinates in
    ``host`` (outside points: in ``nearest``); ``score`` (n,) min(L), >= -tol inside;
    ``nearest`` (n,) the candidate whose most negative coordinate is largest.  Only
    ``elements`` (default all) are candidates.  No point inside a candidate is missed
    (exact second pass, module docstring).

    With ``where`` (the key of the caller's input, e.g. ``screws[0]``), a point outside every
    candidate is an :class:`InputError` naming ``label`` and the point instead.
    """
    points = np.atleast_2d(np.asarray(points, float))
    n = len(points)
    cand_all = np.arange(mesh.n_elements) if elements is None else np.asarray(elements)
    if n == 0 or len(cand_all) == 0:
        if n and where is not None:
            raise InputError(f"{label} at {_xyz(points[0])} mm: no elements to search", where)
        return np.full(n, -1), np.zeros((n, 4)), np.full(n, -np.inf), np.full(n, -1)
    centroids = mesh.centroids()[cand_all]
    k = min(k, len(cand_all))
    _, idx = cKDTree(centroids).query(points, k=k)
    idx = np.asarray(idx).reshape(n, k)
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
    missed = np.flatnonzero(best_score < -tol)
    if len(missed):
        _exact_pass(mesh, cand_all, centroids, points, missed, best, best_score, best_L)
    host = np.where(best_score >= -tol, best, -1)
    if where is not None and (host < 0).any():
        i = int(np.flatnonzero(host < 0)[0])
        lo, hi = mesh.points.min(axis=0), mesh.points.max(axis=0)
        raise InputError(
            f"{label} at {_xyz(points[i])} mm lies outside the mesh ({int((host < 0).sum())} of {n} points outside; "
            f"mesh extent {_xyz(lo)} to {_xyz(hi)} mm)", where,
        )
    return host, best_L, best_score, best


def _xyz(p: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in p) + ")"


def _exact_pass(
    mesh: Mesh, cand_all: np.ndarray, centroids: np.ndarray, points: np.ndarray, missed: np.ndarray,
    best: np.ndarray, best_score: np.ndarray, best_L: np.ndarray,
) -> None:
    """Test every element whose reach covers each missed point; update best* in place."""
    corners = mesh.points[mesh.cells[cand_all, :4]]  # (m, 4, 3)
    reach = np.linalg.norm(corners - centroids[:, None, :], axis=2).max(axis=1)  # (m,) mm
    rmin = max(float(reach.min()), 1e-300)
    group = np.floor(np.log2(np.maximum(reach, rmin) / rmin)).astype(int)
    q = points[missed]
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        radius = float(reach[members].max()) * (1.0 + 1e-9) + 1e-12
        lists = cKDTree(centroids[members]).query_ball_point(q, radius)
        counts = np.fromiter((len(c) for c in lists), int, len(lists))
        if counts.sum() == 0:
            continue
        pi = np.repeat(np.arange(len(q)), counts)
        ci = members[np.concatenate([np.asarray(c, int) for c in lists if len(c)])]
        for s in range(0, len(pi), PAIR_CHUNK):
            pp, ee = pi[s : s + PAIR_CHUNK], cand_all[ci[s : s + PAIR_CHUNK]]
            L = barycentric(mesh, ee, q[pp])
            score = L.min(axis=1)
            order = np.lexsort((-score, pp))  # best pair of each point first
            first = np.r_[True, pp[order][1:] != pp[order][:-1]]
            top = order[first]
            tgt = missed[pp[top]]
            better = score[top] > best_score[tgt]
            tgt, top = tgt[better], top[better]
            best[tgt] = ee[top]
            best_score[tgt] = score[top]
            best_L[tgt] = L[top]


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
