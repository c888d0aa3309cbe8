"""Per-case records (``cases/<id>/record.json``) and the study table (results.csv, parquet, study.json).

A case's record is written atomically and last, so a rerun skips every case that has one
(resume); the table is rebuilt from the records in study order.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from fembone.apps.study.design import Study
from fembone.core.version import __version__

#: columns before the parameters and after them, in this order
ID_COLUMNS = ("study", "case_id", "scenario")
STATUS_COLUMNS = ("loadcase", "status", "error")
#: metrics of the load-case summary copied into the table (when present), before probes/risk/volumes
BASE_METRICS = ("max_von_mises", "max_displacement", "equilibrium_error", "strain_energy")


def save_record(case_dir: Path, record: dict) -> None:
    from fembone.core.output import atomic_write_text

    atomic_write_text(Path(case_dir) / "record.json", json.dumps(record, indent=1, allow_nan=True, default=float) + "\n")


def read_record(case_dir: Path) -> dict | None:
    p = Path(case_dir) / "record.json"
    try:
        rec = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and rec.get("status") in ("ok", "failed") else None


def _scalar(v) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def summary_rows(summary: dict) -> list[dict]:
    """Per load case: loadcase, metrics, probes.*, risk.*, volumes.* (scalars only)."""
    vols = summary.get("meta", {}).get("volumes", {}) or {}
    rows = []
    for lc, s in summary.get("loadcases", {}).items():
        row: dict[str, Any] = {"loadcase": lc}
        for k in BASE_METRICS:
            if k in s:
                row[k] = s[k]
        for k, v in (s.get("probes") or {}).items():
            row[f"probes.{k}"] = v
        for k, v in (s.get("risk") or {}).items():
            if _scalar(v):
                row[f"risk.{k}"] = v
        for k, v in vols.items():
            if _scalar(v):
                row[f"volumes.{k}"] = v
        row["dofs"] = summary.get("dofs")
        rows.append(row)
    return rows


def case_dir(out: Path, case_id: str) -> Path:
    return Path(out) / "cases" / case_id


# -- the table ------------------------------------------------------------------------------
def write_study_json(study: Study, out: Path) -> None:
    from fembone.core.output import atomic_write_text

    doc = {
        "name": study.name, "study_file": str(study.path), "base": str(study.base_path), "design": study.design,
        "parameters": list(study.parameters), "scenarios": list(study.scenarios), "fembone": __version__,
        "cases": [{"index": c.index, "case_id": c.case_id, "scenario": c.scenario, "parameters": c.params} for c in study.cases],
    }
    atomic_write_text(Path(out) / "study.json", json.dumps(doc, indent=1, default=repr) + "\n")


def table_rows(study: Study, out: Path) -> list[dict]:
    """Rows of every case that has a record, in study order (one per case x load case)."""
    rows = []
    cache: dict[str, dict | None] = {}
    for c in study.cases:
        if c.case_id not in cache:
            cache[c.case_id] = read_record(case_dir(out, c.case_id))
        rec = cache[c.case_id]
        if rec is None:
            continue
        head = {"study": study.name, "case_id": c.case_id, "scenario": c.scenario}
        head.update({p: c.params.get(p) for p in study.parameters})
        if rec["status"] == "ok" and rec.get("rows"):
            for r in rec["rows"]:
                rows.append({**head, "loadcase": r.get("loadcase", ""), "status": "ok", "error": "", **{k: v for k, v in r.items() if k != "loadcase"}})
        else:
            rows.append({**head, "loadcase": "", "status": rec["status"], "error": rec.get("error", "")})
    return rows


def columns(study: Study, rows: list[dict]) -> list[str]:
    cols = list(ID_COLUMNS) + list(study.parameters) + list(STATUS_COLUMNS)
    metrics: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols and k not in metrics:
                metrics.append(k)

    def rank(k: str):
        if k in BASE_METRICS:
            return (0, BASE_METRICS.index(k), k)
        for i, pre in enumerate(("probes.", "risk.", "volumes.")):
            if k.startswith(pre):
                return (1 + i, 0, k)
        return (9, 0, k)

    return cols + sorted(metrics, key=rank)


def write_table(study: Study, out: Path) -> list[dict]:
    """results.csv (and results.parquet when pyarrow is importable) from the per-case records."""
    from fembone.core.output import atomic_write_text

    out = Path(out)
    rows = table_rows(study, out)
    cols = columns(study, rows)
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    wr.writeheader()
    for r in rows:
        wr.writerow({k: _csv_value(r.get(k)) for k in cols})
    atomic_write_text(out / "results.csv", buf.getvalue())
    _write_parquet(rows, cols, out / "results.parquet")
    return rows


def _csv_value(v):
    if v is None:
        return ""
    if isinstance(v, list | dict):
        return json.dumps(v)
    return v


def _write_parquet(rows: list[dict], cols: list[str], path: Path) -> bool:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    data = {}
    for c in cols:
        vals = [r.get(c) for r in rows]
        vals = [json.dumps(v) if isinstance(v, list | dict) else v for v in vals]
        kinds = {type(v) for v in vals if v is not None}
        if kinds and not kinds <= {int, float} and not kinds <= {str} and not kinds <= {bool}:
            vals = [None if v is None else str(v) for v in vals]
        elif kinds == {int, float}:
            vals = [None if v is None else float(v) for v in vals]
        data[c] = vals
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.table(data), tmp)
    os.replace(tmp, path)
    return True


def read_table(path: str | Path) -> list[dict]:
    """results.csv as a list of dicts (numbers parsed, empty cells None)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def _parse(v: str):
    if v == "":
        return None
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v
