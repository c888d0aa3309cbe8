"""Segment levels from CT or from an imported closed surface, with half discs on their real endplates. Units: mm.

A segment level named in ``segment.vertebrae`` is not generated but built here, in the
vertebra frame of the generator (origin at the volume centroid of the meshed body, +x right,
+y anterior, +z cranial), with the generator's ``discs`` groups, so that
:func:`fembone.spine.segment.stack` stacks it and ties it like a generated level:

* **CT** (``ct:``, the keys of the case file's ``ct:`` section, :mod:`fembone.spine.ct`): the CT
  pipeline meshes the bone with its half discs and maps the calibrated density to a stiffness
  per element.  The half discs are the pipeline's cap regions: bonded to the real endplate,
  with a flat outer face normal to z.  ``half_discs: labels`` takes the labelled caps as they
  are (PMMA potting of an in-vitro test: its thickness, often wedge-shaped, is the level's half
  disc); ``half_discs: synthesise`` (default) drops cap labels and makes the regions in voxel
  space (:func:`fembone.spine.ct.synth_caps.synthesise_caps`): each column of the body's
  footprint along the cranial axis is filled from the endplate to a plane half a disc height
  beyond the endplate centre (raised to clear a higher rim).  Simplification: the real
  endplates are tilted and curved against that plane, so the half disc is a wedge, thicker at
  the lower side; the rim of the block is rounded by the surface smoothing.  Quadrature
  points of a bone element that fall in disc voxels take the annulus modulus (the cap law is
  replaced by it); the bone elements keep the CT case's mapped stiffness.
* **surface** (``surface: {file, units, anterior, cranial}``): the closed surface is read and
  put in its anatomical frame (:mod:`fembone.spine.geometry.surface`), voxelised (ray
  parity along z, pitch ``min(1, mesh_size / 2)`` mm), split into body and posterior
  elements at the frame's body/arch plane, given synthesised half discs as above and meshed
  by the CT mesher (cortical shell: the body voxels within ``shell_thickness`` of the
  outside).  Materials: the segment's (cortical shell, trabecular, posterior elements).
  Simplification: the surface is resampled on the voxel grid (its detail below ~1 voxel is
  smoothed out).

Each half disc is split like the generator's: the nucleus is an elliptic cylinder centred on
the flat face's area centroid, with the face's aspect (ratio of its radii of gyration along x
and y), covering ``nucleus_fraction`` of the flat face's area; elements are nucleus when their
centroid lies inside it (a ragged boundary; the nucleus volume share is reported).  The
flat outer faces are ``disc_superior_face`` / ``disc_inferior_face``; their outlines follow
the real endplate and differ from the neighbour's, so the mid-disc mortar tie takes the
smaller face as slave (:func:`fembone.spine.segment.tie_discs`).

Facet springs of an imported level (:func:`facet_view`): the patches are found on its own
posterior elements, at the lateral (|x| >= 20 % of the body width) top or bottom extreme, as
the articular process tips (the generator's lamina landmarks do not exist on real bone).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from fembone.core import schema as S
from fembone.core.errors import InputError
from fembone.core.mesh import Mesh

__all__ = ["ImportSpec", "ImportedLevel", "build_imported", "facet_view", "parse_imported", "split_nucleus", "voxelise"]

KINDS = ("ct", "surface")
SURFACE_KEYS = ("file", "units", "anterior", "cranial")


@dataclass(frozen=True)
class ImportSpec:
    """One imported level: ``kind`` ``"ct"`` (``ct``: a CTSpec) or ``"surface"`` (``surface``: file, units, axes)."""

    level: str
    kind: str
    ct: object | None = None  # fembone.spine.ct.CTSpec
    surface: dict | None = None
    half_discs: str = "synthesise"
    where: str = "segment.vertebrae"


@dataclass
class ImportedLevel:
    """The level's mesh in its vertebra frame with the ``discs`` groups, and what the CT mapped."""

    mesh: Mesh
    faces: tuple[float, float]  # z (mm) of disc_superior_face and disc_inferior_face
    C: np.ndarray | None = None  # (ne, 6, 6) mapped stiffness (CT), MPa
    mapped: np.ndarray | None = None  # elements whose stiffness is the mapped one (the bone)
    cell_data: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    cap_fraction: np.ndarray | None = None  # (ne,) volume share of disc (cap) voxels in each element (CT)


