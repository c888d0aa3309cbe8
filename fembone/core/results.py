"""Post-processing: strain, stress, von Mises, principal values, nodal recovery. Units: MPa, mm/mm.

Strains are small-strain tensors eps = (grad u + grad u^T) / 2 (tensor shear components,
not engineering); stress sigma = C : eps.  Element values are volume averages over the
quadrature points; nodal values average each element's field evaluated at its own nodes,
weighted by element volume (a smooth field for plots; the element values are the ones
used in metrics).  Symmetric tensors are exported in the order xx, yy, zz, xy, yz, xz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fembone.core.assembly import ElementGeometry, gradients_at
from fembone.core.materials import VOIGT
from fembone.core.mesh import Mesh

SYM = [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]
COMPONENTS = ("xx", "yy", "zz", "xy", "yz", "xz")


def displacement_gradient(u_nodes: np.ndarray, cells: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """grad u (np, 3, 3, ne) with [a, b] = du_a/dx_b at the points where ``grads`` were taken."""
    ue = u_nodes[cells].transpose(1, 2, 0)  # (nen, 3, ne)
    return np.einsum("nae,qnbe->qabe", ue, grads, optimize=True)


def strain_from_gradient(H: np.ndarray) -> np.ndarray:
    return 0.5 * (H + H.swapaxes(-3, -2) if H.ndim == 4 else H + np.swapaxes(H, -1, -2))


def to_voigt(eps: np.ndarray) -> np.ndarray:
    """(..., 3, 3) strain tensor -> (..., 6) Voigt with engineering shear."""
    out = np.stack([eps[..., a, b] * (1.0 if a == b else 2.0) for a, b in SYM], axis=-1)
    return out


def sym6(t: np.ndarray) -> np.ndarray:
    """(..., 3, 3) symmetric tensor -> (..., 6) in order xx yy zz xy yz xz (tensor components)."""
    return np.stack([t[..., a, b] for a, b in SYM], axis=-1)


def stress_from_strain(eps: np.ndarray, C: np.ndarray) -> np.ndarray:
    """sigma (ne, ..., 3, 3) = C : eps with per-element Voigt C (ne, 6, 6), eps (ne, ..., 3, 3)."""
    ev = to_voigt(eps)
    sv = np.einsum("eij,e...j->e...i", C, ev)
    return sv[..., VOIGT]


def von_mises(s: np.ndarray) -> np.ndarray:
    """Von Mises equivalent stress of (..., 3, 3) tensors (MPa)."""
    d = s - np.trace(s, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) / 3.0
    return np.sqrt(1.5 * np.einsum("...ij,...ij->...", d, d))


def principal(t: np.ndarray) -> np.ndarray:
    """Principal values (..., 3) in ascending order (min, mid, max)."""
    return np.linalg.eigvalsh(t)


def equivalent_strain(eps: np.ndarray) -> np.ndarray:
    """Von Mises equivalent strain sqrt(2/3 e':e') (mm/mm)."""
    d = eps - np.trace(eps, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) / 3.0
    return np.sqrt(2.0 / 3.0 * np.einsum("...ij,...ij->...", d, d))


@dataclass
class Fields:
    """Fields of one load case. Element arrays are (ne, ...), nodal arrays (nn, ...)."""

    displacement: np.ndarray  # (nn, 3) mm
    strain: np.ndarray  # (ne, 3, 3) element volume average
    stress: np.ndarray  # (ne, 3, 3) MPa
    strain_q: np.ndarray  # (ne, nq, 3, 3) at quadrature points
    stress_q: np.ndarray  # (ne, nq, 3, 3)
    nodal_strain: np.ndarray  # (nn, 3, 3)
    nodal_stress: np.ndarray  # (nn, 3, 3)

    @property
    def von_mises(self) -> np.ndarray:
        return von_mises(self.stress)

    @property
    def principal_stress(self) -> np.ndarray:
        return principal(self.stress)

    @property
    def principal_strain(self) -> np.ndarray:
        return principal(self.strain)


def compute_fields(mesh: Mesh, geom: ElementGeometry, C: np.ndarray, u_nodes: np.ndarray, nodal: bool = True) -> Fields:
    """All fields of a displacement solution ``u_nodes`` (nn, 3) with per-element Voigt ``C``."""
    H = displacement_gradient(u_nodes, mesh.cells, geom.grads)  # (nq, 3, 3, ne)
    eps_q = strain_from_gradient(H).transpose(3, 0, 1, 2)  # (ne, nq, 3, 3)
    sig_q = stress_from_strain(eps_q, C)
    w = (geom.wdet / geom.volumes).T  # (ne, nq)
    eps = np.einsum("eq,eqab->eab", w, eps_q)
    sig = np.einsum("eq,eqab->eab", w, sig_q)
    if nodal:
        n_eps, n_sig = nodal_fields(mesh, geom, C, u_nodes)
    else:
        n_eps = n_sig = np.zeros((mesh.n_nodes, 3, 3))
    return Fields(u_nodes, eps, sig, eps_q, sig_q, n_eps, n_sig)


def nodal_fields(mesh: Mesh, geom: ElementGeometry, C: np.ndarray, u_nodes: np.ndarray):
    """Strain and stress at nodes: element fields at their own nodes, volume-weighted average."""
    grads = getattr(geom, "_node_grads", None)
    if grads is None or grads.shape[-1] != mesh.n_elements:  # same for every load case: keep it
        grads, _ = gradients_at(mesh, mesh.element.node_coords())
        geom._node_grads = grads
    H = displacement_gradient(u_nodes, mesh.cells, grads)  # (nen, 3, 3, ne)
    eps = strain_from_gradient(H).transpose(3, 0, 1, 2)  # (ne, nen, 3, 3)
    sig = stress_from_strain(eps, C)
    vol = geom.volumes
    wsum = np.bincount(mesh.cells.ravel(), weights=np.repeat(vol, mesh.nodes_per_cell), minlength=mesh.n_nodes)
    out = []
    for f in (eps, sig):
        acc = np.zeros((mesh.n_nodes, 9))
        fv = (f * vol[:, None, None, None]).reshape(mesh.n_elements * mesh.nodes_per_cell, 9)
        idx = mesh.cells.ravel()
        for k in range(9):
            acc[:, k] = np.bincount(idx, weights=fv[:, k], minlength=mesh.n_nodes)
        out.append((acc / np.where(wsum > 0, wsum, 1.0)[:, None]).reshape(-1, 3, 3))
    return out[0], out[1]


def strain_energy(u: np.ndarray, K) -> float:
    """1/2 u^T K u (N mm = mJ)."""
    return 0.5 * float(u @ (K @ u))
