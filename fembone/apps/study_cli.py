"""``fembone study STUDY.yaml``: run a parametric study (see :mod:`fembone.apps.study`)."""

from __future__ import annotations

import sys
from pathlib import Path

from fembone.apps.cli import command


def _configure(p):
    from fembone.apps.study import default_workers

    p.add_argument("study", help="study file (YAML): base case, scenarios, parameters, design")
    p.add_argument("--out", "-o", help="output folder (default: results/<study name>)")
    p.add_argument("--workers", "-j", type=int, default=None,
                   help=f"local worker processes (default {default_workers()}: min(2, CPUs); 1 runs in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster (e.g. tcp://host:8786); needs fembone[dask]")
    p.add_argument("--retry-failed", action="store_true", help="rerun the cases that failed before")
    p.add_argument("--vtu", action="store_true", help="also write VTU files (and PNG previews) per case")
    p.add_argument("--report", action="store_true", help="write plots/*.png and report.html after the run")
    p.add_argument("--dry-run", action="store_true", help="resolve and check every case, list them, run nothing")
    p.add_argument("--no-check", action="store_true", help="skip building one case per scenario before the run")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


@command("study", "parametric study: run a case file over scenarios x parameter values; one tidy table", _configure)
def cmd_study(args) -> int:
    from fembone.apps.study import load_study, run_study, write_report

    study = load_study(args.study, check=not args.no_check)
    out = Path(args.out) if args.out else Path("results") / study.name
    n, u = len(study.cases), len(study.unique_cases)
    if args.dry_run:
        print(f"study {study.name}: {n} case(s), {u} distinct; design {study.design}; scenarios {', '.join(study.scenarios)}")
        for c in study.cases:
            vals = ", ".join(f"{k}={v!r}" for k, v in c.params.items())
            print(f"  {c.index:4d}  {c.case_id}  {c.scenario:<14s} {vals}")
        return 0
    run = run_study(
        study, out, workers=args.workers, scheduler=args.scheduler, retry_failed=args.retry_failed,
        vtu=args.vtu, progress=not args.quiet,
    )
    ok = sum(1 for r in run.records.values() if r["status"] == "ok")
    print(
        f"study {study.name}: {u} distinct case(s) ({n} rows of design), {ok} ok, {run.failed} failed; "
        f"ran {run.ran}, skipped {run.skipped} already done; {run.elapsed_s:.1f} s"
    )
    for cid, rec in run.records.items():
        if rec["status"] == "failed":
            print(f"  failed {cid}: {rec.get('error', '')}")
    print(f"table: {out / 'results.csv'} ({len(run.rows)} rows)")
    if args.report:
        path = write_report(study, out, run.rows, stream=sys.stderr)
        print(f"report: {path}")
    if run.failed:
        print("(rerun with --retry-failed to try the failed cases again)")
    return 1 if run.failed else 0
