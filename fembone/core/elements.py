"""Reference elements: shape functions and quadrature on the unit tetrahedron/triangle.

An element here knows only its reference shape functions; mapping to physical
space happens in :mod:`fembone.core.assembly` (volume) and :mod:`fembone.core.loads`
(surface).  Node order follows VTK/meshio:

* tet4:  corners 0-3;
* tet10: corners 0-3, then mid-edge nodes on edges (0,1) (1,2) (0,2) (0,3) (1,3) (2,3);
* tri3:  corners 0-2;  tri6: corners, then mid-edge nodes on (0,1) (1,2) (2,0).

Shape functions in barycentric coordinates L (Zienkiewicz & Taylor, *The Finite
Element Method*, vol. 1, 7th ed., §6.5): corners L_i (linear) or L_i (2 L_i - 1)
(quadratic), mid-edge 4 L_i L_j.  Quadrature rules: Keast (1986) for the
tetrahedron, Dunavant (1985) for the triangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Edges of tet10 in VTK order (local corner pairs).
TET10_EDGES = np.array([[0, 1], [1, 2], [0, 2], [0, 3], [1, 3], [2, 3]])
TRI6_EDGES = np.array([[0, 1], [1, 2], [2, 0]])

# Faces of a positively oriented tetrahedron, outward normal by the right-hand rule;
# face k is opposite corner k.  tri6 versions list the mid-edge nodes in tri6 order.
TET4_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
TET10_FACES = np.array(
    [[1, 2, 3, 5, 9, 8], [0, 3, 2, 7, 9, 6], [0, 1, 3, 4, 8, 7], [0, 2, 1, 6, 5, 4]]
)


@dataclass(frozen=True)
class Quadrature:
    """Points in reference coordinates (nq, dim) and weights (nq,) summing to the reference measure."""

    points: np.ndarray
    weights: np.ndarray
    degree: int


def _tet_rule(degree: int) -> Quadrature:
    if degree <= 1:
        return Quadrature(np.full((1, 3), 0.25), np.array([1.0 / 6.0]), 1)
    if degree == 2:
        a, b = 0.5854101966249685, 0.1381966011250105
        pts = np.array([[b, b, b], [a, b, b], [b, a, b], [b, b, a]])
        return Quadrature(pts, np.full(4, 1.0 / 24.0), 2)
    # Keast rule #6, degree 4, 14 points (all weights positive)
    pts, wts = [], []
    for a, w in ((0.0927352503108912, 0.01224884051939366), (0.3108859192633006, 0.01878132095300264)):
        b = 1.0 - 3.0 * a
        for p in ([a, a, a], [b, a, a], [a, b, a], [a, a, b]):
            pts.append(p)
            wts.append(w)
    a = 0.4544962958743504
    b = 0.5 - a
    for p in ([a, a, b], [a, b, a], [b, a, a], [a, b, b], [b, a, b], [b, b, a]):
        pts.append(p)
        wts.append(0.007091003462846911)
    return Quadrature(np.array(pts), np.array(wts), 4)


def _tri_rule(degree: int) -> Quadrature:
    if degree <= 1:
        return Quadrature(np.array([[1 / 3, 1 / 3]]), np.array([0.5]), 1)
    if degree == 2:
        pts = np.array([[1 / 6, 1 / 6], [2 / 3, 1 / 6], [1 / 6, 2 / 3]])
        return Quadrature(pts, np.full(3, 1 / 6), 2)
    a, wa = 0.445948490915965, 0.223381589678011 / 2
    b, wb = 0.091576213509771, 0.109951743655322 / 2
    pts = np.array([[a, a], [1 - 2 * a, a], [a, 1 - 2 * a], [b, b], [1 - 2 * b, b], [b, 1 - 2 * b]])
    return Quadrature(pts, np.array([wa] * 3 + [wb] * 3), 4)


def tet_quadrature(degree: int) -> Quadrature:
    """Rule on the unit tetrahedron (volume 1/6) exact for polynomials of ``degree``."""
    return _tet_rule(degree)


def tri_quadrature(degree: int) -> Quadrature:
    """Rule on the unit triangle (area 1/2) exact for polynomials of ``degree``."""
    return _tri_rule(degree)


def _bary_tet(xi: np.ndarray) -> np.ndarray:
    xi = np.atleast_2d(xi)
    return np.column_stack([1.0 - xi.sum(axis=1), xi])


def _bary_tri(xi: np.ndarray) -> np.ndarray:
    xi = np.atleast_2d(xi)
    return np.column_stack([1.0 - xi.sum(axis=1), xi])


# d(L_k)/d(xi_j) for the tetrahedron (4x3) and triangle (3x2)
_DL_TET = np.array([[-1.0, -1.0, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
_DL_TRI = np.array([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]])


def _values_and_dL(L: np.ndarray, order: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape values (np, nen) and derivatives with respect to L (np, nen, ncorner)."""
    npnt, nc = L.shape
    if order == 1:
        return L.copy(), np.broadcast_to(np.eye(nc), (npnt, nc, nc)).copy()
    nen = nc + len(edges)
    N = np.empty((npnt, nen))
    dN = np.zeros((npnt, nen, nc))
    N[:, :nc] = L * (2.0 * L - 1.0)
    for k in range(nc):
        dN[:, k, k] = 4.0 * L[:, k] - 1.0
    i, j = edges[:, 0], edges[:, 1]
    N[:, nc:] = 4.0 * L[:, i] * L[:, j]
    rows = np.arange(nc, nen)
    dN[:, rows, i] = 4.0 * L[:, j]
    dN[:, rows, j] = 4.0 * L[:, i]
    return N, dN


