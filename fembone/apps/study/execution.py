"""Running a study: one case (build, solve, write its record), local worker processes or Dask.

Within a worker process the mesh, the assembler and the linear solver are kept per mesh
file and order (:mod:`fembone.apps.study.caches`).
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from fembone.apps.study.caches import (
    _LOCK,
    _MESHES,
    _SOLVERS,
    _assembler_for,
    _keep_assembler,
)
from fembone.apps.study.design import Study, StudyCase
from fembone.apps.study.records import (
    case_dir,
    read_record,
    save_record,
    summary_rows,
    write_study_json,
    write_table,
)
from fembone.core.errors import InputError
from fembone.core.version import __version__


# -- running one case -----------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    if isinstance(exc, InputError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."


def run_case(task: dict) -> dict:
    """Build, solve and write one case; returns its record (also written to record.json).

    ``task``: case_id, data (resolved case), base (folder for relative paths), source (base
    case file), case_dir, vtu (bool), png (bool).  Never raises for a failing case (the
    record says status 'failed' with the one-line error), except KeyboardInterrupt.
    """
    from fembone.cases import build_model
    from fembone.core import analysis
    from fembone.core.output import write_results

    case_dir = Path(task["case_dir"])
    t0 = time.perf_counter()
    record = {
        "case_id": task["case_id"], "fembone": __version__, "status": "ok", "error": "",
        "worker": f"{platform.node()}:{os.getpid()}:{threading.get_ident()}",
    }
    caught: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            t = time.perf_counter()
            hits = _MESHES.hits
            model = build_model(copy.deepcopy(task["data"]), base=Path(task["base"]), source=str(task["source"]), mesh_cache=_MESHES)
            build_s = time.perf_counter() - t
            mesh_reused = _MESHES.hits > hits
            key, asm = _assembler_for(model)
            reused = asm is not None
            t = time.perf_counter()
            if asm is None:
                from fembone.core.assembly import Assembler

                asm = Assembler(model.mesh, n_dofs=model.n_dofs)  # geometry + pattern, kept for later cases
                _keep_assembler(key, asm)
            geometry_s = time.perf_counter() - t
            # keep the solver per mesh too: PARDISO then redoes only the numerical factorisation
            with _LOCK:  # taken out while in use: threads of one worker never share a solver
                reusable = _SOLVERS.pop(key, None)
            result = analysis.solve(model, assembler=asm, solver=reusable, nodal=bool(task.get("vtu")))
            with _LOCK:
                _SOLVERS[key] = result.linear_solver
            t = time.perf_counter()
            summary = write_results(result, case_dir, vtu=bool(task.get("vtu")))
            if task.get("png") and task.get("vtu"):
                with contextlib.suppress(Exception):
                    from fembone.apps import viz  # optional

                    viz.write_previews(result, case_dir)
            write_s = time.perf_counter() - t
            caught = [str(w.message) for w in wlist]
        record["rows"] = summary_rows(summary)
        record["timings_s"] = {"build": round(build_s, 4), "geometry": round(geometry_s, 4), **{k: round(v, 4) for k, v in result.timings.items()}, "write": round(write_s, 4)}
        record["reused"] = {"mesh": mesh_reused, "assembler": reused}
        record["dofs"] = int(model.n_dofs)
        del result, model
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # any failure of one case is recorded; the study goes on
        record["status"] = "failed"
        record["error"] = _one_line(exc)
        record["rows"] = []
        if not isinstance(exc, InputError):
            record["traceback"] = traceback.format_exc(limit=8)
    record["warnings"] = sorted(set(caught))
    record["elapsed_s"] = round(time.perf_counter() - t0, 4)
    save_record(case_dir, record)
    return record


# -- running a study ------------------------------------------------------------------------
@dataclass
class StudyRun:
    study: Study
    out: Path
    ran: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: bool = False
    rows: list[dict] = field(default_factory=list)
    records: dict[str, dict] = field(default_factory=dict)
    elapsed_s: float = 0.0


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _task(study: Study, c: StudyCase, out: Path, vtu: bool, png: bool) -> dict:
    return {
        "case_id": c.case_id, "data": c.data, "base": str(study.base_path.parent.resolve()),
        "source": str(study.base_path), "case_dir": str(case_dir(out, c.case_id).resolve()), "vtu": vtu, "png": png,
    }


@contextlib.contextmanager
def _thread_env(n: int):
    """Limit BLAS/OpenMP/MKL threads of worker processes started inside (they inherit os.environ)."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    old = {k: os.environ.get(k) for k in names}
    for k in names:
        os.environ[k] = str(n)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _init_worker() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends the workers


