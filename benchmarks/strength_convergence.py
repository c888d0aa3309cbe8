"""Strength to failure of a normal L1 between PMMA caps: mesh and load-step convergence (issue 14).

Each run is one child process (so that its peak memory is its own): a generated L1 (normal
bone, posterior elements, ``boundary: {setup: in_vitro}``), the linear load case (0.1 mm
platen displacement: stiffness and the Pistoia ``strength_estimate``) and the nonlinear
strength analysis (``analysis: {type: strength}``).  Reported per run: DOFs, strength (peak
platen force, N), displacement at the peak, offset-yield and first-yield forces, the linear
estimate, wall time of the build / linear case / nonlinear path, Newton and CG iterations, a
split of the path's time (linear solves, tangent assembly, return mapping, strain and force
evaluation), peak RSS, and the 1-minute load average before and after.

    python benchmarks/strength_convergence.py --meshes 5:1,4:1,3:1,5:2,4:2,3:2 --steps 10,20,40 \
        --steps-mesh 3:1 --json benchmarks/results_strength.json

``--meshes size:order,...`` is the mesh sequence (at ``--nominal-steps``), ``--steps`` the
load-step sequence on ``--steps-mesh``.  ``--max-displacement`` (mm) and ``--stop-after-peak``
are the analysis keys; the defaults stop the path once the force has fallen 5 % below its
peak (the peak is then bracketed; what follows it does not change it).  Units: mm, N, MPa.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def l1_case(size: float, order: int, steps: int, dmax: float, stop: float, solver: str = "auto",
            linear: str = "reuse") -> dict:
    """A normal L1 between PMMA caps with a strength analysis (keys as in a case file)."""
    return {
        "name": "strength-l1",
        "vertebra": {"level": "L1", "mesh_size": size, "order": order, "posterior": True},
        "materials": {"preset": "normal"},
        "boundary": {"setup": "in_vitro"},
        "solver": solver,
        "analysis": {"type": "strength", "max_displacement": dmax, "steps": steps, "stop_after_peak": stop,
                     "linear": linear},
        "loadcases": {"compression": [{"preset": "compression", "displacement": -0.1}]},
    }


def _timed(owner, name: str, bucket: dict, key: str) -> None:
    """Wrap ``owner.name`` so that its wall time adds up in ``bucket[key]`` (benchmark process only)."""
    fn = getattr(owner, name)

    def wrapper(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            bucket[key] = bucket.get(key, 0.0) + time.perf_counter() - t

    setattr(owner, name, wrapper)


def _counted(bucket: dict) -> None:
    """Count the path's CG and MINRES calls, iterations and time in ``bucket`` (the child's split survives a stop)."""
    from fembone.core import nonlinear_solve

    for name, key in (("_pcg", "pcg"), ("_minres", "minres")):
        fn = getattr(nonlinear_solve, name)

        def wrapper(*a, _fn=fn, _k=key, **kw):
            t = time.perf_counter()
            out = _fn(*a, **kw)
            bucket[f"{_k}_calls"] = bucket.get(f"{_k}_calls", 0) + 1
            bucket[f"{_k}_iterations"] = bucket.get(f"{_k}_iterations", 0) + int(out[1])
            bucket[f"{_k}_s"] = bucket.get(f"{_k}_s", 0.0) + time.perf_counter() - t
            return out

        setattr(nonlinear_solve, name, wrapper)


def child(case: dict, base: str, out: str) -> None:
    """Build, solve and dump one run's figures to ``out`` (JSON)."""
    import logging

    from fembone.cases import build_model
    from fembone.core import nonlinear, plasticity
    from fembone.core.analysis import solve

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(relativeCreated)9.0f ms %(name)s %(message)s")
    if os.environ.get("STRENGTH_BENCH_DEBUG"):  # Newton residuals, MINRES counts and step cuts in the child's log
        logging.getLogger("fembone.nonlinear").setLevel(logging.DEBUG)
    split: dict = {}
    t_start = time.perf_counter()

    def on_term(signum, frame):  # stopped at its time limit: leave the split so far
        Path(out).write_text(json.dumps({"partial": True, "elapsed_s": time.perf_counter() - t_start,
                                         "split": {k: round(v, 2) for k, v in split.items()},
                                         "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}) + "\n")
        os._exit(3)

    signal.signal(signal.SIGTERM, on_term)
    _timed(nonlinear.LinearSolves, "solve", split, "linear_solves_s")
    _timed(nonlinear.LinearSolves, "_setup", split, "linear_setups_s")
    _timed(nonlinear._PlasticKernels, "tangent_blocks", split, "tangent_blocks_s")
    _timed(nonlinear._PlasticKernels, "strain", split, "strain_s")
    _timed(nonlinear._PlasticKernels, "plastic_force", split, "plastic_force_s")
    _timed(plasticity.DruckerPrager, "update", split, "return_mapping_s")
    _timed(nonlinear.ReducedTangent, "__call__", split, "tangent_total_s")
    _counted(split)
    if os.environ.get("STRENGTH_BENCH_CG_RTOL"):  # experiment: inexact Newton (looser inner CG tolerance)
        import functools

        from fembone.cases import strength_run

        strength_run.PathOptions = functools.partial(nonlinear.PathOptions,
                                                     cg_rtol=float(os.environ["STRENGTH_BENCH_CG_RTOL"]))
    if os.environ.get("STRENGTH_BENCH_PATH_OPTIONS"):  # experiment: PathOptions keys as JSON, e.g. {"predict_cut": 15}
        import functools

        from fembone.cases import strength_run

        strength_run.PathOptions = functools.partial(strength_run.PathOptions,
                                                     **json.loads(os.environ["STRENGTH_BENCH_PATH_OPTIONS"]))
    t0 = time.perf_counter()
    model = build_model(case, base=base, source=f"bench:{case['name']}")
    t_build = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = solve(model, nodal=False)
    t_solve = time.perf_counter() - t1
    st = model.meta["strength"]
    lc = next(iter(res.loadcases.values()))
    risk = lc.extra["risk"]
    path_s = st["solver"]["wall_s"]
    row = {
        "dofs": int(model.n_dofs), "elements": int(model.mesh.n_elements), "order": int(model.mesh.order),
        "strength_N": st["strength"], "displacement_at_peak_mm": st["displacement_at_peak"],
        "peak_reached": st["peak_reached"], "finished": st["finished"], "message": st["message"],
        "yield_force_N": st["yield_force"], "yield_displacement_mm": st["yield_displacement"],
        "first_yield_force_N": st["first_yield_force"], "initial_stiffness_N_mm": st["initial_stiffness"],
        "linear_strength_estimate_N": risk.get("strength_estimate"), "linear_stiffness_N_mm": risk.get("axial_stiffness"),
        "failed_volume_fraction_at_peak": st["failed_volume_fraction_at_peak"],
        "build_s": t_build, "solve_s": t_solve, "path_s": path_s, "linear_case_s": t_solve - path_s,
        "solver": st["solver"], "split": {k: round(v, 2) for k, v in split.items()},
        "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "curve": st["curve"],
        "first_peak_N": first_peak(st["curve"]["force"]),
    }
    Path(out).write_text(json.dumps(row, indent=1) + "\n")


def first_peak(force) -> float | None:
    """The first local maximum of the curve (N): where the force first falls (None while it only rises).

    ``strength`` of the summary is the largest force of the whole path; where elastic regions
    (caps' reach, cement, lesion) and the flat cortical plateau make the force rise again after
    the bone has softened, that maximum sits at the end of the path and grows with
    ``max_displacement``; the first peak is the ultimate load of an experiment."""
    F = list(force)
    for i in range(1, len(F) - 1):
        if F[i] >= F[i - 1] and F[i + 1] < F[i]:
            return float(F[i])
    return None


def step_log(text: str) -> list[dict]:
    """The converged steps of a child's log: time since the child started (s), control factor, force (N), Newton iterations."""
    rows = []
    for ln in text.splitlines():
        m = re.match(r"\s*(\d+) ms fembone.nonlinear step (\d+): control ([\d.]+) of full, force ([\d.e+-]+) N, (\d+) Newton", ln)
        if m:
            rows.append({"t_s": int(m[1]) / 1000.0, "step": int(m[2]), "control": float(m[3]), "force_N": float(m[4]),
                         "newton": int(m[5])})
    return rows


def peak_time(steps: list[dict]) -> dict | None:
    """When the first peak was bracketed: the first step whose force falls below the step before it."""
    F = [0.0] + [r["force_N"] for r in steps]
    for i in range(1, len(F) - 1):
        if F[i] >= F[i - 1] and F[i + 1] < F[i]:
            return {"strength_N": F[i], "peak_step": steps[i - 1]["step"], "bracketed_at_s": steps[i]["t_s"]}
    return None


def run_child(case: dict, base: str = ".", timeout: float | None = None, label: str = "") -> dict:
    """One run in a fresh process; adds the wall time, load averages and the case's analysis keys."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"strength_bench_{os.getpid()}_{time.time_ns()}.json"
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    cmd = [sys.executable, __file__, "--child", json.dumps(case), "--base", str(base), "--out", str(tmp)]
    log = Path(str(tmp) + ".log")
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the child writes its split so far
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            rc = "timeout"
    wall = time.perf_counter() - t
    row = {"label": label, "analysis": case.get("analysis"), "wall_s": wall, "load_before": load0,
           "load_after": os.getloadavg()[0]}
    row["step_log"] = step_log(log.read_text())
    if rc == 0 and tmp.is_file():
        row.update(json.loads(tmp.read_text()))
        tmp.unlink()
        log.unlink()
    else:
        tail = log.read_text().strip().splitlines()[-6:]
        steps = [ln for ln in log.read_text().splitlines() if re.search(r"fembone.nonlinear step \d+:", ln)]
        row.update({"error": f"rc={rc}", "log_tail": tail, "log": str(log), "last_step": steps[-1] if steps else None,
                    "steps_done": len(steps)})
        if tmp.is_file():
            row.update(json.loads(tmp.read_text()))
            tmp.unlink()
    return row


HEAD = (f"{'run':<16s} {'DOFs':>7s} {'strength N':>10s} {'d_peak':>6s} {'yield N':>8s} {'1st yld':>8s} "
        f"{'linear N':>8s} {'NR it':>5s} {'CG it':>6s} {'path s':>7s} {'wall s':>7s} {'RSS MB':>7s} {'load':>9s}")


def fmt(r: dict) -> str:
    if "error" in r:
        return f"{r['label']:<16s} FAILED ({r['error']}) after {r['wall_s']:.0f} s: {' | '.join(r['log_tail'][-2:])}"
    s = r["solver"]
    return (f"{r['label']:<16s} {r['dofs']:7d} {r['strength_N']:10.0f} {r['displacement_at_peak_mm']:6.3f} "
            f"{(r['yield_force_N'] or float('nan')):8.0f} {r['first_yield_force_N']:8.0f} "
            f"{(r['linear_strength_estimate_N'] or float('nan')):8.0f} {s['newton_iterations']:5d} {s['cg_iterations']:6d} "
            f"{r['path_s']:7.1f} {r['wall_s']:7.1f} {r['peak_rss_MB']:7.0f} {r['load_before']:4.2f}/{r['load_after']:4.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meshes", default="5:1,4:1,3:1,5:2,4:2,3:2", help="size:order,... (mm, 1 = tet4, 2 = tet10)")
    ap.add_argument("--nominal-steps", type=int, default=20)
    ap.add_argument("--steps", default="10,20,40", help="load-step sequence on --steps-mesh")
    ap.add_argument("--steps-mesh", default="3:1")
    ap.add_argument("--max-displacement", type=float, default=0.8)
    ap.add_argument("--stop-after-peak", type=float, default=0.05)
    ap.add_argument("--solver", default="auto")
    ap.add_argument("--timeout", type=float, default=1800.0, help="s per run")
    ap.add_argument("--json")
    ap.add_argument("--child")
    ap.add_argument("--base", default=".")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.child:
        return child(json.loads(a.child), a.base, a.out)
    os.chdir(ROOT)
    rows = []
    print(f"normal L1, in_vitro (PMMA caps), max_displacement {a.max_displacement} mm, stop_after_peak "
          f"{a.stop_after_peak}, solver {a.solver}", flush=True)
    print(HEAD, flush=True)
    jobs = [(f"h{s}:o{o} n{a.nominal_steps}", float(s), int(o), a.nominal_steps, "mesh")
            for s, o in (m.split(":") for m in a.meshes.split(",") if m)]
    ss, so = a.steps_mesh.split(":")
    jobs += [(f"h{ss}:o{so} n{n}", float(ss), int(so), int(n), "steps") for n in a.steps.split(",") if n]
    done = {}
    for label, size, order, steps, study in jobs:
        key = (size, order, steps)
        if key in done:  # the same run in both studies
            rows.append(dict(done[key], study=study))
            print(fmt(rows[-1]) + "  (same run)", flush=True)
            continue
        case = l1_case(size, order, steps, a.max_displacement, a.stop_after_peak, a.solver)
        r = run_child(case, ".", a.timeout, label)
        r.update({"study": study, "mesh_size": size, "steps": steps})
        done[key] = r
        rows.append(r)
        print(fmt(r), flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
