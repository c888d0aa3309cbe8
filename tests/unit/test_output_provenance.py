"""summary.json's provenance block and the .pvd collection of load-case VTUs."""

from __future__ import annotations

import json
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import scipy

from fembone.core.constraints import reduce_system
from fembone.core.meshgen import box_mesh, write_mesh
from fembone.core.solvers import RTOL

CASE = """name: prov-box
mesh: {{file: {mesh}, order: 1}}
materials: {{m: {{E: 1000.0, nu: 0.3}}}}
assign: [{{material: m}}]
constraints: [{{where: {{set: xmin}}, fix: [x, y, z]}}]
solver: {solver}
loadcases:
  bend: [{{where: {{set: xmax}}, force: [0.0, 0.0, -1.0]}}]
  pull: [{{where: {{set: xmax}}, force: [2.0, 0.0, 0.0]}}]
"""


@pytest.fixture(scope="module")
def case_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("prov")
    mesh = d / "box.msh"
    write_mesh(box_mesh((20.0, 10.0, 10.0), (6, 3, 3)), mesh)

    def make(solver: str) -> Path:
        p = d / f"box_{solver}.yaml"
        p.write_text(CASE.format(mesh=mesh, solver=solver))
        return p

    return make


def solved(case_file, solver, tmp_path, meta=None):
    from fembone.cases import load_case
    from fembone.core.analysis import solve
    from fembone.core.output import write_results

    model = load_case(case_file(solver))
    model.meta.update(meta or {})
    t0 = time.perf_counter()
    result = solve(model)
    summary = write_results(result, tmp_path)
    elapsed = time.perf_counter() - t0
    return result, summary, elapsed


def test_provenance_versions_solver_and_timing(case_file, tmp_path):
    t_before = datetime.now(timezone.utc).replace(microsecond=0)
    result, summary, elapsed = solved(case_file, "amg", tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    prov = on_disk["provenance"]
    assert prov["fembone"] == version("fembone")
    assert prov["libraries"]["numpy"] == np.__version__ and prov["libraries"]["scipy"] == scipy.__version__
    assert set(prov["libraries"]) >= {"numpy", "scipy", "pyamg", "meshio", "mkl"}
    assert prov["python"].endswith(".".join(map(str, sys.version_info[:3])))
    assert prov["solver"] == "amg"
    stamp = datetime.fromisoformat(prov["timestamp"])
    assert t_before <= stamp <= datetime.now(timezone.utc)
    assert sum(result.timings.values()) - 1e-3 <= prov["wall_time_s"] <= elapsed + 1e-3
    # residuals: recomputed here from the reduced system, per load case
    F = np.column_stack([result.model.loads[n] for n in ("bend", "pull")])
    Kq, Fq = reduce_system(result.K, result.reduction, F)
    U = np.column_stack([result.loadcases[n].u for n in ("bend", "pull")])
    Q = np.where(result.reduction.dependent[:, None], 0.0, U)
    for k, name in enumerate(("bend", "pull")):
        entry = prov["loadcases"][name]
        r = np.linalg.norm(Fq[:, k] - Kq @ Q[:, k]) / np.linalg.norm(Fq[:, k])
        assert entry["residual"] == pytest.approx(r, rel=1e-3, abs=1e-15), name
        assert entry["residual"] <= RTOL
        assert isinstance(entry["iterations"], int) and entry["iterations"] >= 1


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for an independent peak")
def test_peak_memory_matches_the_kernel_high_water_mark(case_file, tmp_path):
    _, summary, _ = solved(case_file, "superlu", tmp_path)
    hwm = next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
    assert summary["provenance"]["peak_memory_mib"] == pytest.approx(hwm / 1024, rel=0.05)


def test_case_hash_and_resolved_case_move_to_provenance(case_file, tmp_path):
    resolved = {"name": "prov-box", "solver": "superlu"}
    _, summary, _ = solved(case_file, "superlu", tmp_path, {"case_hash": "0123abcd", "resolved_case": resolved})
    prov = summary["provenance"]
    assert prov["case_hash"] == "0123abcd" and prov["resolved_case"] == resolved
    assert "case_hash" not in summary["meta"] and "resolved_case" not in summary["meta"]
    assert prov["loadcases"] == {"bend": {"residual": prov["loadcases"]["bend"]["residual"]},
                                 "pull": {"residual": prov["loadcases"]["pull"]["residual"]}}


def test_pvd_groups_the_load_case_files(case_file, tmp_path):
    result, summary, _ = solved(case_file, "superlu", tmp_path)
    pvd = tmp_path / summary["collection"]
    assert pvd.name == "prov-box.pvd"
    root = ET.parse(pvd).getroot()
    assert root.get("type") == "Collection"
    sets = root.findall("./Collection/DataSet")
    assert [(d.get("name"), d.get("file"), d.get("timestep")) for d in sets] == [
        ("bend", "bend.vtu", "0"), ("pull", "pull.vtu", "1")
    ]
    for d in sets:
        assert (tmp_path / d.get("file")).is_file()
    pv = pytest.importorskip("pyvista")
    reader = pv.get_reader(str(pvd))
    assert len(reader.time_values) == 2
    reader.set_active_time_point(1)
    mesh = reader.read()[0]
    u = np.asarray(mesh.point_data["displacement"])
    np.testing.assert_allclose(u, result.loadcases["pull"].displacement, rtol=0, atol=1e-12)


def test_companion_load_cases_keep_the_solver_columns_aligned(case_file, tmp_path):
    """A load case solved but not reported (a companion) must not shift the per-case numbers."""
    from fembone.cases import load_case
    from fembone.core.analysis import solve
    from fembone.core.output import provenance

    model = load_case(case_file("amg"))
    model.loads = {"pull": model.loads["pull"], "bend": model.loads["bend"]}  # bend is solver column 1
    model.companions = {"pull"}
    result = solve(model)
    prov = provenance(result)
    assert set(prov["loadcases"]) == set(result.loadcases)
    it, res = result.solver_info["iterations"], result.solver_info["residuals"]
    assert prov["loadcases"]["bend"] == {"iterations": it[1], "residual": res[1]}