def parse_imported(value, level: str, where: str, order: int, mesh_size: float) -> ImportSpec:
    """``segment.vertebrae.<level>``: ``{ct: {...}}`` or ``{surface: {...}}``, optional ``half_discs``."""
    from fembone.spine.ct import parse_ct_spec

    S.mapping(value, where, allowed=KINDS + ("half_discs",))
    kinds = [k for k in KINDS if k in value]
    if len(kinds) != 1:
        raise InputError("give one of ct: {...} or surface: {file: ...}", where)
    kind = kinds[0]
    hd = S.string(value.get("half_discs", "synthesise"), f"{where}.half_discs", choices=("synthesise", "labels"))
    if kind == "surface":
        p = f"{where}.surface"
        d = S.mapping(value["surface"], p, allowed=SURFACE_KEYS, required=("file",))
        if hd != "synthesise":
            raise InputError("a surface has no labelled caps; its half discs are synthesised", f"{where}.half_discs")
        from fembone.spine.geometry.surface_frame import parse_axis

        for k in ("anterior", "cranial"):
            if d.get(k) is not None:
                parse_axis(d[k], f"{p}.{k}")
        surf = {"file": S.string(d["file"], f"{p}.file"), "units": S.string(d.get("units", "mm"), f"{p}.units", choices=("mm", "m")),
                "anterior": d.get("anterior"), "cranial": d.get("cranial"), "where": p}
        return ImportSpec(level, kind, surface=surf, half_discs=hd, where=where)
    p = f"{where}.ct"
    raw = S.mapping(value["ct"], p)
    if "mesh" in raw:
        raise InputError("a segment level is meshed from its labels (with its half discs), not read from a mesh", f"{p}.mesh")
    if "labels" not in raw:
        raise InputError("a segment level from CT needs labels (bone, posterior) to be meshed", f"{p}.labels")
    if "order" in raw and raw["order"] != order:
        raise InputError(f"every level of a segment has the segment's element order ({order}), got {raw['order']!r}", f"{p}.order")
    ct = parse_ct_spec({**raw, "order": order, "mesh_size": raw.get("mesh_size", mesh_size)}, where=p)
    if hd == "labels" and not ct.labels.caps:
        raise InputError("half_discs: labels needs cap labels (labels.caps); or use half_discs: synthesise", f"{where}.half_discs")
    return ImportSpec(level, kind, ct=ct, half_discs=hd, where=where)


# ------------------------------------------------------------------------------------ building
def build_imported(spec: ImportSpec, g, base: Path | str, annulus: dict, cache: Path | None = None) -> ImportedLevel:
    """Mesh (and for CT, map) one imported level with its half discs; ``g``: the SegmentGeometry,
    ``annulus``: ``{E, nu}`` of the annulus (the law of CT quadrature points in disc voxels)."""
    t0 = time.perf_counter()
    if spec.kind == "ct":
        out = _build_ct(spec, g, Path(base), annulus, cache)
    else:
        out = _build_surface(spec, g, Path(base))
    _as_discs(out, g.nucleus_fraction, spec.where)
    out.info["build_s"] = round(time.perf_counter() - t0, 3)
    return out


