"""Vertebra-like benchmark: fembone vs scikit-fem and CalculiX on the same tet10 problem.

The body: an elliptic cylinder (semi-axes 22 x 17 mm, height 25 mm) with a 1 mm cortical
shell (sides and both endplates, a separate conforming volume), a trabecular core and a
soft spherical lesion (radius 7 mm) in the middle of the core.  Materials: cortical
E = 12000 MPa, trabecular E = 300 MPa (nu 0.3), lesion E = 5 MPa, nu 0.45.  The base
(z = 0) is fixed; 800 N push down on the top (z = 25) as a uniform traction.  Quadratic
tetrahedra (gmsh, order 2), 4-point rule in every code.

Every measurement runs in a fresh process; its peak resident memory is the ru_maxrss that
``os.wait4`` reports for it (CalculiX: for the ``ccx`` process itself).  Stages:

* ``read``     - mesh file -> model (fembone: ``cases.build_model``: mesh, sets, loads);
* ``assemble`` - geometry + sparsity pattern + global stiffness;
* ``setup``    - constraints/condensation + factorisation or AMG hierarchy;
* ``solve``    - triangular solves or preconditioned CG (to 1e-8 relative residual);
* ``post``     - fembone only: strains/stresses, reactions (reported, not in ``total``).

The top displacement ``u_top`` (mean u_z over the nodes at z = 25, mm) is checked against
a peer's result kept in the results file for that size (else the first row run): every
row must agree within ``--agree`` (default 1e-4 %, i.e. 1e-6 relative).  Each row records
the 1-minute load average before and after every run (``runs_load``): the machine is shared.

Usage::

    python benchmarks/vertebra_like.py --sizes 50k,205k --repeat 3
    python benchmarks/vertebra_like.py --sizes 814k --skip-peers
    python benchmarks/vertebra_like.py --sizes 2M --only fembone:auto

Meshes go to benchmarks/_work/ (git-ignored); results to benchmarks/results_vertebra_like.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
RESULTS = HERE / "results_vertebra_like.json"

# geometry (mm) and load (N)
A_SEMI, B_SEMI, HEIGHT, WALL, R_LESION = 22.0, 17.0, 25.0, 1.0, 7.0
FORCE = 800.0
MATERIALS = {
    "cortical": {"E": 12000.0, "nu": 0.3},
    "trabecular": {"E": 300.0, "nu": 0.3},
    "lesion": {"E": 5.0, "nu": 0.45},
}
#: gmsh element size (mm) per nominal size, calibrated on gmsh 4.15 (HXT)
SIZES = {"50k": 2.72, "205k": 1.50, "814k": 0.883, "2M": 0.631}

#: what runs at each size (a row is skipped where it does not fit in time or memory)
RUNS = {
    "fembone:auto": ("50k", "205k", "814k", "2M"),
    "fembone:pardiso": ("50k", "205k"),
    "fembone:amg": ("50k", "205k", "814k"),
    "fembone:superlu": ("50k",),
    "skfem:amg": ("50k", "205k", "814k"),
    "skfem:superlu": ("50k",),
    "ccx:spooles": ("50k", "205k"),
}
TIMEOUT_S = 1800


# ---------------------------------------------------------------------------------------
# mesh generation


def mesh_path(label: str) -> Path:
    return WORK / f"vertebra_like_{label}.msh"


def generate(label: str, h: float | None = None) -> Path:
    """Write the tet10 mesh of one nominal size (gmsh OCC, physical groups) unless present."""
    path = mesh_path(label)
    if path.exists() and h is None:
        return path
    import gmsh

    h = SIZES[label] if h is None else h
    WORK.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    gmsh.initialize(["-nt", "2"])
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        occ = gmsh.model.occ
        outer = occ.addCylinder(0, 0, 0, 0, 0, HEIGHT, 1.0)
        occ.dilate([(3, outer)], 0, 0, 0, A_SEMI, B_SEMI, 1.0)
        core = occ.addCylinder(0, 0, WALL, 0, 0, HEIGHT - 2 * WALL, 1.0)
        occ.dilate([(3, core)], 0, 0, 0, A_SEMI - WALL, B_SEMI - WALL, 1.0)
        lesion = occ.addSphere(0, 0, HEIGHT / 2, R_LESION)
        occ.fragment([(3, outer)], [(3, core), (3, lesion)])
        occ.synchronize()
        vols = sorted(gmsh.model.getEntities(3), key=lambda e: occ.getMass(*e))
        if len(vols) != 3:
            raise RuntimeError(f"expected 3 volumes after fragment, got {vols}")
        for name, (_, tag) in zip(("lesion", "cortical", "trabecular"), vols, strict=True):
            gmsh.model.addPhysicalGroup(3, [tag], name=name)
        eps = 1e-3
        for name, z in (("base", 0.0), ("top", HEIGHT)):
            surf = gmsh.model.getEntitiesInBoundingBox(-A_SEMI - 1, -B_SEMI - 1, z - eps, A_SEMI + 1, B_SEMI + 1, z + eps, 2)
            gmsh.model.addPhysicalGroup(2, [s[1] for s in surf], name=name)
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.option.setNumber("Mesh.MeshSizeMin", h)
        gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
        gmsh.option.setNumber("Mesh.Algorithm3D", 10)  # HXT
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        gmsh.option.setNumber("Mesh.Binary", 1)
        # straight-sided tet10 (mid-edge nodes at edge midpoints): the 4-point rule is then
        # exact, and CalculiX agrees with fembone and scikit-fem to ~1e-9.  With mid-edge
        # nodes on the curved surfaces CalculiX came out 3.4 % softer than the other two.
        gmsh.option.setNumber("Mesh.SecondOrderLinear", 1)
        gmsh.model.mesh.generate(3)
        gmsh.model.mesh.setOrder(2)
        gmsh.write(str(path))
        nn = gmsh.model.mesh.getNodes()[0].size
    finally:
        gmsh.finalize()
    print(f"  mesh {label}: h = {h} mm, {nn:,} nodes, {3 * nn:,} DOFs ({time.perf_counter() - t:.1f} s) -> {path.name}")
    return path


def case_dict(msh: Path, solver: str = "auto") -> dict:
    return {
        "name": f"vertebra-like {msh.stem}",
        "mesh": str(msh),
        "materials": MATERIALS,
        "assign": [{"material": m, "where": {"set": m}} for m in MATERIALS],
        "constraints": [{"where": {"plane": {"z": 0.0}}, "fix": ["x", "y", "z"]}],
        "loadcases": {"push": [{"where": {"plane": {"z": HEIGHT}}, "force": [0.0, 0.0, -FORCE]}]},
        "solver": {"name": solver, "rtol": 1e-8},
    }


def write_ccx_input(label: str) -> Path:
    """CalculiX deck of the same mesh and the same nodal forces as fembone's (written once)."""
    inp = WORK / f"vertebra_like_{label}.inp"
    if inp.exists() and inp.stat().st_mtime > mesh_path(label).stat().st_mtime:
        return inp
    from fembone.cases import build_model

    model = build_model(case_dict(generate(label)))
    mesh = model.mesh
    pts = mesh.points
    f = model.loads["push"][: 3 * mesh.n_nodes].reshape(-1, 3)
    base = np.flatnonzero(np.abs(pts[:, 2]) < 1e-6) + 1
    top = np.flatnonzero(np.abs(pts[:, 2] - HEIGHT) < 1e-6) + 1
    # fembone (= meshio/VTK) tet10 order, mid-edges 01 12 20 03 13 23, is CalculiX's C3D10 order
    cells = mesh.cells + 1
    lines = ["*HEADING", f"vertebra-like {label}", "*NODE, NSET=NALL"]
    lines += [f"{i + 1},{x:.12g},{y:.12g},{z:.12g}" for i, (x, y, z) in enumerate(pts)]
    lines.append("*ELEMENT, TYPE=C3D10, ELSET=EALL")
    ids = np.arange(1, len(cells) + 1)
    lines += [",".join(map(str, row)) for row in np.column_stack([ids, cells]).tolist()]
    for name in MATERIALS:
        lines.append(f"*ELSET, ELSET=E{name.upper()}")
        el = mesh.cell_sets[name] + 1
        lines += [",".join(map(str, el[k : k + 16])) for k in range(0, len(el), 16)]
    for nset, nodes in (("NBASE", base), ("NTOP", top)):
        lines.append(f"*NSET, NSET={nset}")
        lines += [",".join(map(str, nodes[k : k + 16])) for k in range(0, len(nodes), 16)]
    for name, m in MATERIALS.items():
        lines += [f"*MATERIAL, NAME={name.upper()}", "*ELASTIC", f"{m['E']},{m['nu']}"]
        lines.append(f"*SOLID SECTION, ELSET=E{name.upper()}, MATERIAL={name.upper()}")
    lines += ["*BOUNDARY", "NBASE,1,3", "*STEP", "*STATIC, SOLVER=SPOOLES", "*CLOAD"]
    tiny = 1e-12 * np.abs(f).max()
    for k in np.flatnonzero(np.abs(f).max(axis=1) > tiny):
        for a in range(3):
            if abs(f[k, a]) > tiny:  # CalculiX reads at most 20 characters per field
                lines.append(f"{k + 1},{a + 1},{f[k, a]:.12g}")
    lines += ["*NODE PRINT, NSET=NTOP", "U", "*END STEP", ""]
    inp.write_text("\n".join(lines))
    return inp


