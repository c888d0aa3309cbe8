"""Spinal segments: generated vertebrae stacked with intervertebral discs between them. Units: mm.

Frame: RAS, +z cranial, origin at the body centroid of the most caudal vertebra.  Each level
is the parametric vertebra (:func:`fembone.spine.geometry.generate_vertebra`) meshed with its
``discs`` set-up: half a disc (annulus and nearly incompressible nucleus, the nucleus an
elliptic cylinder covering ``nucleus_fraction`` of the section) on each endplate, of height
``disc_height / 2`` from the deepest point of the endplate dish.  Stacking puts the flat
outer face of the upper vertebra's inferior half disc on the flat outer face of the lower
vertebra's superior half disc: together they make one disc of ``disc_height`` at mid-disc.
The two half discs are tied along that mid-disc plane (:func:`tie_flat_faces`, a dual mortar
tie, :mod:`fembone.core.mortar`: it passes the patch test and keeps rigid motions exact; the
mid-edge nodes of the mid-disc faces are put on their edge midpoints when stacking, moving
them by up to ~0.3 mm at mesh size 4, so that the faces' tri6 are affine).  Their outlines
(each vertebra's endplate) and nucleus sizes differ by about a millimetre between
neighbours; that mismatch is a stated simplification: where the smaller (slave) face reaches
beyond the other's outline its nodes stay free.  The half discs on the outer endplates
of the end vertebrae carry the load plate (top) and the support (bottom).

Levels: L1..L5 from :mod:`fembone.spine.geometry.vertebra_dims`, and T12 here
(:data:`T12_DIMS`).  A level may instead come from CT or an imported surface
(:mod:`fembone.spine.segment_import`): it brings its own mesh with half discs whose flat
faces it reports, and :func:`stack` puts it by those face heights, body centroid on the
axis.  Mesh groups of the stacked mesh are the level's groups prefixed by the level,
``L1.cortical_shell``, ``T12.disc_inferior_face`` ...
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fembone.core.errors import InputError
from fembone.core.mesh import Mesh
from fembone.core.mortar import MortarTie, flat_mortar, straighten_faces
from fembone.spine.geometry.vertebra_dims import (
    LEVELS,
    VertebraDims,
    vertebra_dims,
    vertebra_landmarks,
)

#: T12, thoracolumbar junction.  Pedicle width 8.31 mm: CT mean of 50 adults, Kaur et al. 2016,
#: J Clin Orthop Trauma 7:101 (abstract read).  Pedicle transverse angle: measured T12 angles
#: are near zero or lateral (-9.8 +- 2.4 deg, Kaur et al. 2016); 0 deg is used so that the
#: generator's pedicle and the transpedicular screw lie in the sagittal plane.  Body width,
#: depth and height, pedicle height, canal, spinous and transverse values: approximate means
#: for T12 after Panjabi et al. 1991, Spine 16:888 (quoted from memory, unverified); T12 is a
#: little smaller than L1 in every body dimension.
T12_DIMS = VertebraDims("T12", 38.0, 30.0, 24.0, 8.3, 15.5, 0.0, 19.5, 17.0, 28.0, 56.0)
#: levels a segment can hold, cranial to caudal
SEGMENT_LEVELS: tuple[str, ...] = ("T12",) + tuple(LEVELS)
#: full mid-disc height (mm): MRI mid-disc heights at L1/L2..L4/L5 are 7.9..12.0 mm (see
#: fembone.spine.geometry.vertebra_setup); 10 mm as the set-up's two 5 mm half discs
DISC_HEIGHT = 10.0
NUCLEUS_FRACTION = 0.43


def segment_dims(level: str, where: str = "segment.levels") -> VertebraDims:
    """Dimensions of a segment level (T12..L5)."""
    key = str(level).strip().upper()
    if key == "T12":
        return T12_DIMS
    if key not in LEVELS:
        raise InputError(f"unknown level {level!r}; segments hold {', '.join(SEGMENT_LEVELS)}", where)
    return vertebra_dims(key)


def parse_levels(levels, where: str = "segment.levels") -> tuple[str, ...]:
    """Levels cranial to caudal from ``"T12-L2"`` or ``[T12, L1, L2]``; at least two, adjacent, in order."""
    if isinstance(levels, str):
        parts = [p.strip().upper() for p in levels.split("-")]
        if len(parts) != 2:
            raise InputError(f"give a range like T12-L2, got {levels!r}", where)
        for p in parts:
            segment_dims(p, where)
        i, j = SEGMENT_LEVELS.index(parts[0]), SEGMENT_LEVELS.index(parts[1])
        if j <= i:
            raise InputError(f"range {levels!r} must run cranial to caudal (e.g. T12-L2)", where)
        return SEGMENT_LEVELS[i : j + 1]
    if not isinstance(levels, (list, tuple)) or len(levels) < 2:
        raise InputError(f"give at least two levels, cranial to caudal, e.g. [T12, L1, L2]; got {levels!r}", where)
    out = []
    for k, lv in enumerate(levels):
        if not isinstance(lv, str):
            raise InputError(f"a level name like L1, got {lv!r}", f"{where}[{k}]")
        segment_dims(lv, f"{where}[{k}]")
        out.append(lv.strip().upper())
    idx = [SEGMENT_LEVELS.index(lv) for lv in out]
    for k in range(1, len(idx)):
        if idx[k] <= idx[k - 1]:
            raise InputError(f"levels must run cranial to caudal: {out[k - 1]} then {out[k]} is out of order", where)
        if idx[k] != idx[k - 1] + 1:
            missing = SEGMENT_LEVELS[idx[k - 1] + 1 : idx[k]]
            raise InputError(f"levels must be adjacent: {out[k - 1]} and {out[k]} skip {', '.join(missing)}", where)
    return tuple(out)


@dataclass(frozen=True)
class SegmentGeometry:
    """A generated segment: levels (cranial to caudal), mesh size (mm), order, shell (mm), disc."""

    levels: tuple[str, ...]
    mesh_size: float = 2.0
    order: int = 2
    shell_thickness: float = 1.0
    disc_height: float = DISC_HEIGHT
    nucleus_fraction: float = NUCLEUS_FRACTION
    facets: bool = True


def cache_dir() -> Path:
    """Where generated meshes are kept: $FEMBONE_CACHE or ~/.cache/fembone."""
    return Path(os.environ.get("FEMBONE_CACHE", Path.home() / ".cache" / "fembone"))


def level_mesh(g: SegmentGeometry, level: str, cache: Path | None = None) -> Path:
    """The generated mesh of one level with its two half discs (cached by content)."""
    from fembone.spine.geometry import generate_vertebra, generator_fingerprint

    dims = segment_dims(level)
    half = 0.5 * g.disc_height
    key = hashlib.sha1(repr((dims, g.mesh_size, g.order, g.shell_thickness, half, g.nucleus_fraction,
                             generator_fingerprint())).encode()).hexdigest()[:10]
    out = (cache or cache_dir()) / f"seg_{level}_s{g.mesh_size:g}_o{g.order}_{key}.msh"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.msh")
        generate_vertebra(tmp, level="L1", dims=dims, size=g.mesh_size, order=g.order, shell_thickness=g.shell_thickness,
                          setup="discs", disc_height=half, nucleus_area_fraction=g.nucleus_fraction)
        os.replace(tmp, out)
    return out


@dataclass
class Segment:
    """A stacked segment: one mesh and, per level, where it lies (mm) and what it owns."""

    mesh: Mesh
    levels: tuple[str, ...]
    dims: dict[str, VertebraDims]
    offset: dict[str, float]  # z of each level's body centroid
    nodes: dict[str, np.ndarray]  # node ids of each level (vertebra and its half discs)
    elements: dict[str, np.ndarray]
    landmarks: dict[str, dict] = field(default_factory=dict)  # vertebra_landmarks in the segment frame (generated levels)
    imported: dict[str, str] = field(default_factory=dict)  # level -> "ct" | "surface" (fembone.spine.segment_import)

    def set(self, level: str, name: str) -> np.ndarray:
        return self.mesh.cell_sets.get(f"{level}.{name}", np.zeros(0, np.int64))

    def body(self, level: str) -> np.ndarray:
        """Elements of the vertebral body (cortical shell and trabecular core, regions included)."""
        return np.concatenate([self.set(level, "cortical_shell"), self.set(level, "trabecular")])

    def pairs(self) -> list[tuple[str, str]]:
        """(upper, lower) level pairs, cranial to caudal."""
        return list(zip(self.levels[:-1], self.levels[1:]))


def face_height(dims: VertebraDims, half_disc: float) -> float:
    """z (mm, from the body centroid) of a half disc's flat outer face (vertebra_setup)."""
    return 0.5 * dims.body_height - dims.endplate_dish + half_disc


