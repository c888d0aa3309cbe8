"""Parametric studies (fembone.apps.study): resolution, checks before the run, resume, failures,
Ctrl-C, parallel and Dask runs give the same table, report.

Most studies use a 10 x 2 x 2 mm box (a few dozen tet4) so that a case takes milliseconds;
one small vertebra study (mesh_size 4.0, tet4) is marked slow.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from fembone.apps import study as ST
from fembone.apps.cli import main
from fembone.core.errors import InputError
from fembone.core.meshgen import box_mesh, write_mesh

BOX_CASE = {
    "name": "box",
    "mesh": "box.msh",
    "materials": {"bone": {"E": 1000.0, "nu": 0.3}},
    "constraints": [{"where": {"set": "xmin"}, "fix": ["x", "y", "z"]}],
    "loadcases": {
        "tip": [{"where": {"set": "xmax"}, "force": [0, 0, -1.0]}],
        "pull": [{"where": {"set": "xmax"}, "force": [2.0, 0, 0]}],
    },
    "probes": {"tip_uz": {"field": "displacement.z", "where": {"set": "xmax"}, "reduce": "mean"}},
}

#: 2 scenarios x 3 x 2 grid = 12 cases; nu = 0.5 makes 4 of them fail
BOX_STUDY = {
    "name": "box-study",
    "base": "case.yaml",
    "scenarios": {"soft": {"materials.bone.E": 500.0}, "stiff": {}},
    "parameters": {"materials.bone.nu": [0.2, 0.3, 0.5], "loadcases.tip[0].force[2]": [-1.0, -2.0]},
}


@pytest.fixture()
def box_dir(tmp_path: Path) -> Path:
    write_mesh(box_mesh((10.0, 2.0, 2.0), (5, 1, 1)), tmp_path / "box.msh")
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(BOX_CASE, sort_keys=False))
    return tmp_path


def write_study(d: Path, name: str = "study.yaml", **changes) -> Path:
    s = {**BOX_STUDY, **changes}
    s = {k: v for k, v in s.items() if v is not None}
    p = d / name
    p.write_text(yaml.safe_dump(s, sort_keys=False))
    return p


def csv_text(out: Path) -> str:
    return (out / "results.csv").read_text()


# -- resolution -----------------------------------------------------------------------------
def test_resolution_grid_and_columns(box_dir):
    st = ST.load_study(write_study(box_dir))
    assert len(st.cases) == 12 and len(st.unique_cases) == 12
    c = st.cases[0]
    assert c.scenario == "soft" and c.params == {"materials.bone.nu": 0.2, "loadcases.tip[0].force[2]": -1.0}
    assert c.data["materials"]["bone"] == {"E": 500.0, "nu": 0.2}
    assert c.data["loadcases"]["tip"][0]["force"] == [0, 0, -1.0]
    # the base is untouched, ids are stable
    assert st.base_data["materials"]["bone"]["E"] == 1000.0
    assert ST.load_study(write_study(box_dir)).cases[5].case_id == st.cases[5].case_id


def test_zip_lhs_random_designs(box_dir):
    z = ST.load_study(write_study(box_dir, parameters={"materials.bone.nu": [0.2, 0.3], "materials.bone.E": [100.0, 200.0]}, design="zip", scenarios=None))
    assert [c.params["materials.bone.E"] for c in z.cases] == [100.0, 200.0]
    assert [c.scenario for c in z.cases] == ["base", "base"]
    lhs = ST.load_study(write_study(box_dir, parameters={"materials.bone.E": {"min": 100.0, "max": 500.0}, "materials.bone.nu": [0.2, 0.3]}, design="lhs", samples=8, seed=3, scenarios=None))
    Es = sorted(c.params["materials.bone.E"] for c in lhs.cases)
    assert len(Es) == 8 and all(100.0 + 50 * i <= e <= 100.0 + 50 * (i + 1) for i, e in enumerate(Es))  # one per stratum
    again = ST.load_study(write_study(box_dir, parameters={"materials.bone.E": {"min": 100.0, "max": 500.0}, "materials.bone.nu": [0.2, 0.3]}, design="lhs", samples=8, seed=3, scenarios=None))
    assert [c.case_id for c in again.cases] == [c.case_id for c in lhs.cases]
    rnd = ST.load_study(write_study(box_dir, parameters={"materials.bone.E": {"min": 10.0, "max": 1000.0, "log": True}}, design="random", samples=5, scenarios=None))
    assert all(10.0 <= c.params["materials.bone.E"] <= 1000.0 for c in rnd.cases)


def test_scenario_null_deletes_and_parameters_under_it_are_skipped(box_dir):
    p = write_study(
        box_dir,
        scenarios={"no_probe": {"probes": None}, "with_probe": {}},
        parameters={"probes.tip_uz.reduce": ["mean", "max"]},
    )
    st = ST.load_study(p)
    no = [c for c in st.cases if c.scenario == "no_probe"]
    assert all("probes" not in c.data for c in no)
    assert no[0].case_id == no[1].case_id  # the same case: solved once
    assert len(st.unique_cases) == 3


def test_delete_path_helper():
    d = {"a": {"b": [1, {"c": 2}]}}
    assert ST.delete_path(d, "a.b[1].c") and d == {"a": {"b": [1, {}]}}
    assert ST.delete_path(d, "a.b[0]") and d == {"a": {"b": [{}]}}
    assert not ST.delete_path(d, "a.x.y")
    assert not ST.delete_path(d, "a.b[5]")


def test_zero_cement_and_zero_lesion_entries_are_dropped():
    d = {"cement": [{"volume_ml": 0.0, "access": "bipedicular"}], "lesions": [{"type": "lytic", "volume_fraction": 0}, {"type": "lytic", "radius": 3}]}
    ST._drop_empty(d)
    assert "cement" not in d and d["lesions"] == [{"type": "lytic", "radius": 3}]


@pytest.mark.parametrize(
    "changes, fragments",
    [
        ({"parameters": {"materials.bone.nux": [0.2]}}, ["parameters.materials.bone.nux", "unknown key", "E, nu"]),
        ({"parameters": {"loadcases.tip[0].forse": [[0, 0, 1]]}}, ["parameters.loadcases.tip[0].forse", "unknown key"]),
        ({"parameters": {"materials.bone.nu": ["soft"]}}, ["parameters.materials.bone.nu", "string", "number"]),
        ({"parameters": {"loadcases.tip[4].force": [[0, 0, 1]]}}, ["parameters.loadcases.tip[4].force", "item [4] does not exist"]),
        ({"parameters": {"materials.bone.E.x": [1.0]}}, ["parameters.materials.bone.E.x", "cannot be set"]),
        ({"parameters": {"materials..E": [1.0]}}, ["parameters.materials..E", "invalid key path"]),
        ({"parameters": {"materials.bone.E": 5.0}}, ["parameters.materials.bone.E", "expected a list"]),
        ({"parameters": {"materials.bone.E": {"min": 1, "max": 2}}}, ["parameters.materials.bone.E", "lhs or random"]),
        ({"scenarios": {"x": {"materials.steel": None}}}, ["scenarios.x.materials.steel", "cannot delete"]),
        ({"scenarios": {"x": {"materials.bone.Ex": 3.0}}}, ["scenarios.x.materials.bone.Ex", "unknown key"]),
        ({"design": "sobol"}, ["design", "sobol", "grid"]),
        ({"design": "lhs"}, ["samples", "lhs"]),
        ({"design": "zip"}, ["parameters", "equal length"]),
        ({"base": "nope.yaml"}, ["base", "not found"]),
        ({"bogus": 1}, ["bogus", "unknown key", "parameters"]),
    ],
)
def test_invalid_study_is_an_error_before_any_case_runs(box_dir, changes, fragments, monkeypatch, capsys):
    import fembone.core.analysis

    def no_solve(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("a case ran")

    monkeypatch.setattr(fembone.core.analysis, "solve", no_solve)
    p = write_study(box_dir, **changes)
    assert main(["study", str(p), "--out", str(box_dir / "out"), "-q", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fembone: error: ") and "\n" not in err and "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)
    assert not (box_dir / "out" / "cases").exists()


# -- running --------------------------------------------------------------------------------
def test_run_table_rerun_and_failed_cases(box_dir):
    out = box_dir / "out"
    st = ST.load_study(write_study(box_dir))
    run = ST.run_study(st, out, workers=1, progress=False)
    assert run.ran == 12 and run.failed == 4 and run.skipped == 0
    rows = ST.read_table(out / "results.csv")
    # 8 ok cases x 2 load cases + 4 failed cases x 1 row
    assert len(rows) == 8 * 2 + 4
    cols = list(rows[0])
    assert cols[:8] == ["study", "case_id", "scenario", "materials.bone.nu", "loadcases.tip[0].force[2]", "loadcase", "status", "error"]
    for c in ("max_von_mises", "max_displacement", "equilibrium_error", "probes.tip_uz"):
        assert c in cols
    ok = [r for r in rows if r["status"] == "ok"]
    bad = [r for r in rows if r["status"] == "failed"]
    assert {r["materials.bone.nu"] for r in bad} == {0.5}
    assert all("nu = 0.5" in r["error"] and "\n" not in r["error"] for r in bad)
    assert all(r["equilibrium_error"] < 1e-8 for r in ok)
    # softer material, same load: larger tip deflection; doubling the load doubles it
    def uz(scen, nu, f, lc="tip"):
        return next(r["probes.tip_uz"] for r in ok if (r["scenario"], r["materials.bone.nu"], r["loadcases.tip[0].force[2]"], r["loadcase"]) == (scen, nu, f, lc))

    assert uz("soft", 0.3, -1.0) == pytest.approx(2 * uz("stiff", 0.3, -1.0), rel=1e-9)
    assert uz("stiff", 0.2, -2.0) == pytest.approx(2 * uz("stiff", 0.2, -1.0), rel=1e-9)
    first = csv_text(out)
    rec = json.loads((out / "cases" / st.cases[0].case_id / "record.json").read_text())
    assert rec["status"] == "ok" and (out / "cases" / st.cases[0].case_id / "summary.json").is_file()
    # rerun: everything skipped, same table
    again = ST.run_study(ST.load_study(write_study(box_dir)), out, workers=1, progress=False)
    assert again.ran == 0 and again.skipped == 12 and csv_text(out) == first
    # retry the failed ones only
    retry = ST.run_study(ST.load_study(write_study(box_dir)), out, workers=1, retry_failed=True, progress=False)
    assert retry.ran == 4 and retry.failed == 4 and csv_text(out) == first


def test_case_reuses_mesh_and_assembler_within_a_worker(box_dir):
    ST.clear_caches()
    out = box_dir / "out"
    st = ST.load_study(write_study(box_dir, parameters={"materials.bone.nu": [0.2, 0.3, 0.4]}, scenarios=None), check=False)
    ST.run_study(st, out, workers=1, progress=False)
    recs = [json.loads((out / "cases" / c.case_id / "record.json").read_text()) for c in st.cases]
    assert [r["reused"] for r in recs] == [
        {"mesh": False, "assembler": False}, {"mesh": True, "assembler": True}, {"mesh": True, "assembler": True}]


def test_interrupted_run_resumes(box_dir, monkeypatch, capsys):
    import fembone.core.analysis

    real = fembone.core.analysis.solve
    calls = {"n": 0}

    def solve_then_interrupt(*a, **k):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(fembone.core.analysis, "solve", solve_then_interrupt)
    p = write_study(box_dir, parameters={"materials.bone.nu": [0.2, 0.3, 0.4], "loadcases.tip[0].force[2]": [-1.0, -2.0]})
    out = box_dir / "out"
    assert main(["study", str(p), "--out", str(out), "-q", "--workers", "1"]) == 130
    err = capsys.readouterr().err
    assert "interrupted: 2 of 12 case(s) done" in err and f"fembone study {p} --out {out}" in err
    rows = ST.read_table(out / "results.csv")
    assert len(rows) == 2 * 2 and all(r["status"] == "ok" for r in rows)  # consistent: finished cases only
    monkeypatch.setattr(fembone.core.analysis, "solve", real)
    run = ST.run_study(ST.load_study(p), out, workers=1, progress=False)
    assert run.ran == 10 and run.skipped == 2 and run.failed == 0
    assert len(ST.read_table(out / "results.csv")) == 12 * 2
    # same table as an uninterrupted run
    fresh = box_dir / "fresh"
    ST.run_study(ST.load_study(p), fresh, workers=1, progress=False)
    assert csv_text(fresh) == csv_text(out)


def test_parallel_and_serial_runs_give_identical_tables(box_dir):
    st = ST.load_study(write_study(box_dir))
    ST.run_study(st, box_dir / "serial", workers=1, progress=False)
    run = ST.run_study(st, box_dir / "parallel", workers=2, progress=False)
    assert run.ran == 12 and run.failed == 4
    assert csv_text(box_dir / "parallel") == csv_text(box_dir / "serial")


def test_dask_local_cluster_gives_the_same_table(box_dir):
    distributed = pytest.importorskip("distributed")
    st = ST.load_study(write_study(box_dir))
    ST.run_study(st, box_dir / "serial", workers=1, progress=False)
    with distributed.LocalCluster(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        run = ST.run_study(st, box_dir / "dask", scheduler=cluster.scheduler_address, progress=False)
    assert run.ran == 12 and run.failed == 4
    assert csv_text(box_dir / "dask") == csv_text(box_dir / "serial")


def test_cli_report_and_progress(box_dir, capsys):
    pytest.importorskip("matplotlib")
    p = write_study(box_dir)
    out = box_dir / "out"
    assert main(["study", str(p), "--out", str(out), "--workers", "1", "--report"]) == 1  # some cases failed
    cap = capsys.readouterr()
    assert "12/12 cases" in cap.err and "failed 4" in cap.err  # the progress bar
    assert "8 ok, 4 failed" in cap.out and "report.html" in cap.out
    html = (out / "report.html").read_text()
    assert "results.csv" in html and "<table>" in html and "nu = 0.5" in html
    pngs = sorted(x.name for x in (out / "plots").glob("*.png"))
    assert "max_displacement__materials.bone.nu.png" in pngs and len(pngs) == 4
    # dry run lists the cases, writes nothing new
    assert main(["study", str(p), "--out", str(box_dir / "dry"), "--dry-run"]) == 0
    assert "12 case(s), 12 distinct" in capsys.readouterr().out and not (box_dir / "dry").exists()


# -- vertebra -------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_vertebra_study(tmp_path, monkeypatch):
    monkeypatch.setenv("FEMBONE_CACHE", str(Path.home() / ".cache" / "fembone"))
    case = {
        "name": "L1-tiny", "vertebra": {"level": "L1", "mesh_size": 4.0, "order": 1}, "materials": {"preset": "normal"},
        "lesions": [{"type": "lytic", "volume_fraction": 0.3, "location": "central"}],
        "loadcases": {"standing": [{"preset": "compression", "force": 800}]},
    }
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(case, sort_keys=False))
    (tmp_path / "study.yaml").write_text(textwrap.dedent("""\
        name: tiny
        base: case.yaml
        scenarios:
          intact: {lesions: null}
          lytic: {}
        parameters:
          lesions[0].volume_fraction: [0.1, 0.3]
        outputs: [axial_stiffness, factor_of_risk]
    """))
    st = ST.load_study(tmp_path / "study.yaml")
    assert len(st.cases) == 4 and len(st.unique_cases) == 3
    with pytest.raises(InputError, match=r"parameters\.lesions\[0\]\.volume_fractio: unknown key"):
        (tmp_path / "bad.yaml").write_text("base: case.yaml\nparameters:\n  lesions[0].volume_fractio: [0.1]\n")
        ST.load_study(tmp_path / "bad.yaml")
    run = ST.run_study(st, tmp_path / "out", workers=1, progress=False)
    assert run.failed == 0 and run.ran == 3
    rows = {(r["scenario"], r["lesions[0].volume_fraction"]): r for r in ST.read_table(tmp_path / "out" / "results.csv")}
    k = {key: r["risk.axial_stiffness"] for key, r in rows.items()}
    assert k[("intact", 0.1)] == k[("intact", 0.3)]  # the lesion size does not apply to 'intact'
    assert k[("intact", 0.1)] > k[("lytic", 0.1)] > k[("lytic", 0.3)]
    assert rows[("lytic", 0.3)]["volumes.lesion"] > rows[("lytic", 0.1)]["volumes.lesion"] > 0


def test_example_studies_resolve():
    cases = Path(__file__).resolve().parents[2] / "cases"
    a = ST.load_study(cases / "study_lesion_density.yaml", check=False)
    assert len(a.cases) == 18 and len(a.unique_cases) == 12
    assert all("lesions" not in c.data for c in a.cases if c.scenario == "intact")
    b = ST.load_study(cases / "study_cement_volume.yaml", check=False)
    assert len(b.cases) == 10 and len(b.unique_cases) == 9
    zero = [c for c in b.cases if c.params["cement[0].volume_ml"] == 0.0]
    assert all("cement" not in c.data for c in zero) and zero[0].case_id == zero[1].case_id


def test_parquet_table_when_pyarrow_is_installed(box_dir):
    pq = pytest.importorskip("pyarrow.parquet")
    out = box_dir / "out"
    ST.run_study(ST.load_study(write_study(box_dir)), out, workers=1, progress=False)
    t = pq.read_table(out / "results.parquet")
    assert t.num_rows == len(ST.read_table(out / "results.csv")) and "probes.tip_uz" in t.column_names
