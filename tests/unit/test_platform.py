"""Platforms, by simulation: MKL found from the wheel's file list, AMG when PARDISO is missing,
one clear line when gmsh cannot be imported."""

from __future__ import annotations

import glob
import importlib.metadata
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from fembone.core import solvers as S
from fembone.core import solvers_pardiso as SP  # where the MKL search and PARDISO live
from fembone.core.errors import InputError


class FakeRecordPath:
    """Stands in for importlib.metadata.PackagePath: a RECORD entry that locates to a real file."""

    def __init__(self, rel: str, root: Path):
        self.rel = rel
        self.root = root

    def __str__(self) -> str:
        return self.rel

    def locate(self) -> Path:
        return self.root / self.rel


def fake_wheel(tmp_path: Path, entries: list[str]) -> list[FakeRecordPath]:
    """Create the listed files relative to a site-packages folder in tmp_path; their RECORD entries."""
    site = tmp_path / "prefix" / "lib" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    out = []
    for rel in entries:
        p = (site / rel).resolve()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
        out.append(FakeRecordPath(rel, site))
    return out


@pytest.fixture
def no_walk(monkeypatch):
    """Any directory walk or glob during the search fails the test (a symlink cycle hung it)."""

    def boom(*a, **k):
        raise AssertionError("the MKL search must not walk or glob directories")

    monkeypatch.setattr(glob, "glob", boom)
    monkeypatch.setattr(glob, "iglob", boom)
    monkeypatch.setattr(os, "walk", boom)
    monkeypatch.setattr(Path, "rglob", boom)
    monkeypatch.setattr(Path, "glob", boom)
    for var in S.MKL_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(SP, "find_library", lambda name: None)


# RECORD entries as the real wheels list them (paths relative to site-packages)
WHEELS = {
    "linux": (["../../libmkl_core.so.2", "../../libmkl_rt.so.2", "../../libmkl_intel_thread.so.2"], "libmkl_rt.so.2"),
    "macos": (["../../libmkl_core.2.dylib", "../../libmkl_rt.2.dylib", "../../libiomp5.dylib"], "libmkl_rt.2.dylib"),
    "windows": (["../../Library/bin/mkl_core.2.dll", "../../Library/bin/mkl_rt.2.dll", "../../Library/bin/mkl_def.2.dll"], "mkl_rt.2.dll"),
}


@pytest.mark.parametrize("system", list(WHEELS))
def test_runtime_found_from_the_wheel_file_list(system, tmp_path, monkeypatch, no_walk):
    entries, expected = WHEELS[system]
    files = fake_wheel(tmp_path, ["mkl-2024.2.2.dist-info/METADATA", *entries])
    monkeypatch.setattr(importlib.metadata, "files", lambda name: files if name == "mkl" else None)
    path, how = S._mkl_search()
    assert path is not None and Path(path).name == expected, (system, path)
    assert Path(path).is_file() and how == "the mkl wheel"


def test_listed_but_missing_file_is_skipped(tmp_path, monkeypatch, no_walk):
    site = tmp_path / "prefix" / "lib" / "site-packages"
    site.mkdir(parents=True)
    files = [FakeRecordPath("../../libmkl_rt.so.2", site)]  # never created on disk
    monkeypatch.setattr(importlib.metadata, "files", lambda name: files)
    monkeypatch.setattr(SP.platform, "machine", lambda: "x86_64")
    path, how = S._mkl_search()
    assert path is None and "pip install mkl" in how and "FEMBONE_MKL_RT" in how


@pytest.mark.parametrize("var", ["FEMBONE_MKL_RT", "PYPARDISO_MKL_RT"])
def test_environment_variable_overrides_the_wheel(var, tmp_path, monkeypatch, no_walk):
    files = fake_wheel(tmp_path, ["../../libmkl_rt.so.2"])
    monkeypatch.setattr(importlib.metadata, "files", lambda name: files)
    monkeypatch.setenv(var, "/opt/intel/lib/libmkl_rt.so")
    assert S._mkl_search() == ("/opt/intel/lib/libmkl_rt.so", f"${var}")


def test_system_loader_is_the_last_resort(monkeypatch, no_walk):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    monkeypatch.setattr(SP, "find_library", lambda name: "libmkl_rt.so.2" if name == "mkl_rt" else None)
    assert S._mkl_search() == ("libmkl_rt.so.2", "the system library path")


def test_no_wheel_platform_is_named(monkeypatch, no_walk):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    monkeypatch.setattr(SP.platform, "machine", lambda: "aarch64")
    path, how = S._mkl_search()
    assert path is None and "no MKL wheel exists for this platform" in how and "aarch64" in how


