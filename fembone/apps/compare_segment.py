"""Segment rows of ``fembone compare``: range of motion, load sharing, implant stresses.

A segment result (``segment:`` case, :mod:`fembone.cases.segment`) carries per load case
``segment.range_of_motion_deg`` (relative rotation of each level pair about the moment
axis, deg), ``load_sharing`` (shares of the axial force across the index body's mid-plane:
body, posterior elements, implants -- the rods when the screws sit in the levels above and
below), ``rods`` and ``screws`` (peak von Mises and its ratio to yield, per implant) and
``risk`` (the index vertebra's risk block, read by :mod:`fembone.apps.compare` itself).
:func:`segment_rows` turns these into rows of the compare table, in the same form as
:func:`fembone.apps.compare.comparison` (values per case, ratio to the first case: for a
range of motion, the fraction of the first case's motion left); :func:`is_segment` tells a
segment summary from a single vertebra's.  Units: deg, -, MPa.
"""

from __future__ import annotations

import math

#: (key in load_sharing, label): shares of the axial force across the index body's mid-plane
SHARES = [
    ("body_share", "axial force share: index body"),
    ("posterior_share", "axial force share: posterior elements"),
    ("implant_share", "axial force share: implants (rods)"),
]
#: (block, key, label, unit): the largest value over the rods or screws of a case
IMPLANTS = [
    ("rods", "peak_von_mises", "rod peak von Mises", "MPa"),
    ("rods", "yield_ratio", "rod peak von Mises / yield", "-"),
    ("screws", "peak_von_mises", "screw peak von Mises", "MPa"),
    ("screws", "yield_ratio", "screw peak von Mises / yield", "-"),
]
#: (key in the index vertebra's risk block, label, unit) not already among compare.METRICS
RISK = [("cement_bulk_utilisation", "index cement utilisation (p99 / strength)", "-")]


def _num(v) -> float | None:
    """A finite number as float (-0.0 as 0.0: a share of no implant prints as 0), else None."""
    return float(v) + 0.0 if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def is_segment(summary: dict) -> bool:
    """True for the result of a segment case (``meta.segment`` or per-load-case ``segment`` blocks)."""
    if isinstance(summary.get("meta", {}).get("segment"), dict):
        return True
    return any(isinstance(lc, dict) and "segment" in lc for lc in summary.get("loadcases", {}).values())


def level_pairs(summaries: list[dict], loadcase: str) -> list[str]:
    """Level pairs with a range of motion in ``loadcase``, in the order of their first appearance."""
    pairs: list[str] = []
    for s in summaries:
        rom = s.get("loadcases", {}).get(loadcase, {}).get("segment", {}).get("range_of_motion_deg", {})
        pairs += [p for p in rom if p not in pairs]
    return pairs


def rom(lc: dict, pair: str) -> float | None:
    """Range of motion (deg) of a level pair about the load case's moment axis."""
    return _num(lc.get("segment", {}).get("range_of_motion_deg", {}).get(pair))


def share(lc: dict, key: str) -> float | None:
    return _num(lc.get("load_sharing", {}).get(key))


def implant_peak(lc: dict, block: str, key: str) -> float | None:
    """The largest ``key`` over the implants of ``block`` ('rods' or 'screws'); None without any."""
    vals = [_num(r.get(key)) for r in lc.get(block, {}).values() if isinstance(r, dict)]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def metric_values(lc: dict, pairs: list[str]) -> list[tuple[str, str, str, float | None]]:
    """(metric key, label, unit, value) of one load case of one segment summary."""
    out = [(f"range_of_motion_deg.{p}", f"range of motion {p}", "deg", rom(lc, p)) for p in pairs]
    out += [(f"load_sharing.{k}", label, "-", share(lc, k)) for k, label in SHARES]
    out += [(f"{b}.{k}", label, unit, implant_peak(lc, b, k)) for b, k, label, unit in IMPLANTS]
    out += [(f"risk.{k}", label, unit, _num(lc.get("risk", {}).get(k))) for k, label, unit in RISK]
    return out


def segment_rows(summaries: list[dict], loadcase: str) -> list[dict]:
    """Compare-table rows of ``loadcase`` from the segment summaries (none when no case is a segment).
    A metric that no case has is left out; ratios are to the first case (None where it has no value
    or a zero one)."""
    if not any(is_segment(s) for s in summaries):
        return []
    names = [s["case"] for s in summaries]
    pairs = level_pairs(summaries, loadcase)
    per_case = {s["case"]: metric_values(s.get("loadcases", {}).get(loadcase, {}), pairs) for s in summaries}
    rows = []
    for i, (key, label, unit, _) in enumerate(per_case[names[0]]):
        vals = {n: per_case[n][i][3] for n in names}
        if all(v is None for v in vals.values()):
            continue
        first = vals[names[0]]
        rows.append({"loadcase": loadcase, "metric": key, "label": label, "unit": unit, "values": vals,
                     "ratio": {n: (v / first if v is not None and first not in (None, 0) else None) for n, v in vals.items()}})
    return rows