def stack(meshes: dict[str, Mesh], g: SegmentGeometry, faces: dict[str, tuple[float, float]] | None = None) -> Segment:
    """Stack level meshes (each in its own vertebra frame) along z, caudal vertebra at the origin.

    ``faces``: for imported levels, the z (mm, vertebra frame) of their superior and inferior
    half discs' flat faces (generated levels: :func:`face_height`); each upper level is put so
    that its inferior face lies on the lower level's superior face.
    """
    levels = g.levels
    faces = faces or {}
    dims = {lv: segment_dims(lv) for lv in levels}
    half = 0.5 * g.disc_height
    zf = {lv: faces.get(lv, (face_height(dims[lv], half), -face_height(dims[lv], half))) for lv in levels}
    offset = {levels[-1]: 0.0}
    for up, lo in zip(levels[-2::-1], levels[:0:-1]):
        offset[up] = offset[lo] + zf[lo][0] - zf[up][1]
    orders = {m.order for m in meshes.values()}
    if len(orders) != 1:
        raise InputError("the level meshes differ in element order", "segment.order")
    pts, cells, csets, fsets, nodes, elems = [], [], {}, {}, {}, {}
    n0 = e0 = 0
    for lv in levels:
        m = meshes[lv]
        pts.append(m.points + np.array([0.0, 0.0, offset[lv]]))
        cells.append(m.cells + n0)
        for k, ids in m.cell_sets.items():
            csets[f"{lv}.{k}"] = ids + e0
        for k, f in m.facet_sets.items():
            fsets[f"{lv}.{k}"] = f + n0
        nodes[lv] = np.arange(n0, n0 + m.n_nodes)
        elems[lv] = np.arange(e0, e0 + m.n_elements)
        n0 += m.n_nodes
        e0 += m.n_elements
    mesh = Mesh(np.vstack(pts), np.vstack(cells), csets, fsets, source=f"segment {levels[0]}-{levels[-1]}")
    mid_disc = [f"{lv}.disc_inferior_face" for lv in levels[:-1]] + [f"{lv}.disc_superior_face" for lv in levels[1:]]
    for name in mid_disc:  # affine tri6 on the mid-disc faces (the mortar tie needs them)
        if name in fsets:
            straighten_faces(mesh.points, fsets[name])
    seg = Segment(mesh, levels, dims, offset, nodes, elems)
    for lv in levels:
        if lv in faces:  # imported: the generator's landmarks do not describe it
            continue
        lm = vertebra_landmarks(dims[lv])
        seg.landmarks[lv] = _shift_landmarks(lm, offset[lv])
    return seg


