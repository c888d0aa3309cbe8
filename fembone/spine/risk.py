"""Fracture-risk metrics of a vertebra under one load case. Units: N, N mm, mm, MPa.

* axial stiffness F / |u_z| of the loaded reference point (N/mm), rotational stiffness
  M / |theta| (N mm / rad);
* posterior-wall bulge: largest displacement of the posterior body wall into the canal
  (along the wall's outward normal), the burst-fracture risk measure of Whyne et al.
  (J Biomech 34:1317, 2001; Tschirhart et al. 2004);
* failed volume fraction: share of body bone volume (cortical shell + trabecular, lesion
  and cement excluded by their volume fractions) whose principal strains exceed the yield
  strains of vertebral trabecular bone, 0.77 % compression / 0.70 % tension (Morgan &
  Keaveny, J Biomech 34:569, 2001);
* linear strength estimate (Pistoia et al., Bone 30:842, 2002): in a linear model strains
  scale with the load, so the load at which 2 % of the bone volume exceeds yield is the
  applied load times the 2 % quantile of the per-point yield multipliers;
  factor of risk = applied / strength (Keaveny & Bouxsein 2008; 1 is the threshold);
* peak cement stress (von Mises and minimum principal) against PMMA strength (70 MPa).
"""

from __future__ import annotations

import numpy as np

from fembone.spine.bone import PMMA_STRENGTH, YIELD_STRAIN_COMPRESSION, YIELD_STRAIN_TENSION

#: Pistoia criterion: failure when this share of bone exceeds yield
CRITICAL_FRACTION = 0.02


def yield_multipliers(eps_q: np.ndarray, eyc: float = YIELD_STRAIN_COMPRESSION, eyt: float = YIELD_STRAIN_TENSION) -> np.ndarray:
    """Load factor at which each point reaches yield: min(eyc / |eps_min|, eyt / eps_max) (inf if unstrained)."""
    ev = np.linalg.eigvalsh(eps_q)
    with np.errstate(divide="ignore"):
        lc = np.where(ev[..., 0] < 0, eyc / np.abs(ev[..., 0]), np.inf)
        lt = np.where(ev[..., 2] > 0, eyt / ev[..., 2], np.inf)
    return np.minimum(lc, lt)


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    k = int(np.searchsorted(cw, q * cw[-1]))
    return float(values[order][min(k, len(order) - 1)])


def bone_metrics(eps_q: np.ndarray, wdet: np.ndarray, bone_share: np.ndarray) -> dict:
    """Failed volume fraction and the Pistoia load multiplier.

    ``eps_q`` (ne, nq, 3, 3) strains at quadrature points, ``wdet`` (ne, nq) their volumes,
    ``bone_share`` (ne,) fraction of each element that is bone (0 outside the body).
    """
    lam = yield_multipliers(eps_q)
    w = wdet * bone_share[:, None]
    total = w.sum()
    failed = float(w[lam < 1.0].sum() / total)
    lam_crit = weighted_quantile(lam.ravel(), w.ravel(), CRITICAL_FRACTION)
    return {"failed_volume_fraction": failed, "strength_multiplier": lam_crit}


def bulge(u: np.ndarray, points: np.ndarray, faces: np.ndarray) -> float:
    """Largest displacement of the wall nodes along the wall's mean outward normal (mm)."""
    from fembone.core.loads import face_quadrature

    _, nda, _ = face_quadrature(points, faces)
    n = nda.sum(axis=(0, 1))
    n /= np.linalg.norm(n)
    nodes = np.unique(faces)
    return float((u[nodes] @ n).max())


def cement_metrics(stress: np.ndarray, cement_share: np.ndarray, threshold: float = 0.5) -> dict:
    """Peak von Mises and most compressive principal stress in elements mostly cement (MPa)."""
    from fembone.core.results import principal, von_mises

    sel = cement_share >= threshold
    if not sel.any():
        return {}
    vm = float(von_mises(stress[sel]).max())
    smin = float(principal(stress[sel])[:, 0].min())
    return {"cement_peak_von_mises": vm, "cement_min_principal": smin, "cement_stress_ratio": vm / PMMA_STRENGTH}
