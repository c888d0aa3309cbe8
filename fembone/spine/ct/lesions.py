"""Lytic lesions found in the CT as a density deficit (where the labels name no lesion).

Rule: inside the vertebral body (bone labels minus posterior elements), a voxel is lesion
candidate when its locally averaged calibrated density is below ``threshold`` x the median
density of the patient's own trabecular body bone; the lesion is the largest face-connected
region of candidates (``scipy.ndimage.label``).  The local average is a Gaussian of
``smooth_mm`` (default 1 mm) normalised within the body (``G*(rho m) / G*m``), so voxel noise
does not fragment a lesion and soft tissue outside the body never leaks in.  A largest region
smaller than ``min_fraction`` of the body volume (default 0.5 %) is reported as no lesion.
Its volume fraction (lesion volume / body volume) is what the parametric lesions of the
vertebra model take, so a CT lesion enters the same risk and treatment workflow.

The threshold is a modelling choice, not a published constant: lytic metastases read far
below normal trabecular bone (tumour tissue is soft-tissue density, ~0-60 mg/cc), and 50 %
of the patient's own median keeps normal density scatter out on the example L2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fembone.core.errors import InputError
from fembone.spine.ct.image import Image

__all__ = ["LesionResult", "detect_lesion"]


@dataclass
class LesionResult:
    """A density-deficit lesion: ``mask`` on the image grid (bool), volumes in mm^3."""

    mask: np.ndarray
    volume_mm3: float
    body_volume_mm3: float
    reference_density: float  # median trabecular body density, mg/cc
    threshold_density: float  # mg/cc
    n_regions: int  # connected candidate regions before keeping the largest
    found: bool
    edge_density: float | None = None  # mg/cc: where the lesion's boundary was placed

    @property
    def volume_fraction(self) -> float:
        return self.volume_mm3 / self.body_volume_mm3 if self.body_volume_mm3 > 0 else 0.0

    def describe(self) -> dict:
        return {"found": self.found, "volume_mm3": self.volume_mm3, "body_volume_mm3": self.body_volume_mm3,
                "volume_fraction": self.volume_fraction, "reference_density_mgcc": self.reference_density,
                "threshold_density_mgcc": self.threshold_density, "edge_density_mgcc": self.edge_density,
                "candidate_regions": self.n_regions}


def detect_lesion(
    density: Image,
    body: np.ndarray,
    trabecular: np.ndarray | None = None,
    threshold: float = 0.5,
    smooth_mm: float = 1.0,
    min_fraction: float = 0.005,
    where: str = "ct.lesion",
) -> LesionResult:
    """Find the largest low-density region of the body (see the module notes).

    ``density``: calibrated image (mg/cc); ``body``: bool mask of the vertebral body on the
    same grid; ``trabecular``: bool mask of its trabecular bone (default: the body eroded by
    two voxels, which drops the cortex).
    """
    from scipy import ndimage as ndi

    if not 0.0 < threshold < 1.0:
        raise InputError(f"threshold must be between 0 and 1 (a fraction of the median trabecular density), got {threshold}",
                         f"{where}.threshold")
    body = np.asarray(body, bool)
    if body.shape != density.shape:
        raise InputError("body mask and density image differ in shape", where)
    if not body.any():
        raise InputError("no vertebral body voxels to search for a lesion", where)
    if trabecular is None:
        trabecular = ndi.binary_erosion(body, iterations=2)
        if not trabecular.any():
            trabecular = body
    trab = np.asarray(trabecular, bool) & body
    ref = float(np.median(density.data[trab])) if trab.any() else float(np.median(density.data[body]))
    if not ref > 0:
        raise InputError(f"median trabecular density is {ref:.3g} mg/cc; cannot define a relative threshold",
                         density.source)
    smooth = density.data
    if smooth_mm > 0:
        sigma = smooth_mm / density.spacing
        m = body.astype(float)
        num = ndi.gaussian_filter(density.data * m, sigma)
        den = ndi.gaussian_filter(m, sigma)
        smooth = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    t = threshold * ref
    cand = body & (smooth < t)
    lab, n = ndi.label(cand)
    vox = density.voxel_volume
    body_vol = float(body.sum() * vox)
    if n == 0:
        return LesionResult(np.zeros_like(body), 0.0, body_vol, ref, t, 0, False)
    sizes = np.bincount(lab.ravel())[1:]
    core = lab == int(np.argmax(sizes)) + 1
    # edge at half-way between the lesion's own density and the bone's (a blurred step crosses
    # its mid-value at the true edge): grow the core to the smoothed-density mid-value
    edge = 0.5 * (float(np.median(density.data[core])) + ref)
    grow, _ = ndi.label(body & (smooth < max(edge, t)))
    keep = np.unique(grow[core])
    mask = np.isin(grow, keep[keep > 0])
    vol = float(mask.sum() * vox)
    if vol < min_fraction * body_vol:
        return LesionResult(np.zeros_like(body), 0.0, body_vol, ref, t, int(n), False)
    return LesionResult(mask, vol, body_vol, ref, t, int(n), True, edge)
