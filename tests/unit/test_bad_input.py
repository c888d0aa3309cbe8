"""Malformed case files and meshes end in ONE line 'fembone: error: ...' and exit status 2.

Each row of ``BAD`` is run through the CLI entry point (``fembone run``) exactly as a user
would; the line must name the key path, file or value at fault, and no traceback may show.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import meshio
import numpy as np
import pytest
import yaml

from fembone.apps.cli import main
from fembone.core.keypath import set_path
from fembone.core.mesh import Mesh
from fembone.core.meshgen import box_mesh, write_mesh

#: a valid case on a 2 x 1 x 1 mm box (12 tet4): clamped at x = 0, 1 N down at x = 2
BASE = {
    "name": "bad",
    "mesh": "box.msh",
    "materials": {"bone": {"E": 1000.0, "nu": 0.3}},
    "constraints": [{"where": {"set": "xmin"}, "fix": ["x", "y", "z"]}],
    "loadcases": {"tip": [{"where": {"set": "xmax"}, "force": [0, 0, -1.0]}]},
}

TI_BONE = {
    "type": "transverse_isotropic", "E_axial": 400.0, "E_transverse": 140.0, "nu_axial": 0.3,
    "nu_transverse": 0.3, "G_axial": 100.0,
}


def edit(*changes: tuple[str, object]) -> str:
    """BASE with values set by key path (``materials.bone.E``), as YAML text."""
    case = copy.deepcopy(BASE)
    for path, value in changes:
        set_path(case, path, value)
    return yaml.safe_dump(case, sort_keys=False)


@dataclass
class Bad:
    id: str
    case: str | bytes | None  # the case file text; None: no case file is written
    expect: list[str]  # fragments the error line must contain
    absent: list[str] = field(default_factory=list)  # fragments it must not contain
    args: list[str] = field(default_factory=list)  # extra CLI arguments
    case_name: str | None = None  # file name of the case (default: '<id>.yaml')


#: "billion laughs": 10 * 8**8 leaves by aliases; the message must stay short and come fast
LOL = "description:\n  - &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  - &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n"
    for i in range(1, 9)
)

BAD = [
    # -- case-file structure
    Bad("unknown-top-level-key", edit(("bogus", 1)), ["unknown-top-level-key.yaml", "bogus", "unknown key", "materials"]),
    Bad("unknown-nested-key", edit(("loadcases.tip[0].wher", {"set": "xmax"})),
        ["loadcases.tip[0].wher:", "unknown key", "where, force"]),
    Bad("wrong-type-E", edit(("materials.bone.E", "stiff")), ["materials.bone.E", "expected a number", "'stiff'"]),
    Bad("huge-int-E", edit(("materials.bone.E", 10**400)), ["materials.bone.E", "expected a number"]),
    Bad("case-is-a-list", "- name: x\n- mesh: box.msh\n", ["case-is-a-list.yaml", "got a list"]),
    Bad("case-is-a-scalar", "42\n", ["case-is-a-scalar.yaml", "got int"]),
    Bad("empty-file", "", ["empty-file.yaml", "got nothing"]),
    Bad("only-comments", "# nothing here\n", ["only-comments.yaml", "got nothing"]),
    Bad("case-file-missing", None, ["case-file-missing.yaml", "file not found"]),
    Bad("case-not-utf8", b"name: caf\xe9\n", ["case-not-utf8.yaml", "cannot read file"]),
    # -- YAML
    Bad("yaml-syntax-error", "name: x\nmesh: box.msh\nmaterials:\n  bone: {E: 1000.0, nu: 0.3\nloadcases: {}\n",
        ["yaml-syntax-error.yaml:5", "invalid YAML"]),
    Bad("yaml-tab-indent", "name: x\nmaterials:\n\tbone: {E: 1}\n", ["yaml-tab-indent.yaml:3", "invalid YAML"]),
    Bad("yaml-python-tag", "name: !!python/object/apply:os.system ['touch PWNED']\nmesh: box.msh\n",
        ["yaml-python-tag.yaml:1", "invalid YAML", "python/object/apply:os.system"]),
    Bad("yaml-duplicate-key", "name: x\nmesh: box.msh\nmesh: other.msh\n",
        ["yaml-duplicate-key.yaml:3", "duplicate key 'mesh'"]),
    Bad("yaml-bad-date", "name: 2020-02-30\n", ["yaml-bad-date.yaml:1", "'2020-02-30'", "day is out of range"]),
    Bad("yaml-bad-tagged-int", "name: x\nsolver: !!int fast\n", ["yaml-bad-tagged-int.yaml:2", "'fast'", "!!int"]),
    Bad("yaml-list-as-key", "? [1, 2]\n: 3\n", ["yaml-list-as-key.yaml:1", "mapping key"]),
    Bad("yaml-billion-laughs", LOL + "name: *a8\n", ["yaml-billion-laughs.yaml: name:", "expected a string"]),
    # -- mesh files
    Bad("missing-mesh-file", edit(("mesh", "missing.msh")), ["missing-mesh-file.yaml", "mesh:", "not found", "missing.msh"]),
    Bad("mesh-is-a-folder", edit(("mesh", ".")), ["mesh-is-a-folder.yaml: mesh:", "is a folder"]),
    Bad("mesh-not-a-mesh", edit(("mesh", "garbage.msh")), ["garbage.msh", "cannot read mesh", "gmsh"]),
    Bad("vtu-not-a-mesh", edit(("mesh", "garbage.vtu")), ["garbage.vtu", "cannot read mesh", "vtu"]),
    Bad("mesh-truncated", edit(("mesh", "truncated.msh")), ["truncated.msh", "cannot read mesh"]),
    Bad("mesh-unknown-format", edit(("mesh", "box.xyz")), ["box.xyz", "cannot read mesh"]),
    Bad("mesh-without-tets", edit(("mesh", "triangles.vtu")), ["triangles.vtu", "no tetrahedra", "triangle"]),
    Bad("mesh-order-3", edit(("mesh", {"file": "box.msh", "order": 3})), ["mesh.order", "1 or 2", "3"]),
    Bad("inverted-element", edit(("mesh", "inverted.msh")), ["inverted.msh", "inverted", "element 0"]),
    Bad("degenerate-element", edit(("mesh", "flat.msh")), ["flat.msh", "degenerate", "element 1"]),
    # -- materials
    Bad("nu-0.5", edit(("materials.bone.nu", 0.5)), ["materials.bone", "nu = 0.5", "incompressible"]),
    Bad("negative-E", edit(("materials.bone.E", -5)), ["materials.bone", "E = -5", "> 0"]),
    Bad("transverse-not-positive-definite", edit(("materials.bone", {**TI_BONE, "nu_axial": 1.5})),
        ["materials.bone", "not positive definite", "nu_axial=1.5"]),
    Bad("transverse-nu-minus-one", edit(("materials.bone", {**TI_BONE, "nu_transverse": -1})),
        ["materials.bone", "nu_transverse = -1"]),
    Bad("unknown-material-type", edit(("materials.bone.type", "plastic")),
        ["materials.bone.type", "'plastic'", "isotropic"]),
    Bad("unknown-material-in-assign", edit(("assign", [{"material": "steel"}])),
        ["assign[0].material", "unknown material 'steel'", "defined: bone"]),
    Bad("elements-without-material",
        edit(("assign", [{"material": "bone", "where": {"box": {"min": [0, 0, 0], "max": [1, 1, 1]}}}])),
        ["assign", "6 element(s) have no material"]),
    # -- selections
    Bad("empty-selection", edit(("loadcases.tip[0].where", {"plane": {"x": 55.0}})),
        ["loadcases.tip[0].where", "selects no"]),
    Bad("unknown-set", edit(("loadcases.tip[0].where", {"set": "top"})),
        ["loadcases.tip[0].where.set", "no set 'top'", "box.msh", "xmax", "zmin"]),
    Bad("unknown-selector", edit(("constraints[0].where", {"slab": {"x": 0}})),
        ["constraints[0].where.slab", "unknown selector", "plane"]),
    Bad("negative-plane-tol", edit(("constraints[0].where", {"plane": {"x": 0.0, "tol": -1}})),
        ["constraints[0].where.plane.tol", "positive"]),
    # -- constraints and rigid-body motions
    Bad("free-rigid-body", edit(("constraints", [])),
        ["under-constrained", "translation x", "translation y", "translation z", "rotation about x",
         "rotation about y", "rotation about z"]),
    Bad("partially-constrained", edit(("constraints", [{"where": {"set": "zmin"}, "fix": ["z"]}])),
        ["under-constrained", "translation x", "translation y", "rotation about z"],
        absent=["translation z", "rotation about x", "rotation about y"]),
    Bad("disconnected-body", edit(("mesh", "two_bodies.msh")),
        ["under-constrained", "body 2 of 2", "8 nodes", "translation x"], absent=["body 1"]),
    Bad("component-listed-twice", edit(("constraints[0].fix", ["x", "y", "x"])),
        ["constraints[0].fix", "listed twice"]),
    Bad("fix-is-a-number", edit(("constraints[0].fix", 1)), ["constraints[0].fix", "expected a list, got int"]),
    Bad("rotation-on-mesh-nodes", edit(("constraints[0].fix", ["x", "rz"])),
        ["constraints[0].fix[1]", "'rz'"]),
    Bad("dof-constrained-twice", edit(("constraints", BASE["constraints"] + [{"where": {"plane": {"x": 0.0}}, "fix": ["y"]}])),
        ["constraints[1]", "already constrained by constraints[0]"]),
    Bad("unknown-reference-point", edit(("loadcases.tip[0]", {"point": "top", "force": [0, 0, 1]})),
        ["loadcases.tip[0].point", "unknown reference point 'top'"]),
    # -- load cases, probes, solver
    Bad("empty-loadcases", edit(("loadcases", {})), ["loadcases", "at least one load case"]),
    Bad("empty-loadcase", edit(("loadcases.tip", [])), ["loadcases.tip", "at least one load"]),
    Bad("two-load-kinds", edit(("loadcases.tip[0].traction", [1, 0, 0])),
        ["loadcases.tip[0]", "exactly one of"]),
    Bad("short-force-vector", edit(("loadcases.tip[0].force", [0, 1])),
        ["loadcases.tip[0].force", "3 numbers", "[0, 1]"]),
    Bad("unknown-probe-field", edit(("probes", {"p": {"field": "displacement.w"}})),
        ["probes.p.field", "unknown field 'displacement.w'", "displacement.{x|y|z|magnitude}"]),
    Bad("unknown-solver", edit(("solver", "mumps")), ["solver", "unknown value 'mumps'", "superlu"]),
    # -- command-line overrides
    Bad("set-wrong-type", edit(), ["materials.bone.E", "expected a number", "'oops'"],
        args=["--set", "materials.bone.E=oops"]),
    Bad("set-missing-index", edit(), ["key path 'constraints[3].fix'", "[3]"], args=["--set", "constraints[3].fix=[x]"]),
    Bad("set-bad-yaml", edit(), ["--set materials.bone.E", "invalid YAML"], args=["--set", "materials.bone.E=[1"]),
    Bad("solver-option", edit(), ["solver", "'fastest'"], args=["--solver", "fastest"]),
]


def _two_bodies() -> Mesh:
    a = box_mesh((1.0, 1.0, 1.0), (1, 1, 1))
    b = box_mesh((1.0, 1.0, 1.0), (1, 1, 1), origin=(5.0, 0.0, 0.0))
    facets = {"xmin": a.facet_sets["xmin"], "xmax": a.facet_sets["xmax"]}
    return Mesh(np.vstack([a.points, b.points]), np.vstack([a.cells, b.cells + a.n_nodes]), facet_sets=facets)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Meshes the rows refer to: a good box, broken files and bad geometry."""
    d = tmp_path_factory.mktemp("bad_input")
    box = box_mesh((2.0, 1.0, 1.0), (2, 1, 1))
    write_mesh(box, d / "box.msh")
    unit_tet = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    write_mesh(Mesh(np.array(unit_tet, float), np.array([[0, 2, 1, 3]])), d / "inverted.msh")  # negative volume
    flat = np.array(unit_tet + [[1, 1, 0]], float)  # element 1: four corners in the plane z = 0
    write_mesh(Mesh(flat, np.array([[0, 1, 2, 3], [0, 1, 4, 2]])), d / "flat.msh")
    write_mesh(_two_bodies(), d / "two_bodies.msh")
    (d / "garbage.msh").write_text("hello world\nthis is not a mesh\n")
    (d / "garbage.vtu").write_text("<VTKFile> certainly not\n")
    (d / "box.xyz").write_text("1 2 3\n")
    text = (d / "box.msh").read_text()
    (d / "truncated.msh").write_text(text[: len(text) // 2])
    meshio.write(d / "triangles.vtu", meshio.Mesh(np.eye(3), [("triangle", np.array([[0, 1, 2]]))]))
    return d


def test_base_case_is_valid(workdir, tmp_path, capsys):
    """The rows below each break one thing of a case that runs."""
    (workdir / "base.yaml").write_text(edit())
    assert main(["run", str(workdir / "base.yaml"), "--out", str(tmp_path), "--no-png", "-q"]) == 0
    assert (tmp_path / "summary.json").is_file()


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_input_is_one_line_error(bad: Bad, workdir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so a smuggled shell command would leave its file here
    case = workdir / (bad.case_name or f"{bad.id}.yaml")
    if isinstance(bad.case, bytes):
        case.write_bytes(bad.case)
    elif bad.case is not None:
        case.write_text(bad.case)
    rc = main(["run", str(case), "--out", str(tmp_path / "out"), "--no-png", "-q", *bad.args])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("fembone: error: ")
    assert len(line) < 600, line
    for frag in bad.expect:
        assert frag in line, f"{frag!r} not in {line!r}"
    for frag in bad.absent:
        assert frag not in line, f"{frag!r} unexpectedly in {line!r}"
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "out" / "summary.json").exists()


def test_bad_input_table_is_large_and_unique():
    ids = [b.id for b in BAD]
    assert len(ids) == len(set(ids)) >= 20


@pytest.mark.skipif(not os.environ.get("FEMBONE_PRINT_TABLE"), reason="set FEMBONE_PRINT_TABLE=1 to print the table")
def test_print_messages_table(workdir, tmp_path, capsys):
    """Not a check: prints every row's message as a markdown table, for review."""
    for bad in BAD:
        case = workdir / (bad.case_name or f"{bad.id}.yaml")
        if isinstance(bad.case, bytes):
            case.write_bytes(bad.case)
        elif bad.case is not None:
            case.write_text(bad.case)
        main(["run", str(case), "--out", str(tmp_path / "out"), "--no-png", "-q", *bad.args])
        line = capsys.readouterr().err.strip().replace(str(workdir) + "/", "")
        with capsys.disabled():
            print(f"| {bad.id} | `{line}` |")
