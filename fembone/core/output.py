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

import numpy as np

from fembone.core.analysis import LoadCaseResult, Result
from fembone.core.results import equivalent_strain, principal, sym6, von_mises
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


def loadcase_mesh(result: Result, lc: LoadCaseResult):
    """A ``meshio.Mesh`` of the bone (and any line cells) with the load case's fields."""
    import meshio

    model = result.model
    mesh = model.mesh
    f = lc.fields
    ctype = "tetra" if mesh.order == 1 else "tetra10"
    cells = [(ctype, mesh.cells)]
    cell_data = {
        "von_mises": [von_mises(f.stress)],
        "stress": [sym6(f.stress)],
        "strain": [sym6(f.strain)],
        "principal_stress": [principal(f.stress)],
        "principal_strain": [principal(f.strain)],
        "equivalent_strain": [equivalent_strain(f.strain)],
        "material": [model.material_id.astype(np.int32)],
    }
    for key, val in {**model.cell_data, **lc.extra.get("_cell_data", {})}.items():
        cell_data[key] = [np.asarray(val)]
    point_data = {
        "displacement": f.displacement,
        "stress_nodal": sym6(f.nodal_stress),
        "strain_nodal": sym6(f.nodal_strain),
        "von_mises_nodal": von_mises(f.nodal_stress),
    }
    for key, val in lc.extra.get("_point_data", {}).items():
        point_data[key] = val
    lines = model.meta.get("_lines")
    if not lines:
        return meshio.Mesh(mesh.points, cells, point_data=point_data, cell_data=cell_data)
    # screws: line cells on extra nodes appended after the mesh nodes, with their own fields
    nn = mesh.n_nodes
    ext = model.layout.extra_points
    pts = np.vstack([mesh.points, ext])
    conn = np.vstack([l for _, l in lines]) + nn
    ue = lc.u[3 * nn :].reshape(-1, 6)[:, :3] if len(ext) else np.zeros((0, 3))
    pd = {}
    for k, v in point_data.items():
        pad = np.zeros((len(ext),) + v.shape[1:]) if k != "displacement" else ue
        pd[k] = np.concatenate([v, pad])
    ld = lc.extra.get("_line_data", {})
    nl = len(conn)
    cd = {}
    for k, v in cell_data.items():
        arr = v[0]
        if k in ld:
            line_val = np.asarray(ld[k], arr.dtype)
        elif k == "material":
            line_val = np.full(nl, len(model.materials), arr.dtype)
        else:
            line_val = np.zeros((nl,) + arr.shape[1:], arr.dtype)
        cd[k] = [arr, line_val]
    for k, v in ld.items():
        if k not in cd:
            cd[k] = [np.zeros(mesh.n_elements), np.asarray(v, float)]
    cd["screw"] = [np.full(mesh.n_elements, -1, np.int32), np.concatenate([np.full(len(l), i, np.int32) for i, (_, l) in enumerate(lines)])]
    return meshio.Mesh(pts, cells + [("line", conn)], point_data=pd, cell_data=cd)


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
    names = list(result.loadcases)
    iters = info.get("iterations")
    residuals = info.get("residuals")
    per_case = {}
    for k, name in enumerate(names):
        entry = {}
        if isinstance(iters, list | tuple) and len(iters) == len(names):
            entry["iterations"] = int(iters[k])
        if isinstance(residuals, list | tuple) and len(residuals) == len(names):
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
    ``out``; returns the summary."""
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
    summary["provenance"] = provenance(result)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False, default=float) + "\n")
    return summary


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
