"""Pictures of result fields with pyvista: views, previews, comparison panels, HTML scenes.

Everything reads the VTU files that :mod:`fembone.core.output` writes (one per load case) or
the in-memory :class:`~fembone.core.analysis.Result`.  Units: mm, N, MPa; strains are
dimensionless (mm/mm).

* :func:`plot` -- one view of one field of one load case (interactive window where a
  display exists, otherwise or with ``screenshot=`` an off-screen PNG);
* :func:`write_previews` -- ``<loadcase>.png`` next to each VTU (``fembone run``);
* :func:`compare_panel` -- several cases side by side on one colour scale with their
  key metrics (``fembone compare --figure``);
* :func:`export_html` -- an interactive scene in one self-contained HTML file.

A view shows the field on the bone (cut by a clip plane through the origin: sagittal
x = 0, coronal y = 0, axial z = 0; the half towards +x / +y / +z is removed so that the
cut faces the camera), the lesion (purple) and cement (grey) regions as translucent
iso-surfaces of ``lesion_fraction``/``cement_fraction`` = 0.5 with their outlines on the
cut, the bone beyond its yield strain (minimum principal strain below -0.77 % or
maximum principal strain above 0.70 %, Morgan & Keaveny 2001) in translucent red, and
screws (line cells) as tubes coloured by ``screw_von_mises`` when present.  The camera
looks from the right-anterior-superior side (frame: +x right, +y anterior, +z cranial)
with a parallel projection fitted to the whole (uncut) model, so every view of a model,
and every panel of a comparison, has the same scale.  Colour limits are robust by
default: the 0.5 and 99.5 percentiles of the field (symmetric about zero for signed
fields), so that a few peak elements at supports do not wash out the picture.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fembone.spine.bone import YIELD_STRAIN_COMPRESSION, YIELD_STRAIN_TENSION
from fembone.core.errors import InputError

WINDOW_SIZE = (800, 600)
BACKGROUND = "white"
TEXT_COLOR = "black"
LESION_COLOR = "#6a3d9a"
CEMENT_COLOR = "#b0b0b0"
YIELD_COLOR = "red"
SCREW_COLOR = "#505050"
SCREW_RADIUS = 3.0  # mm, when the VTU has no screw_radius / radius array
CLIPS = ("sagittal", "coronal", "axial", "none")
#: clip name -> (axis, view direction from the focal point to the camera)
_CLIP_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}
_VIEW_DIR = {
    "sagittal": (1.0, 0.35, 0.35),
    "coronal": (0.35, 1.0, 0.35),
    "axial": (0.45, 0.65, 1.0),
    "none": (1.0, 0.9, 0.7),
}


@dataclass(frozen=True)
class Field:
    """How a field name maps onto a VTU array."""

    array: str
    component: int | str | None  # index, 'magnitude' or None (scalar)
    label: str
    unit: str
    signed: bool = False
    categorical: bool = False

    @property
    def title(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


def _fields() -> dict[str, Field]:
    f = {
        "von_mises": Field("von_mises", None, "von Mises stress", "MPa"),
        "von_mises_nodal": Field("von_mises_nodal", None, "von Mises stress, nodal", "MPa"),
        "equivalent_strain": Field("equivalent_strain", None, "equivalent strain", "-"),
        "displacement": Field("displacement", "magnitude", "displacement", "mm"),
        "material": Field("material", None, "material", "", categorical=True),
        "lesion_fraction": Field("lesion_fraction", None, "lesion fraction", "-"),
        "cement_fraction": Field("cement_fraction", None, "cement fraction", "-"),
        "screw_von_mises": Field("screw_von_mises", None, "screw von Mises stress", "MPa"),
        "yield_index": Field("principal_strain", "yield", "strain / yield strain", "-"),
    }
    for i, ax in enumerate("xyz"):
        f[f"displacement_{ax}"] = Field("displacement", i, f"displacement {ax}", "mm", signed=True)
    for i, which in enumerate(("min", "mid", "max")):
        f[f"{which}_principal_stress"] = Field("principal_stress", i, f"{which} principal stress", "MPa", signed=True)
        f[f"{which}_principal_strain"] = Field("principal_strain", i, f"{which} principal strain", "-", signed=True)
    for i, c in enumerate(("xx", "yy", "zz", "xy", "yz", "xz")):
        f[f"stress_{c}"] = Field("stress", i, f"stress {c}", "MPa", signed=True)
        f[f"strain_{c}"] = Field("strain", i, f"strain {c}", "-", signed=True)
    return f


#: field name -> VTU array (any other scalar array of the VTU may be named as well)
FIELDS: dict[str, Field] = _fields()


# -- environment ----------------------------------------------------------------------------
def has_display() -> bool:
    """Whether an interactive window can be opened (X11/Wayland on Linux; always elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _pv():
    """pyvista, with VTK's 'bad X server connection' warning silenced where there is no display."""
    try:
        import pyvista as pv
    except ImportError:  # pragma: no cover - pyvista is a dependency
        raise InputError("pictures need the 'pyvista' package (pip install pyvista)") from None
    if not has_display():
        try:
            from vtkmodules.vtkCommonCore import vtkLogger

            vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
        except Exception:  # pragma: no cover
            pass
    return pv


# -- loading --------------------------------------------------------------------------------
def find_vtu(source: str | Path, loadcase: str | None = None) -> Path:
    """The VTU of ``loadcase`` (default: the first) in a result folder, or ``source`` itself."""
    p = Path(source)
    if p.is_file():
        if p.suffix.lower() != ".vtu":
            raise InputError("expected a result folder or a .vtu file", str(p))
        return p
    if not p.is_dir():
        raise InputError("no such result folder or VTU file", str(p))
    files = _vtu_files(p)
    if not files:
        raise InputError("no VTU files here (run the case without --no-vtu)", str(p))
    if loadcase is None:
        return next(iter(files.values()))
    if loadcase not in files:
        raise InputError(f"no load case '{loadcase}' (have: {', '.join(files)})", str(p))
    return files[loadcase]


def _vtu_files(folder: Path) -> dict[str, Path]:
    """Load case name -> VTU path, from summary.json's 'files' or the *.vtu present."""
    s = _summary(folder)
    files = {k: folder / v for k, v in s.get("files", {}).items() if (folder / v).is_file()}
    if not files:
        files = {q.stem: q for q in sorted(folder.glob("*.vtu")) if not q.name.startswith(".")}
    return files


def _summary(folder: Path) -> dict:
    p = Path(folder) / "summary.json"
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_grid(source, loadcase: str | None = None):
    """A pyvista grid from a result folder, a VTU, a ``meshio.Mesh`` or a pyvista dataset."""
    pv = _pv()
    if isinstance(source, pv.DataSet):
        return source
    if type(source).__name__ == "Mesh" and hasattr(source, "cells_dict"):
        return pv.from_meshio(source)
    path = find_vtu(source, loadcase)
    try:
        return pv.read(path)
    except Exception as exc:
        raise InputError(f"cannot read VTU ({type(exc).__name__}: {exc})", str(path)) from None


# -- geometry pieces ------------------------------------------------------------------------
def _cells_of(grid, types: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the cells of the given VTK types and their first ``n`` nodes (corners)."""
    ct = np.asarray(grid.celltypes)
    mask = np.isin(ct, list(types))
    if not mask.any():
        return mask, np.zeros((0, min(types.values())), int)
    n = min(types.values())
    conn = np.asarray(grid.cell_connectivity)
    offsets = grid.cell_offsets if hasattr(grid, "cell_offsets") else grid.offset
    offs = np.asarray(offsets)[:-1][mask]
    return mask, conn[offs[:, None] + np.arange(n)]


@dataclass
class Parts:
    """The bone as linear tetrahedra and the screws as polylines, with their arrays."""

    solid: object  # pv.UnstructuredGrid
    lines: object | None  # pv.PolyData
    bounds: tuple  # of the solid's used points (undeformed)
    screw_radius: float | None = None  # mm, for the tubes (else a screw_radius array or SCREW_RADIUS)


def screw_radius(meta: dict | None) -> float | None:
    """Radius (mm) of the screws listed in a model's or summary's ``meta['screws']``, if any."""
    ds = []
    for s in (meta or {}).get("screws", []) or []:
        if isinstance(s, dict):
            d = s.get("diameter", s.get("core_diameter"))
            if isinstance(d, int | float) and d > 0:
                ds.append(float(d))
    return 0.5 * float(np.median(ds)) if ds else None


def split(grid, screw_radius: float | None = None) -> Parts:
    """Linear tetrahedra (corners of tet4/tet10) and line cells (screws) of a result grid."""
    pv = _pv()
    tmask, tets = _cells_of(grid, {int(pv.CellType.TETRA): 4, int(pv.CellType.QUADRATIC_TETRA): 4})
    lmask, segs = _cells_of(grid, {int(pv.CellType.LINE): 2, int(pv.CellType.QUADRATIC_EDGE): 2})
    if not tmask.any():
        raise InputError("the result has no tetrahedral cells to show")
    points = np.asarray(grid.points, float)
    solid = pv.UnstructuredGrid({pv.CellType.TETRA: tets}, points)
    for k in grid.cell_data:
        solid.cell_data[k] = np.asarray(grid.cell_data[k])[tmask]
    for k in grid.point_data:
        solid.point_data[k] = np.asarray(grid.point_data[k])
    used = points[np.unique(tets)]
    lo, hi = used.min(axis=0), used.max(axis=0)
    bounds = (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
    lines = None
    if lmask.any():
        cells = np.column_stack([np.full(len(segs), 2), segs]).ravel()
        lines = pv.PolyData(points, lines=cells)
        for k in grid.cell_data:
            lines.cell_data[k] = np.asarray(grid.cell_data[k])[lmask]
        for k in grid.point_data:
            lines.point_data[k] = np.asarray(grid.point_data[k])
    return Parts(solid, lines, bounds, screw_radius)


def field_spec(name: str, grid=None) -> Field:
    """The :class:`Field` of a name in :data:`FIELDS` or of any array of ``grid``."""
    if name in FIELDS:
        return FIELDS[name]
    if grid is not None and (name in grid.cell_data or name in grid.point_data):
        arr = grid.cell_data[name] if name in grid.cell_data else grid.point_data[name]
        comp = "magnitude" if np.ndim(arr) == 2 and np.shape(arr)[1] > 1 else None
        return Field(name, comp, name.replace("_", " "), "")
    have = sorted(set(FIELDS) | (set(grid.cell_data) | set(grid.point_data) if grid is not None else set()))
    raise InputError(f"unknown field '{name}' (known: {', '.join(have)})", "--field")


def field_values(grid, name: str) -> tuple[np.ndarray, str, Field]:
    """Scalar values of a field on ``grid``: (values, 'cell' or 'point', spec)."""
    spec = field_spec(name, grid)
    if spec.array in grid.cell_data:
        arr, assoc = np.asarray(grid.cell_data[spec.array], float), "cell"
    elif spec.array in grid.point_data:
        arr, assoc = np.asarray(grid.point_data[spec.array], float), "point"
    else:
        raise InputError(
            f"field '{name}' needs the array '{spec.array}', which this result does not have "
            f"(arrays: {', '.join(sorted(set(grid.cell_data) | set(grid.point_data)))})",
            "--field",
        )
    c = spec.component
    if c is None:
        vals = arr if arr.ndim == 1 else arr[:, 0]
    elif c == "magnitude":
        vals = np.linalg.norm(arr.reshape(len(arr), -1), axis=1)
    elif c == "yield":
        vals = _yield_index(arr)
    else:
        vals = arr[:, c]
    return vals, assoc, spec


def _yield_index(principal: np.ndarray) -> np.ndarray:
    """Largest of |eps_min| / 0.77 % (compression) and eps_max / 0.70 % (tension); >= 1 is beyond yield."""
    comp = np.maximum(-principal[:, 0], 0.0) / YIELD_STRAIN_COMPRESSION
    tens = np.maximum(principal[:, 2], 0.0) / YIELD_STRAIN_TENSION
    return np.maximum(comp, tens)


def field_range(values: np.ndarray, spec: Field, robust: bool = True) -> tuple[float, float]:
    """Colour limits: percentiles 0.5-99.5 (or min-max), symmetric about 0 for signed fields."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    if spec.categorical:
        lo, hi = float(v.min()), float(v.max())
    elif robust:
        lo, hi = (float(x) for x in np.percentile(v, [0.5, 99.5]))
    else:
        lo, hi = float(v.min()), float(v.max())
    if spec.signed:  # white at zero: tension and compression keep their colours in every picture
        m = max(-lo, hi, 0.0)
        lo, hi = -m, m
    elif not spec.signed and not spec.categorical and lo >= 0:
        lo = 0.0
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-6 or 1.0)
    return lo, hi


# -- scene ------------------------------------------------------------------------------------
def _plane(clip: str, bounds) -> tuple[np.ndarray, np.ndarray]:
    """Normal and origin of a clip plane: through 0 on its axis, or the middle when 0 is outside."""
    ax = _CLIP_AXIS[clip]
    normal = np.zeros(3)
    normal[ax] = 1.0
    origin = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
    lo, hi = bounds[2 * ax], bounds[2 * ax + 1]
    origin[ax] = 0.0 if lo < 0.0 < hi else (lo + hi) / 2
    return normal, origin


def _surface(ds):
    try:
        return ds.extract_surface(algorithm="dataset_surface")
    except TypeError:  # pyvista < 0.47
        return ds.extract_surface()


def _cmap(spec: Field) -> str:
    if spec.categorical:
        return "tab10"
    return "BrBG" if spec.signed else "viridis"


def _fmt(lo: float, hi: float) -> str:
    m = max(abs(lo), abs(hi))
    return "%.2e" if (m < 0.01 or m >= 1e5) else "%.3g"


def _warp(ds, scale: float):
    if scale and "displacement" in ds.point_data and ds.n_points:
        return ds.warp_by_vector("displacement", factor=scale)
    return ds


def _check_clip(clip: str) -> str:
    clip = (clip or "none").lower()
    if clip not in CLIPS:
        raise InputError(f"unknown clip '{clip}' (choose from {', '.join(CLIPS)})", "--clip")
    return clip


def auto_deform(parts: Parts, fraction: float = 0.08) -> float:
    """A warp scale that moves the largest displacement by ``fraction`` of the model size."""
    if "displacement" not in parts.solid.point_data:
        return 0.0
    u = parts.solid.point_data["displacement"]
    dmax = float(np.nanmax(np.linalg.norm(np.asarray(u), axis=1)))
    size = max(parts.bounds[1] - parts.bounds[0], parts.bounds[3] - parts.bounds[2], parts.bounds[5] - parts.bounds[4])
    return fraction * size / dmax if dmax > 0 else 0.0


def add_result(
    pl,
    parts: Parts,
    field: str = "von_mises",
    clip: str = "sagittal",
    deform: float = 0.0,
    clim: tuple[float, float] | None = None,
    scalar_bar: bool | dict = True,
    regions: bool = True,
    yielded: bool = True,
    screws: bool = True,
    legend: bool = True,
    opacity: float | None = None,
):
    """Add one result's actors to the plotter's current renderer; returns a :class:`View`.

    ``deform`` warps by the displacement times this factor ('auto' for 8 % of the model
    size); the clip is taken in the undeformed configuration.
    """
    clip = _check_clip(clip)
    solid = parts.solid.copy(deep=False)
    vals, assoc, spec = field_values(solid, field)
    lo, hi = clim if clim is not None else field_range(vals, spec)
    data = solid.cell_data if assoc == "cell" else solid.point_data
    data["_field"] = vals
    has_lesion = "lesion_fraction" in solid.cell_data and np.nanmax(solid.cell_data["lesion_fraction"]) >= 0.5
    has_cement = "cement_fraction" in solid.cell_data and np.nanmax(solid.cell_data["cement_fraction"]) >= 0.5
    if has_lesion or has_cement:  # point values for the iso-surfaces
        for k in ("lesion_fraction", "cement_fraction"):
            if k in solid.cell_data:
                solid.point_data[f"_{k}"] = _cell_to_point(solid, np.asarray(solid.cell_data[k], float))
    if "principal_strain" in solid.cell_data:
        solid.cell_data["_yield"] = (_yield_index(np.asarray(solid.cell_data["principal_strain"], float)) >= 1.0).astype(float)
    if deform == "auto":
        deform = auto_deform(parts)
    deform = float(deform or 0.0)

    if clip == "none":
        cut, normal, origin = solid, None, None
    else:
        normal, origin = _plane(clip, parts.bounds)
        cut = solid.clip(normal=normal, origin=origin)
    if cut.n_cells == 0:
        raise InputError(f"the {clip} clip leaves nothing to show")
    surf = _warp(_surface(cut), deform)

    sb_args = dict(
        title=spec.title, fmt=_fmt(lo, hi), color=TEXT_COLOR, n_labels=5, vertical=True,
        position_x=0.86, position_y=0.18, width=0.07, height=0.64, title_font_size=14, label_font_size=12,
    )
    if isinstance(scalar_bar, dict):
        sb_args.update(scalar_bar)
    if opacity is None:
        opacity = 0.45 if clip == "none" and (has_lesion or has_cement) and regions else 1.0
    actor = pl.add_mesh(
        surf, scalars="_field", preference=assoc, cmap=_cmap(spec), clim=(lo, hi), opacity=opacity,
        show_scalar_bar=bool(scalar_bar), scalar_bar_args=sb_args, nan_color="lightgray",
        categories=spec.categorical, smooth_shading=False,
    )
    labels = []
    eps = 1e-3 * max(parts.bounds[1] - parts.bounds[0], parts.bounds[3] - parts.bounds[2], parts.bounds[5] - parts.bounds[4])
    if regions:
        for key, color, present, op in (
            ("lesion_fraction", LESION_COLOR, has_lesion, 0.35),
            ("cement_fraction", CEMENT_COLOR, has_cement, 0.55),
        ):
            if not present:
                continue
            iso = cut.contour([0.5], scalars=f"_{key}")
            if iso.n_points:
                pl.add_mesh(_warp(iso, deform), color=color, opacity=op, smooth_shading=True, show_scalar_bar=False)
            if normal is not None:  # outline on the cut, just in front of it
                sl = solid.slice(normal=normal, origin=origin + eps * normal)
                if sl.n_points:
                    ln = sl.contour([0.5], scalars=f"_{key}")
                    if ln.n_points:
                        pl.add_mesh(_warp(ln, deform), color=color, line_width=3, show_scalar_bar=False)
            labels.append([key.split("_")[0], color])
    if yielded and "_yield" in cut.cell_data and np.any(cut.cell_data["_yield"] > 0.5):
        y = cut.threshold(0.5, scalars="_yield", preference="cell")
        if y.n_cells:
            ya = pl.add_mesh(_warp(_surface(y), deform), color=YIELD_COLOR, opacity=0.5, show_scalar_bar=False)
            try:  # draw on top of the coincident faces of the bone
                ya.mapper.SetResolveCoincidentTopologyToPolygonOffset()
                ya.mapper.SetRelativeCoincidentTopologyPolygonOffsetParameters(-2.0, -4.0)
            except AttributeError:  # pragma: no cover
                pass
            labels.append(["beyond yield strain", YIELD_COLOR])
    if screws and parts.lines is not None:
        _add_screws(pl, parts, deform, bool(scalar_bar))
        labels.append(["screws", SCREW_COLOR])
    if legend and labels:
        add_legend(pl, labels)
    return View(actor, (lo, hi), spec, labels)


@dataclass
class View:
    """What :func:`add_result` added: the bone actor, its colour limits, field and legend entries."""

    actor: object
    clim: tuple[float, float]
    field: Field
    labels: list


def add_legend(pl, labels: list, loc: str = "lower left", height: float = 0.04) -> None:
    """Legend of the overlays (lesion, cement, yield, screws) in the current renderer."""
    width = 0.03 + 0.011 * max(len(t) for t, _ in labels)
    pl.add_legend(labels=labels, bcolor="white", border=True, size=(width, height * len(labels)), loc=loc, face="rectangle")


def _cell_to_point(grid, values: np.ndarray) -> np.ndarray:
    """Average of the cell values around each point (0 for unused points)."""
    conn = np.asarray(grid.cell_connectivity).reshape(grid.n_cells, -1)
    acc = np.zeros(grid.n_points)
    cnt = np.zeros(grid.n_points)
    np.add.at(acc, conn, np.repeat(values[:, None], conn.shape[1], axis=1))
    np.add.at(cnt, conn, 1.0)
    return np.divide(acc, cnt, out=np.zeros_like(acc), where=cnt > 0)


def _add_screws(pl, parts: Parts, deform: float, scalar_bar: bool) -> None:
    # screws are drawn whole, not clipped: over an axial cut below them, or beside a sagittal cut
    lines = _warp(parts.lines.copy(deep=False), deform)
    radius = parts.screw_radius or SCREW_RADIUS
    for key in ("screw_radius", "radius"):
        if key in parts.lines.cell_data:
            r = np.asarray(parts.lines.cell_data[key], float)
            r = r[np.isfinite(r) & (r > 0)]
            if r.size:
                radius = float(np.median(r))
                break
    # screw stress: 'screw_von_mises', or the line cells' own 'von_mises' (fembone.core.output marks
    # screw cells with a 'screw' index >= 0)
    key = None
    if "screw_von_mises" in parts.lines.cell_data:
        key = "screw_von_mises"
    elif "screw" in parts.lines.cell_data and "von_mises" in parts.lines.cell_data:
        key = "von_mises"
    if key is not None:
        lines.cell_data["_screw_vm"] = np.asarray(lines.cell_data[key], float)
    tube = lines.tube(radius=radius, n_sides=16)
    if key is not None and "_screw_vm" in tube.cell_data:
        vals = np.asarray(parts.lines.cell_data[key], float)
        lo, hi = field_range(vals, FIELDS["screw_von_mises"], robust=False)
        pl.add_mesh(
            tube, scalars="_screw_vm", preference="cell", cmap="plasma", clim=(lo, hi), show_scalar_bar=scalar_bar,
            scalar_bar_args=dict(
                title=FIELDS["screw_von_mises"].title, fmt=_fmt(lo, hi), color=TEXT_COLOR, vertical=False,
                position_x=0.45, position_y=0.86, width=0.35, height=0.08, title_font_size=12, label_font_size=11,
            ),
        )
    else:
        pl.add_mesh(tube, color=SCREW_COLOR, show_scalar_bar=False)


def set_camera(pl, bounds, clip: str = "none", zoom: float = 1.0, right_margin: float = 0.0) -> None:
    """Parallel projection from the right-anterior-superior side, fitted to ``bounds``.

    The same bounds give the same scale in every view direction and panel: the picture
    is fitted to the bounding box's corners, with a 5 % margin, then zoomed by ``zoom``;
    ``right_margin`` (a fraction of the width) is kept free for a vertical colour bar.
    """
    d = np.asarray(_VIEW_DIR[_check_clip(clip)], float)
    d /= np.linalg.norm(d)
    up = np.array([0.0, 0.0, 1.0])
    up = up - (up @ d) * d
    up /= np.linalg.norm(up)
    right = np.cross(up, d)
    c = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
    diag = math.dist(bounds[0::2], bounds[1::2]) or 1.0
    corners = np.array([[x, y, z] for x in bounds[0:2] for y in bounds[2:4] for z in bounds[4:6]]) - c
    half_h = np.abs(corners @ up).max()
    half_w = np.abs(corners @ right).max()
    w, h = pl.window_size
    vp = pl.renderer.GetViewport()
    aspect = max((vp[2] - vp[0]) * w, 1.0) / max((vp[3] - vp[1]) * h, 1.0)
    m = min(max(right_margin, 0.0), 0.5)
    scale = 1.05 * max(half_h, half_w / (aspect * (1.0 - m)), 1e-9 * diag) / zoom
    f = c + right * (m * scale * aspect)  # the model sits in the left (1 - m) of the picture
    cam = pl.camera
    pl.enable_parallel_projection()
    pl.renderer.ResetCamera(*bounds)
    cam.SetFocalPoint(*f)
    cam.SetPosition(*(f + 3.0 * diag * d))
    cam.SetViewUp(*up)
    cam.SetParallelScale(scale)
    pl.renderer.ResetCameraClippingRange()


def _new_plotter(off_screen: bool, window_size=WINDOW_SIZE, **kw):
    pv = _pv()
    pl = pv.Plotter(off_screen=off_screen, window_size=list(window_size), **kw)
    pl.set_background(BACKGROUND)
    return pl


def scene(
    source,
    field: str = "von_mises",
    clip: str = "sagittal",
    loadcase: str | None = None,
    deform: float | str = 0.0,
    clim: tuple[float, float] | None = None,
    title: str | None = None,
    off_screen: bool = True,
    window_size=WINDOW_SIZE,
):
    """A plotter with one view set up (not shown); ``source`` as in :func:`read_grid`."""
    grid = read_grid(source, loadcase)
    parts = split(grid, screw_radius(_meta_of(source)))
    pl = _new_plotter(off_screen, window_size)
    add_result(pl, parts, field, clip, deform, clim)
    if title is None:
        title = _default_title(source, loadcase, field, clip, deform)
    if title:
        pl.add_text(title, position="upper_left", font_size=11, color=TEXT_COLOR)
    set_camera(pl, parts.bounds, clip, right_margin=0.18)
    return pl


def _meta_of(source) -> dict:
    """The ``meta`` of the summary.json beside a result folder or VTU ({} otherwise)."""
    if isinstance(source, str | Path):
        p = Path(source)
        return _summary(p if p.is_dir() else p.parent).get("meta", {}) or {}
    return {}


def _default_title(source, loadcase, field, clip, deform) -> str:
    name = ""
    if isinstance(source, str | Path):
        p = Path(source)
        folder = p if p.is_dir() else p.parent
        case = _summary(folder).get("case")
        lc = loadcase or (find_vtu(p).stem if p.is_dir() else p.stem)
        name = f"{case} - {lc}" if case else lc
    parts = [name, field.replace("_", " "), f"{clip} cut" if clip != "none" else ""]
    if deform:
        parts.append(f"deformed x{deform:.3g}" if not isinstance(deform, str) else "deformed (auto)")
    return ", ".join(p for p in parts if p)


def plot(
    source,
    field: str = "von_mises",
    clip: str = "sagittal",
    loadcase: str | None = None,
    deform: float | str = 0.0,
    screenshot: str | Path | None = None,
    off_screen: bool | None = None,
    clim: tuple[float, float] | None = None,
    window_size=WINDOW_SIZE,
    title: str | None = None,
) -> Path | None:
    """Show one view, or write it to ``screenshot`` (PNG); returns the PNG written, if any.

    Off-screen (no display, or ``off_screen=True``) without ``screenshot``, the picture
    goes to the VTU's name with ``.png``.
    """
    if off_screen is None:
        off_screen = screenshot is not None or not has_display()
    pl = scene(source, field, clip, loadcase, deform, clim, title, off_screen, window_size)
    try:
        if not off_screen:
            pl.show(screenshot=str(screenshot) if screenshot else None)
            return Path(screenshot) if screenshot else None
        if screenshot is None:
            screenshot = find_vtu(source, loadcase).with_suffix(".png") if isinstance(source, str | Path) else Path("view.png")
        screenshot = Path(screenshot)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        pl.screenshot(str(screenshot))
        return screenshot
    finally:
        pl.close()


def write_previews(result, out_dir, field: str = "von_mises", clip: str | None = None, window_size=WINDOW_SIZE) -> list[Path]:
    """``<loadcase>.png`` next to each load case's VTU in ``out_dir``.

    The default view is an axial cut (z = 0, seen from above) for models with screws, a
    sagittal cut (x = 0) for other vertebrae and the whole model otherwise.
    """
    from fembone.core.output import _safe, loadcase_mesh

    pv = _pv()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    pl = None
    try:
        for name, lc in result.loadcases.items():
            grid = pv.from_meshio(loadcase_mesh(result, lc))
            parts = split(grid, screw_radius(result.model.meta))
            c = clip or ("axial" if parts.lines is not None else "sagittal" if "lesion_fraction" in grid.cell_data else "none")
            if pl is not None:
                pl.close()
            pl = _new_plotter(True, window_size)
            add_result(pl, parts, field, c)
            pl.add_text(f"{result.model.name} - {name}, {field.replace('_', ' ')}" + (f", {c} cut" if c != "none" else ""),
                        position="upper_left", font_size=11, color=TEXT_COLOR)
            set_camera(pl, parts.bounds, c, right_margin=0.18)
            path = out / f"{_safe(name)}.png"
            pl.screenshot(str(path))
            written.append(path)
    finally:
        if pl is not None:
            pl.close()
    return written


# -- comparison panel -------------------------------------------------------------------------
#: (key in the load case summary or its 'risk', label, unit, format)
PANEL_METRICS = [
    ("axial_stiffness", "axial stiffness", "N/mm", ".4g"),
    ("rotational_stiffness", "rotational stiffness", "N mm/rad", ".4g"),
    ("posterior_wall_bulge", "posterior wall bulge", "mm", ".3g"),
    ("factor_of_risk", "factor of risk", "", ".3f"),
]
_FALLBACK_METRICS = [("max_von_mises", "max von Mises", "MPa", ".4g"), ("max_displacement", "max displacement", "mm", ".3g")]


def _metric(lc: dict, key: str):
    v = lc.get(key, lc.get("risk", {}).get(key) if isinstance(lc.get("risk"), dict) else None)
    return v if isinstance(v, int | float) and math.isfinite(v) else None


def metrics_text(summary: dict, loadcase: str) -> str:
    """A few key metrics of a load case, one per line."""
    lc = summary.get("loadcases", {}).get(loadcase, {})
    lines = []
    for key, label, unit, fmt in PANEL_METRICS:
        v = _metric(lc, key)
        if v is not None:
            txt = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:{fmt}}"
            lines.append(f"{label}: {txt}" + (f" {unit}" if unit else ""))
    if not lines:
        for key, label, unit, fmt in _FALLBACK_METRICS:
            v = _metric(lc, key)
            if v is not None:
                lines.append(f"{label}: {v:{fmt}} {unit}")
    return "\n".join(lines)


