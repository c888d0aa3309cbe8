"""Parsing of the segment extension's keys (``segment``, ``lesions``, ``cement``, ``screws``, ``rods``).

The keys are listed in :mod:`fembone.cases.segment`.  ``segment.vertebrae`` names levels that
come from CT or from an imported surface instead of the generator
(:mod:`fembone.spine.segment_import`)::

    segment:
      levels: [L1, L2, L3]
      vertebrae:
        L2: {ct: {image: ..., labels: {...}, calibration: ..., law: ...}, half_discs: synthesise}
        # or L2: {surface: {file: L2.obj, units: m}}

What needs the generator's landmarks is refused on an imported level with one line naming
the key: placed screws, parametric lesions and cement (a CT lesion is given by its label,
``ct.labels.lesion``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fembone.cases.screws import _make_screw, parse_screw
from fembone.cases.vertebra_spec import (
    DISC,
    _cement,
    _lesion,
    _material_pair,
)
from fembone.core import schema as S
from fembone.core.errors import InputError
from fembone.core.materials import Isotropic
from fembone.spine.annulus import AnnulusFibres
from fembone.spine.bone import vertebra_materials
from fembone.spine.geometry.vertebra_dims import vertebra_landmarks
from fembone.spine.ligaments import NAMES as LIGAMENT_NAMES
from fembone.spine.ligaments import Ligaments
from fembone.spine.screws import SCREW_MATERIALS, Screw
from fembone.spine.segment import (
    SegmentGeometry,
    parse_levels,
    segment_dims,
)
from fembone.spine.segment_import import ImportSpec, parse_imported
from fembone.spine.segment_mechanics import FACET_MODELS, FacetModel, parse_prebend

HEAD_HEIGHT = 10.0  # mm from the lamina's back face to the rod axis (tulip head), stated


@dataclass
class RodSpec:
    diameter: float
    material: dict
    material_name: str
    sides: tuple[str, ...]
    levels: tuple[str, ...] | None
    path: str = "rods"
    prebend: dict = field(default_factory=dict)  # {radius: mm} or {angle_deg: deg}, + lordotic; {} straight


@dataclass
class SegmentSpec:
    geometry: SegmentGeometry
    facets: FacetModel | None
    materials: dict
    material_info: dict
    disc: dict
    index: str
    screws: list[tuple[Screw, str | None, str | None]] = field(default_factory=list)  # screw, level, side
    interface: dict[int, float] = field(default_factory=dict)
    rods: RodSpec | None = None
    lesions: list = field(default_factory=list)  # (level, LesionSpec)
    cement: list = field(default_factory=list)  # (level, CementSpec)
    imported: dict[str, ImportSpec] = field(default_factory=dict)  # level -> CT / surface (segment.vertebrae)
    fibres: AnnulusFibres | None = AnnulusFibres()  # annulus collagen (segment.disc.fibres; None: an isotropic annulus)
    ligaments: Ligaments | None = None  # tension-only ligament springs (segment.ligaments; None: none, the default)
    base: Path = Path(".")  # the case file's folder (imported files are relative to it)


def _parse_fibres(value, path: str) -> AnnulusFibres | None:
    """``true`` (the default fibres), ``false`` (an isotropic annulus) or ``{angle_deg: deg,
    E: MPa, volume_fraction: 0..1}`` (fembone.spine.annulus)."""
    if value is True:
        return AnnulusFibres()
    if value is False:
        return None
    m = S.mapping(value, path, allowed=("angle_deg", "E", "volume_fraction"))
    d = AnnulusFibres()
    return AnnulusFibres(S.number(m.get("angle_deg", d.angle_deg), f"{path}.angle_deg", lo=0.0, hi=90.0),
                         S.number(m.get("E", d.E), f"{path}.E", lo=0, lo_open=True),
                         S.number(m.get("volume_fraction", d.volume_fraction), f"{path}.volume_fraction", lo=0, hi=1, lo_open=True))


def _parse_ligaments(value, path: str) -> Ligaments | None:
    """``false`` (none, the default), ``true`` (all five at Pintar's stiffness) or ``{names: [ALL,
    PLL, LF, ISL, SSL], scale: 1.0}`` (fembone.spine.ligaments)."""
    if value is False or value is None:
        return None
    if value is True:
        return Ligaments()
    m = S.mapping(value, path, allowed=("names", "scale"))
    names = []
    for i, n in enumerate(S.seq(m.get("names", list(LIGAMENT_NAMES)), f"{path}.names")):
        key = S.string(n, f"{path}.names[{i}]").strip().upper()
        if key not in LIGAMENT_NAMES:
            raise InputError(f"unknown ligament {n!r} (expected one of: {', '.join(LIGAMENT_NAMES)})", f"{path}.names[{i}]")
        if key in names:
            raise InputError(f"ligament {key} is named twice", f"{path}.names[{i}]")
        names.append(key)
    if not names:
        raise InputError("name at least one ligament (or give ligaments: false)", f"{path}.names")
    return Ligaments(tuple(names), S.number(m.get("scale", 1.0), f"{path}.scale", lo=0, lo_open=True))


def _parse_facets(value, path: str) -> FacetModel | None:
    """``true`` (the default model), ``false`` (none) or ``{model: spring|contact, gap: mm (contact
    only), normal_stiffness: N/mm, shear_stiffness: N/mm, angle_deg: deg}``."""
    if value is True or value is None:
        return FacetModel()
    if value is False:
        return None
    S.mapping(value, path, allowed=("model", "gap", "normal_stiffness", "shear_stiffness", "angle_deg"))
    d = FacetModel()
    kind = S.string(value.get("model", d.model), f"{path}.model", choices=FACET_MODELS)
    if "gap" in value and kind != "contact":
        raise InputError("a gap needs the contact model (model: contact); springs act from zero", f"{path}.gap")
    return FacetModel(S.number(value.get("normal_stiffness", d.normal_stiffness), f"{path}.normal_stiffness", lo=0, lo_open=True),
                      S.number(value.get("shear_stiffness", d.shear_stiffness), f"{path}.shear_stiffness", lo=0),
                      S.number(value.get("angle_deg", d.angle_deg), f"{path}.angle_deg", lo=0, hi=90),
                      model=kind, gap=S.number(value.get("gap", d.gap), f"{path}.gap", lo=0, hi=5.0))


def _known_level(value, path: str, levels: tuple[str, ...]) -> str:
    """A level name of the segment."""
    lv = S.string(value, path).strip().upper()
    if lv not in levels:
        raise InputError(f"level {value} is not in the segment ({', '.join(levels)})", path)
    return lv


def _level_of(entry: dict, p: str, levels: tuple[str, ...], what: str) -> tuple[str, dict]:
    """The entry's ``level`` (required), checked against the segment, and the entry without it."""
    if "level" not in entry:
        raise InputError(f"a segment's {what} names its level (level: one of {', '.join(levels)})", p)
    return _known_level(entry["level"], f"{p}.level", levels), {k: v for k, v in entry.items() if k != "level"}


