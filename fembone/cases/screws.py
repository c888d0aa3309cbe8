"""The ``screws:`` section: parse entries into :class:`~fembone.spine.screws.Screw` objects, embed them.

Keys (any mesh; generated vertebrae also get a placement helper)::

    screws:
      - {name: L, entry: [-14, -28, 3], target: [-5, 8, 3], diameter: 6.5, core_diameter: 4.8, material: titanium}
      - {name: R, entry: [...], direction: [...], length: 40, cannula_diameter: 1.6, augment_ml: 2.0}
      - {placement: bilateral_transpedicular, diameter: 6.5, length_fraction: 0.8}
      - {..., interface_stiffness: 500.0}      # N/mm per mm of screw: a loosened interface
      - {..., coupling: line}                  # default surface: see fembone.spine.screw_coupling

Units: mm, N, MPa; augmentation cement in mL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fembone.core import schema as S
from fembone.core.errors import InputError
from fembone.core.beam import BeamSection
from fembone.spine.screws import SCREW_MATERIALS, Screw


@dataclass
class ScrewsSpec:
    """Parsed ``screws:``: the screws and, per screw index, an optional interface stiffness (N/mm/mm)."""

    screws: list[Screw]
    interface: dict[int, float]
    path: str = "screws"


def parse_screws(spec, path: str, landmarks: dict | None) -> ScrewsSpec:
    """All ``screws:`` entries; names must be unique."""
    opts: dict[int, float] = {}
    screws: list[Screw] = []
    for i, entry in enumerate(S.seq(spec, path)):
        p = f"{path}[{i}]"
        S.mapping(entry, p)
        if "interface_stiffness" in entry:
            entry = dict(entry)
            opts[len(screws)] = S.number(entry.pop("interface_stiffness"), f"{p}.interface_stiffness", lo=0, lo_open=True)
        screws.extend(parse_screw(entry, p, landmarks))
    names = [s.name for s in screws]
    if len(set(names)) != len(names):
        raise InputError(f"screw names must be unique, got {names}", path)
    return ScrewsSpec(screws, opts, path)


def parse_screw(spec, path: str, landmarks: dict | None) -> list[Screw]:
    """Screws from one case entry (explicit, or a placement helper giving two)."""
    if "placement" in spec:
        return _placement(spec, path, landmarks)
    S.mapping(spec, path, allowed=("name", "entry", "target", "direction", "length", "diameter", "core_diameter",
                                    "cannula_diameter", "material", "protruding", "augment_ml", "coupling"), required=("entry",))
    name = S.string(spec.get("name", path), f"{path}.name")
    entry = np.array(S.vector(spec["entry"], f"{path}.entry"))
    if "target" in spec:
        if "direction" in spec or "length" in spec:
            raise InputError("give target, or direction and length, not both", path)
        tip = np.array(S.vector(spec["target"], f"{path}.target"))
    else:
        if "direction" not in spec or "length" not in spec:
            raise InputError("give target: [x, y, z], or direction: [..] and length", path)
        d = np.array(S.vector(spec["direction"], f"{path}.direction"))
        if np.linalg.norm(d) == 0:
            raise InputError("direction is a zero vector", f"{path}.direction")
        tip = entry + S.number(spec["length"], f"{path}.length", lo=0, lo_open=True) * d / np.linalg.norm(d)
    if np.linalg.norm(tip - entry) < 1e-6:
        raise InputError("entry and target coincide", path)
    return [_make_screw(spec, path, name, entry, tip)]


def _make_screw(spec, path, name, entry, tip) -> Screw:
    dia = S.number(spec.get("diameter", 6.5), f"{path}.diameter", lo=0, lo_open=True, hi=20)
    core = S.number(spec.get("core_diameter", 0.75 * dia), f"{path}.core_diameter", lo=0, lo_open=True, hi=dia)
    cann = S.number(spec.get("cannula_diameter", 0.0), f"{path}.cannula_diameter", lo=0)
    if cann >= core:
        raise InputError(f"cannula diameter {cann:g} must be smaller than the core diameter {core:g}", f"{path}.cannula_diameter")
    mat = spec.get("material", "titanium")
    if isinstance(mat, str):
        S.string(mat, f"{path}.material", choices=tuple(SCREW_MATERIALS))
        props = SCREW_MATERIALS[mat]
    else:
        S.mapping(mat, f"{path}.material", allowed=("E", "nu", "yield"), required=("E", "nu", "yield"))
        props = {k: S.number(mat[k], f"{path}.material.{k}", lo=0, lo_open=True) for k in ("E", "nu", "yield")}
        if props["nu"] >= 0.5:
            raise InputError(f"nu = {props['nu']} must be < 0.5", f"{path}.material.nu")
    return Screw(
        name, entry, tip, BeamSection(core, cann), props["E"], props["nu"], props["yield"],
        protruding=S.boolean(spec.get("protruding", False), f"{path}.protruding"),
        augment_ml=S.number(spec.get("augment_ml", 0.0), f"{path}.augment_ml", lo=0, hi=10),
        coupling=S.string(spec.get("coupling", "surface"), f"{path}.coupling", choices=("surface", "line")),
        thread_diameter=dia,
    )


def _placement(spec, path: str, landmarks: dict | None) -> list[Screw]:
    """Standard bilateral transpedicular screws from the vertebra's pedicle landmarks.

    Entry at the pedicle axis' exit on the posterior surface; direction along the pedicle axis
    (its medial convergence), optionally overridden by ``convergence_deg`` (medial angle in the
    axial plane) and ``sagittal_deg`` (cranial tilt); length = ``length_fraction`` of the
    distance from the entry to the anterior cortex (default 0.8).
    """
    S.mapping(spec, path, allowed=("placement", "diameter", "core_diameter", "cannula_diameter", "material",
                                    "length_fraction", "convergence_deg", "sagittal_deg", "augment_ml", "sides", "coupling"))
    S.string(spec["placement"], f"{path}.placement", choices=("bilateral_transpedicular",))
    if landmarks is None:
        raise InputError("placement needs a generated vertebra (its pedicle landmarks); give entry/target for an imported mesh", f"{path}.placement")
    frac = S.number(spec.get("length_fraction", 0.8), f"{path}.length_fraction", lo=0.1, hi=0.95)
    sides = spec.get("sides", ["left", "right"])
    out = []
    for side in S.seq(sides, f"{path}.sides"):
        S.string(side, f"{path}.sides", choices=("left", "right"))
        lm = landmarks[side]
        d = np.asarray(lm["direction"], float)
        if "convergence_deg" in spec or "sagittal_deg" in spec:
            conv = np.radians(S.number(spec.get("convergence_deg", np.degrees(np.arctan2(abs(d[0]), d[1]))), f"{path}.convergence_deg", lo=-45, hi=45))
            sag = np.radians(S.number(spec.get("sagittal_deg", 0.0), f"{path}.sagittal_deg", lo=-45, hi=45))
            medial = -np.sign(lm["entry"][0]) if lm["entry"][0] != 0 else 1.0
            d = np.array([medial * np.sin(conv) * np.cos(sag), np.cos(conv) * np.cos(sag), np.sin(sag)])
        entry = np.asarray(lm["entry"], float)
        length = frac * float(lm["length_to_anterior_cortex"])
        out.append(_make_screw(spec, path, f"{side}", entry, entry + length * d / np.linalg.norm(d)))
    return out