def run_study(
    study: Study, out: str | Path | None = None, workers: int | None = None, scheduler=None,
    retry_failed: bool = False, vtu: bool = False, png: bool = True, progress: bool = True,
    stream=None,
) -> StudyRun:
    """Run every case not yet done (``retry_failed``: and the failed ones); write the table.

    ``workers`` local processes (1: in this process), or a Dask ``scheduler`` (address or
    ``distributed.Client``).  Ctrl-C writes the table of the finished cases and re-raises.
    """
    stream = stream or sys.stderr
    out = Path(out) if out is not None else Path("results") / study.name
    out.mkdir(parents=True, exist_ok=True)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    write_study_json(study, out)
    run = StudyRun(study, out)
    unique = study.unique_cases
    pending = []
    for c in unique:
        rec = read_record(case_dir(out, c.case_id))
        if rec is None or (retry_failed and rec["status"] == "failed"):
            pending.append(c)
        else:
            run.skipped += 1
            run.records[c.case_id] = rec
    run.failed = sum(1 for r in run.records.values() if r["status"] == "failed")
    t0 = time.perf_counter()
    bar = _bar(len(unique), run.skipped, study.name, progress, stream)
    bar_failed = run.failed

    def done(rec: dict) -> None:
        nonlocal bar_failed
        run.records[rec["case_id"]] = rec
        run.ran += 1
        if rec["status"] == "failed":
            run.failed += 1
            bar_failed += 1
        if bar is not None:
            bar.set_postfix_str(f"failed {bar_failed}", refresh=False)
            bar.update(1)

    tasks = [_task(study, c, out, vtu, png) for c in pending]
    try:
        if scheduler is not None and tasks:
            _run_dask(tasks, scheduler, done, out)
        elif workers == 1 or len(tasks) <= 1:
            for t in tasks:
                done(run_case(t))
        else:
            _run_pool(tasks, workers, done)
    except KeyboardInterrupt:
        run.interrupted = True
        if bar is not None:
            bar.close()
            bar = None
        run.rows = write_table(study, out)
        left = len(unique) - len(run.records)
        print(
            f"fembone: study '{study.name}' interrupted: {len(run.records)} of {len(unique)} case(s) done, "
            f"{left} left; {out / 'results.csv'} holds the finished ones. Resume with: "
            f"fembone study {study.path} --out {out}", file=stream, flush=True,
        )
        raise
    finally:
        if bar is not None:
            bar.close()
    run.elapsed_s = time.perf_counter() - t0
    run.rows = write_table(study, out)
    return run


def _bar(total: int, initial: int, name: str, enabled: bool, stream):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm  # a widget in Jupyter notebooks, text on a terminal
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, initial=initial, desc=name, unit="case", file=stream, dynamic_ncols=True,
                bar_format="{desc}: {n_fmt}/{total_fmt} cases{postfix} |{bar}| [{elapsed}<{remaining}, {rate_fmt}]",
                postfix="failed 0")


def _run_pool(tasks: list[dict], workers: int, done) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    with _thread_env(threads):
        ex = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=mp.get_context("spawn"), initializer=_init_worker)
        try:
            futs = {ex.submit(run_case, t): t for t in tasks}
            for f in as_completed(futs):
                try:
                    rec = f.result()
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # the worker process died (memory, signal): record it
                    t = futs[f]
                    rec = {"case_id": t["case_id"], "fembone": __version__, "status": "failed", "error": _one_line(exc), "rows": []}
                    save_record(Path(t["case_dir"]), rec)
                done(rec)
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            for p in list(getattr(ex, "_processes", {}).values() or []):
                with contextlib.suppress(Exception):
                    p.terminate()
            raise
        ex.shutdown(wait=True)


def _run_dask(tasks: list[dict], scheduler, done, out: Path) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError('--scheduler needs Dask: pip install "fembone[dask]" (dask[distributed])') from None
    own = not hasattr(scheduler, "submit")
    try:
        client = Client(scheduler, set_as_default=False, timeout="20s") if own else scheduler
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler ({_one_line(exc)})", "--scheduler") from None
    futs = {}
    try:
        for t in tasks:
            futs[client.submit(run_case, t, pure=False, key=f"fembone-case-{t['case_id']}-{time.time_ns()}")] = t
        for f in as_completed(list(futs), loop=client.loop):
            t = futs[f]
            try:
                rec = f.result()
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # a worker lost or a task error outside run_case
                rec = {"case_id": t["case_id"], "fembone": __version__, "status": "failed", "error": _one_line(exc), "rows": []}
            # the workers may not share this file system: keep the record here too
            save_record(Path(t["case_dir"]), rec)
            done(rec)
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(list(futs))
        raise
    finally:
        if own:
            with contextlib.suppress(Exception):
                client.close()
