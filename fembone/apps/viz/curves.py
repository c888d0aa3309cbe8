"""Force-displacement curves of strength analyses as PNGs (matplotlib, off-screen).

A strength run (``analysis: {type: strength}``, :mod:`fembone.cases.strength_run`) leaves its
curve in ``summary.json`` (``meta.strength``: curve, peak, offset and first yield) and in
``strength_curve.csv``.  :func:`strength_curve_png` draws one run with its peak (the
strength) and yield points marked (``fembone view``, ``fembone run``);
:func:`overlay_png` draws several runs on one pair of axes (``fembone compare``).
Matplotlib's Agg canvas is used directly (no pyplot, no display, no global backend change).
Units: mm (platen travel, compression positive), N (platen force).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

CURVE_PNG = "strength_curve.png"
CURVE_CSV = "strength_curve.csv"


def _num(v) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def strength_data(source: str | Path | dict) -> dict | None:
    """The strength of a result folder (or of a loaded summary): ``meta.strength`` of summary.json
    when present, else the curve of strength_curve.csv; None when the run had no strength analysis."""
    if isinstance(source, dict):
        st = source.get("meta", {}).get("strength")
        return st if isinstance(st, dict) and st.get("curve") else None
    folder = Path(source)
    if folder.is_file():
        folder = folder.parent
    summary = folder / "summary.json"
    if summary.is_file():
        try:
            st = json.loads(summary.read_text()).get("meta", {}).get("strength")
        except (json.JSONDecodeError, OSError):
            st = None
        if isinstance(st, dict) and st.get("curve"):
            return st
    path = folder / CURVE_CSV
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    d = [float(r["platen_displacement_mm"]) for r in rows]
    F = [float(r["force_N"]) for r in rows]
    if not F:
        return None
    from fembone.spine.strength import first_peak

    peak = first_peak(F)
    k = peak if peak is not None else len(F) - 1
    return {"curve": {"displacement": d, "force": F}, "strength": F[k], "displacement_at_peak": d[k],
            "peak_reached": peak is not None}


def _figure(size=(6.4, 4.4)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _axes(ax, title: str) -> None:
    ax.set_xlabel("platen displacement (mm, compression)")
    ax.set_ylabel("platen force (N)")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(left=0.0)
    ax.set_ylim(bottom=0.0)
    ax.grid(True, alpha=0.3)


def _point(st: dict, force: str, displacement: str) -> tuple[float, float] | None:
    F, d = _num(st.get(force)), _num(st.get(displacement))
    return None if F is None or d is None else (d, F)


def _mark(ax, st: dict, color, brief: bool = False) -> None:
    """Peak (filled circle), offset yield (square) and, unless ``brief``, first yield (triangle) of one run."""
    peak = _point(st, "strength", "displacement_at_peak")
    reached = st.get("peak_reached", True)
    if peak is not None:
        if brief:
            label = f"  {'peak' if reached else 'no peak yet (lower bound)'} {peak[1]:,.0f} N"
        else:
            label = f"{'strength' if reached else 'strength (lower bound: no peak yet)'} {peak[1]:,.0f} N at {peak[0]:.3g} mm"
        ax.plot(*peak, "o", color=color, ms=8, label=label)
    y = _point(st, "yield_force", "yield_displacement")
    if y is not None:
        off = _num(st.get("yield_offset"))
        note = f" ({off:.3g} mm offset)" if off is not None else ""
        ax.plot(*y, "s", color=color, mfc="white", ms=7, label=None if brief else f"yield{note} {y[1]:,.0f} N")
    first = None if brief else _point(st, "first_yield_force", "first_yield_displacement")
    if first is not None:
        ax.plot(*first, "^", color=color, mfc="white", ms=7, label=f"first yield {first[1]:,.0f} N")


def strength_curve_png(source: str | Path | dict, png: str | Path | None = None, title: str | None = None) -> Path | None:
    """One run's force-displacement curve with peak and yield points; written to ``png``
    (default: ``strength_curve.png`` in the result folder).  None when there is no strength."""
    st = strength_data(source)
    if st is None:
        return None
    if png is None:
        if isinstance(source, dict):
            raise ValueError("give png= when drawing from a summary")
        folder = Path(source)
        png = (folder.parent if folder.is_file() else folder) / CURVE_PNG
    fig, ax = _figure()
    c = st["curve"]
    ax.plot(c["displacement"], c["force"], "-", color="C0", lw=1.6, marker=".", ms=4, label="force-displacement")
    k0, off = _num(st.get("initial_stiffness")), _num(st.get("yield_offset"))
    if k0 is not None and off is not None and c["displacement"]:
        dmax = max(c["displacement"])
        top = max(c["force"])
        d_end = min(dmax, off + 1.1 * top / k0)
        ax.plot([off, d_end], [0.0, k0 * (d_end - off)], "--", color="0.5", lw=0.9, label="offset line")
    _mark(ax, st, "C3")
    name = title if title is not None else (Path(source).name if not isinstance(source, dict) else "")
    _axes(ax, f"{name}: strength to failure (nonlinear)" if name else "strength to failure (nonlinear)")
    ax.legend(fontsize=8, loc="lower right")
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    return png


def overlay_png(runs: Sequence[tuple[str, dict]], png: str | Path, title: str = "strength before and after treatment") -> Path:
    """Force-displacement curves of several runs ``(name, strength data)`` on one pair of axes, peaks marked."""
    if not runs:
        raise ValueError("no strength curves to draw")
    fig, ax = _figure((7.0, 4.6))
    for i, (name, st) in enumerate(runs):
        color = f"C{i % 10}"
        c = st["curve"]
        ax.plot(c["displacement"], c["force"], "-", color=color, lw=1.6, label=name)
        _mark(ax, st, color, brief=True)
    _axes(ax, title)
    ax.legend(fontsize=8, loc="lower right")
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    return png
