"""Progress: ``fembone verify`` says which problem starts; study bars come from tqdm.auto."""

from __future__ import annotations

import io
import logging

from fembone.apps.cli import main


def test_verify_logs_a_line_as_each_problem_starts(caplog):
    from fembone.apps.verify import run_all

    with caplog.at_level(logging.INFO, logger="fembone.verify"):
        rows = run_all(quick=True, problems=["stiffness"])
    msgs = [r.getMessage() for r in caplog.records if r.name == "fembone.verify"]
    assert msgs[0].startswith("verify 1/1: stiffness symmetry") and msgs[0].endswith("...")
    assert msgs[1].startswith("verify 1/1: stiffness done in") and f"/{len(rows)} rows ok" in msgs[1]


def test_verify_command_prints_start_lines_on_stderr(monkeypatch, capsys):
    import fembone.apps.verify as V

    seen = []
    monkeypatch.setattr(V, "PROBLEMS", {"patch": lambda quick: seen.append("patch") or [],
                                       "lame": lambda quick: seen.append("lame") or []})
    monkeypatch.setattr(V, "print_table", lambda rows: None)
    try:
        assert main(["verify", "--quick"]) == 0
    finally:
        logging.getLogger("fembone").setLevel(logging.NOTSET)
    err = capsys.readouterr().err.splitlines()
    starts = [l for l in err if l.endswith("...")]
    assert starts == ["[fembone] verify 1/2: patch tests (tet4/tet10, linear and quadratic fields) (quick) ...",
                      "[fembone] verify 2/2: Lame hollow sphere (gmsh octant) (quick) ..."], err
    assert seen == ["patch", "lame"]


def test_study_bar_is_tqdm_auto():
    from tqdm.auto import tqdm as auto_tqdm

    from fembone.apps.study.execution import _bar

    bar = _bar(3, 0, "sweep", True, io.StringIO())
    try:
        assert isinstance(bar, auto_tqdm)
    finally:
        bar.close()
    assert _bar(3, 0, "sweep", False, io.StringIO()) is None
