"""Panel figure of segment treatments (``fembone compare --figure`` on segment results).

Four charts from the cases' summary.json (matplotlib's Agg canvas, no display), one colour
per case throughout:

a. range of motion (deg) of each level pair in each moment load case;
b. load sharing: the shares of the axial force across the index body's mid-plane carried by
   the body, the posterior elements and the implants (rods), in the first load case that
   has them (a pure force if there is one);
c. the index vertebra's factor of risk (applied load / strength estimate) per load case;
d. the largest rod and screw von Mises stress as a fraction of yield per load case.

Values are read with :mod:`fembone.apps.compare_segment`, the functions behind the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fembone.apps.compare_segment import SHARES, implant_peak, level_pairs, rom, share
from fembone.core.errors import InputError


def _loadcases(summaries: list[dict]) -> list[str]:
    out: list[str] = []
    for s in summaries:
        out += [k for k in s.get("loadcases", {}) if k not in out]
    return out


def sharing_loadcase(summaries: list[dict]) -> str | None:
    """The load case for the load-sharing chart: the first with shares and no range of motion
    (a pure axial force), else the first with shares; None when no case has any."""
    lcs = [k for k in _loadcases(summaries) if any(share(s["loadcases"].get(k, {}), "body_share") is not None for s in summaries)]
    pure = [k for k in lcs if not level_pairs(summaries, k)]
    return (pure or lcs or [None])[0]


def _bars(ax, groups: list[str], series: list[list[float | None]], names: list[str], hatch: str = "", offset: float = 0.0,
          width: float | None = None, label: bool = True) -> None:
    n = len(series)
    w = width if width is not None else 0.8 / max(n, 1)
    for i, vals in enumerate(series):
        xs = [g + offset + (i - (n - 1) / 2) * w for g in range(len(groups))]
        ys = [float("nan") if v is None else v for v in vals]
        ax.bar(xs, ys, w, color=f"C{i}", hatch=hatch, edgecolor="white" if not hatch else "black", linewidth=0.4,
               label=names[i] if label else None)
    ax.set_xticks(range(len(groups)), groups, fontsize=7, rotation=30, ha="right")
    ax.grid(True, axis="y", alpha=0.3)


def segment_panel(summaries: Sequence[dict], png: str | Path, titles: Sequence[str] | None = None,
                  size: tuple[float, float] = (12.0, 8.5)) -> Path:
    """The four-chart panel of the segment cases ``summaries`` (loaded summary.json), written to ``png``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    summaries = list(summaries)
    if not summaries:
        raise InputError("segment_panel needs at least one segment summary")
    names = list(titles) if titles is not None else [s.get("case", f"case {i + 1}") for i, s in enumerate(summaries)]
    if len(names) != len(summaries):
        raise InputError(f"{len(names)} titles for {len(summaries)} cases")
    lcs = _loadcases(summaries)
    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots(2, 2)

    # a. range of motion per level pair and moment load case
    groups, series = [], [[] for _ in summaries]
    for k in lcs:
        for p in level_pairs(summaries, k):
            groups.append(f"{k}\n{p}")
            for i, s in enumerate(summaries):
                series[i].append(rom(s["loadcases"].get(k, {}), p))
    a = ax[0, 0]
    if groups:
        _bars(a, groups, series, names)
        a.set_ylabel("range of motion (deg)")
    else:
        a.text(0.5, 0.5, "no moment load cases", ha="center", va="center", transform=a.transAxes)
    a.set_title("a. range of motion per level pair", fontsize=10)

    # b. load sharing across the index body's mid-plane
    b = ax[0, 1]
    lc = sharing_loadcase(summaries)
    if lc is not None:
        bottom_pos, bottom_neg = [0.0] * len(summaries), [0.0] * len(summaries)
        for j, (key, label) in enumerate(SHARES):
            vals = [share(s["loadcases"].get(lc, {}), key) or 0.0 for s in summaries]
            base = [bp if v >= 0 else bn for v, bp, bn in zip(vals, bottom_pos, bottom_neg)]
            b.bar(range(len(summaries)), vals, 0.6, bottom=base, color=("0.55", "0.8", "C3")[j], edgecolor="black", linewidth=0.4,
                  label=label.split(": ")[1])
            bottom_pos = [bp + max(v, 0.0) for v, bp in zip(vals, bottom_pos)]
            bottom_neg = [bn + min(v, 0.0) for v, bn in zip(vals, bottom_neg)]
        b.set_xticks(range(len(summaries)), names, fontsize=7, rotation=20, ha="right")
        b.axhline(1.0, color="k", lw=0.6, ls=":")
        b.set_ylabel("share of the axial force")
        b.legend(fontsize=7, loc="lower right")
        b.grid(True, axis="y", alpha=0.3)
        b.set_title(f"b. load sharing across the index body ({lc})", fontsize=10)
    else:
        b.text(0.5, 0.5, "no axial load case", ha="center", va="center", transform=b.transAxes)
        b.set_title("b. load sharing across the index body", fontsize=10)

    # c. index-vertebra factor of risk
    c = ax[1, 0]
    fr = [[_risk(s, k) for k in lcs] for s in summaries]
    _bars(c, lcs, fr, names, label=False)
    c.axhline(1.0, color="k", lw=0.6, ls=":")
    level = next((s["loadcases"][k].get("risk", {}).get("level") for s in summaries for k in s.get("loadcases", {})
                  if isinstance(s["loadcases"][k].get("risk"), dict)), None)
    c.set_ylabel("factor of risk (load / strength)")
    c.set_title(f"c. index vertebra{f' ({level})' if level else ''}: factor of risk", fontsize=10)

    # d. rods (solid) and screws (hatched) against yield
    d = ax[1, 1]
    rods = [[implant_peak(s["loadcases"].get(k, {}), "rods", "yield_ratio") for k in lcs] for s in summaries]
    screws = [[implant_peak(s["loadcases"].get(k, {}), "screws", "yield_ratio") for k in lcs] for s in summaries]
    n = len(summaries)
    w = 0.8 / (2 * max(n, 1))
    _bars(d, lcs, rods, names, offset=-0.2, width=w, label=False)
    _bars(d, lcs, screws, names, hatch="//", offset=0.2, width=w, label=False)
    d.set_ylabel("peak von Mises / yield")
    d.set_title("d. implants: rods (solid, left) and screws (hatched, right)", fontsize=10)
    d.set_ylim(bottom=0.0)

    handles, labels = ax[0, 0].get_legend_handles_labels()
    if not handles:
        handles = [Patch(color=f"C{i}") for i in range(n)]
        labels = names
    fig.legend(handles, labels, loc="outside upper center", ncols=min(n, 4), fontsize=8)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    return png


def _risk(s: dict, lc: str) -> float | None:
    r = s.get("loadcases", {}).get(lc, {}).get("risk", {})
    v = r.get("factor_of_risk") if isinstance(r, dict) else None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
