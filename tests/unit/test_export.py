"""Export to CalculiX/Abaqus (.inp) and FEBio (.feb): round trips of a small box, and the deck
run through CalculiX (where ``ccx`` is installed) against fembone's displacements."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from fembone.apps.cli import main
from fembone.apps.export import export, write_inp
from fembone.cases import load_case
from fembone.core.analysis import solve
from fembone.core.errors import InputError
from fembone.core.meshgen import box_mesh, write_mesh

# a 20 x 10 x 10 mm box: 'bone' isotropic, a 'core' slab (y in [2.5, 7.5]) transversely isotropic
# with its axis along (1, 2, 2) (no mirror symmetry between x, y, z: a swapped
# Voigt index shows); fixed at x = 0
BASE = """name: {name}
mesh: {{file: box.msh, order: {order}}}
materials:
  bone: {{E: 300.0, nu: 0.3}}
  core: {{type: transverse_isotropic, E_axial: 400, E_transverse: 140, nu_axial: 0.3, nu_transverse: 0.3,
          G_axial: 100, axis: [1, 2, 2]}}
assign: [{{material: bone}}, {{material: core, where: {{set: core}}}}]
solver: superlu
constraints:
  - {{where: {{set: xmin}}, fix: [x, y, z]}}
"""
CASES = {
    "rigid": """  - {coupling: rigid, where: {set: xmax}, point: tip, at: [22, 5, 5]}
loadcases:
  bend: [{point: tip, force: [0, 0, -10.0], moment: [50, 0, 0]}]
  pull: [{where: {set: ymax}, traction: [0, 0.1, 0]}, {point: tip, force: [3, 0, 0]}]
""",
    "distributing": """  - {coupling: distributing, where: {set: xmax}, point: tip, at: [22, 5, 5]}
loadcases:
  bend: [{point: tip, force: [0, 0, -10.0], moment: [50, 0, 0]}]
  pull: [{where: {set: ymax}, traction: [0, 0.1, 0]}, {point: tip, force: [3, 0, 0]}]
""",
    "moved_point": """  - {coupling: rigid, where: {set: xmax}, point: tip, at: [22, 5, 5]}
  - {point: tip, value: [0.05, null, null, 0, 0, 0]}
loadcases:
  down: [{point: tip, force: [0, 0, -10.0]}]
""",
    "prescribed": """  - {where: {set: xmax}, value: [0.01, null, null]}
loadcases:
  shear: [{where: {set: ymax}, traction: [0, 0, 0.05]}]