def _shift_landmarks(lm: dict, dz: float) -> dict:
    out = dict(lm)
    for side in ("left", "right"):
        s = dict(lm[side])
        for k in ("entry", "isthmus"):
            s[k] = np.asarray(s[k], float) + np.array([0.0, 0.0, dz])
        out[side] = s
    for k in ("superior_endplate_z", "inferior_endplate_z"):
        out[k] = lm[k] + dz
    out["body_centroid"] = np.array([0.0, 0.0, dz])
    return out


def build_segment(g: SegmentGeometry, read, cache: Path | None = None, imported: dict | None = None) -> Segment:
    """Generate (or reuse) every level's mesh, read it with ``read(path)``, and stack them.

    ``imported``: level -> :class:`fembone.spine.segment_import.ImportedLevel` (CT or surface
    levels, built already), used instead of the generated level.
    """
    imported = imported or {}
    meshes = {lv: imported[lv].mesh if lv in imported else read(level_mesh(g, lv, cache)) for lv in g.levels}
    seg = stack(meshes, g, {lv: imp.faces for lv, imp in imported.items()})
    seg.imported = {lv: imp.info.get("kind", "imported") for lv, imp in imported.items()}
    return seg


def write_segment(g: SegmentGeometry, out: str | Path) -> Path:
    """``fembone mesh segment``: the stacked mesh with the levels' groups (prefixed) as a .msh file."""
    from fembone.core.mesh import read_mesh
    from fembone.core.meshgen import write_mesh

    seg = build_segment(g, read_mesh)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_mesh(seg.mesh, out)
    return out