# ---------------------------------------------------------------------------------------
# one measurement (runs in a child process)


def child_fembone(msh: Path, solver: str) -> dict:
    from fembone.core.analysis import solve
    from fembone.cases import build_model

    t0 = time.perf_counter()
    model = build_model(case_dict(msh, solver))
    t_read = time.perf_counter() - t0
    res = solve(model)
    tm = res.timings
    u = res.loadcases["push"].u
    top = np.abs(model.mesh.points[:, 2] - HEIGHT) < 1e-6
    uz = u[: 3 * model.mesh.n_nodes].reshape(-1, 3)[top, 2]
    info = res.solver_info
    return {
        "dofs": int(model.n_dofs),
        "read": t_read,
        "assemble": tm["assemble"],
        "setup": tm["factorise"],
        "solve": tm["solve"],
        "post": tm["postprocess"],
        "u_top": float(uz.mean()),
        "solver_used": res.solver,
        "iterations": info.get("iterations"),
        "residual": info.get("residual"),
        "levels": info.get("levels"),
        "factor_nnz": info.get("factor_nnz"),
    }


def _skfem_problem(msh: Path):
    import skfem
    from skfem.helpers import ddot, sym_grad, trace

    t0 = time.perf_counter()
    m = skfem.MeshTet2.load(str(msh))
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    e = skfem.ElementVector(skfem.ElementTetP2())
    ib = skfem.Basis(m, e, intorder=2)  # 4-point rule
    # per-element Lame parameters from the physical volumes
    lam = np.zeros(m.nelements)
    mu = np.zeros(m.nelements)
    for name, mat in MATERIALS.items():
        ids = m.subdomains[name]
        E, nu = mat["E"], mat["nu"]
        lam[ids] = E * nu / ((1 + nu) * (1 - 2 * nu))
        mu[ids] = E / (2 * (1 + nu))

    @skfem.BilinearForm
    def elasticity(u, v, w):
        eu, ev = sym_grad(u), sym_grad(v)
        return w.lam * trace(eu) * trace(ev) + 2.0 * w.mu * ddot(eu, ev)

    nq = ib.X.shape[1]
    K = skfem.asm(elasticity, ib, lam=np.repeat(lam[:, None], nq, 1), mu=np.repeat(mu[:, None], nq, 1))
    top = m.facets_satisfying(lambda x: np.abs(x[2] - HEIGHT) < 1e-6)
    base = m.facets_satisfying(lambda x: np.abs(x[2]) < 1e-6)
    fb = skfem.FacetBasis(m, e, facets=top, intorder=4)
    area = skfem.asm(skfem.Functional(lambda w: 1.0 + 0.0 * w.x[0]), fb)

    @skfem.LinearForm
    def traction(v, w):
        return -FORCE / area * v[2]

    f = skfem.asm(traction, fb)
    t_asm = time.perf_counter() - t0
    D = ib.get_dofs(base).all()
    top_z = ib.get_dofs(top).all("u^3")
    return m, ib, K, f, D, top_z, t_read, t_asm


