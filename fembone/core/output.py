"""Result files: one VTU per load case (ParaView, pyvista), a ``<case>.pvd`` collection
grouping them, and ``summary.json`` with a ``provenance`` block (who computed what, with
which software, how long it took).

VTU point data: ``displacement`` (mm), ``stress_nodal``/``strain_nodal`` (recovered, 6
components xx yy zz xy yz xz); cell data: ``von_mises`` (MPa), ``strain``, ``stress``
(element averages, 6 components), ``principal_stress``/``principal_strain`` (min, mid,
max), ``equivalent_strain``, ``material`` (index into summary.json's material list).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import quoteattr

from fembone.core.analysis import LoadCaseResult, Result
from fembone.core.fieldmesh import loadcase_mesh  # noqa: F401  (re-exported: fembone.apps.viz uses it)
from fembone.core.version import environment, peak_memory_mib


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_vtu(result: Result, lc: LoadCaseResult, path: Path) -> Path:
    import meshio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.vtu")
    meshio.write(tmp, loadcase_mesh(result, lc), binary=True)
    os.replace(tmp, path)
    return path


def provenance(result: Result) -> dict:
    """Where a result came from: software versions, solver, per-load-case iterations and
    residuals, wall time (s, from the start of assembly until now), peak memory (MiB, the
    process's peak so far), an ISO 8601 UTC timestamp, and the case hash and resolved case
    when the model carries them (``model.meta['case_hash']``, ``model.meta['resolved_case']``)."""
    from fembone.core.analysis import _jsonable

    info = result.solver_info
    solved = list(result.model.loads)  # the solver's columns, companions (not reported) included
    iters = info.get("iterations")
    residuals = info.get("residuals")
    per_case = {}
    for name in result.loadcases:
        k = solved.index(name) if name in solved else -1
        entry = {}
        if k >= 0 and isinstance(iters, list | tuple) and len(iters) == len(solved):
            entry["iterations"] = int(iters[k])
        if k >= 0 and isinstance(residuals, list | tuple) and len(residuals) == len(solved):
            entry["residual"] = float(residuals[k])
        per_case[name] = entry
    wall = time.perf_counter() - result.started if result.started else sum(result.timings.values())
    out = {
        **environment(),
        "solver": result.solver,
        "loadcases": per_case,
        "wall_time_s": round(wall, 3),
        "peak_memory_mib": peak_memory_mib(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    meta = result.model.meta
    if meta.get("case_hash") is not None:
        out["case_hash"] = str(meta["case_hash"])
    if meta.get("resolved_case") is not None:
        out["resolved_case"] = _jsonable(meta["resolved_case"])
    if "pardiso_skipped" in info:
        out["pardiso_skipped"] = info["pardiso_skipped"]
    return out


def write_pvd(path: Path, files: dict[str, str]) -> Path:
    """A ParaView collection (``.pvd``) of the load-case VTUs ``{name: file}``: one time step
    per load case, in order, each named after its load case."""
    rows = "".join(
        f'    <DataSet timestep="{k}" group="" part="0" name={quoteattr(name)} file={quoteattr(file)}/>\n'
        for k, (name, file) in enumerate(files.items())
    )
    text = (
        '<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">\n'
        f"  <Collection>\n{rows}  </Collection>\n</VTKFile>\n"
    )
    atomic_write_text(path, text)
    return Path(path)


def write_results(result: Result, out: Path, vtu: bool = True) -> dict:
    """Write ``summary.json``, one VTU per load case and ``<case>.pvd`` grouping them into
    ``out``, plus the files of ``model.meta['_writers']`` (callables ``(result, out, vtu=)``
    returning ``{label: file name}``, listed under ``extra_files``); returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    summary["materials"] = [m.name for m in result.model.materials]
    files = {}
    if vtu:
        for name, lc in result.loadcases.items():
            p = write_vtu(result, lc, out / f"{_safe(name)}.vtu")
            files[name] = p.name
        summary["files"] = files
        summary["collection"] = write_pvd(out / f"{_safe(result.model.name)}.pvd", files).name
    for writer in result.model.meta.get("_writers", ()):  # extra result files of model extensions
        summary.setdefault("extra_files", {}).update(writer(result, out, vtu=vtu))
    summary["provenance"] = provenance(result)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False, default=float) + "\n")
    return summary


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
