"""Boundary set-ups of a vertebra that are not meshed: the thin PMMA potting layer. Units: mm, N, MPa."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fembone.core.loads import face_quadrature
from fembone.core.mesh import Mesh


def potting_foundation(mesh: Mesh, faces: np.ndarray, E: float, nu: float, t: float, n_dofs: int):
    """Stiffness (N/mm) of a thin PMMA potting layer under ``faces``, its far side fixed.

    A layer thin against the endplate acts as an elastic (Winkler) foundation: normal
    stiffness per area = constrained modulus / t = E (1 - nu) / ((1 + nu)(1 - 2 nu) t), shear
    stiffness per area = G / t (MPa/mm); consistent matrix k_a int N_i N_j dA per direction.
    """
    N, nda, _ = face_quadrature(mesh.points, faces)
    dA = np.linalg.norm(nda, axis=2)  # (nf, nq)
    Mf = np.einsum("qi,qj,fq->fij", N, N, dA)  # (nf, nfn, nfn)
    k_n = E * (1 - nu) / ((1 + nu) * (1 - 2 * nu) * t)
    k_s = E / (2 * (1 + nu) * t)
    n = faces.shape[1]
    rows, cols, vals = [], [], []
    for a, k in enumerate((k_s, k_s, k_n)):  # the endplate's normal is the cranio-caudal axis z
        d = 3 * faces + a
        rows.append(np.repeat(d, n, axis=1).ravel())
        cols.append(np.tile(d, (1, n)).ravel())
        vals.append((k * Mf).ravel())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_dofs, n_dofs))