def compare_panel(
    result_dirs: Sequence[str | Path],
    png: str | Path,
    field: str = "von_mises",
    titles: Sequence[str] | None = None,
    loadcase: str | None = None,
    clip: str = "sagittal",
    deform: float | str = 0.0,
    panel_size: tuple[int, int] = (480, 420),
) -> Path:
    """Cases side by side on one colour scale, each titled and with its key metrics; writes ``png``.

    ``result_dirs`` are result folders (or VTU files); ``loadcase`` defaults to the first
    load case of the first folder.  The picture is ``n`` panels wide, with a header row
    (title, load case, axial or rotational stiffness, posterior wall bulge, factor of
    risk from each summary.json) and one shared colour bar below.
    """
    dirs = [Path(d) for d in result_dirs]
    if not dirs:
        raise InputError("compare_panel needs at least one result folder")
    if titles is not None and len(titles) != len(dirs):
        raise InputError(f"{len(titles)} titles for {len(dirs)} result folders")
    clip = _check_clip(clip)
    summaries = [_summary(d) if d.is_dir() else _summary(d.parent) for d in dirs]
    if loadcase is None:
        for d in dirs:
            if d.is_dir():
                loadcase = next(iter(_vtu_files(d)), None)
                break
    grids, lcs = [], []
    for d in dirs:
        vtu = find_vtu(d, loadcase if d.is_dir() else None)
        grids.append(read_grid(vtu))
        lcs.append(loadcase if d.is_dir() and loadcase else vtu.stem)
    parts = [split(g, screw_radius(s.get("meta"))) for g, s in zip(grids, summaries, strict=True)]
    # one colour scale for all panels
    lo, hi = math.inf, -math.inf
    for p in parts:
        v, _, spec = field_values(p.solid, field)
        a, b = field_range(v, spec)
        lo, hi = min(lo, a), max(hi, b)
    b = np.array([p.bounds for p in parts])
    bounds = (b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max(), b[:, 4].min(), b[:, 5].max())

    pv = _pv()
    n = len(dirs)
    w, h = panel_size
    head_h, bar_h = 120, 90
    pl = pv.Plotter(
        off_screen=True, window_size=[w * n, head_h + h + bar_h], shape=(3, n), row_weights=[head_h, h, bar_h],
        groups=[(2, np.s_[:])], border=False,
    )
    labels: dict[str, str] = {}
    view = None
    for i, (p, s) in enumerate(zip(parts, summaries, strict=True)):
        pl.subplot(0, i)
        pl.set_background(BACKGROUND)
        title = titles[i] if titles is not None else s.get("case", dirs[i].stem)
        pl.add_text(title, position="upper_edge", font_size=13, color=TEXT_COLOR)
        text = f"load case: {lcs[i]}\n" + metrics_text(s, lcs[i])
        pl.add_text(text, position=(0.04, 0.04), viewport=True, font_size=9, color=TEXT_COLOR)
        pl.subplot(1, i)
        pl.set_background(BACKGROUND)
        view = add_result(pl, p, field, clip, deform, clim=(lo, hi), scalar_bar=False, legend=False)
        labels.update(dict(view.labels))
        set_camera(pl, bounds, clip)
    pl.subplot(2, 0)
    pl.set_background(BACKGROUND)
    pl.add_scalar_bar(
        title=" ", mapper=view.actor.mapper, vertical=False, position_x=0.3, position_y=0.3, width=0.6,
        height=0.65, fmt=_fmt(lo, hi), color=TEXT_COLOR, n_labels=5, label_font_size=12,
    )
    bar_title = view.field.title + (f", {clip} cut" if clip != "none" else "") + ", one scale for all panels"
    pl.add_text(bar_title, position=(0.3, 0.04), viewport=True, font_size=10, color=TEXT_COLOR)
    if labels:
        longest = max(len(k) for k in labels)
        pl.add_legend(
            labels=[[k, c] for k, c in labels.items()], bcolor="white", border=False,
            size=(min(0.28, (9 * longest + 30) / (w * n)), min(0.9, 0.24 * len(labels))), loc="center left",
            face="rectangle",
        )
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    try:
        pl.screenshot(str(png))
    finally:
        pl.close()
    return png