""",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    m = box_mesh((20.0, 10.0, 10.0), (4, 2, 2))
    m.cell_sets["core"] = np.flatnonzero(np.abs(m.centroids()[:, 1] - 5.0) < 2.6)
    write_mesh(m, d / "box.msh")
    for key, tail in CASES.items():
        for order in (1, 2):
            (d / f"{key}_{order}.yaml").write_text(BASE.format(name=f"box-{key}", order=order) + tail)
    return d


def parse_inp(path) -> dict:
    """Keyword blocks of a deck: list of (keyword line, data lines)."""
    blocks = []
    for line in path.read_text().splitlines():
        if line.startswith("**"):
            continue
        if line.startswith("*"):
            blocks.append((line.upper(), []))
        elif blocks:
            blocks[-1][1].append([x.strip() for x in line.split(",")])
    return blocks


def _uniaxial(S: np.ndarray, n: np.ndarray) -> float:
    """Strain along unit n under unit uniaxial stress along n (= 1/E(n)); S in order 11 22 33 12 13 23."""
    sigma = np.array([n[0] ** 2, n[1] ** 2, n[2] ** 2, n[0] * n[1], n[0] * n[2], n[1] * n[2]])
    eps = S @ sigma  # engineering strains: eps_11 .. gamma_23
    return float(eps[:3] @ sigma[:3] + eps[3:] @ sigma[3:])  # n.eps.n, shear terms 2 n_i n_j eps_ij = gamma n_i n_j


def test_inp_round_trip(folder):
    model = load_case(folder / "rigid_2.yaml")
    path = write_inp(model, folder / "rigid.inp")
    import meshio

    m = meshio.read(path)
    nn, ne = model.mesh.n_nodes, model.mesh.n_elements
    np.testing.assert_allclose(m.points[:nn], model.mesh.points, rtol=0, atol=1e-12)
    assert len(m.points) == nn + 2  # the reference point's translation and rotation nodes
    np.testing.assert_allclose(m.points[nn], [22, 5, 5])
    cells = np.vstack([c.data for c in m.cells if c.type == "tetra10"])
    assert sorted(map(tuple, cells)) == sorted(map(tuple, model.mesh.cells))  # same node order as fembone
    assert sum(len(v[0]) + len(v[1]) for v in m.cell_sets.values()) == ne

    blocks = parse_inp(path)
    mats = {}
    for i, (kw, data) in enumerate(blocks):
        if kw.startswith("*MATERIAL"):
            name = kw.split("NAME=")[1]
            ekw, edata = blocks[i + 1]
            vals = [float(x) for row in edata for x in row if x]
            mats[name] = ("ANISO" in ekw, vals)
    iso = [v for a, v in mats.values() if not a]
    aniso = [v for a, v in mats.values() if a]
    assert len(mats) == 2 and iso[0] == pytest.approx([300.0, 0.3], rel=1e-12)
    D = np.zeros((6, 6))  # rebuilt from D1111, D1122, D2222, D1133, ... (upper triangle, column by column)
    k = 0
    for j in range(6):
        for i in range(j + 1):
            D[i, j] = D[j, i] = aniso[0][k]
            k += 1
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    assert 1.0 / _uniaxial(np.linalg.inv(D), axis) == pytest.approx(400.0, rel=1e-10)  # E_axial
    assert 1.0 / _uniaxial(np.linalg.inv(D), np.array([2.0, -1.0, 0.0]) / np.sqrt(5)) == pytest.approx(140.0, rel=1e-10)  # E_transverse

    fixed = {(int(r[0]), int(r[1])) for kw, data in blocks if kw == "*BOUNDARY" for r in data}
    xmin = np.flatnonzero(model.mesh.points[:, 0] == 0.0) + 1
    assert fixed == {(int(n), c) for n in xmin for c in (1, 2, 3)}
    equations = [kw for kw, _ in blocks if kw == "*EQUATION"]
    assert len(equations) == 3 * 25  # 5 x 5 tet10 nodes on x = 20, three DOFs each

    steps = [i for i, (kw, _) in enumerate(blocks) if kw.startswith("*CLOAD")]
    totals = []
    for i in steps:
        F = np.zeros((nn + 3, 3))
        for r in blocks[i][1]:
            F[int(r[0]) - 1, int(r[1]) - 1] += float(r[2])
        totals.append(F)
    ref, rot = nn, nn + 1
    # bend: 10 N down and 50 N mm about x on the reference point; nothing on the mesh
    np.testing.assert_allclose(totals[0][ref], [0, 0, -10.0])
    np.testing.assert_allclose(totals[0][rot], [50.0, 0, 0])
    assert np.abs(totals[0][:nn]).max() == 0
    # pull: 0.1 MPa over the 20 x 10 mm face y = 10 is 20 N in y, plus 3 N in x on the point
    np.testing.assert_allclose(totals[1][:nn].sum(axis=0), [0, 20.0, 0], atol=1e-12)
    np.testing.assert_allclose(totals[1][ref], [3.0, 0, 0])


def read_dat(path) -> list[dict[int, np.ndarray]]:
    """Displacement blocks of a CalculiX .dat file, one per step: {node id: (u1, u2, u3)}."""
    blocks, cur = [], None
    for line in path.read_text().splitlines():
        if line.strip().startswith("displacements"):
            cur = {}
            blocks.append(cur)
            continue
        parts = line.split()
        if cur is not None and len(parts) == 4:
            cur[int(parts[0])] = np.array([float(v) for v in parts[1:]])
    return blocks


@pytest.mark.skipif(shutil.which("ccx") is None, reason="CalculiX (ccx) is not on PATH; apt-get install calculix-ccx")
@pytest.mark.parametrize("order", [1, 2], ids=["tet4", "tet10"])
@pytest.mark.parametrize("key", list(CASES))
def test_calculix_matches_fembone(key, order, folder):
    model = load_case(folder / f"{key}_{order}.yaml")
    job = folder / f"{key}_{order}_ccx"
    write_inp(model, job.with_suffix(".inp"))
    run = subprocess.run(["ccx", "-i", job.name], cwd=folder, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "ERROR" not in run.stdout, run.stdout[-2000:]
    blocks = read_dat(job.with_suffix(".dat"))
    result = solve(load_case(folder / f"{key}_{order}.yaml"))
    assert len(blocks) == len(result.loadcases)
    nn, nx = model.mesh.n_nodes, model.layout.n_extra
    for (name, lc), block in zip(result.loadcases.items(), blocks, strict=True):
        u = lc.displacement
        U = np.array([block[i + 1] for i in range(nn)])
        err = np.abs(U - u).max() / np.abs(u).max()
        assert err < 1e-5, f"{key} {name}: CalculiX vs fembone displacement, relative error {err:.2e}"
        for pname, p in model.points.items():
            mine = np.asarray(lc.points[pname])
            theirs = np.r_[block[nn + 1 + p.index], block[nn + nx + 1 + p.index]]
            scale = np.abs(mine[:3]).max()
            assert np.abs(theirs[:3] - mine[:3]).max() < 1e-5 * scale, (pname, theirs, mine)
            assert np.abs(theirs[3:] - mine[3:]).max() < 1e-5 * max(np.abs(mine[3:]).max(), 1e-300), (pname, theirs, mine)


def feb_tree(model, path):
    export(model, path)
    return ET.parse(path).getroot()


def _nodeset(root, name):
    return np.array([int(x) for x in root.find(f"./Mesh/NodeSet[@name='{name}']").text.split(",")]) - 1


def test_feb_mesh_materials_supports(folder):
    model = load_case(folder / "distributing_2.yaml")
    root = feb_tree(model, folder / "dist.feb")
    assert root.tag == "febio_spec" and root.get("version") == "4.0"
    nodes = root.findall("./Mesh/Nodes/node")
    X = np.array([[float(v) for v in n.text.split(",")] for n in nodes])
    np.testing.assert_allclose(X, model.mesh.points, atol=1e-12)
    elems = [e for block in root.findall("./Mesh/Elements") for e in block.findall("elem")]
    assert all(b.get("type") == "tet10" for b in root.findall("./Mesh/Elements"))
    conn = sorted(tuple(int(v) - 1 for v in e.text.split(",")) for e in elems)
    assert conn == sorted(map(tuple, model.mesh.cells))
    mats = {m.get("name"): m for m in root.findall("./Material/material")}
    iso = [m for m in mats.values() if m.get("type") == "isotropic elastic"]
    ortho = [m for m in mats.values() if m.get("type") == "orthotropic elastic"]
    assert len(iso) == 1 and float(iso[0].find("E").text) == pytest.approx(300.0) and float(iso[0].find("v").text) == pytest.approx(0.3)
    (o,) = ortho
    c = {k: float(o.find(k).text) for k in ("E1", "E2", "E3", "G12", "G23", "G31", "v12", "v23", "v31")}
    a = np.array([float(x) for x in o.find("mat_axis/a").text.split(",")])
    d = np.array([float(x) for x in o.find("mat_axis/d").text.split(",")])
    e3 = np.cross(a, d) / np.linalg.norm(np.cross(a, d))
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    # E_axial = 400 along (1,2,2)/3, E_transverse = 140 across it, G_axial = 100 (the case's numbers)
    assert abs(e3 @ axis) == pytest.approx(1.0) and c["E3"] == pytest.approx(400.0) and c["E1"] == pytest.approx(140.0)
    assert c["E2"] == pytest.approx(140.0) and c["G23"] == pytest.approx(100.0) and c["G31"] == pytest.approx(100.0)
    assert c["v12"] == pytest.approx(0.3) and c["G12"] == pytest.approx(140.0 / 2.6)  # in-plane isotropy
    assert c["v31"] == pytest.approx(0.3)  # strain across per strain along the axis
    bc = root.find("./Boundary/bc[@type='zero displacement']")
    assert [bc.find(f"{a}_dof").text for a in "xyz"] == ["1", "1", "1"]
    assert sorted(_nodeset(root, bc.get("node_set"))) == sorted(np.flatnonzero(model.mesh.points[:, 0] == 0.0))


def _step_loads(root, model, k):
    """Nodal forces (nn, 3) of step k from its nodal_load map."""
    F = np.zeros((model.mesh.n_nodes, 3))
    step = root.findall("./Step/step")[k]
    for load in step.findall("./Loads/nodal_load"):
        ids = _nodeset(root, load.get("node_set"))
        data = root.find(f"./MeshData/NodeData[@name='{load.find('value').text}']")
        vals = np.array([[float(v) for v in n.text.split(",")] for n in data.findall("node")])
        F[ids] += vals
    return F


def test_feb_distributing_coupling_transmits_the_resultants(folder):
    model = load_case(folder / "distributing_2.yaml")
    root = feb_tree(model, folder / "dist.feb")
    X = model.mesh.points
    F = _step_loads(root, model, 0)
    # 10 N down and 50 N mm about x at (22, 5, 5): about the origin M = (50, 0, 0) + r x F
    r = np.array([22.0, 5.0, 5.0])
    np.testing.assert_allclose(F.sum(axis=0), [0, 0, -10.0], atol=1e-12)
    np.testing.assert_allclose(np.cross(X, F).sum(axis=0), np.array([50.0, 0, 0]) + np.cross(r, [0, 0, -10.0]), atol=1e-10)
    assert set(np.flatnonzero(np.abs(F).sum(axis=1))) <= set(np.flatnonzero(X[:, 0] == 20.0))
    F2 = _step_loads(root, model, 1)  # 20 N in y from the traction, 3 N in x through the coupling
    np.testing.assert_allclose(F2.sum(axis=0), [3.0, 20.0, 0], atol=1e-12)
    assert not root.findall(".//rigid_load")


def test_feb_rigid_coupling_is_a_rigid_body(folder):
    model = load_case(folder / "rigid_2.yaml")
    root = feb_tree(model, folder / "rigid.feb")
    rb = root.find("./Material/material[@type='rigid body']")
    np.testing.assert_allclose([float(v) for v in rb.find("center_of_mass").text.split(",")], [22, 5, 5])
    bc = root.find("./Boundary/bc[@type='rigid']")
    assert bc.find("rb").text == rb.get("name")
    assert sorted(_nodeset(root, bc.get("node_set"))) == sorted(np.flatnonzero(model.mesh.points[:, 0] == 20.0))
    loads = {(l.find("dof").text, float(l.find("value").text)) for l in root.findall("./Step/step[1]/Rigid/rigid_load")}
    assert loads == {("Rz", -10.0), ("Ru", 50.0)}
    assert np.abs(_step_loads(root, model, 0)).max() == 0


def test_feb_refuses_prescribed_point_motion(folder):
    with pytest.raises(InputError, match="prescribed reference-point motion"):
        export(load_case(folder / "moved_point_2.yaml"), folder / "moved.feb")


@pytest.mark.parametrize("meta, what", [({"_lines": [("screw", np.zeros((1, 2), int))]}, "screws"),
                                        ({"_foundation": 1, "_extra_stiffness": [1]}, "potting layer")])
def test_what_cannot_be_exported_is_named(meta, what, folder):
    model = load_case(folder / "rigid_1.yaml")
    model.meta.update(meta)
    for fmt in ("inp", "feb"):
        with pytest.raises(InputError, match=f"the .{fmt} export cannot carry .*{what}"):
            export(model, folder / f"x.{fmt}")


def test_cli_export(folder, capsys):
    out = folder / "cli" / "box.inp"
    assert main(["export", str(folder / "rigid_1.yaml"), "-o", str(out)]) == 0
    assert out.is_file() and "C3D4" in out.read_text()
    assert capsys.readouterr().out.startswith(f"written: {out} (inp: ")
    assert main(["export", str(folder / "rigid_1.yaml"), "--format", "feb", "-o", str(folder / "cli" / "box.xml")]) == 0
    ET.parse(folder / "cli" / "box.xml")
    assert main(["export", str(folder / "rigid_1.yaml"), "-o", str(folder / "box.txt")]) == 2
    assert "give --format inp or --format feb" in capsys.readouterr().err


def displacement_controlled(folder):
    """The 'prescribed' box plus a load case that pulls x = 20 back by 0.02 mm instead of 0.01 forward."""
    model = load_case(folder / "prescribed_2.yaml")
    ux = 3 * np.flatnonzero(model.mesh.points[:, 0] == 20.0)
    model.loads["squeeze"] = np.zeros(model.n_dofs)
    model.prescribed["squeeze"] = (ux, np.full(len(ux), -0.02))
    return model, ux


@pytest.mark.skipif(shutil.which("ccx") is None, reason="CalculiX (ccx) is not on PATH; apt-get install calculix-ccx")
def test_calculix_displacement_control_per_load_case(folder):
    model, ux = displacement_controlled(folder)
    write_inp(model, folder / "control.inp")
    run = subprocess.run(["ccx", "-i", "control"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "ERROR" not in run.stdout, run.stdout[-2000:]
    blocks = read_dat(folder / "control.dat")
    result = solve(model)
    for (name, lc), block, value in zip(result.loadcases.items(), blocks, (0.01, -0.02), strict=True):
        U = np.array([block[i + 1] for i in range(model.mesh.n_nodes)])
        np.testing.assert_allclose(U[ux // 3, 0], value, rtol=1e-6)  # the prescribed value itself
        err = np.abs(U - lc.displacement).max() / np.abs(lc.displacement).max()
        assert err < 1e-5, f"{name}: CalculiX vs fembone displacement, relative error {err:.2e}"


def test_feb_displacement_control_per_step(folder):
    model, ux = displacement_controlled(folder)
    root = feb_tree(model, folder / "control.feb")
    steps = root.findall("./Step/step")
    assert [s.get("name") for s in steps] == ["shear", "squeeze"]
    for k, (step, value) in enumerate(zip(steps, (0.01, -0.02), strict=True)):
        bc = step.find("./Boundary/bc[@type='prescribed displacement']")
        assert bc.find("dof").text == "x" and bc.find("value").get("lc") == str(k + 1)
        assert sorted(_nodeset(root, bc.get("node_set"))) == sorted(ux // 3)
        data = root.find(f"./MeshData/NodeData[@name='{bc.find('value').text}']")
        np.testing.assert_allclose([float(n.text) for n in data.findall("node")], value)
        pts = root.find(f"./LoadData/load_controller[@id='{k + 1}']/points")
        assert [p.text for p in pts.findall("pt")] == [f"{k},0", f"{k + 1},1"]
