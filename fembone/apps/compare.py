"""Before/after comparison of cases: a table per load case, ratios, stiffness restored.

Each input is a case file (solved now, results written under ``out/<case name>``) or a
result folder holding ``summary.json`` (read).  The first case is the reference for the
ratios; when an intact case is given (``intact=...`` or a case named '*intact*' without
lesions), "restored" is each case's stiffness as a percentage of the intact one.

Cases with a strength analysis (``analysis: {type: strength}``) add the nonlinear strength
(peak platen force, N) and ``factor_of_risk_nonlinear`` (applied load / strength) beside the
linear ``strength_estimate`` and ``factor_of_risk``; :func:`strength_runs` collects their
force-displacement curves for one overlay PNG (:func:`fembone.apps.viz.curves.overlay_png`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from fembone.apps.compare_segment import segment_rows
from fembone.core.errors import InputError

#: (key in the load-case summary or its 'risk' object, label, unit)
METRICS = [
    ("axial_stiffness", "axial stiffness", "N/mm"),
    ("rotational_stiffness", "rotational stiffness", "N mm/rad"),
    ("posterior_wall_bulge", "posterior wall bulge", "mm"),
    ("failed_volume_fraction", "failed bone volume", "-"),
    ("strength_estimate", "strength estimate (linear)", "N or N mm"),
    ("factor_of_risk", "factor of risk (linear)", "-"),
    ("strength", "strength (nonlinear peak)", "N"),
    ("factor_of_risk_nonlinear", "factor of risk (nonlinear)", "-"),
    ("max_von_mises", "max von Mises", "MPa"),
    ("max_displacement", "max displacement", "mm"),
    ("cement_peak_von_mises", "cement peak von Mises", "MPa"),
]


def load_summary(item: str | Path, out: Path, progress=None) -> dict:
    """Summary of a result folder, a summary.json, or a case file (solved and written now)."""
    p = Path(item)
    if p.is_dir():
        p = p / "summary.json"
    if p.name == "summary.json":
        if not p.is_file():
            raise InputError("no summary.json here (run the case first or give its case file)", str(p.parent))
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"summary.json is not valid JSON ({exc.msg})", str(p)) from None
    from fembone.core.analysis import solve
    from fembone.cases import load_case
    from fembone.core.output import write_results

    model = load_case(p)
    result = solve(model, progress=progress)
    return write_results(result, out / model.name)


def strength_runs(summaries: list[dict]) -> list[tuple[str, dict]]:
    """(case, ``meta.strength``) of the compared cases that ran a strength analysis, in order."""
    out = []
    for s in summaries:
        st = s.get("meta", {}).get("strength")
        if isinstance(st, dict) and st.get("curve"):
            out.append((s["case"], st))
    return out


def strength_notes(summaries: list[dict]) -> list[str]:
    """A line per case whose nonlinear strength is only a lower bound (no peak within max_displacement)."""
    return [f"note: the strength of {name} is a lower bound: the force still rose at "
            f"{st.get('max_displacement', float('nan')):g} mm (raise analysis.max_displacement)"
            for name, st in strength_runs(summaries) if st.get("peak_reached") is False]


def _value(lc: dict, key: str):
    v = lc.get(key, lc.get("risk", {}).get(key))
    return v if isinstance(v, int | float) and v is not None and math.isfinite(v) else None


def _is_intact(s: dict) -> bool:
    meta = s.get("meta", {})
    return "intact" in s.get("case", "").lower() and not meta.get("lesions")


def comparison(summaries: list[dict], intact: str | None = None) -> list[dict]:
    """Rows: load case, metric, unit, then per case value, ratio to the first, % of intact."""
    names = [s["case"] for s in summaries]
    if len(set(names)) != len(names):
        raise InputError(f"cases must have distinct names, got {names}")
    if intact is not None and intact not in names:
        raise InputError(f"intact case '{intact}' is not among the compared cases ({', '.join(names)})", "--intact")
    ref_intact = intact or next((s["case"] for s in summaries if _is_intact(s)), None)
    lcs = []
    for s in summaries:
        for k in s["loadcases"]:
            if k not in lcs:
                lcs.append(k)
    rows = []
    for lc in lcs:
        for key, label, unit in METRICS:
            vals = {s["case"]: _value(s["loadcases"].get(lc, {}), key) for s in summaries}
            if all(v is None for v in vals.values()):
                continue
            row = {"loadcase": lc, "metric": key, "label": label, "unit": unit, "values": vals}
            first = vals[names[0]]
            row["ratio"] = {n: (v / first if v is not None and first not in (None, 0) else None) for n, v in vals.items()}
            if ref_intact and key in ("axial_stiffness", "rotational_stiffness", "strength_estimate", "strength"):
                ref = vals.get(ref_intact)
                row["percent_of_intact"] = {n: (100 * v / ref if v is not None and ref else None) for n, v in vals.items()}
            rows.append(row)
        rows.extend(segment_rows(summaries, lc))  # range of motion, load sharing, implants (segments only)
    return rows


def format_table(rows: list[dict], names: list[str]) -> str:
    """Plain-text table: one block per load case."""
    buf = io.StringIO()
    w = max(12, *(len(n) for n in names))
    lw = max([24] + [len(f"{r['label']} [{r['unit']}]") for r in rows])
    cur = None
    for r in rows:
        if r["loadcase"] != cur:
            cur = r["loadcase"]
            buf.write(f"\nload case: {cur}\n")
            buf.write(f"  {'metric':<{lw}s}" + "".join(f"{n:>{w + 2}s}" for n in names) + "\n")
        buf.write(f"  {r['label'] + ' [' + r['unit'] + ']':<{lw}s}" + "".join(f"{_fmt(r['values'][n]):>{w + 2}s}" for n in names) + "\n")
        buf.write(f"  {'  ratio to first':<{lw}s}" + "".join(f"{_fmt(r['ratio'][n], '.3f'):>{w + 2}s}" for n in names) + "\n")
        if "percent_of_intact" in r:
            buf.write(f"  {'  % of intact (restored)':<{lw}s}" + "".join(f"{_fmt(r['percent_of_intact'][n], '.1f'):>{w + 2}s}" for n in names) + "\n")
    return buf.getvalue()


def _fmt(v, spec: str = ".4g") -> str:
    return "-" if v is None else format(v, spec)


def write_tables(rows: list[dict], names: list[str], out: Path) -> tuple[Path, Path]:
    """compare.csv (one row per load case x metric x case) and compare.json."""
    from fembone.core.output import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    wr = csv.writer(buf)
    wr.writerow(["loadcase", "metric", "unit", "case", "value", "ratio_to_first", "percent_of_intact"])
    for r in rows:
        for n in names:
            wr.writerow([r["loadcase"], r["metric"], r["unit"], n, r["values"][n], r["ratio"][n], r.get("percent_of_intact", {}).get(n)])
    csv_path, json_path = out / "compare.csv", out / "compare.json"
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(json_path, json.dumps({"cases": names, "rows": rows}, indent=2) + "\n")
    return csv_path, json_path