@dataclass(frozen=True)
class ReferenceElement:
    """A Lagrange simplex: ``name``, polynomial ``order``, nodes per element, dimension."""

    name: str
    order: int
    n_nodes: int
    dim: int

    @property
    def n_corners(self) -> int:
        return self.dim + 1

    @property
    def edges(self) -> np.ndarray:
        return TET10_EDGES if self.dim == 3 else TRI6_EDGES

    def shape(self, xi: np.ndarray) -> np.ndarray:
        """Shape function values at reference points ``xi`` (np, dim) -> (np, nen)."""
        L = _bary_tet(xi) if self.dim == 3 else _bary_tri(xi)
        return _values_and_dL(L, self.order, self.edges)[0]

    def grad(self, xi: np.ndarray) -> np.ndarray:
        """Reference gradients dN/dxi at ``xi`` -> (np, nen, dim)."""
        L = _bary_tet(xi) if self.dim == 3 else _bary_tri(xi)
        _, dL = _values_and_dL(L, self.order, self.edges)
        return dL @ (_DL_TET if self.dim == 3 else _DL_TRI)

    def grad_bary(self, xi: np.ndarray) -> np.ndarray:
        """Derivatives with respect to the barycentric coordinates -> (np, nen, dim+1)."""
        L = _bary_tet(xi) if self.dim == 3 else _bary_tri(xi)
        return _values_and_dL(L, self.order, self.edges)[1]

    def node_coords(self) -> np.ndarray:
        """Reference coordinates of the element's own nodes (nen, dim)."""
        corners = np.vstack([np.zeros(self.dim), np.eye(self.dim)])
        if self.order == 1:
            return corners
        mids = 0.5 * (corners[self.edges[:, 0]] + corners[self.edges[:, 1]])
        return np.vstack([corners, mids])

    def quadrature(self, degree: int | None = None) -> Quadrature:
        """Default: exact for the stiffness (degree 2(order-1)) of a straight-sided element."""
        if degree is None:
            degree = max(1, 2 * (self.order - 1))
        return tet_quadrature(degree) if self.dim == 3 else tri_quadrature(degree)


TET4 = ReferenceElement("tet4", 1, 4, 3)
TET10 = ReferenceElement("tet10", 2, 10, 3)
TRI3 = ReferenceElement("tri3", 1, 3, 2)
TRI6 = ReferenceElement("tri6", 2, 6, 2)

ELEMENTS: dict[str, ReferenceElement] = {e.name: e for e in (TET4, TET10, TRI3, TRI6)}


def volume_element(nodes_per_cell: int) -> ReferenceElement:
    """The tetrahedron with this many nodes (4 or 10)."""
    return {4: TET4, 10: TET10}[nodes_per_cell]


def face_element(nodes_per_face: int) -> ReferenceElement:
    """The triangle with this many nodes (3 or 6)."""
    return {3: TRI3, 6: TRI6}[nodes_per_face]
