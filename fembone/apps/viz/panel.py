"""Comparison panels: several cases side by side on one colour scale with their key metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fembone.apps.viz.fields import (
    _pv,
    _summary,
    _vtu_files,
    field_range,
    field_values,
    find_vtu,
    read_grid,
    screw_radius,
    split,
)
from fembone.apps.viz.scene import (
    BACKGROUND,
    TEXT_COLOR,
    _check_clip,
    _fmt,
    add_result,
    set_camera,
)
from fembone.core.errors import InputError

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
