"""Result files: one VTU per load case (ParaView, pyvista) and ``summary.json``.

VTU point data: ``displacement`` (mm), ``stress_nodal``/``strain_nodal`` (recovered, 6
components xx yy zz xy yz xz); cell data: ``von_mises`` (MPa), ``strain``, ``stress``
(element averages, 6 components), ``principal_stress``/``principal_strain`` (min, mid,
max), ``equivalent_strain``, ``material`` (index into summary.json's material list).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from fembone.core.analysis import LoadCaseResult, Result
from fembone.core.results import equivalent_strain, principal, sym6, von_mises


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


def write_results(result: Result, out: Path, vtu: bool = True) -> dict:
    """Write ``summary.json`` and one VTU per load case into ``out``; returns the summary."""
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
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False, default=float) + "\n")
    return summary


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
