"""Command line: ``fembone run | verify | mesh | compare | ...``.

Input problems end with one line ``fembone: error: <what, where>`` and exit status 2;
never a traceback.  Progress goes to stderr, one line per stage with its time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from fembone.core.version import __version__
from fembone.core.errors import FemboneError

COMMANDS: dict[str, tuple[Callable, Callable, str]] = {}


def command(name: str, help: str, configure: Callable | None = None):
    """Register a sub-command ``fn(args) -> exit status``; ``configure(parser)`` adds its options."""

    def deco(fn):
        COMMANDS[name] = (fn, configure or (lambda p: None), help)
        return fn

    return deco


class StageLog:
    """Prints '[fembone] stage ....... 1.23 s  detail' lines to stderr."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, stage: str, seconds: float, detail: str = "") -> None:
        if not self.quiet:
            print(f"[fembone] {stage:<13s}{seconds:8.2f} s  {detail}", file=self.stream, flush=True)


def _parse_set(values: list[str]) -> dict:
    from fembone.core.schema import parse_yaml

    out = {}
    for item in values or []:
        if "=" not in item:
            raise FemboneError(f"--set expects KEY=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_yaml(v, f"--set {k}")
    return out


def _run_configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="case file (YAML)")
    p.add_argument("--out", "-o", help="output folder (default: results/<case name>)")
    p.add_argument("--solver", help="override the case's solver (auto, pardiso, amg, superlu, cholmod)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a case value by key path")
    p.add_argument("--no-vtu", action="store_true", help="skip VTU output")
    p.add_argument("--no-png", action="store_true", help="skip PNG previews")
    p.add_argument("--quiet", "-q", action="store_true")


@command("run", "solve a case file; write summary.json and one VTU per load case", _run_configure)
def cmd_run(args) -> int:
    from fembone.core.analysis import solve
    from fembone.cases import load_case
    from fembone.core.output import write_results

    log = StageLog(quiet=args.quiet)
    overrides = _parse_set(args.set)
    if args.solver:
        overrides["solver"] = args.solver
    t = time.perf_counter()
    model = load_case(args.case, overrides)
    m = model.mesh
    log("mesh", time.perf_counter() - t, f"{m.n_nodes:,} nodes, {m.n_elements:,} {'tet4' if m.order == 1 else 'tet10'} ({Path(m.source).name})")
    result = solve(model, progress=log)
    out = Path(args.out) if args.out else Path("results") / model.name
    t = time.perf_counter()
    summary = write_results(result, out, vtu=not args.no_vtu)
    if not args.no_png and not args.no_vtu:
        _previews(result, out, log)
    log("write", time.perf_counter() - t, str(out))
    if not args.quiet:
        print_summary(summary)
    return 0




def _previews(result, out: Path, log) -> None:
    try:
        from fembone.apps import viz
    except ImportError:
        return
    try:
        viz.write_previews(result, out)
    except Exception as exc:  # a missing display or GL stack must not lose the results
        log("preview", 0.0, f"skipped ({type(exc).__name__}: {exc})")


def print_summary(summary: dict, stream=None) -> None:
    stream = stream or sys.stdout
    print(f"case {summary['case']}: {summary['dofs']:,} DOFs, solver {summary['solver']}", file=stream)
    rows = []
    for name, lc in summary["loadcases"].items():
        rows.append((name, lc["max_displacement"], lc["max_von_mises"], lc["equilibrium_error"], lc.get("probes", {})))
    print(f"  {'load case':<16s} {'max |u| mm':>11s} {'max vM MPa':>11s} {'equil. err':>10s}  probes", file=stream)
    for name, d, vm, e, probes in rows:
        ptxt = ", ".join(f"{k}={v:.5g}" for k, v in probes.items())
        print(f"  {name:<16s} {d:11.5g} {vm:11.5g} {e:10.1e}  {ptxt}", file=stream)


def _verify_configure(p):
    p.add_argument("--quick", action="store_true", help="coarser meshes only")
    p.add_argument("--json", help="also write the table as JSON to this file")


@command("verify", "run the verification problems and print computed vs exact", _verify_configure)
def cmd_verify(args) -> int:
    from fembone.apps.verify import print_table, run_all

    rows = run_all(quick=args.quick)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1




def _load_plugins() -> None:
    """Import modules that register more commands (mesh, compare, study, view)."""
    import importlib

    for mod in ("fembone.apps.cli_vertebra", "fembone.apps.study_cli", "fembone.apps.viz_cli"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = argparse.ArgumentParser(
        prog="fembone", description="Finite-element biomechanics of vertebral stabilisation (units: mm, N, MPa)."
    )
    parser.add_argument("--version", action="version", version=f"fembone {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (fn, configure, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        configure(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warnings.filterwarnings("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"fembone: warning: {msg}\n"
    try:
        return int(args.func(args) or 0)
    except FemboneError as exc:
        print(f"fembone: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fembone: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("fembone: error: out of memory (try solver: amg or a coarser mesh)", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