def child_skfem(msh: Path, solver: str) -> dict:
    import scipy.sparse.linalg as spla
    import skfem

    m, ib, K, f, D, top_z, t_read, t_asm = _skfem_problem(msh)
    t0 = time.perf_counter()
    A, b, x, I = skfem.condense(K, f, D=D)
    out: dict = {}
    if solver == "amg":
        import pyamg

        X = ib.doflocs  # (3, N): rigid-body modes as near-null space
        N = X.shape[1]
        comp = np.arange(N) % 3 if np.all(ib.nodal_dofs[:, 0] == [0, 1, 2]) else None
        B = np.zeros((N, 6))
        c = X.mean(axis=1)
        d = X - c[:, None]
        # dof k is component comp[k] at location X[:, k]
        for a in range(3):
            B[comp == a, a] = 1.0
        # rotations: u = e_k x d
        for k in range(3):
            ek = np.zeros(3)
            ek[k] = 1.0
            r = np.cross(ek, d.T)  # (N, 3)
            B[:, 3 + k] = r[np.arange(N), comp]
        ml = pyamg.smoothed_aggregation_solver(A.tocsr(), B=B[I])
        M = ml.aspreconditioner()
        t_setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        its = []
        y, info = spla.cg(A, b, rtol=1e-8, maxiter=2000, M=M, callback=lambda xk: its.append(1))
        if info != 0:
            raise RuntimeError(f"CG did not converge ({info})")
        out["iterations"] = len(its)
        out["levels"] = len(ml.levels)
    else:
        lu = spla.splu(A.tocsc())
        t_setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        y = lu.solve(b)
    x[I] = y
    t_solve = time.perf_counter() - t0
    out.update(
        dofs=int(K.shape[0]), read=t_read, assemble=t_asm, setup=t_setup, solve=t_solve,
        u_top=float(x[top_z].mean()), residual=float(np.linalg.norm(A @ y - b) / np.linalg.norm(b)),
    )
    return out


