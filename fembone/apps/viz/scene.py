"""One view of a result: clip plane, field colours, lesion/cement/yield overlays, screws, camera.

See :mod:`fembone.apps.viz` for what a view shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fembone.apps.viz.fields import (
    FIELDS,
    Field,
    Parts,
    _pv,
    _summary,
    _yield_index,
    field_range,
    field_values,
    find_vtu,
    read_grid,
    screw_radius,
    split,
)
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
