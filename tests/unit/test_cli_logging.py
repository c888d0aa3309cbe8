"""Command line: python -m fembone, -v/--log-level, progress lines, exit statuses, one-line errors."""

from __future__ import annotations

import logging
import subprocess
import sys
from importlib.metadata import version

import numpy as np
import pytest

from fembone.apps.cli import EXIT_INPUT, EXIT_SOLVER, main
from fembone.core import solvers as S
from fembone.core.errors import InputError, SolverError
from fembone.core.meshgen import box_mesh, write_mesh
from fembone.core.selectors import select_faces, select_nodes

CASE = """name: box
mesh: {{file: {mesh}, order: 1}}
materials: {{m: {{E: 1000.0, nu: 0.3}}}}
assign: [{{material: m}}]
constraints: [{{where: {{set: xmin}}, fix: [x, y, z]}}]
solver: {solver}
loadcases:
  bend: [{{where: {{set: xmax}}, force: [0.0, 0.0, -1.0]}}]
"""


@pytest.fixture
def case(tmp_path):
    mesh = tmp_path / "box.msh"
    write_mesh(box_mesh((20.0, 10.0, 10.0), (6, 3, 3)), mesh)

    def make(solver="superlu"):
        p = tmp_path / f"box_{solver}.yaml"
        p.write_text(CASE.format(mesh=mesh, solver=solver))
        return str(p)

    return make


@pytest.fixture(autouse=True)
def reset_fembone_logger():
    yield
    logging.getLogger("fembone").setLevel(logging.NOTSET)


def test_python_m_fembone_version(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fembone", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"fembone {version('fembone')}"


def test_default_level_keeps_stdout_and_stage_lines(case, tmp_path, capsys):
    assert main(["run", case(), "--out", str(tmp_path / "o"), "--no-png"]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("case box: ") and "load case" in cap.out
    stages = [l.split()[1] for l in cap.err.splitlines()]
    assert stages == ["mesh", "assemble", "factorise", "solve", "post-process", "write"], cap.err


@pytest.mark.parametrize(
    "before, after", [(["-v"], []), ([], ["-v"]), (["--log-level", "debug"], []), ([], ["--log-level", "DEBUG"])]
)
def test_verbose_shows_stage_starts(before, after, case, tmp_path, capsys):
    assert main([*before, "run", case(), "--out", str(tmp_path / "o"), "--no-png", *after]) == 0
    err = capsys.readouterr().err
    for start in ("assembling box", "setting up solver superlu", "solving 1 load case(s)", "post-processing 1 load case(s)"):
        assert f"[fembone] {start}" in err, err
    assert err.index("assembling") < err.index("assemble ")  # announced before the timed line


def test_warning_level_silences_progress(case, tmp_path, capsys):
    assert main(["--log-level", "WARNING", "run", case(), "--out", str(tmp_path / "o"), "--no-png"]) == 0
    cap = capsys.readouterr()
    assert cap.err == "" and cap.out.startswith("case box: ")


def test_cg_progress_lines(case, monkeypatch, caplog):
    from fembone.cases import load_case
    from fembone.core.analysis import solve

    from fembone.core import solvers_base

    monkeypatch.setattr(solvers_base, "PROGRESS_S", 0.0)  # CG lives in solvers_base
    with caplog.at_level(logging.INFO, logger="fembone.solvers"):
        res = solve(load_case(case("amg")))
    lines = [r.getMessage() for r in caplog.records if r.name == "fembone.solvers"]
    n = res.solver_info["iterations"][0]
    assert len(lines) == n - 1, lines  # one per iteration after the first, at this rate
    assert lines[0].startswith("AMG-CG iteration 1, relative residual")
    assert all("target 1e-10" in l for l in lines) and any("s left (" in l for l in lines)


def test_eta_extrapolates_the_convergence_rate():
    # residual 1 -> 1e-5 in 50 iterations and 10 s: 50 more iterations reach 1e-10, 10 s more
    assert S._eta(1.0, 1e-5, 1e-10, 50, 10.0) == "about 10 s left (50 more iterations)"
    assert S._eta(1.0, 2.0, 1e-10, 5, 1.0) == "estimate pending"  # not converging yet


def test_out_under_a_file_is_one_line(case, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    rc = main(["run", case(), "--out", str(blocker / "results"), "--no-png"])
    err = capsys.readouterr().err.splitlines()
    assert rc == EXIT_INPUT and len(err) == 1
    assert err[0].startswith("fembone: error: --out: cannot write to") and str(blocker) in err[0]


def test_unwritable_out_is_one_line(case, tmp_path, capsys, monkeypatch):
    """A folder without write permission (simulated: root may write anywhere)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = __import__("os").access
    monkeypatch.setattr("os.access", lambda p, mode, *a, **k: False if str(p) == str(ro) else real(p, mode, *a, **k))
    rc = main(["run", case(), "--out", str(ro / "out"), "--no-png"])
    err = capsys.readouterr().err.splitlines()
    assert rc == EXIT_INPUT and err == [f"fembone: error: --out: cannot write to '{ro / 'out'}' (no write permission in '{ro}')"]


def test_write_failure_after_the_solve_is_one_line(case, tmp_path, capsys, monkeypatch):
    import fembone.core.output as O

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(O, "atomic_write_text", disk_full)
    rc = main(["run", case(), "--out", str(tmp_path / "o"), "--no-png", "--no-vtu"])
    err = capsys.readouterr().err.splitlines()
    assert rc == EXIT_INPUT and err[-1] == f"fembone: error: --out: cannot write results to '{tmp_path / 'o'}' (No space left on device)"


def test_solver_failure_has_its_own_exit_status(case, tmp_path, capsys, monkeypatch):
    import fembone.core.analysis as A

    class Broken(S.SuperLU):
        def setup(self, K, near_nullspace=None):
            raise SolverError("simulated breakdown")

    monkeypatch.setattr(A, "choose_solver", lambda *a, **k: Broken())
    rc = main(["run", case(), "--out", str(tmp_path / "o"), "--no-png", "-q"])
    err = capsys.readouterr().err.splitlines()
    assert rc == EXIT_SOLVER != EXIT_INPUT
    assert err == ["fembone: solver error: simulated breakdown"]


def test_empty_selector_names_itself_and_the_bounding_box():
    mesh = box_mesh((20.0, 10.0, 4.0), (4, 2, 2))  # spans [0, 20] x [0, 10] x [0, 4] mm
    with pytest.raises(InputError) as exc:
        select_nodes(mesh, {"plane": {"x": 25.0}}, "loadcases.tip[0].where")
    assert str(exc.value) == (
        "loadcases.tip[0].where: selector {'plane': {'x': 25.0}} selects no nodes; "
        "the mesh spans x 0..20, y 0..10, z 0..4 mm"
    )
    with pytest.raises(InputError, match=r"selector \{'box': .*\} selects no boundary faces; the mesh spans x 0\.\.20"):
        select_faces(mesh, {"box": {"min": [9.0, 4.0, 1.0], "max": [11.0, 6.0, 3.0]}})  # interior nodes only
    assert np.all(mesh.points[select_nodes(mesh, {"plane": {"x": 20.0}})][:, 0] == 20.0)