def child_main(kind: str, msh: Path, out: Path) -> None:
    code, solver = kind.split(":")
    res = child_fembone(msh, solver) if code == "fembone" else child_skfem(msh, solver)
    out.write_text(json.dumps(res))


# ---------------------------------------------------------------------------------------
# parent: fresh processes, wall time and peak RSS


def _wait(cmd: list[str], cwd: Path, env: dict | None = None, log: Path | None = None) -> tuple[float, float, int, float]:
    """Run ``cmd``; (wall s, peak RSS GB, exit code, CPU s) of that process."""
    t0 = time.perf_counter()
    with open(log or os.devnull, "w") as fh:
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        deadline = t0 + TIMEOUT_S
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.02)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_maxrss / 2**20, p.returncode, ru.ru_utime + ru.ru_stime  # ru_maxrss: KiB on Linux


def measure(kind: str, label: str) -> dict:
    """One fresh-process measurement, with the 1-minute load average before and after it."""
    before = os.getloadavg()[0]
    res = _measure(kind, label)
    res["load"] = [round(before, 2), round(os.getloadavg()[0], 2)]
    return res


def _measure(kind: str, label: str) -> dict:
    code, solver = kind.split(":")
    msh = mesh_path(label)
    if code == "ccx":
        inp = write_ccx_input(label)
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            tmp = Path(tmp)
            shutil.copy(inp, tmp / "job.inp")
            env = dict(os.environ, OMP_NUM_THREADS="2", CCX_NPROC_EQUATION_SOLVER="2", CCX_NPROC_STIFFNESS="2")
            wall, rss, rc, cpu = _wait(["ccx", "-i", "job"], tmp, env, log=tmp / "ccx.log")
            log = (tmp / "ccx.log").read_text(errors="replace")
            if rc != 0 or not (tmp / "job.dat").exists():
                raise RuntimeError(f"ccx failed (exit {rc}): {log[-2000:]}")
            uz = _read_ccx_dat(tmp / "job.dat")
        return {"read": None, "assemble": None, "setup": None, "solve": None, "total": wall, "peak_gb": rss, "cpu_s": cpu,
                "u_top": float(np.mean(uz)), "dofs": _ccx_dofs(inp)}
    with tempfile.NamedTemporaryFile(suffix=".json", dir=WORK, delete=False) as tf:
        out = Path(tf.name)
    try:
        log = out.with_suffix(".log")
        wall, rss, rc, cpu = _wait([sys.executable, str(Path(__file__).resolve()), "--child", kind, "--mesh", str(msh),
                               "--out", str(out)], HERE.parent, log=log)
        if rc != 0 or not out.stat().st_size:
            raise RuntimeError(f"{kind} failed (exit {rc}): {log.read_text(errors='replace')[-2000:]}")
        res = json.loads(out.read_text())
        log.unlink(missing_ok=True)
    finally:
        out.unlink(missing_ok=True)
    res["total"] = res["read"] + res["assemble"] + res["setup"] + res["solve"]
    res["process_wall"] = wall
    res["peak_gb"] = rss
    res["cpu_s"] = cpu
    return res


