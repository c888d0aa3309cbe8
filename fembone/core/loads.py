"""Consistent nodal loads from surface tractions, pressures and total forces. Units: N, MPa, mm^2.

f_i = integral over the faces of N_i t dA (Zienkiewicz & Taylor vol. 1, §6.6), evaluated
with a degree-4 triangle rule (exact for curved tri6 faces up to the area Jacobian).
"""

from __future__ import annotations

import numpy as np

from fembone.core.elements import face_element


def face_quadrature(points: np.ndarray, faces: np.ndarray):
    """Shape values (nq, nfn), weighted normals n dA (nf, nq, 3, outward for oriented faces), positions."""
    el = face_element(faces.shape[1])
    quad = el.quadrature(4 if el.order == 2 else 2)
    N = el.shape(quad.points)
    dN = el.grad(quad.points)  # (nq, nfn, 2)
    x = points[faces]  # (nf, nfn, 3)
    t1 = np.einsum("qn,fnj->fqj", dN[:, :, 0], x)
    t2 = np.einsum("qn,fnj->fqj", dN[:, :, 1], x)
    nda = np.cross(t1, t2) * quad.weights[None, :, None]
    xq = np.einsum("qn,fnj->fqj", N, x)
    return N, nda, xq


def face_areas(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area of each face (mm^2)."""
    _, nda, _ = face_quadrature(points, faces)
    return np.linalg.norm(nda, axis=2).sum(axis=1)


def traction_load(points: np.ndarray, faces: np.ndarray, traction, n_nodes: int) -> np.ndarray:
    """Nodal forces (n_nodes, 3) of a uniform traction vector (MPa) over ``faces``."""
    N, nda, _ = face_quadrature(points, faces)
    dA = np.linalg.norm(nda, axis=2)  # (nf, nq)
    w = np.einsum("qn,fq->fn", N, dA)  # integral of N_i dA per face node
    F = np.zeros((n_nodes, 3))
    for a in range(3):
        F[:, a] = np.bincount(faces.ravel(), weights=(w * traction[a]).ravel(), minlength=n_nodes)
    return F


def pressure_load(points: np.ndarray, faces: np.ndarray, pressure: float, n_nodes: int) -> np.ndarray:
    """Nodal forces (n_nodes, 3) of a pressure p (MPa) acting along the inward normal of outward faces."""
    N, nda, _ = face_quadrature(points, faces)
    fn = -pressure * np.einsum("qn,fqj->fnj", N, nda)
    F = np.zeros((n_nodes, 3))
    for a in range(3):
        F[:, a] = np.bincount(faces.ravel(), weights=fn[:, :, a].ravel(), minlength=n_nodes)
    return F


def total_force_load(points: np.ndarray, faces: np.ndarray, force, n_nodes: int) -> np.ndarray:
    """A total force (N) spread over ``faces`` as the uniform traction force / area."""
    area = face_areas(points, faces).sum()
    return traction_load(points, faces, np.asarray(force, float) / area, n_nodes)


def resultant(points: np.ndarray, F: np.ndarray, center=None) -> tuple[np.ndarray, np.ndarray]:
    """Total force (N) and moment (N mm) about ``center`` of nodal forces (n, 3)."""
    c = np.zeros(3) if center is None else np.asarray(center, float)
    return F.sum(axis=0), np.cross(points - c, F).sum(axis=0)
