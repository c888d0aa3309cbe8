"""Collagen fibres of the annulus fibrosus: two crossed, tension-only families in every annulus element.

The annulus is a laminate of 15-25 lamellae whose collagen fibres run at about +-30 deg to the
disc's transverse plane, alternating in sign from one lamella to the next (Marchand & Ahmed
1990, Spine 15:402; Elliott & Setton 2001, J Biomech Eng 123:256: +-30 deg to the
circumferential axis; Holzapfel et al. 2005, Biomech Model Mechanobiol 3:125: 23-35 deg at
L1-L2 [M]).  Each annulus element gets both families, a = cos(theta) e_circ +- sin(theta) e_z,
with e_circ the circumferential direction about its half disc's nucleus centre, each family
with the smeared modulus ``E * volume_fraction / 2`` in tension only
(:mod:`fembone.core.fibres`).

Defaults: the collagen fibres of the lumbar FE models that pair them with this annulus ground
substance (E 4.2 MPa, nu 0.45): fibre modulus 357-550 MPa from the innermost to the outermost
lamellae (the mean, 450 MPa, is the default) in 16 % of the annulus volume (Shirazi-Adl,
Shrivastava & Ahmed 1986, Spine 11:914; Goel et al. 1995, Spine 20:689 [M]).  Cross-check:
per family 0.08 x 450 = 36 MPa, against 30-68 MPa from single-lamella tests along the fibres
(59-136 MPa lamellar moduli, half the lamellae in each family; Skaggs et al. 1994, Spine
19:1310 [M]).  Nothing here was set from the ranges of motion it produces.  Units: mm, MPa.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fembone.core.fibres import fibre_set
from fembone.core.unilateral import UnilateralSet

#: the half-disc annulus and nucleus groups of a level (fembone.spine.segment)
HALVES = (("disc_superior_annulus", "disc_superior_nucleus"), ("disc_inferior_annulus", "disc_inferior_nucleus"))


@dataclass(frozen=True)
class AnnulusFibres:
    """``angle_deg`` to the transverse plane; fibre modulus ``E`` (MPa) and the fibres' share of
    the annulus volume (both families together)."""

    angle_deg: float = 30.0
    E: float = 450.0
    volume_fraction: float = 0.16

    @property
    def family_modulus(self) -> float:
        """Smeared modulus of one family (MPa): half the fibres."""
        return self.E * self.volume_fraction / 2


def fibre_directions(centroids: np.ndarray, centre: np.ndarray, angle_deg: float) -> np.ndarray:
    """(n, 2, 3) unit directions cos(t) e_circ +- sin(t) e_z about the vertical axis through ``centre``."""
    r = centroids - centre
    r[:, 2] = 0.0
    rn = np.linalg.norm(r, axis=1)
    if np.any(rn <= 0):
        raise ValueError("an annulus element lies on its disc's axis")
    e_circ = np.stack([-r[:, 1], r[:, 0], np.zeros(len(r))], axis=1) / rn[:, None]
    t = np.radians(angle_deg)
    ez = np.array([0.0, 0.0, 1.0])
    return np.stack([np.cos(t) * e_circ + np.sin(t) * ez, np.cos(t) * e_circ - np.sin(t) * ez], axis=1)


def annulus_fibre_set(model, seg, fibres: AnnulusFibres) -> tuple[UnilateralSet, dict]:
    """The fibre families of every half disc of the segment ``seg`` as unilateral elements, and a summary."""
    mesh = model.mesh
    corner = mesh.points[mesh.cells[:, :4]].mean(axis=1)
    elements, directions, info = [], [], {}
    for lv in seg.levels:
        for ann_grp, nuc_grp in HALVES:
            ann, nuc = seg.set(lv, ann_grp), seg.set(lv, nuc_grp)
            if len(ann) == 0 or len(nuc) == 0:
                continue
            centre = corner[nuc].mean(axis=0)
            elements.append(ann)
            directions.append(fibre_directions(corner[ann], centre, fibres.angle_deg))
            info[f"{lv}.{ann_grp}"] = len(ann)
    elements = np.concatenate(elements)
    uset = fibre_set(mesh, elements, np.concatenate(directions), fibres.family_modulus, n_dofs=model.layout.n_dofs)
    return uset, {"angle_deg": fibres.angle_deg, "E": fibres.E, "volume_fraction": fibres.volume_fraction,
                  "family_modulus": fibres.family_modulus, "elements": info, "tension_only": True}
