"""Tension-only fibre families embedded in solid elements (e.g. the collagen of the annulus).

A family with unit direction a in element e adds the strain energy 1/2 E_f V_e <eps_f>_+^2 with
the fibre strain eps_f = a . eps_bar . a of the element's volume-mean strain eps_bar: a fibre
carries tension only (collagen buckles in compression), with the modulus ``E_f`` of the family
smeared over the element (fibre modulus x its volume share).  Engaged, it adds the stiffness
E_f V_e g g^T with g the (mean-strain) fibre-strain operator: rank one per element and family,
the form of a rebar element smeared into its host (Shirazi-Adl, Shrivastava & Ahmed 1984,
Spine 9:120, tension-only annulus fibres [M]; Zienkiewicz & Taylor, The Finite Element Method,
vol. 2, for embedded reinforcement [M]).  In Voigt form (engineering shear) the engaged
stiffness is E_f n n^T with n = (a_x^2, a_y^2, a_z^2, a_x a_y, a_y a_z, a_x a_z).

The families become a :class:`fembone.core.unilateral.UnilateralSet` (opening s = -eps_f, gap 0,
stiffness k = E_f V_e in N mm), which the analysis solves with the other unilateral elements.
Units: mm, MPa.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fembone.core.assembly import ElementGeometry, element_geometry
from fembone.core.mesh import Mesh
from fembone.core.unilateral import UnilateralSet


def fibre_voigt(a: np.ndarray) -> np.ndarray:
    """n = Voigt vector of a (x) a, (..., 6): eps_f = n . gamma (engineering shear), sigma = E_f eps_f n."""
    a = np.asarray(a, float)
    return np.stack([a[..., 0] ** 2, a[..., 1] ** 2, a[..., 2] ** 2,
                     a[..., 0] * a[..., 1], a[..., 1] * a[..., 2], a[..., 0] * a[..., 2]], axis=-1)


def mean_gradients(geom: ElementGeometry, elements: np.ndarray) -> np.ndarray:
    """Volume-mean shape-function gradients (ne, nen, 3) of ``elements`` (1/mm)."""
    w = geom.wdet[:, elements] / geom.volumes[elements]  # (nq, ne)
    return np.einsum("qe,qnje->enj", w, geom.grads[..., elements], optimize=True)


def fibre_strain_operator(mesh: Mesh, elements: np.ndarray, directions: np.ndarray,
                          geom: ElementGeometry | None = None) -> tuple[sp.csc_matrix, np.ndarray]:
    """Columns d with eps_f = d . u for every (element, family): (3 n_nodes, ne * m) and the
    element volumes (ne,) mm^3.  ``directions`` (ne, m, 3) unit vectors; column e * m + f."""
    elements = np.asarray(elements, int)
    directions = np.asarray(directions, float)
    ne, m = directions.shape[:2]
    geom = geom or element_geometry(mesh)
    gbar = mean_gradients(geom, elements)  # (ne, nen, 3)
    # eps_f = sum_n (a . u_n)(a . grad N_n): entry at DOF (node n, component i) is a_i (a . grad N_n)
    ag = np.einsum("efj,enj->efn", directions, gbar)  # (ne, m, nen)
    vals = ag[..., None] * directions[:, :, None, :]  # (ne, m, nen, 3)
    cells = mesh.cells[elements]
    rows = np.broadcast_to((3 * cells[:, None, :, None] + np.arange(3)), vals.shape)
    cols = np.broadcast_to(np.arange(ne * m).reshape(ne, m)[:, :, None, None], vals.shape)
    D = sp.csc_matrix((vals.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * mesh.n_nodes, ne * m))
    return D, geom.volumes[elements]


def fibre_set(mesh: Mesh, elements: np.ndarray, directions: np.ndarray, modulus: np.ndarray | float,
              n_dofs: int | None = None, geom: ElementGeometry | None = None) -> UnilateralSet:
    """Tension-only families as unilateral elements: opening s = -eps_f (engaged when the fibre
    stretches), gap 0, k = E_f V_e (N mm).  ``modulus`` (MPa): scalar or (ne, m), each family's
    smeared modulus (fibre modulus x the family's volume fraction)."""
    D, vol = fibre_strain_operator(mesh, elements, directions, geom)
    ne, m = np.asarray(directions).shape[:2]
    Ef = np.broadcast_to(np.asarray(modulus, float), (ne, m))
    n = n_dofs or D.shape[0]
    if n > D.shape[0]:
        D = sp.vstack([D, sp.csc_matrix((n - D.shape[0], D.shape[1]))]).tocsc()
    k = (Ef * vol[:, None]).ravel()
    return UnilateralSet(-D, k, np.zeros(ne * m), labels=[], block_solvers=())