def _ccx_dofs(inp: Path) -> int:
    n, on = 0, False
    with inp.open() as fh:
        for line in fh:
            if line.startswith("*"):
                if on:
                    break
                on = line.upper().startswith("*NODE,")
            elif on:
                n += 1
    return 3 * n


def _read_ccx_dat(path: Path) -> np.ndarray:
    uz = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].isdigit():
            uz.append(float(parts[3].replace("D", "E")))
    if not uz:
        raise RuntimeError("no displacements in the CalculiX .dat file")
    return np.array(uz)


def available(code: str) -> bool:
    if code == "fembone":
        return True
    if code == "ccx":
        return shutil.which("ccx") is not None
    try:
        import skfem  # noqa: F401

        return True
    except ImportError:
        return False


def fmt(v, p=1):
    return "—" if v is None else f"{v:.{p}f}"


def print_table(rows: list[dict]) -> None:
    head = f"{'size':>5} {'DOFs':>9}  {'code:solver':<16} {'read':>6} {'assemble':>8} {'setup':>6} {'solve':>6} {'total':>7} {'cpu s':>6} {'peak GB':>7}  {'u_top mm':>10} {'dev %':>6} {'load':>10}  notes"
    print(head)
    print("-" * len(head))
    for r in rows:
        notes = []
        if r.get("solver_used") and r["kind"].endswith("auto"):
            notes.append(f"auto -> {r['solver_used']}")
        if r.get("iterations"):
            it = r["iterations"]
            notes.append(f"{it[0] if isinstance(it, list) else it} it")
        if r.get("error"):
            notes.append(r["error"][:60])
        print(
            f"{r['size']:>5} {r.get('dofs', 0):>9,}  {r['kind']:<16} {fmt(r.get('read'), 2):>6} {fmt(r.get('assemble'), 2):>8} "
            f"{fmt(r.get('setup'), 2):>6} {fmt(r.get('solve'), 2):>6} {fmt(r.get('total'), 1):>7} {fmt(r.get('cpu_s'), 0):>6} {fmt(r.get('peak_gb'), 2):>7}  "
            f"{'—' if r.get('u_top') is None else format(r['u_top'], '.5e'):>10} {fmt(r.get('dev_pct'), 3):>6} "
            f"{_loads(r):>10}  {'; '.join(notes)}"
        )


