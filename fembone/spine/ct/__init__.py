"""Patient-specific vertebra models from CT: calibrated density -> element-integrated material map.

One entry point for the case layer, :func:`build_ct_model_inputs`, from a typed
:class:`CTSpec` (``parse_ct_spec`` reads the case file's ``ct:`` mapping)::

    ct:
      image: SCAN.nii.gz               # .nii/.nii.gz, .nrrd/.nhdr, .mha/.mhd, .vti, or a DICOM folder
      labels: {file: SEG.nii.gz, bone: [1, 2, 3, 4], cortical: [2, 4], posterior: [3, 4], caps: [5, 6]}
                                       # optional: trabecular: [..], lesion: [..]
      calibration: {kind: density}     # {kind: linear, slope: a, intercept: b} | {kind: phantom, rods: [[HU, mg_cc], ..]}
      law: kopperdahl2002              # or {trabecular: morgan2003, cortical: .., lesion: {E: 2, nu: 0.45}, cap: {E: 2500, nu: 0.3}}
      mesh_size: 1.5                   # mm; order: 2 (tet10) or 1
      # mesh: MESH.msh                 # an existing mesh in the image's world (RAS mm) frame: map only
      # lesion_detection: {threshold: 0.5}  # density-deficit lesion where no lesion label exists
      # nu: 0.3, e_min: 1.0, bins: 128, mapping: integrate | centroid,
      # frame: anatomical | image, anterior: -y, cranial: +z, shell_thickness: 1.0

Units: mm, MPa; densities in mg/cc K2HPO4-equivalent (laws in g/cm^3).  Modules: ``image``
(readers), ``calibration``, ``laws``, ``mapping``, ``lesions``, ``geometry``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fembone.core import schema as S
from fembone.core.errors import InputError
from fembone.core.mesh import Mesh

__all__ = ["LabelSpec", "LawSpec", "LesionDetectSpec", "CTSpec", "LesionInfo", "CTModelInputs",
           "parse_ct_spec", "build_ct_model_inputs", "CT_KEYS"]

CT_KEYS = ("image", "labels", "calibration", "law", "mesh_size", "order", "mesh", "nu", "e_min", "bins",
           "lesion_detection", "frame", "anterior", "cranial", "shell_thickness", "mapping")
LABEL_KEYS = ("file", "bone", "cortical", "trabecular", "posterior", "lesion", "caps")


@dataclass(frozen=True)
class LabelSpec:
    """Label map file and which label values are which tissue."""

    file: str
    bone: tuple[int, ...]
    cortical: tuple[int, ...] = ()
    trabecular: tuple[int, ...] = ()
    posterior: tuple[int, ...] = ()
    lesion: tuple[int, ...] = ()
    caps: tuple[int, ...] = ()


@dataclass(frozen=True)
class LawSpec:
    """Law per region: a name of :data:`fembone.spine.ct.laws.LAWS` or a case-file mapping."""

    trabecular: str | dict = "kopperdahl2002"
    cortical: str | dict | None = None  # None: the trabecular law
    lesion: str | dict | None = None  # None: lytic tissue, E 2 MPa, nu 0.45
    cap: dict | None = None  # None: PMMA, E 2500 MPa, nu 0.3


@dataclass(frozen=True)
class LesionDetectSpec:
    threshold: float = 0.5  # fraction of the median trabecular density
    smooth_mm: float = 1.0
    min_fraction: float = 0.005


@dataclass(frozen=True)
class CTSpec:
    """The ``ct:`` section, validated.  Paths are relative to the case file's folder."""

    image: str
    labels: LabelSpec | None = None
    calibration: dict | None = None  # raw mapping, see fembone.spine.ct.calibration
    law: LawSpec = field(default_factory=LawSpec)
    mesh_size: float = 1.5
    order: int = 2
    mesh: str | None = None
    nu: float = 0.3
    e_min: float = 1.0
    bins: int | None = None
    lesion_detection: LesionDetectSpec | None = None
    frame: str = "anatomical"
    anterior: str | None = None
    cranial: str | None = None
    shell_thickness: float = 1.0
    mapping: str = "integrate"
    where: str = "ct"


@dataclass
class LesionInfo:
    """A CT lesion: from labels or detected; ``elements``: lesion volume fraction >= 0.5."""

    source: str  # "labels" | "detected"
    volume_mm3: float
    body_volume_mm3: float
    elements: np.ndarray
    detection: dict | None = None

    @property
    def volume_fraction(self) -> float:
        return self.volume_mm3 / self.body_volume_mm3 if self.body_volume_mm3 > 0 else 0.0


