"""Study report: plots of each output metric against each parameter and report.html."""

from __future__ import annotations

import html
import sys
from pathlib import Path

from fembone.apps.study.design import Study
from fembone.apps.study.records import ID_COLUMNS, case_dir, columns, table_rows
from fembone.core import schema as S
from fembone.core.version import __version__

DEFAULT_OUTPUTS_VERTEBRA = ("axial_stiffness", "posterior_wall_bulge", "factor_of_risk")
DEFAULT_OUTPUTS = ("max_displacement", "max_von_mises")


# -- report ---------------------------------------------------------------------------------
def metric_column(name: str, cols: list[str]) -> str | None:
    for c in (name, f"risk.{name}", f"probes.{name}", f"volumes.{name}"):
        if c in cols:
            return c
    return None


def _num(v) -> float | None:
    return float(v) if S.is_number(v) else None


def write_report(study: Study, out: Path, rows: list[dict] | None = None, stream=None) -> Path:
    """plots/<metric>__<parameter>.png (metric against each parameter, a line per scenario) and report.html."""
    stream = stream or sys.stderr
    out = Path(out)
    rows = table_rows(study, out) if rows is None else rows
    cols = columns(study, rows)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
        print("fembone: warning: matplotlib is not installed: report without plots (pip install matplotlib)", file=stream)
    wanted = study.outputs or [
        m for m in (DEFAULT_OUTPUTS_VERTEBRA if any(c.startswith("risk.") for c in cols) else DEFAULT_OUTPUTS)
    ]
    metrics = []
    for m in wanted:
        c = metric_column(m, cols)
        if c is None:
            print(f"fembone: warning: output '{m}' is not in the results (columns: {', '.join(cols[len(ID_COLUMNS) + len(study.parameters) + 3:])})", file=stream)
        else:
            metrics.append((m, c))
    ok = [r for r in rows if r.get("status") == "ok"]
    loadcases = list(dict.fromkeys(r["loadcase"] for r in ok))
    plots: list[tuple[str, str]] = []
    if plt is not None and ok:
        (out / "plots").mkdir(parents=True, exist_ok=True)
        for m, c in metrics:
            for p in study.parameters:
                fname = f"plots/{_safe(m)}__{_safe(p)}.png"
                if _plot(plt, study, ok, loadcases, m, c, p, out / fname):
                    plots.append((f"{m} against {p}", fname))
    (out / "report.html").write_text(_html(study, out, rows, cols, plots), encoding="utf-8")
    return out / "report.html"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _plot(plt, study: Study, rows, loadcases, metric, col, param, path: Path) -> bool:
    others = [q for q in study.parameters if q != param]
    loadcases = [lc for lc in loadcases if any(r["loadcase"] == lc and _num(r.get(col)) is not None for r in rows)]
    if not loadcases:
        return False
    n = len(loadcases)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    any_data = False
    scen = list(study.scenarios)
    styles = ["-", "--", ":", "-."]
    for ax, lc in zip(axes[0], loadcases, strict=False):
        sub = [r for r in rows if r["loadcase"] == lc and _num(r.get(param)) is not None and _num(r.get(col)) is not None]
        # one line per scenario (and per value of the other parameter in a two-parameter grid)
        group_by_other = study.design == "grid" and len(others) == 1 and len({str(r.get(others[0])) for r in sub}) <= 6
        groups: dict[tuple, list] = {}
        for r in sub:
            g = (r["scenario"], r.get(others[0]) if group_by_other else None)
            groups.setdefault(g, []).append((_num(r[param]), _num(r[col])))
        colours = {}
        for (s, o), pts in groups.items():
            pts.sort()
            xs = [x for x, _ in pts]
            ys = [y for _, y in pts]
            label = s if o is None else f"{s}, {others[0].split('.')[-1]}={o}"
            if o is not None:
                colours.setdefault(str(o), f"C{len(colours) % 10}")
            colour = colours.get(str(o), f"C{scen.index(s) % 10}" if s in scen else None)
            ls = styles[scen.index(s) % len(styles)] if s in scen else "-"
            if study.design in ("grid", "zip") and len(set(xs)) == len(xs):
                ax.plot(xs, ys, ls, marker="o", color=colour, label=label, ms=4)
            else:
                ax.plot(xs, ys, "o", color=colour, label=label, ms=4, alpha=0.8)
            any_data = True
        ax.set_title(lc, fontsize=10)
        ax.set_xlabel(param, fontsize=9)
        ax.set_ylabel(metric, fontsize=9)
        ax.grid(alpha=0.3)
        if groups:
            ax.legend(fontsize=6, framealpha=0.6)
    fig.suptitle(f"{study.name}: {metric}", fontsize=10)
    fig.tight_layout()
    if any_data:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return any_data


def _html(study: Study, out: Path, rows, cols, plots) -> str:
    e = html.escape
    n_cases = len({r["case_id"] for r in rows})
    failed = sorted({r["case_id"] for r in rows if r.get("status") == "failed"})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>fembone study {e(study.name)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
        "tr.failed td{background:#fdd}img{max-width:100%;margin:4px}</style></head><body>",
        f"<h1>Study {e(study.name)}</h1>",
        f"<p>{e(study.description)}</p>" if study.description else "",
        f"<p>Base case <code>{e(str(study.base_path))}</code>; design <b>{e(study.design)}</b>; "
        f"scenarios: {e(', '.join(study.scenarios))}; parameters: {e(', '.join(study.parameters) or 'none')}. "
        f"{len(study.cases)} case(s) ({len(study.unique_cases)} distinct), {n_cases} with results, {len(failed)} failed. "
        f"Units: mm, N, MPa. fembone {e(__version__)}.</p>",
    ]
    if plots:
        parts.append("<h2>Plots</h2>")
        for title, f in plots:
            parts.append(f"<figure><img src='{e(f)}' alt='{e(title)}'><figcaption>{e(title)}</figcaption></figure>")
    pics = _pictures(study, out)
    if pics:
        parts.append("<h2>Stress pictures</h2>")
        for title, f in pics:
            parts.append(f"<figure><img src='{e(f)}' alt='{e(title)}' style='max-width:45%'><figcaption>{e(title)}</figcaption></figure>")
    parts.append("<h2>Results</h2><p>Also in <a href='results.csv'>results.csv</a>.</p><table><tr>")
    parts.extend(f"<th>{e(c)}</th>" for c in cols)
    parts.append("</tr>")
    for r in rows:
        cls = " class='failed'" if r.get("status") == "failed" else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{e(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(p for p in parts if p)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.5g}"
    return str(v)


def _pictures(study: Study, out: Path) -> list[tuple[str, str]]:
    """PNG previews of the first finished case of each scenario (when fembone.apps.viz wrote any)."""
    try:
        import fembone.apps.viz  # noqa: F401
    except ImportError:
        return []
    pics = []
    seen = set()
    for c in study.cases:
        if c.scenario in seen:
            continue
        d = case_dir(out, c.case_id)
        pngs = sorted(d.glob("*.png")) if d.is_dir() else []
        if pngs:
            seen.add(c.scenario)
            label = ", ".join(f"{k}={v}" for k, v in c.params.items())
            for p in pngs[:4]:
                pics.append((f"{c.scenario} ({label}): {p.stem}", str(p.relative_to(out))))
    return pics