def _build_ct(spec: ImportSpec, g, base: Path, annulus: dict, cache: Path | None) -> ImportedLevel:
    from fembone.spine.ct import build_ct_model_inputs
    from fembone.spine.ct.image import read_image

    ct = spec.ct
    ct = dataclasses.replace(ct, law=dataclasses.replace(ct.law, cap={"E": float(annulus["E"]), "nu": float(annulus["nu"])}))
    info: dict = {"kind": "ct", "half_discs": spec.half_discs}
    if spec.half_discs == "synthesise":
        from fembone.spine.ct.synth_caps import synthesise_caps

        lab = read_image(base / ct.labels.file, labels=True, where=f"{ct.where}.labels.file")
        new, caps, info["synthesised"] = synthesise_caps(lab, ct.labels, 0.5 * g.disc_height, ct.frame, ct.anterior, ct.cranial,
                                                         ct.where)
        path = _write_labels(new, cache)
        ct = dataclasses.replace(ct, labels=dataclasses.replace(ct.labels, file=str(path), caps=caps))
    inputs = build_ct_model_inputs(ct, base)
    mesh = inputs.mesh
    info["ct"] = {k: v for k, v in inputs.meta.items() if isinstance(v, (str, int, float, dict, list))}
    mapped = np.flatnonzero(inputs.fractions["cap"] < 1.0)
    cap_el = np.concatenate([mesh.cell_sets.get(k, np.zeros(0, int)) for k in ("cap_superior", "cap_inferior")])
    mapped = np.setdiff1d(mapped, cap_el)
    return ImportedLevel(mesh, (0.0, 0.0), inputs.C, mapped, dict(inputs.cell_data), info, inputs.fractions["cap"])


def _write_labels(img, cache: Path | None) -> Path:
    """The synthesised labels as a NIfTI file in the mesh cache (keyed by content)."""
    import nibabel as nib

    from fembone.spine.segment import cache_dir

    key = hashlib.sha1(img.data.tobytes() + img.affine.tobytes()).hexdigest()[:12]
    out = (cache or cache_dir()) / f"seg_labels_{key}.nii.gz"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(img.data.astype(np.int16), img.affine), str(out))
    return out


def _build_surface(spec: ImportSpec, g, base: Path) -> ImportedLevel:
    from fembone.spine.ct import LabelSpec
    from fembone.spine.ct.geometry import build_ct_mesh
    from fembone.spine.ct.synth_caps import synthesise_caps
    from fembone.spine.geometry.surface import check_surface, detect_frame, read_surface

    s = spec.surface
    src = str(base / s["file"])
    P, F = read_surface(base / s["file"], s["units"])
    F = check_surface(P, F, src)
    fr = detect_frame(P, F, s["anterior"], s["cranial"], src)
    Q = fr.to_frame(P)
    pitch = float(min(1.0, 0.5 * g.mesh_size))
    lab = voxelise(Q, F, pitch, margin=(3 * pitch, 0.5 * g.disc_height + 3 * pitch))
    y = lab.index_to_world(np.argwhere(lab.data > 0))[:, 1]
    idx = np.argwhere(lab.data > 0)
    post = idx[y < fr.y_cut]
    lab.data[tuple(post.T)] = 3
    groups = LabelSpec(src, bone=(1, 3), posterior=(3,))
    new, caps, syn = synthesise_caps(lab, groups, 0.5 * g.disc_height, "image", where=s["where"])
    ctm = build_ct_mesh(new, dataclasses.replace(groups, caps=caps), g.mesh_size, g.order, g.shell_thickness, "image",
                        where=s["where"])
    info = {"kind": "surface", "file": src, "voxel_mm": pitch, "frame": fr.detected, "synthesised": syn, "geometry": ctm.info}
    return ImportedLevel(ctm.mesh, (0.0, 0.0), None, None, {}, info)