@pytest.fixture
def no_pardiso(monkeypatch):
    """Simulate a machine where libmkl_rt cannot be found."""
    monkeypatch.setattr(S.Pardiso, "_lib", None)
    monkeypatch.setattr(S.Pardiso, "_why_not", None)
    monkeypatch.setattr(SP, "_mkl_search", lambda: (None, "MKL runtime not found (simulated)"))
    S._hint_once.cache_clear()
    yield
    S._hint_once.cache_clear()


def test_without_pardiso_mid_size_models_use_amg_with_a_hint(no_pardiso, caplog):
    with caplog.at_level(logging.WARNING, logger="fembone.solvers"):
        solver = S.choose_solver(49_000)
    assert isinstance(solver, S.AMG)
    assert solver.info["pardiso_skipped"].startswith("MKL runtime not found (simulated)")
    hints = [r.getMessage() for r in caplog.records if r.name == "fembone.solvers"]
    assert len(hints) == 1 and "\n" not in hints[0]
    assert "PARDISO skipped" in hints[0] and "MKL runtime not found" in hints[0] and "49,000" in hints[0]


def test_small_and_large_models_need_no_hint(no_pardiso, caplog):
    with caplog.at_level(logging.WARNING, logger="fembone.solvers"):
        assert isinstance(S.choose_solver(S.SMALL_LIMIT), S.SuperLU)
        assert isinstance(S.choose_solver(S.DIRECT_CAP + 1), S.AMG)
    assert not [r for r in caplog.records if r.name == "fembone.solvers"]


def test_pardiso_chosen_for_mid_size_when_available(monkeypatch):
    monkeypatch.setattr(S.Pardiso, "unavailable_reason", classmethod(lambda cls: None))
    assert isinstance(S.choose_solver(49_000), S.Pardiso)


def test_requesting_missing_pardiso_names_the_reason(no_pardiso):
    with pytest.raises(InputError, match=r"solver 'pardiso' is not installed.*simulated"):
        S.choose_solver(1000, "pardiso")


def test_fallback_solve_end_to_end(no_pardiso, monkeypatch, tmp_path):
    """A model past the small limit solves with AMG-CG to the SuperLU answer when PARDISO is missing."""
    from fembone.cases import load_case
    from fembone.core.analysis import solve
    from fembone.core.meshgen import box_mesh, write_mesh

    mesh = tmp_path / "box.msh"
    write_mesh(box_mesh((20.0, 10.0, 10.0), (8, 4, 4)), mesh)
    case = tmp_path / "box.yaml"
    case.write_text(
        f"name: box\nmesh: {{file: {mesh}, order: 1}}\nmaterials: {{m: {{E: 1000.0, nu: 0.3}}}}\n"
        "assign: [{material: m}]\nconstraints: [{where: {set: xmin}, fix: [x, y, z]}]\n"
        "loadcases: {pull: [{where: {set: xmax}, force: [0.0, 0.0, -1.0]}]}\n"
    )
    monkeypatch.setattr(S, "SMALL_LIMIT", 10)
    monkeypatch.setattr(S, "DIRECT_LIMIT", 10**6)
    res = solve(load_case(case))
    assert res.solver == "amg" and "pardiso_skipped" in res.solver_info
    ref = solve(load_case(case, {"solver": "superlu"}))
    u, u0 = res.loadcases["pull"].u, ref.loadcases["pull"].u
    err = np.abs(u - u0).max() / np.abs(u0).max()
    assert err < 1e-7, f"AMG-CG vs SuperLU: relative difference {err:.2e}"


def test_meshing_without_gmsh_names_the_extra(monkeypatch):
    from fembone.spine.geometry.gmsh_session import gmsh_model

    monkeypatch.setitem(sys.modules, "gmsh", None)  # makes `import gmsh` raise ImportError
    with pytest.raises(InputError) as exc:
        with gmsh_model("test"):
            pass
    msg = str(exc.value)
    assert "\n" not in msg and "gmsh" in msg and 'pip install "fembone[mesh]"' in msg


def test_cli_mesh_without_gmsh_is_one_line(monkeypatch, tmp_path, capsys):
    from fembone.apps.cli import main

    monkeypatch.setitem(sys.modules, "gmsh", None)
    rc = main(["mesh", "vertebra", "--size", "4", "--order", "1", "-o", str(tmp_path / "L1.msh")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("fembone: error: meshing needs gmsh") and "fembone[mesh]" in err[-1]
    assert not any("Traceback" in line for line in err)