@dataclass
class CTModelInputs:
    """What the case layer needs to build a model: mesh (model frame) and per-element material."""

    mesh: Mesh
    C: np.ndarray  # (ne, 6, 6) Voigt, MPa
    density: np.ndarray  # (ne,) mean calibrated K2HPO4-equivalent density, mg/cc
    modulus: np.ndarray  # (ne,) MPa
    poisson: np.ndarray  # (ne,)
    fractions: dict[str, np.ndarray]  # region -> (ne,) volume fraction (trabecular, cortical, lesion, cap)
    lesion: LesionInfo | None
    frame_to_world: np.ndarray  # (4, 4) model mm -> image world RAS mm
    calibration: object  # fembone.spine.ct.calibration.Calibration
    bin_id: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def cell_data(self) -> dict[str, np.ndarray]:
        """Per-element fields for the VTU (shown by ``fembone view`` before any solve)."""
        out = {"ct_density_mgcc": self.density, "ct_modulus_MPa": self.modulus,
               "ct_lesion_fraction": self.fractions["lesion"], "ct_cortical_fraction": self.fractions["cortical"]}
        if self.bin_id is not None:
            out["ct_material_bin"] = self.bin_id.astype(float)
        return out


# ----------------------------------------------------------------------------- parsing


def _label_list(value, path: str) -> tuple[int, ...]:
    if S.is_number(value) and float(value).is_integer():
        value = [value]
    items = S.seq(value, path)
    out = []
    for i, v in enumerate(items):
        out.append(S.integer(v, f"{path}[{i}]", lo=1))
    if len(set(out)) != len(out):
        raise InputError("a label is listed twice", path)
    return tuple(out)


def parse_ct_spec(data, where: str = "ct") -> CTSpec:
    """Validate the ``ct:`` mapping of a case file into a :class:`CTSpec` (errors name the key)."""
    from fembone.spine.ct.calibration import calibration_from_spec
    from fembone.spine.ct.laws import make_law

    S.mapping(data, where, allowed=CT_KEYS, required=("image",))
    image = S.string(data["image"], f"{where}.image")
    labels = None
    if "labels" in data:
        lp = f"{where}.labels"
        ld = S.mapping(data["labels"], lp, allowed=LABEL_KEYS, required=("file", "bone"))
        labels = LabelSpec(S.string(ld["file"], f"{lp}.file"),
                           **{k: _label_list(ld[k], f"{lp}.{k}") for k in LABEL_KEYS[1:] if k in ld})
        if not labels.bone:
            raise InputError("at least one bone label is needed", f"{lp}.bone")
        overlap = set(labels.caps) & (set(labels.bone) | set(labels.lesion))
        if overlap:
            raise InputError(f"label {sorted(overlap)[0]} is both a cap and bone", f"{lp}.caps")
    elif "mesh" not in data:
        raise InputError("give 'labels' (to build the mesh) or 'mesh' (an existing mesh to map)", where)
    calibration_from_spec(data.get("calibration"), f"{where}.calibration")  # validate now
    law = data.get("law", "kopperdahl2002")
    lp = f"{where}.law"
    if isinstance(law, dict) and set(law) <= {"trabecular", "cortical", "lesion", "cap"}:
        S.mapping(law, lp, required=("trabecular",))
        spec = LawSpec(**law)
    else:
        spec = LawSpec(trabecular=law)
    for key in ("trabecular", "cortical", "lesion", "cap"):
        v = getattr(spec, key)
        if v is not None:
            make_law(v, f"{lp}.{key}" if isinstance(data.get("law"), dict) and key in data["law"] else lp,
                     allow_constant=key in ("lesion", "cap", "cortical"))
    kw: dict = {}
    for key, lo, hi in (("mesh_size", 0.3, 10.0), ("nu", -0.99, 0.499), ("e_min", 1e-6, None), ("shell_thickness", 0.2, 5.0)):
        if key in data:
            kw[key] = S.number(data[key], f"{where}.{key}", lo=lo, hi=hi)
    if "order" in data:
        kw["order"] = S.integer(data["order"], f"{where}.order", lo=1)
        if kw["order"] not in (1, 2):
            raise InputError(f"order must be 1 or 2, got {kw['order']}", f"{where}.order")
    if "bins" in data and data["bins"] is not None:
        kw["bins"] = S.integer(data["bins"], f"{where}.bins", lo=1)
    if "mesh" in data:
        kw["mesh"] = S.string(data["mesh"], f"{where}.mesh")
    if "lesion_detection" in data:
        dp = f"{where}.lesion_detection"
        d = {} if data["lesion_detection"] is True else S.mapping(data["lesion_detection"], dp,
                                                                  allowed=("threshold", "smooth_mm", "min_fraction"))
        kw["lesion_detection"] = LesionDetectSpec(
            **{k: S.number(v, f"{dp}.{k}", lo=0.0) for k, v in d.items()})
        if labels is not None and labels.lesion:
            raise InputError("the labels name a lesion already; drop lesion_detection or labels.lesion", dp)
    for key, choices in (("frame", ("anatomical", "image")), ("mapping", ("integrate", "centroid"))):
        if key in data:
            kw[key] = S.string(data[key], f"{where}.{key}", choices=choices)
    for key in ("anterior", "cranial"):
        if key in data:
            kw[key] = S.string(data[key], f"{where}.{key}")
    return CTSpec(image=image, labels=labels, calibration=data.get("calibration"), law=spec, where=where, **kw)


