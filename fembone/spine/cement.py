"""PMMA cement stresses in bulk and interdigitated cement, against its strengths. Units: MPa, mm^3.

Strengths ([V] read in a source found by search; [M] from memory, not confirmed):

* compressive strength >= 70 MPa: ISO 5833 (Implants for surgery -- Acrylic resin cements)
  minimum [V];
* bending strength >= 50 MPa and bending modulus >= 1800 MPa: ISO 5833 minima [V] (measured
  flexural strengths 60-75 MPa, SBC 2011 abstract [V]);
* tensile strength 25 MPa: the low end of the ultimate tensile strengths of commercial cements
  (about 25-50 MPa) reviewed by Lewis (J Biomed Mater Res 38:155, 1997) [M, not confirmed];
  Harper & Bonfield (J Biomed Mater Res 53:605, 2000 [V]) compared ten cements in tension but
  their values were not found.  Tensile strength is below bending strength for a brittle
  polymer, so the ISO bending minimum would be unconservative as a tensile limit.

Stress in the cement phase.  A bulk-cement element is PMMA; an interdigitated (cement-bone
composite) element is a smeared mixture whose homogenised stress is not the cement's own.
:func:`cement_phase_stress` gives the cement's stress under the iso-strain (Voigt)
assumption, sigma_c = C_pmma : eps.  PMMA is stiffer than the trabecular bone around it, and
a stiff phase carries less strain than the mixture, so this is conservative for the cement.
"""

from __future__ import annotations

import numpy as np

from fembone.core.results import stress_from_strain
from fembone.spine.risk import weighted_quantile

#: ISO 5833 minimum compressive strength of acrylic bone cement, MPa [V]
PMMA_COMPRESSIVE_STRENGTH = 70.0
#: ISO 5833 minimum bending strength, MPa [V]
PMMA_BENDING_STRENGTH = 50.0
#: tensile strength, MPa: low end of Lewis 1997's range (about 25-50 MPa) [M]
PMMA_TENSILE_STRENGTH = 25.0
#: peak stress reported as this volume quantile (99th percentile) besides the maximum
PEAK_QUANTILE = 0.99


def cement_phase_stress(eps_q: np.ndarray, C_cement: np.ndarray) -> np.ndarray:
    """Stress (ne, nq, 3, 3) in the cement phase for the element strains ``eps_q``: C_pmma : eps (iso-strain)."""
    C = np.broadcast_to(np.asarray(C_cement, float), (eps_q.shape[0], 6, 6))
    return stress_from_strain(eps_q, C)


def cement_utilisation(stress_q: np.ndarray, wdet: np.ndarray, regions: dict[str, np.ndarray], *,
                       compressive_strength: float = PMMA_COMPRESSIVE_STRENGTH,
                       tensile_strength: float = PMMA_TENSILE_STRENGTH, quantile: float = PEAK_QUANTILE) -> dict:
    """Peak cement stresses and utilisation ratios per cement region.

    ``stress_q`` (ne, nq, 3, 3) stress in the cement phase (:func:`cement_phase_stress`),
    ``wdet`` (ne, nq) point volumes, ``regions`` name -> (ne,) cement-volume share of each
    element (e.g. ``{"bulk": pmma_fraction, "interdigitated": composite_fraction}``); a point's
    weight is its volume times the share.  For each region with cement, keys ``cement_<name>_``:

    * ``compression_p99`` / ``compression_max``: the 99th volume percentile and the maximum of
      the compressive stress -sigma_min (MPa, >= 0);
    * ``tension_p99`` / ``tension_max``: the same for the tensile stress sigma_max;
    * ``compression_ratio_p99`` / ``_max`` = stress / compressive strength, ``tension_ratio_p99`` /
      ``_max`` = stress / tensile strength; ``utilisation`` = the largest p99 ratio;
    * ``volume`` (mm^3 of cement-bearing element volume times share).
    Regions without cement are left out.  The percentile is the smallest value below or at
    which ``quantile`` of the weighted volume lies (:func:`fembone.spine.risk.weighted_quantile`).
    """
    ev = np.linalg.eigvalsh(stress_q)
    comp = np.maximum(-ev[..., 0], 0.0)
    tens = np.maximum(ev[..., 2], 0.0)
    out: dict = {}
    for name, share in regions.items():
        w = wdet * np.asarray(share, float)[:, None]
        if not w.sum() > 0:
            continue
        sel = w > 0
        p = f"cement_{name}_"
        c99, t99 = weighted_quantile(comp, w, quantile), weighted_quantile(tens, w, quantile)
        cmax, tmax = float(comp[sel].max()), float(tens[sel].max())
        out.update({
            p + "compression_p99": c99, p + "compression_max": cmax,
            p + "tension_p99": t99, p + "tension_max": tmax,
            p + "compression_ratio_p99": c99 / compressive_strength, p + "compression_ratio_max": cmax / compressive_strength,
            p + "tension_ratio_p99": t99 / tensile_strength, p + "tension_ratio_max": tmax / tensile_strength,
            p + "utilisation": max(c99 / compressive_strength, t99 / tensile_strength),
            p + "volume": float(w.sum()),
        })
    return out