def _loads(r: dict) -> str:
    """Range of the 1-minute load averages seen around a row's runs ('—' for old rows)."""
    vals = [v for pair in r.get("runs_load") or ([r["load"]] if r.get("load") else []) for v in pair]
    return f"{min(vals):.1f}-{max(vals):.1f}" if vals else "—"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="50k,205k", help=f"comma list of {', '.join(SIZES)}")
    ap.add_argument("--repeat", type=int, default=1, help="fresh runs per row (medians are reported)")
    ap.add_argument("--skip-peers", action="store_true", help="fembone only")
    ap.add_argument("--only", default="", help="comma list of code:solver rows to run (default: all that fit)")
    ap.add_argument("--agree", type=float, default=1e-4,
                    help="allowed u_top deviation from the reference row (a kept peer row, else the first), %% (1e-4 %% = 1e-6)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--mesh", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child, Path(args.mesh), Path(args.out))
        return 0

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for s in sizes:
        if s not in SIZES:
            ap.error(f"unknown size {s!r} (known: {', '.join(SIZES)})")
    only = {k.strip() for k in args.only.split(",") if k.strip()}
    out_path = Path(args.out)
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    rows_all = {(r["size"], r["kind"]): r for r in previous.get("rows", [])}
    rows = []
    failed = False
    for label in sizes:
        generate(label)
        # reference answer: a peer row kept from an earlier run at this size, else the first row now
        kept = [r for (sz, kind), r in rows_all.items() if sz == label and not kind.startswith("fembone") and r.get("u_top")]
        ref = kept[0]["u_top"] if kept else None
        ref_name = kept[0]["kind"] if kept else None
        for kind, where in RUNS.items():
            code = kind.split(":")[0]
            if label not in where or (only and kind not in only) or (args.skip_peers and code != "fembone"):
                continue
            if not available(code):
                print(f"  {kind}: not installed, skipped")
                continue
            runs, err = [], None
            for k in range(args.repeat):
                try:
                    runs.append(measure(kind, label))
                except Exception as exc:  # a peer that fails is reported, not fatal
                    err = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    print(f"  {kind} {label}: FAILED: {str(exc)[-800:]}")
                    break
                print(f"  {label} {kind} run {k + 1}: total {runs[-1]['total']:.2f} s, peak {runs[-1]['peak_gb']:.2f} GB, "
                      f"u_top {runs[-1]['u_top']:.9e}, load {runs[-1]['load'][0]:.2f} -> {runs[-1]['load'][1]:.2f}",
                      flush=True)
            row = {"size": label, "kind": kind, "repeat": len(runs)}
            if runs:
                row.update(runs[0])
                for key in ("read", "assemble", "setup", "solve", "post", "total", "peak_gb", "process_wall", "cpu_s"):
                    vals = [r[key] for r in runs if r.get(key) is not None]
                    row[key] = statistics.median(vals) if vals else None
                row["runs_total"] = [r["total"] for r in runs]
                row["runs_load"] = [r["load"] for r in runs]
                row["measured_at"] = time.strftime("%Y-%m-%d %H:%M")
                if ref is None:
                    ref, ref_name = row["u_top"], kind
                row["dev_pct"] = 100 * abs(row["u_top"] - ref) / abs(ref)
                row["dev_ref"] = ref_name
                if row["dev_pct"] > args.agree:
                    row["error"] = f"u_top differs by {row['dev_pct']:.2g} % from {ref_name}"
                    failed = True
            if err:
                row["error"] = err
            rows.append(row)
            rows_all[(label, kind)] = row
    print()
    print_table(rows)
    import numpy
    import pyamg
    import scipy

    data = {
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                    "python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__,
                    "pyamg": pyamg.__version__},
        "rows": sorted(rows_all.values(), key=lambda r: (list(SIZES).index(r["size"]), list(RUNS).index(r["kind"]))),
    }
    out_path.write_text(json.dumps(data, indent=1, default=str))
    print(f"\nwritten {out_path}")
    return 1 if failed else 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