# ----------------------------------------------------------------------------- building


def _laws(spec: CTSpec):
    from fembone.spine.ct.laws import LYTIC_TISSUE, PMMA_CAP, make_law
    from fembone.spine.ct.mapping import RegionLaws

    lp = f"{spec.where}.law"
    trab = make_law(spec.law.trabecular, f"{lp}.trabecular", allow_constant=False)
    cort = trab if spec.law.cortical is None else make_law(spec.law.cortical, f"{lp}.cortical")
    les = LYTIC_TISSUE if spec.law.lesion is None else make_law(spec.law.lesion, f"{lp}.lesion")
    cap = PMMA_CAP if spec.law.cap is None else make_law(spec.law.cap, f"{lp}.cap")
    return RegionLaws(trab, cort, les, cap, nu=spec.nu)


def build_ct_model_inputs(spec: CTSpec, base: Path | str = ".") -> CTModelInputs:
    """Read, calibrate, mesh (or read the mesh) and map: everything a CT vertebra model needs.

    Raises :class:`InputError` with one line naming the key and file for bad input (grids that
    differ, no bone label, fewer than two rods, all densities <= 0, a missing extra).
    """
    from fembone.spine.ct.calibration import calibration_from_spec
    from fembone.spine.ct.image import bounding_box, check_same_grid, read_image
    from fembone.spine.ct.mapping import CAP, CORT, LESION, RegionMap, map_materials

    t0 = time.perf_counter()
    base = Path(base)
    w = spec.where
    cal = calibration_from_spec(spec.calibration, f"{w}.calibration")
    laws = _laws(spec)
    img = read_image(base / spec.image, where=f"{w}.image")
    lab = None
    if spec.labels is not None:
        lab = read_image(base / spec.labels.file, labels=True, where=f"{w}.labels.file")
        check_same_grid(img, lab, f"{w}.labels.file")
        ls = spec.labels
        every = set(ls.bone) | set(ls.lesion) | set(ls.caps)
        interest = np.isin(lab.data, sorted(every))
        if not np.isin(lab.data, list(ls.bone)).any():
            present = ", ".join(str(v) for v in np.unique(lab.data)[:12])
            raise InputError(f"none of the bone labels {list(ls.bone)} occurs in {lab.source} (labels present: {present})",
                             f"{w}.labels.bone")
        lo, hi = bounding_box(interest, margin=4)
        img, lab = img.crop(lo, hi), lab.crop(lo, hi)
    density = img
    density.data = cal.apply(img.data)
    t1 = time.perf_counter()

    # -- masks on the image grid
    lesion_info = None
    lesion_img = None
    table: dict[int, int] = {}
    if lab is not None:
        ls = spec.labels
        L = lab.data
        bone = np.isin(L, list(ls.bone) + list(ls.lesion))
        vals = density.data[bone]
        if not (vals > 0).any():
            raise InputError(f"all calibrated densities in the bone labels are <= 0 mg/cc (range {vals.min():.4g} to "
                             f"{vals.max():.4g}); wrong calibration, or not a density image: {img.source}",
                             f"{w}.calibration")
        for v in ls.cortical:
            table[v] = CORT
        for v in ls.lesion:
            table[v] = LESION
        for v in ls.caps:
            table[v] = CAP
        body = bone & ~np.isin(L, list(ls.posterior))
        if ls.lesion:
            les = np.isin(L, list(ls.lesion))
            lesion_info = LesionInfo("labels", float(les.sum() * lab.voxel_volume), float(body.sum() * lab.voxel_volume),
                                     np.zeros(0, int))
        elif spec.lesion_detection is not None:
            from fembone.spine.ct.lesions import detect_lesion

            d = spec.lesion_detection
            if ls.trabecular:
                trab = np.isin(L, list(ls.trabecular)) & body
            elif ls.cortical:
                trab = body & ~np.isin(L, list(ls.cortical))
            else:
                trab = None
            res = detect_lesion(density, body, trab, d.threshold, d.smooth_mm, d.min_fraction, f"{w}.lesion_detection")
            if res.found:
                from fembone.spine.ct.image import Image

                lesion_img = Image(res.mask.astype(np.int8), density.affine, density.source)
            lesion_info = LesionInfo("detected", res.volume_mm3, res.body_volume_mm3, np.zeros(0, int), res.describe())
    elif not (density.data > 0).any():
        raise InputError(f"all calibrated densities are <= 0 mg/cc; wrong calibration, or not a density image: {img.source}",
                         f"{w}.calibration")

    # -- mesh
    t2 = time.perf_counter()
    if spec.mesh is not None:
        from fembone.core.mesh import read_mesh

        mesh = read_mesh(base / spec.mesh, order=spec.order)
        T = np.eye(4)
        geo_info = {"mesh": str(base / spec.mesh), "frame": {"kind": "mesh file, image world coordinates"}}
    else:
        from fembone.spine.ct.geometry import build_ct_mesh

        ctm = build_ct_mesh(lab, spec.labels, spec.mesh_size, spec.order, spec.shell_thickness, spec.frame,
                            spec.anterior, spec.cranial, w)
        mesh, T, geo_info = ctm.mesh, ctm.frame_to_world, ctm.info
    t3 = time.perf_counter()

    # -- material
    if lab is not None:
        ls = spec.labels
        regions = RegionMap(lab, table, lesion_img, np.isin(lab.data, list(ls.bone) + list(ls.lesion)))
    else:
        regions = RegionMap(None, {}, None)
    mm = map_materials(mesh, density, laws, regions, T, method=spec.mapping, e_min=spec.e_min, n_bins=spec.bins)
    if lesion_info is not None:
        lesion_info.elements = np.flatnonzero(mm.fractions["lesion"] >= 0.5)
        if len(lesion_info.elements):
            mesh.cell_sets["lesion"] = lesion_info.elements
    t4 = time.perf_counter()
    V = np.abs(mesh.volumes())
    bone_el = (mm.fractions["cap"] < 0.5)
    meta = {
        "image": img.source, "labels": lab.source if lab is not None else None,
        "image_axes": img.axis_codes(), "voxel_mm": [float(s) for s in img.spacing],
        "calibration": cal.describe(), "laws": laws.describe(), "mapping": mm.info,
        "geometry": geo_info, "elements": int(mesh.n_elements), "nodes": int(mesh.n_nodes),
        "modulus_range_MPa": [float(mm.modulus[bone_el].min()), float(mm.modulus[bone_el].max())] if bone_el.any() else None,
        "bone_volume_mm3": float(V[bone_el].sum()),
        "mean_bone_density_mgcc": float((mm.density[bone_el] * V[bone_el]).sum() / max(V[bone_el].sum(), 1e-300)),
        "lesion": None if lesion_info is None else {
            "source": lesion_info.source, "volume_mm3": lesion_info.volume_mm3,
            "volume_fraction": lesion_info.volume_fraction, "elements": int(len(lesion_info.elements)),
            "detection": lesion_info.detection},
        "timings_s": {"read_calibrate": round(t1 - t0, 3), "lesion": round(t2 - t1, 3), "mesh": round(t3 - t2, 3),
                      "map": round(t4 - t3, 3), "total": round(t4 - t0, 3)},
    }
    return CTModelInputs(mesh, mm.C, mm.density, mm.modulus, mm.poisson, mm.fractions, lesion_info, T, cal,
                         mm.bin_id, meta)