def parse_segment(raw: dict, source: str, base: Path) -> SegmentSpec:
    for k in ("vertebra", "boundary"):
        if k in raw:
            raise InputError(f"give either 'segment' or '{k}', not both (a segment holds its vertebrae and set-up)", k)
    seg = S.mapping(raw["segment"], "segment", allowed=("levels", "mesh_size", "order", "shell_thickness", "cortex_thickness",
                                                        "disc", "facets", "index", "vertebrae", "ligaments"),
                   required=("levels",))
    levels = parse_levels(seg["levels"], "segment.levels")
    order = S.integer(seg.get("order", 2), "segment.order")
    if order not in (1, 2):
        raise InputError(f"order must be 1 or 2, got {order}", "segment.order")
    shell = S.number(seg.get("shell_thickness", 1.0), "segment.shell_thickness", lo=0.2, hi=3.0)
    d = S.mapping(seg.get("disc", {}), "segment.disc", allowed=("height", "nucleus_fraction", "annulus", "nucleus", "fibres"))
    g = SegmentGeometry(levels, S.number(seg.get("mesh_size", 2.0), "segment.mesh_size", lo=0.5, hi=10.0), order, shell,
                        S.number(d.get("height", 2 * DISC["height"]), "segment.disc.height", lo=3.0, hi=20.0),
                        S.number(d.get("nucleus_fraction", DISC["nucleus_fraction"]), "segment.disc.nucleus_fraction", lo=0.2, hi=0.6))
    disc = {"annulus": _material_pair(d.get("annulus", {}), "segment.disc.annulus", DISC["annulus"]),
            "nucleus": _material_pair(d.get("nucleus", {}), "segment.disc.nucleus", DISC["nucleus"])}
    index = levels[len(levels) // 2]
    if "index" in seg:
        index = _known_level(seg["index"], "segment.index", levels)
    mats, info = vertebra_materials(raw.get("materials"), "materials")
    cortex = S.number(seg.get("cortex_thickness", 0.38), "segment.cortex_thickness", lo=0.05, hi=shell)
    if "E" not in ((raw.get("materials") or {}).get("cortical_shell") or {}):  # membrane stiffness E t (vertebra_spec)
        c = mats["cortical_shell"]
        mats["cortical_shell"] = Isotropic(name=c.name, E=c.E * cortex / shell, nu=c.nu)
        info.update(cortical_E_tissue=c.E, cortical_E_shell=c.E * cortex / shell, cortex_thickness=cortex)
    spec = SegmentSpec(g, _parse_facets(seg.get("facets", True), "segment.facets"), mats, info, disc, index,
                       fibres=_parse_fibres(d.get("fibres", True), "segment.disc.fibres"),
                       ligaments=_parse_ligaments(seg.get("ligaments", False), "segment.ligaments"))
    spec.imported = _parse_vertebrae(seg.get("vertebrae", {}), g)
    if spec.ligaments is not None and spec.imported:
        raise InputError(f"ligaments are attached by the generator's landmarks; {', '.join(spec.imported)} "
                         "come from segment.vertebrae", "segment.ligaments")
    spec.base = Path(base)
    for i, e in enumerate(S.seq(raw.get("lesions", []), "lesions")):
        lv, rest = _level_of(S.mapping(e, f"lesions[{i}]"), f"lesions[{i}]", levels, "lesion")
        _not_imported(spec, lv, f"lesions[{i}].level", "a parametric lesion is placed by the generator's landmarks; "
                      "give a CT lesion label (ct.labels.lesion)")
        spec.lesions.append((lv, _lesion(rest, f"lesions[{i}]")))
        spec.index = lv if "index" not in seg else spec.index
    for i, e in enumerate(S.seq(raw.get("cement", []), "cement")):
        lv, rest = _level_of(S.mapping(e, f"cement[{i}]"), f"cement[{i}]", levels, "cement")
        _not_imported(spec, lv, f"cement[{i}].level", "cement is placed by the generator's pedicle landmarks")
        spec.cement.append((lv, _cement(rest, f"cement[{i}]", vertebra_landmarks(segment_dims(lv)))))
    if "screws" in raw:
        _parse_screws(spec, raw["screws"], levels)
    if "rods" in raw:
        spec.rods = _parse_rods(raw["rods"], spec)
    return spec


def _parse_screws(spec: SegmentSpec, value, levels) -> None:
    """Placement entries name their levels (local landmarks moved into the segment frame at build); explicit
    entries give entry/target in the segment frame."""
    for i, entry in enumerate(S.seq(value, "screws")):
        p = f"screws[{i}]"
        S.mapping(entry, p)
        entry = dict(entry)
        k_if = S.number(entry.pop("interface_stiffness"), f"{p}.interface_stiffness", lo=0, lo_open=True) if "interface_stiffness" in entry else None
        if "placement" not in entry:
            lv = None
            if "level" in entry:
                lv, entry = _level_of(entry, p, levels, "screw")
            for s in parse_screw(entry, p, None):
                _add_screw(spec, s, lv, None, k_if)
            continue
        S.mapping(entry, p, allowed=("placement", "levels", "sides", "diameter", "core_diameter", "cannula_diameter", "material",
                                     "length_fraction", "head_height", "coupling", "augment_ml"), required=("placement", "levels"))
        S.string(entry["placement"], f"{p}.placement", choices=("bilateral_transpedicular",))
        lvs = S.seq(entry["levels"], f"{p}.levels")
        if not lvs:
            raise InputError("name at least one level", f"{p}.levels")
        frac = S.number(entry.get("length_fraction", 0.8), f"{p}.length_fraction", lo=0.1, hi=0.95)
        head = S.number(entry.get("head_height", HEAD_HEIGHT), f"{p}.head_height", lo=0, hi=30)
        sides = tuple(S.string(s, f"{p}.sides", choices=("left", "right")) for s in S.seq(entry.get("sides", ["left", "right"]), f"{p}.sides"))
        base = {k: v for k, v in entry.items() if k in ("diameter", "core_diameter", "cannula_diameter", "material", "coupling", "augment_ml")}
        for k, lv_raw in enumerate(lvs):
            lv = _known_level(lv_raw, f"{p}.levels[{k}]", levels)
            _not_imported(spec, lv, f"{p}.levels[{k}]", "placed screws need the generator's pedicle landmarks; give "
                          "explicit screws (entry, target in the segment frame)")
            lm = vertebra_landmarks(segment_dims(lv))
            for side in sides:
                d = np.asarray(lm[side]["direction"], float)
                entry_pt = np.asarray(lm[side]["entry"], float)
                tip = entry_pt + frac * float(lm[side]["length_to_anterior_cortex"]) * d
                s = _make_screw({**base, "protruding": head > 0}, p, f"{lv}_{side}", entry_pt - head * d, tip)
                _add_screw(spec, s, lv, side, k_if)
    names = [s.name for s, _, _ in spec.screws]
    if len(set(names)) != len(names):
        raise InputError(f"screw names must be unique, got {names}", "screws")


def _add_screw(spec: SegmentSpec, s: Screw, lv, side, k_if) -> None:
    if k_if is not None:
        spec.interface[len(spec.screws)] = k_if
    spec.screws.append((s, lv, side))


def _parse_rods(value, spec: SegmentSpec) -> RodSpec:
    S.mapping(value, "rods", allowed=("diameter", "material", "sides", "levels", "prebend"))
    dia = S.number(value.get("diameter", 5.5), "rods.diameter", lo=0, lo_open=True, hi=15)
    mat = value.get("material", "titanium")
    if isinstance(mat, str):
        S.string(mat, "rods.material", choices=tuple(SCREW_MATERIALS))
        props, mname = SCREW_MATERIALS[mat], mat
    else:
        S.mapping(mat, "rods.material", allowed=("E", "nu", "yield"), required=("E", "nu", "yield"))
        props, mname = {k: S.number(mat[k], f"rods.material.{k}", lo=0, lo_open=True) for k in ("E", "nu", "yield")}, "custom"
    sides = tuple(S.string(s, "rods.sides", choices=("left", "right")) for s in S.seq(value.get("sides", ["left", "right"]), "rods.sides"))
    levels = None
    if "levels" in value:
        levels = tuple(_known_level(lv, f"rods.levels[{k}]", spec.geometry.levels) for k, lv in enumerate(S.seq(value["levels"], "rods.levels")))
    if not spec.screws:
        raise InputError("rods join screw heads: give screws with placement: bilateral_transpedicular", "rods")
    for side in sides:
        have = [lv for _, lv, sd in spec.screws if sd == side]
        want = levels or tuple(have)
        missing = [lv for lv in want if lv not in have]
        if missing:
            raise InputError(f"the {side} rod cannot reach a screw head at {', '.join(missing)}: no {side} screw there "
                             f"(screw heads on the {side}: {', '.join(have) or 'none'})", "rods.levels" if levels else "rods")
        if len(want) < 2:
            raise InputError(f"the {side} rod needs two screw heads to join; the {side} side has {', '.join(want) or 'none'}", "rods")
    return RodSpec(dia, props, mname, sides, levels, prebend=parse_prebend(value.get("prebend"), "rods.prebend"))


def _parse_vertebrae(value, g: SegmentGeometry) -> dict[str, ImportSpec]:
    """``segment.vertebrae``: level -> ``{ct: ...}`` or ``{surface: ...}``; every level must be in ``levels``."""
    S.mapping(value, "segment.vertebrae")
    out = {}
    for name, entry in value.items():
        where = f"segment.vertebrae.{name}"
        lv = str(name).strip().upper()
        if lv not in g.levels:
            raise InputError(f"level {name} is not in the segment's levels ({', '.join(g.levels)})", where)
        out[lv] = parse_imported(entry, lv, where, g.order, g.mesh_size)
    return out


def _not_imported(spec: SegmentSpec, lv: str, path: str, why: str) -> None:
    if lv in spec.imported:
        raise InputError(f"{lv} comes from {spec.imported[lv].kind} (segment.vertebrae.{lv}): {why}", path)


