"""Typed descriptions of the vertebra sections of a case file, and their parser.

Keys (all optional except that a vertebra model needs ``vertebra:`` or ``materials: {preset}``)::

    vertebra: {level: L1, mesh_size: 2.0, order: 2, shell_thickness: 1.0}
    materials: {preset: normal, trabecular: {density: 0.18, transverse_ratio: 0.5}}
    lesions:  [{type: lytic, volume_fraction: 0.30, location: central}]   # or center + radius/radii
    cement:   [{volume_ml: 4.0, access: bipedicular}]     # or unipedicular_left/right, tips: [[x,y,z]]
    boundary: {inferior: fixed, coupling: distributing}  # or inferior: potting {E, nu, thickness}
    screws:   [{placement: bilateral_transpedicular}]      # see fembone.cases.screws
    loadcases: {standing: [{preset: compression, force: 800}]}

Units: mm, N, MPa, N mm; cement in mL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fembone.core import schema as S
from fembone.core.errors import InputError
from fembone.core.materials import Isotropic, Material
from fembone.spine.bone import vertebra_materials
from fembone.spine.loads import LOAD_PRESET_SOURCES
from fembone.spine.geometry import vertebra_dims, vertebra_landmarks

#: lesion type -> material name of the vertebra material set
LESION_MATERIAL = {"lytic": "lesion_lytic", "blastic": "lesion_blastic", "mixed": "lesion_mixed"}
#: lesion types: tissue-filled ones take a material; ``void`` is a hole (Costa et al. 2020 modelled lytic lesions so)
LESION_TYPES = tuple(LESION_MATERIAL) + ("void",)
LOCATIONS = {
    "central": (0, 0, 0), "posterior": (0, -0.22, 0), "anterior": (0, 0.22, 0),
    "lateral_right": (0.22, 0, 0), "lateral": (0.22, 0, 0), "lateral_left": (-0.22, 0, 0),
}
ACCESS = ("bipedicular", "unipedicular_left", "unipedicular_right")
#: PMMA potting of vertebral specimens in experiments: E 2500 MPa, nu 0.3, >= 3 mm (field notes)
POTTING = {"E": 2500.0, "nu": 0.3, "thickness": 3.0}

# Load presets: (kind, default magnitude, direction); magnitudes and their sources are in
# fembone.spine.loads.LOAD_PRESET_SOURCES (compression 800 N: Tschirhart et al. 2006; lifting
# 1650 N: Rohlmann et al. 2014, PLoS One 9:e98510, in-vivo telemetry at L1; 7.5 N m moments:
# Wilke et al. 2017, Pimenta et al. 2012).
LOAD_PRESETS = {
    "compression": ("force", 800.0, (0.0, 0.0, -1.0)),
    "standing": ("force", 800.0, (0.0, 0.0, -1.0)),
    "lifting": ("force", LOAD_PRESET_SOURCES["lifting"]["magnitude"], (0.0, 0.0, -1.0)),
    "flexion": ("moment", 7500.0, (-1.0, 0.0, 0.0)),
    "extension": ("moment", 7500.0, (1.0, 0.0, 0.0)),
    "lateral_bending": ("moment", 7500.0, (0.0, 1.0, 0.0)),
    "axial_rotation": ("moment", 7500.0, (0.0, 0.0, 1.0)),
}


@dataclass(frozen=True)
class VertebraGeometry:
    """A generated vertebra: level (T12-L5), mesh size (mm), element order, shell thickness (mm).

    ``posterior``: keep the posterior elements (False: a vertebral-body specimen);
    ``regions``: ``conforming`` (lesions and cement become mesh regions whose faces follow
    every interface) or ``fraction`` (painted as volume fractions on one mesh).
    ``cortex_thickness``: the real cortical shell thickness (mm) that the meshed shell of
    ``shell_thickness`` stands for: the preset cortical modulus is scaled by
    cortex_thickness / shell_thickness so that the shell keeps its measured membrane
    stiffness E t (0.38 +- 0.06 mm: Eswaran et al. 2007, Comput Methods Appl Mech Eng 196:3025, micro-CT of 13 human vertebrae).
    """

    level: str
    mesh_size: float
    order: int
    shell_thickness: float
    posterior: bool = True
    regions: str = "conforming"
    cortex_thickness: float = 0.38


@dataclass(frozen=True)
class LesionSpec:
    type: str
    center: tuple[float, float, float] | None  # None: from ``location``
    location: str
    volume_fraction: float | None
    radii: tuple[float, float, float] | None
    axes: tuple | None
    breach: bool
    path: str


@dataclass(frozen=True)
class CementSpec:
    """One injection: vertebroplasty (cement interdigitates bone, fills lesions) or kyphoplasty
    (a balloon cavity of ``balloon_ml`` with a compacted-bone rim of ``rim_thickness`` mm, filled
    by a compact bolus without interdigitation)."""

    volume_ml: float
    access: str  # bipedicular | unipedicular_left | unipedicular_right | tips
    tips: tuple  # needle tips (mm), from the landmarks or given
    path: str
    technique: str = "vertebroplasty"
    balloon_ml: float = 0.0
    rim_thickness: float = 0.0
    #: an explicit cement region {center, radii} (mm) instead of a volume grown from the tips
    #: (e.g. an endplate-to-endplate column); volume_ml is then what it holds
    ellipsoid: tuple | None = None


#: PMMA caps of in-vitro tests: 3 mm, E 2500 MPa, nu 0.3 (Bonelab/OGO pipeline; field notes)
CAP = {"thickness": 3.0, "E": 2500.0, "nu": 0.3}
#: half intervertebral discs: height 5 mm (half a ~10 mm lumbar disc); annulus E 4.2 MPa,
#: nu 0.45; nucleus nearly incompressible (E 1 MPa, nu 0.499); nucleus 43 % of the disc area
DISC = {"height": 5.0, "nucleus_fraction": 0.43, "annulus": {"E": 4.2, "nu": 0.45}, "nucleus": {"E": 1.0, "nu": 0.499}}
SETUPS = ("discs", "in_vitro", "endplates")
#: set-up used when a case names none; see the README ("Set-ups") for why
DEFAULT_SETUP = "discs"


@dataclass(frozen=True)
class BoundarySpec:
    """How the vertebra is held and loaded.

    ``in_vitro``: PMMA caps on both endplates; inferior cap face fixed; superior cap face a
    rigid platen (reference point ``superior``) guided along z (parallel plates).
    ``discs``: half discs above and below, loaded through rigid plates; inferior plate fixed,
    superior plate free (reference point ``superior``).  ``endplates``: the endplates
    themselves held: inferior fixed (or on a potting layer), superior coupled (distributing
    or rigid) to ``superior``.
    """

    setup: str = DEFAULT_SETUP
    inferior: str = "fixed"  # fixed | potting (endplates)
    coupling: str = "distributing"  # distributing | rigid (endplates)
    potting: dict | None = None  # {E, nu, thickness} when inferior == potting
    cap: dict | None = None  # {thickness, E, nu} (in_vitro)
    disc: dict | None = None  # {height, nucleus_fraction, annulus: {E, nu}, nucleus: {E, nu}} (discs)
    given: bool = False  # whether the case had a boundary key


@dataclass(frozen=True)
class PresetLoad:
    """A spinal load preset on the superior reference point (``superior``).

    Force presets: a force (N), or a platen displacement (mm along z, negative = compression)
    when ``displacement`` is set.  Moment presets: a pure moment (N mm) with an optional axial
    compressive ``preload`` (N).  In a one-vertebra model a follower load (Patwardhan 2003) has
    no curvature to follow: it is exactly this axial preload through the reference point, so
    the case key ``follower`` is accepted as a synonym of ``preload``.
    """

    preset: str
    kind: str  # force | moment
    magnitude: float
    follower: float  # axial preload (N), moment presets
    direction: tuple[float, float, float]
    loadcase: str
    path: str
    displacement: float | None = None  # platen uz (mm), force presets under displacement control


@dataclass
class VertebraSpec:
    geometry: VertebraGeometry | None  # None: the case gives a mesh file with the vertebra groups
    materials: dict[str, Material]
    material_info: dict
    landmarks: dict | None
    lesions: list[LesionSpec] = field(default_factory=list)
    cement: list[CementSpec] = field(default_factory=list)
    boundary: BoundarySpec = field(default_factory=BoundarySpec)
    screws: object | None = None  # fembone.cases.screws.ScrewsSpec
    has_lesions_key: bool = False
    has_cement_key: bool = False
    own_constraints: bool = False  # the case defines its own supports


def is_vertebra(raw: dict) -> bool:
    return "vertebra" in raw or "ct" in raw or (isinstance(raw.get("materials"), dict) and "preset" in raw["materials"])


def parse_vertebra(raw: dict, source: str, base: Path, parse_screws) -> VertebraSpec:
    """The vertebra sections of a raw case (``parse_screws(value, path, landmarks)`` parses ``screws``)."""
    geometry = _geometry(raw["vertebra"], "vertebra") if "vertebra" in raw else None
    landmarks = vertebra_landmarks(vertebra_dims(geometry.level)) if geometry else None
    if is_vertebra(raw):
        mats, info = vertebra_materials(raw.get("materials"), "materials")
        given = raw.get("materials") or {}
        if geometry is not None and "E" not in (given.get("cortical_shell") or {}):
            # the meshed shell (shell_thickness) carries the measured shell's membrane stiffness E t
            c = mats["cortical_shell"]
            scale = geometry.cortex_thickness / geometry.shell_thickness
            mats["cortical_shell"] = Isotropic(name=c.name, E=c.E * scale, nu=c.nu)
            info["cortical_E_tissue"] = c.E
            info["cortical_E_shell"] = c.E * scale
            info["cortex_thickness"] = geometry.cortex_thickness
    else:
        mats, info = {}, {}
    spec = VertebraSpec(geometry, mats, info, landmarks, own_constraints=bool(raw.get("constraints")))
    for key in ("lesions", "cement"):
        if key in raw and not is_vertebra(raw):
            raise InputError(f"{key} need{'s' if key == 'cement' else ''} a vertebra model (vertebra: ... or materials: {{preset: ...}})", key)
    if "lesions" in raw:
        spec.has_lesions_key = True
        spec.lesions = [_lesion(e, f"lesions[{i}]") for i, e in enumerate(S.seq(raw["lesions"], "lesions"))]
    if "cement" in raw:
        spec.has_cement_key = True
        spec.cement = [_cement(e, f"cement[{i}]", landmarks) for i, e in enumerate(S.seq(raw["cement"], "cement"))]
    if "boundary" in raw:
        spec.boundary = _boundary(raw["boundary"], "boundary", geometry)
    else:  # generated vertebrae get the default set-up; CT with labelled caps is a test; else endplates
        caps = isinstance(raw.get("ct"), dict) and isinstance(raw["ct"].get("labels"), dict) and raw["ct"]["labels"].get("caps")
        setup = DEFAULT_SETUP if geometry else ("in_vitro" if caps else "endplates")
        spec.boundary = _boundary({"setup": setup}, "boundary", geometry)
    if "screws" in raw:
        spec.screws = parse_screws(raw["screws"], "screws", landmarks)
    return spec


def _geometry(spec, path: str) -> VertebraGeometry:
    S.mapping(spec, path, allowed=("level", "mesh_size", "order", "shell_thickness", "posterior", "regions", "cortex_thickness"))
    level = S.string(spec.get("level", "L1"), f"{path}.level")
    size = S.number(spec.get("mesh_size", 2.0), f"{path}.mesh_size", lo=0.5, hi=10.0)
    order = S.integer(spec.get("order", 2), f"{path}.order")
    if order not in (1, 2):
        raise InputError(f"order must be 1 or 2, got {order}", f"{path}.order")
    shell = S.number(spec.get("shell_thickness", 1.0), f"{path}.shell_thickness", lo=0.2, hi=3.0)
    try:
        vertebra_dims(level)
    except InputError as exc:
        raise InputError(exc.message, f"{path}.level") from None
    posterior = S.boolean(spec.get("posterior", True), f"{path}.posterior")
    regions = S.string(spec.get("regions", "conforming"), f"{path}.regions", choices=("conforming", "fraction"))
    cortex = S.number(spec.get("cortex_thickness", 0.38), f"{path}.cortex_thickness", lo=0.05, hi=shell)
    return VertebraGeometry(level, size, order, shell, posterior, regions, cortex)


def _lesion(entry, p: str) -> LesionSpec:
    S.mapping(entry, p, allowed=("type", "volume_fraction", "location", "center", "radius", "radii", "axes", "breach"), required=("type",))
    kind = S.string(entry["type"], f"{p}.type", choices=LESION_TYPES)
    breach = S.boolean(entry.get("breach", False), f"{p}.breach")
    center = tuple(S.vector(entry["center"], f"{p}.center")) if "center" in entry else None
    location = "central" if center is not None else S.string(entry.get("location", "central"), f"{p}.location", choices=tuple(LOCATIONS))
    axes = None
    if "axes" in entry:
        axes = tuple(tuple(S.vector(v, f"{p}.axes[{k}]")) for k, v in enumerate(S.seq(entry["axes"], f"{p}.axes")))
        if len(axes) != 3:
            raise InputError("expected 3 axis vectors", f"{p}.axes")
    vf, radii = None, None
    if "volume_fraction" in entry:
        if "radius" in entry or "radii" in entry:
            raise InputError("give volume_fraction or radius/radii, not both", p)
        vf = S.number(entry["volume_fraction"], f"{p}.volume_fraction", lo=0, hi=0.95, lo_open=True)
    elif "radii" in entry:
        radii = tuple(S.vector(entry["radii"], f"{p}.radii"))
        if np.any(np.asarray(radii) <= 0):
            raise InputError("radii must be positive", f"{p}.radii")
    elif "radius" in entry:
        radii = (S.number(entry["radius"], f"{p}.radius", lo=0, lo_open=True),) * 3
    else:
        raise InputError("give volume_fraction, radius or radii", p)
    return LesionSpec(kind, center, location, vf, radii, axes, breach, p)


def needle_tips(landmarks: dict, access: str) -> np.ndarray:
    """Needle-tip positions (mm) for transpedicular access from the vertebra's landmarks.

    Bipedicular: each tip on its pedicle axis at 75 % of the way from the entry point to the
    anterior cortex (anterior half of the body).  Unipedicular: one oblique needle whose tip
    reaches the midline in the anterior half of the body.
    """
    if access == "bipedicular":
        return np.array([
            landmarks[s]["entry"] + 0.75 * landmarks[s]["length_to_anterior_cortex"] * landmarks[s]["direction"]
            for s in ("left", "right")
        ])
    side = "left" if access.endswith("left") else "right"
    y_tip = landmarks["body_anterior_y"] - 0.35 * landmarks["body_depth"]
    return np.array([[0.0, y_tip, float(landmarks[side]["isthmus"][2])]])


#: compacted-bone rim around a kyphoplasty balloon cavity (mm); see fembone.spine.cement
KYPHO_RIM = 1.5


def _cement(entry, p: str, landmarks: dict | None) -> CementSpec:
    S.mapping(entry, p, allowed=("volume_ml", "access", "tips", "technique", "balloon_ml", "rim_thickness", "ellipsoid"))
    if "ellipsoid" in entry:
        e = S.mapping(entry["ellipsoid"], f"{p}.ellipsoid", allowed=("center", "radii"), required=("center", "radii"))
        center, radii = tuple(S.vector(e["center"], f"{p}.ellipsoid.center")), tuple(S.vector(e["radii"], f"{p}.ellipsoid.radii"))
        if min(radii) <= 0:
            raise InputError("radii must be positive", f"{p}.ellipsoid.radii")
        for k in ("volume_ml", "access", "tips", "technique"):
            if k in entry:
                raise InputError(f"give ellipsoid or {k}, not both (an explicit region holds what it holds)", f"{p}.{k}")
        return CementSpec(0.0, "ellipsoid", (center,), p, ellipsoid=(center, radii))
    if "volume_ml" not in entry:
        raise InputError("missing key 'volume_ml'", p)
    vml = S.number(entry["volume_ml"], f"{p}.volume_ml", lo=0, lo_open=True, hi=50)
    technique = S.string(entry.get("technique", "vertebroplasty"), f"{p}.technique", choices=("vertebroplasty", "kyphoplasty"))
    balloon, rim = 0.0, 0.0
    if technique == "kyphoplasty":
        balloon = S.number(entry.get("balloon_ml", vml), f"{p}.balloon_ml", lo=0, lo_open=True, hi=20)
        rim = S.number(entry.get("rim_thickness", KYPHO_RIM), f"{p}.rim_thickness", lo=0, hi=5)
    else:
        for k in ("balloon_ml", "rim_thickness"):
            if k in entry:
                raise InputError(f"{k} is for technique: kyphoplasty", f"{p}.{k}")
    if "tips" in entry:
        tips = np.array([S.vector(t, f"{p}.tips[{k}]") for k, t in enumerate(S.seq(entry["tips"], f"{p}.tips"))])
        if len(tips) == 0:
            raise InputError("give at least one needle tip", f"{p}.tips")
        access = "tips"
    else:
        access = S.string(entry.get("access", "bipedicular"), f"{p}.access", choices=ACCESS)
        if landmarks is None:
            raise InputError("access needs a generated vertebra's landmarks; give tips: [[x, y, z], ...] for an imported mesh", f"{p}.access")
        tips = needle_tips(landmarks, access)
    return CementSpec(vml, access, tuple(map(tuple, np.asarray(tips, float))), p, technique, balloon, rim)


def _material_pair(spec, path: str, default: dict, nu_hi: float = 0.4999) -> dict:
    S.mapping(spec, path, allowed=("E", "nu"))
    return {"E": S.number(spec.get("E", default["E"]), f"{path}.E", lo=0, lo_open=True),
            "nu": S.number(spec.get("nu", default["nu"]), f"{path}.nu", lo=-0.99, hi=nu_hi)}


def _boundary(spec, path: str, geometry: VertebraGeometry | None = None) -> BoundarySpec:
    S.mapping(spec, path, allowed=("setup", "inferior", "coupling", "potting", "cap", "disc"))
    legacy = any(k in spec for k in ("inferior", "coupling", "potting"))  # keys of fembone <= 0.1
    setup = S.string(spec.get("setup", "endplates" if legacy else DEFAULT_SETUP), f"{path}.setup", choices=SETUPS)
    if setup != "endplates":
        for k in ("inferior", "coupling", "potting"):
            if k in spec:
                raise InputError(f"'{k}' belongs to setup: endplates (this case has setup: {setup})", f"{path}.{k}")
    if "cap" in spec and setup != "in_vitro":
        raise InputError("'cap' belongs to setup: in_vitro", f"{path}.cap")
    if "disc" in spec and setup != "discs":
        raise InputError("'disc' belongs to setup: discs", f"{path}.disc")
    if setup == "in_vitro":
        c = S.mapping(spec.get("cap", {}), f"{path}.cap", allowed=tuple(CAP))
        cap = {"thickness": S.number(c.get("thickness", CAP["thickness"]), f"{path}.cap.thickness", lo=0, lo_open=True, hi=30),
               **_material_pair({k: v for k, v in c.items() if k != "thickness"}, f"{path}.cap", CAP, nu_hi=0.49)}
        return BoundarySpec(setup, cap=cap, given=True)
    if setup == "discs":
        d = S.mapping(spec.get("disc", {}), f"{path}.disc", allowed=tuple(DISC))
        disc = {"height": S.number(d.get("height", DISC["height"]), f"{path}.disc.height", lo=0.5, hi=20),
                "nucleus_fraction": S.number(d.get("nucleus_fraction", DISC["nucleus_fraction"]), f"{path}.disc.nucleus_fraction", lo=0.05, hi=0.8),
                "annulus": _material_pair(d.get("annulus", {}), f"{path}.disc.annulus", DISC["annulus"]),
                "nucleus": _material_pair(d.get("nucleus", {}), f"{path}.disc.nucleus", DISC["nucleus"])}
        return BoundarySpec(setup, disc=disc, given=True)
    inferior = S.string(spec.get("inferior", "fixed"), f"{path}.inferior", choices=("fixed", "potting"))
    coupling = S.string(spec.get("coupling", "distributing"), f"{path}.coupling", choices=("distributing", "rigid"))
    if "potting" in spec and inferior != "potting":
        raise InputError("potting properties need inferior: potting", f"{path}.potting")
    potting = None
    if inferior == "potting":
        p = S.mapping(spec.get("potting", {}), f"{path}.potting", allowed=tuple(POTTING))
        potting = {
            "E": S.number(p.get("E", POTTING["E"]), f"{path}.potting.E", lo=0, lo_open=True),
            "nu": S.number(p.get("nu", POTTING["nu"]), f"{path}.potting.nu", lo=-0.99, hi=0.49),
            "thickness": S.number(p.get("thickness", POTTING["thickness"]), f"{path}.potting.thickness", lo=0, lo_open=True),
        }
    return BoundarySpec("endplates", inferior, coupling, potting, given=True)


def parse_preset_load(entry: dict, path: str, spec: VertebraSpec | None) -> PresetLoad:
    S.mapping(entry, path, allowed=("preset", "force", "moment", "follower", "preload", "displacement"), required=("preset",))
    name = S.string(entry["preset"], f"{path}.preset", choices=tuple(LOAD_PRESETS))
    if spec is None:
        raise InputError("load presets need a vertebra model with its superior-endplate reference point", path)
    kind, default, direction = LOAD_PRESETS[name]
    if kind == "force" and "moment" in entry:
        raise InputError(f"preset '{name}' takes a force (N), not a moment", f"{path}.moment")
    if kind == "moment" and "force" in entry:
        raise InputError(f"preset '{name}' takes a moment (N mm) and an optional follower (N), not a force", f"{path}.force")
    mag = S.number(entry.get(kind, default), f"{path}.{kind}", lo=0)
    if "follower" in entry and "preload" in entry:
        raise InputError("give preload or follower (the same axial preload), not both", f"{path}.follower")
    pkey = "preload" if "preload" in entry else "follower"
    preload = S.number(entry.get(pkey, 0.0), f"{path}.{pkey}", lo=0)
    if preload and kind == "force":
        raise InputError(f"preset '{name}' is itself an axial force; {pkey} is for moment presets", f"{path}.{pkey}")
    disp = None
    if "displacement" in entry:
        if kind != "force":
            raise InputError(f"displacement control is for force presets, not '{name}'", f"{path}.displacement")
        if kind in entry:
            raise InputError(f"give {kind} or displacement, not both", f"{path}.displacement")
        disp = S.number(entry["displacement"], f"{path}.displacement")
        if disp * direction[2] <= 0:
            raise InputError(f"displacement {disp:g} mm must point along the preset ({'negative' if direction[2] < 0 else 'positive'} z, mm)", f"{path}.displacement")
    lc = path.split(".", 1)[1].split("[")[0] if "." in path else path
    return PresetLoad(name, kind, mag, preload, direction, lc, path, disp)