# -- HTML ---------------------------------------------------------------------------------------
def export_html(
    vtu,
    html: str | Path,
    field: str = "von_mises",
    clip: str = "sagittal",
    loadcase: str | None = None,
    deform: float | str = 0.0,
) -> Path:
    """An interactive scene (vtk.js, rotate/zoom in any browser) in one self-contained HTML file.

    ``vtu`` is a VTU file, a result folder (with ``loadcase``) or a pyvista grid.  Needs the
    'trame-pyvista' package with pyvista >= 0.49 ('trame', 'trame-vtk', 'trame-vuetify'
    before); without it this raises an :class:`InputError` naming the package to install.
    """
    check_html_export()
    pl = scene(vtu, field, clip, loadcase, deform, title="")
    html = Path(html)
    html.parent.mkdir(parents=True, exist_ok=True)
    try:
        _export_html(pl, html)
    finally:
        pl.close()
    return html


def html_requirements() -> list[tuple[str, str]]:
    """(module, pip package) pairs that pyvista's HTML export needs with this pyvista."""
    import pyvista as pv

    if _version(pv.__version__) >= (0, 49):
        return [("trame_pyvista", "trame-pyvista")]
    return [("trame", "trame"), ("trame_vtk", "trame-vtk"), ("trame_vuetify", "trame-vuetify")]


def check_html_export() -> None:
    """Raise an :class:`InputError` naming the packages to install when HTML export cannot work."""
    import importlib

    missing = []
    for mod, pkg in html_requirements():
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(pkg)
    if missing:
        raise InputError(
            f"HTML export needs the package{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(pip install {' '.join(missing)})"
        )


def _export_html(pl, html: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        component = getattr(pl, "trame", None)  # pyvista >= 0.49: registered by trame-pyvista
        try:
            if component is not None:
                component.export_html(str(html))
            else:
                pl.export_html(str(html))
        except ImportError as exc:
            raise InputError(f"HTML export failed: {exc} (pip install {' '.join(p for _, p in html_requirements())})") from None


def _version(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)
