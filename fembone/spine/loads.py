"""Load presets of a single-vertebra model: magnitudes and the sources behind them. Units: N, N mm.

``LOAD_PRESET_SOURCES`` is data for the case layer (which owns ``LOAD_PRESETS``): for each
preset the suggested magnitude, its unit and a citation text.  [V]: the number was read in the
source's abstract or page found by search; [M]: from memory, not confirmed.
"""

from __future__ import annotations

_MOMENT = (
    "7.5 N m pure moment, the usual moment of in-vitro flexibility tests: Wilke, Herkommer, Werner & "
    "Liebsch 2017 (PLoS One 12:e0177823), +-7.5 N m on 68 thoracic functional spine units [V]; "
    "Pimenta et al. 2012 (ScientificWorldJournal 2012:381814), 7.5 N m on L2-L3 [V]."
)

#: preset name -> {"magnitude", "unit", "source"}; the case layer cites these texts
LOAD_PRESET_SOURCES: dict[str, dict] = {
    "compression": {
        "magnitude": 800.0, "unit": "N",
        "source": "800 N axial compression: the axial load at which Tschirhart, Finkelstein & Whyne 2006 "
                  "(Ann Biomed Eng 34:494) report a posterior-wall bulge of 0.48 mm in a metastatic thoracic "
                  "motion-segment model [V, companion abstract JBJS Br 90-B Supp I]; a standing-like axial "
                  "load of single-vertebra FE models (500-800 N).",
    },
    "standing": {
        "magnitude": 800.0, "unit": "N",
        "source": "Same as compression: 800 N (Tschirhart et al. 2006 [V]).  Upright standing loads measured in "
                  "vivo are lower (telemetry on a vertebral body replacement, Rohlmann et al. 2014, values not "
                  "verified here), so 800 N is an upper standing-like value.",
    },
    "lifting": {
        "magnitude": 1650.0, "unit": "N", "previous_default": 2000.0,
        "source": "1650 N: the highest resultant force measured in vivo on a telemeterized vertebral body "
                  "replacement during activities of daily life, lifting a weight from the ground among them "
                  "(Rohlmann, Pohl, Bender, Graichen, Dymke, Schmidt & Bergmann 2014, 'Activities of everyday "
                  "life with high spinal loads', PLoS One 9:e98510 [V]).  The implant replaced L1 in 4 of the "
                  "5 patients (OrthoLoad database [V]), so this is the force through an L1 body level.  "
                  "Wilke et al. 1999 (Spine 24:755) measured intradiscal PRESSURE (MPa), not force, and "
                  "cannot be cited for a force; musculoskeletal models give higher compressive forces for "
                  "heavier lifts (e.g. 'Lumbar spinal loads vary with body height and weight', Med Eng Phys, "
                  "doi 10.1016/j.medengphy.2012.09.009 [V], an AnyBody model with three lifting tasks at T12-L5; "
                  "authors Han, Rohlmann, Zander & Taylor [M]; its values not verified here).",
    },
    "flexion": {"magnitude": 7500.0, "unit": "N mm", "source": _MOMENT},
    "extension": {"magnitude": 7500.0, "unit": "N mm", "source": _MOMENT},
    "lateral_bending": {"magnitude": 7500.0, "unit": "N mm", "source": _MOMENT},
    "axial_rotation": {"magnitude": 7500.0, "unit": "N mm", "source": _MOMENT},
    "follower": {
        "magnitude": 0.0, "unit": "N",
        "source": "In a one-vertebra model the 'follower' load is an axial compressive preload applied at "
                  "the superior reference point along the initial cranio-caudal axis.  With a single "
                  "vertebra there is no curved load path for it to follow, so it is an axial preload "
                  "(suggested key: axial_preload).  Follower loads of a few hundred newtons (Patwardhan et al. "
                  "2003 [M]) belong to multi-segment specimens.  The strength of a moment case is computed "
                  "with this preload held fixed (fembone.spine.risk.strength_with_preload).",
    },
}