def voxelise(Q: np.ndarray, F: np.ndarray, pitch: float, margin: tuple[float, float] = (3.0, 3.0)):
    """Label image (1 inside the closed surface (Q, F), 0 outside) on a grid of ``pitch`` mm, world = Q's frame.

    Inside test by ray parity along +z through every voxel column (vectorised): the crossings of
    the column's axis with the triangles below a voxel centre are counted.  ``margin``: empty
    space (mm) around the surface in x, y and in z.
    """
    from fembone.spine.ct.image import Image

    lo = Q.min(axis=0) - np.array([margin[0], margin[0], margin[1]])
    hi = Q.max(axis=0) + np.array([margin[0], margin[0], margin[1]])
    n = np.ceil((hi - lo) / pitch).astype(int) + 1
    # column axes off the vertex lattice by an irrational fraction (no ray through an edge in practice)
    x0 = lo[:2] + pitch * np.array([0.5 + 1e-3 * np.sqrt(2.0), 0.5 + 1e-3 * np.sqrt(3.0)])
    lo[2] += 1e-3 * np.sqrt(5.0) * pitch  # voxel centres off the vertex planes too
    T = Q[F]
    a = (T[:, :, :2] - x0) / pitch  # triangle corners in column units
    i0 = np.ceil(a[..., 0].min(axis=1)).astype(int)
    i1 = np.floor(a[..., 0].max(axis=1)).astype(int)
    j0 = np.ceil(a[..., 1].min(axis=1)).astype(int)
    j1 = np.floor(a[..., 1].max(axis=1)).astype(int)
    ni, nj = np.maximum(i1 - i0 + 1, 0), np.maximum(j1 - j0 + 1, 0)
    cnt = ni * nj
    tri = np.repeat(np.arange(len(F)), cnt)
    r = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ci = i0[tri] + r % ni[tri]
    cj = j0[tri] + r // ni[tri]
    p = np.column_stack([ci, cj]).astype(float)
    A0, A1, A2 = a[tri, 0], a[tri, 1], a[tri, 2]
    d = (A1[:, 0] - A0[:, 0]) * (A2[:, 1] - A0[:, 1]) - (A2[:, 0] - A0[:, 0]) * (A1[:, 1] - A0[:, 1])
    ok = np.abs(d) > 1e-14
    l1 = ((p[:, 0] - A0[:, 0]) * (A2[:, 1] - A0[:, 1]) - (A2[:, 0] - A0[:, 0]) * (p[:, 1] - A0[:, 1])) / np.where(ok, d, 1.0)
    l2 = ((A1[:, 0] - A0[:, 0]) * (p[:, 1] - A0[:, 1]) - (p[:, 0] - A0[:, 0]) * (A1[:, 1] - A0[:, 1])) / np.where(ok, d, 1.0)
    hit = ok & (l1 >= 0) & (l2 >= 0) & (l1 + l2 <= 1)
    z = (1 - l1 - l2) * T[tri, 0, 2] + l1 * T[tri, 1, 2] + l2 * T[tri, 2, 2]
    col = ci[hit] * n[1] + cj[hit]
    zk = (z[hit] - lo[2]) / pitch  # crossing height in voxel units
    span = float(n[2] + 2)
    key = np.sort(col * span + zk)
    grid = np.arange(n[0] * n[1])[:, None] * span + np.arange(n[2])[None, :]  # voxel centres at integer k
    below = np.searchsorted(key, grid.ravel()) - np.repeat(np.searchsorted(key, np.arange(n[0] * n[1]) * span), n[2])
    inside = (below % 2 == 1).reshape(n[0], n[1], n[2]).astype(np.int16)
    aff = np.eye(4)
    aff[:3, :3] *= pitch
    aff[:3, 3] = [x0[0], x0[1], lo[2]]
    return Image(inside, aff, "voxelised surface")


# --------------------------------------------------------------------------------- disc groups
def split_nucleus(points: np.ndarray, face: np.ndarray, centroids: np.ndarray, fraction: float) -> tuple[np.ndarray, dict]:
    """Mask of the ``centroids`` (n, 3) inside the nucleus ellipse of a flat ``face`` (tri3/tri6, normal z).

    Ellipse: centred on the face's area centroid, semi-axes a, b along x, y with a / b = k_x / k_y
    (radii of gyration of the face about its centroid) and pi a b = ``fraction`` x face area.
    """
    x = points[face[:, :3]][:, :, :2]
    ar = 0.5 * np.abs((x[:, 1, 0] - x[:, 0, 0]) * (x[:, 2, 1] - x[:, 0, 1]) - (x[:, 2, 0] - x[:, 0, 0]) * (x[:, 1, 1] - x[:, 0, 1]))
    A = float(ar.sum())
    c = (ar[:, None] * x.mean(axis=1)).sum(axis=0) / A
    # exact second moments of each triangle about c: (A/12) (sum xi^2 + (sum xi)^2) with xi = corner - c
    r = x - c
    I = (ar[:, None] / 12.0 * ((r**2).sum(axis=1) + r.sum(axis=1) ** 2)).sum(axis=0)  # (int x^2, int y^2)
    kx, ky = np.sqrt(I / A)
    a = np.sqrt(fraction * A / np.pi * kx / ky)
    b = np.sqrt(fraction * A / np.pi * ky / kx)
    inside = ((centroids[:, 0] - c[0]) / a) ** 2 + ((centroids[:, 1] - c[1]) / b) ** 2 <= 1.0
    return inside, {"face_area_mm2": A, "centre": c.tolist(), "semi_axes_mm": [float(a), float(b)]}