# ------------------------------------------------------------------------------ mid-disc ties
def tie_flat_faces(cset, mesh: Mesh, slave: np.ndarray, master: np.ndarray, label: str) -> np.ndarray:
    """Tie facets ``slave`` to facets ``master`` (two coincident flat faces) by a dual mortar tie.

    The slave nodes follow d_s = D^-1 M d_m (:func:`fembone.core.mortar.flat_mortar`): the
    tie passes the patch test (a constant stress crosses it exactly) and keeps every linear
    field, rigid rotations included, so reactions balance the loads.  tri6 mid-edge nodes
    of both faces are first moved onto their edge midpoints (in place; :func:`stack` has
    done so already for segments).  Slave nodes beyond the master's outline stay free.
    Returns the tied node ids.
    """
    tie = _mortar(mesh, slave, master)
    for a in range(3):
        cset.tie(3 * tie.nodes + a, 3 * tie.masters + a, tie.coefs, label=label)
    return tie.nodes


def _mortar(mesh: Mesh, slave: np.ndarray, master: np.ndarray) -> MortarTie:
    straighten_faces(mesh.points, slave)
    straighten_faces(mesh.points, master)
    return flat_mortar(mesh.points, slave, master)


def face_area(mesh: Mesh, faces: np.ndarray) -> float:
    x = mesh.points[faces[:, :3]]
    return float(0.5 * np.linalg.norm(np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]), axis=1).sum())


def tie_discs(cset, seg: Segment) -> list[dict]:
    """Tie the two half discs of every level pair at mid-disc (the smaller face is the mortar slave)."""
    info = []
    for up, lo in seg.pairs():
        a = seg.mesh.facet_sets[f"{up}.disc_inferior_face"]
        b = seg.mesh.facet_sets[f"{lo}.disc_superior_face"]
        za, zb = seg.mesh.points[np.unique(a), 2].mean(), seg.mesh.points[np.unique(b), 2].mean()
        if abs(za - zb) > 1e-6 * (1 + abs(za)):
            raise InputError(f"disc faces of {up} and {lo} do not meet (z {za:.4f} vs {zb:.4f} mm)", "segment")
        slave, master = (a, b) if face_area(seg.mesh, a) <= face_area(seg.mesh, b) else (b, a)
        tie = _mortar(seg.mesh, slave, master)
        label = f"segment: disc {up}-{lo} (mid-disc mortar tie)"
        for k in range(3):
            cset.tie(3 * tie.nodes + k, 3 * tie.masters + k, tie.coefs, label=label)
        info.append({"pair": f"{up}-{lo}", "z": float(za), "tied_nodes": len(tie.nodes), "free_nodes": len(tie.free),
                     "tied_area_mm2": round(tie.overlap_area, 3), "slave_area_mm2": round(tie.slave_area, 3)})
    return info