def _as_discs(lev: ImportedLevel, fraction: float, where: str) -> None:
    """Cap regions -> half discs (annulus, nucleus), cap faces -> disc faces; origin at the body centroid."""
    mesh = lev.mesh
    vol = np.abs(mesh.volumes())
    body = np.concatenate([mesh.cell_sets["cortical_shell"], mesh.cell_sets["trabecular"]])
    bc = (vol[body] @ mesh.centroids()[body]) / vol[body].sum()
    mesh.points -= bc
    cen = mesh.centroids()
    faces = []
    lev.info["discs"] = {}
    for side in ("superior", "inferior"):
        if f"cap_{side}" not in mesh.cell_sets:
            raise InputError(f"the {side} half disc is missing (no {side} cap region in the labels)", where)
        els = mesh.cell_sets.pop(f"cap_{side}")
        face = mesh.facet_sets.pop(f"cap_{side}_face")
        nuc, d = split_nucleus(mesh.points, face, cen[els], fraction)
        mesh.cell_sets[f"disc_{side}_nucleus"] = els[nuc]
        mesh.cell_sets[f"disc_{side}_annulus"] = els[~nuc]
        mesh.facet_sets[f"disc_{side}_face"] = face
        z = mesh.points[np.unique(face), 2]
        if np.ptp(z) > 1e-9 * (1 + np.abs(z).max()):
            raise InputError(f"the {side} half disc's outer face is not normal to z (spread {np.ptp(z):.3g} mm)", where)
        faces.append(float(z.mean()))
        d.update(nucleus_volume_share=float(vol[els[nuc]].sum() / vol[els].sum()), height_mm=float(abs(z.mean())),
                 elements=len(els))
        lev.info["discs"][side] = d
    lev.faces = (faces[0], faces[1])
    lev.info["body_centroid_shift_mm"] = bc.tolist()


# ---------------------------------------------------------------------------------- facets
def facet_view(seg, imported: set[str], fraction: float = 0.2):
    """A view of ``seg`` for :func:`fembone.spine.segment_mechanics.add_facets`: imported levels
    show only their posterior elements at |x| >= ``fraction`` x body width, with landmarks that
    admit every y, so the facet patches are their lateral top / bottom extremes."""
    if not imported:
        return seg
    mesh = seg.mesh
    sets, dims, marks = {}, dict(seg.dims), dict(seg.landmarks)
    for lv in imported:
        post = seg.set(lv, "posterior_elements")
        body = np.unique(mesh.cells[seg.body(lv)])
        w = float(np.ptp(mesh.points[body, 0]))
        xc = np.abs(mesh.points[mesh.cells[post]][:, :, 0]).min(axis=1)
        sets[lv] = post[xc >= fraction * w]
        dims[lv] = dataclasses.replace(seg.dims[lv], lamina_thickness=1e4)
        marks[lv] = {"canal_posterior_y": 1e3}

    def set_(lv: str, name: str) -> np.ndarray:
        return sets[lv] if lv in sets and name == "posterior_elements" else seg.set(lv, name)

    return SimpleNamespace(mesh=mesh, pairs=seg.pairs, set=set_, dims=dims, landmarks=marks)
