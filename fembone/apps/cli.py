"""Command line: ``fembone run | verify | mesh | compare | export | ...`` (also ``python -m fembone``).

Exit status:

* 0 - done;
* 1 - done, but some checks or study cases failed (``verify``, ``study``);
* 2 - input error: a bad case file, mesh, option, or an output path that cannot be
  written; one line ``fembone: error: <what, where>``, never a traceback;
* 3 - solver failure: the linear solve failed (singular system, no convergence) or ran out
  of memory; one line ``fembone: solver error: ...``;
* 130 - interrupted.

Progress goes to stderr through the standard :mod:`logging` module (loggers under
``fembone``): one line per stage with its time, a line when a long stage starts and CG
progress every few seconds.  ``-v`` shows more (DEBUG), ``-q`` only warnings, and
``--log-level`` sets the level by name; results and tables go to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from fembone.core.version import __version__
from fembone.core.errors import FemboneError, InputError, SolverError

#: exit statuses (see the module docstring)
EXIT_OK, EXIT_FAILED_CHECKS, EXIT_INPUT, EXIT_SOLVER, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
log = logging.getLogger("fembone")

COMMANDS: dict[str, tuple[Callable, Callable, str]] = {}


def command(name: str, help: str, configure: Callable | None = None):
    """Register a sub-command ``fn(args) -> exit status``; ``configure(parser)`` adds its options."""

    def deco(fn):
        COMMANDS[name] = (fn, configure or (lambda p: None), help)
        return fn

    return deco


class StageLog:
    """Prints '[fembone] stage ....... 1.23 s  detail' lines to stderr (at the INFO level: a
    ``--log-level`` above INFO silences them as ``quiet`` does)."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, stage: str, seconds: float, detail: str = "") -> None:
        if self.quiet or (log.level != logging.NOTSET and log.level > logging.INFO):
            return
        print(f"[fembone] {stage:<13s}{seconds:8.2f} s  {detail}", file=self.stream, flush=True)


class _Format(logging.Formatter):
    """'[fembone] message' for progress, 'fembone: warning: message' for warnings."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"fembone: error: {msg}"
        if record.levelno >= logging.WARNING:
            return f"fembone: warning: {msg}"
        return f"[fembone] {msg}"


_handler: logging.Handler | None = None


def configure_logging(level: str | int | None = None, verbose: int = 0, quiet: bool = False, stream=None) -> int:
    """Send the ``fembone`` loggers to ``stream`` (stderr) at ``level`` (a name or number);
    without one: INFO, DEBUG with ``verbose``, WARNING with ``quiet``.  Returns the level."""
    global _handler
    if level is None:
        level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    elif isinstance(level, str):
        level = logging.getLevelName(level.upper())
    if _handler is not None:
        log.removeHandler(_handler)
    _handler = logging.StreamHandler(stream or sys.stderr)
    _handler.setFormatter(_Format())
    log.addHandler(_handler)
    log.setLevel(level)
    return level


def check_writable(path: str | Path, option: str = "--out") -> None:
    """One :class:`InputError` line unless folder ``path`` exists and is writable or could be
    created (its nearest existing parent is a writable folder); creates nothing."""
    path = Path(path).absolute()
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"cannot write to '{path}' ('{probe}' is not a folder)", option)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to '{path}' (no write permission in '{probe}')", option)


def writable_dir(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a folder that exists and can be written (created if needed), else one
    :class:`InputError` line naming it; checked before any long computation."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".fembone-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write to '{path}' ({exc.strerror or exc})", option) from None
    return path


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

    stage = StageLog(quiet=args.quiet)
    overrides = _parse_set(args.set)
    if args.solver:
        overrides["solver"] = args.solver
    if args.out:
        check_writable(args.out)  # fail now, not after meshing and solving
    t = time.perf_counter()
    log.debug("reading case %s", args.case)
    model = load_case(args.case, overrides)
    m = model.mesh
    stage("mesh", time.perf_counter() - t, f"{m.n_nodes:,} nodes, {m.n_elements:,} {'tet4' if m.order == 1 else 'tet10'} ({Path(m.source).name})")
    out = writable_dir(args.out if args.out else Path("results") / model.name)
    result = solve(model, progress=stage)
    t = time.perf_counter()
    log.debug("writing results to %s", out)
    try:
        summary = write_results(result, out, vtu=not args.no_vtu)
    except OSError as exc:
        raise InputError(f"cannot write results to '{out}' ({exc.strerror or exc})", "--out") from None
    if not args.no_png and not args.no_vtu:
        _previews(result, out, stage)
    stage("write", time.perf_counter() - t, str(out))
    if not args.quiet:
        print_summary(summary)
    return 0




def _previews(result, out: Path, stage) -> None:
    try:
        from fembone.apps import viz
    except ImportError:
        return
    try:
        viz.write_previews(result, out)
    except Exception as exc:  # a missing display or GL stack must not lose the results
        stage("preview", 0.0, f"skipped ({type(exc).__name__}: {exc})")


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


def _validate_configure(p):
    p.add_argument("--full", action="store_true", help="converged meshes (L1, 2 mm, tet10) instead of the coarse ones")
    p.add_argument("--only", action="append", metavar="EXPERIMENT", help="run only this experiment (repeatable)")
    p.add_argument("--out", help="write validation.json and validation.csv into this folder")


@command("validate", "reproduce published experiments; print computed vs published with sources", _validate_configure)
def cmd_validate(args) -> int:
    from fembone.apps.validate import EXPERIMENTS, format_table, main_progress, run_all, write

    unknown = [n for n in args.only or [] if n not in EXPERIMENTS]
    if unknown:
        raise InputError(f"unknown experiment '{unknown[0]}' (known: {', '.join(EXPERIMENTS)})", "--only")
    rows = run_all(full=args.full, only=args.only, progress=main_progress)
    print(format_table(rows))
    if args.out:
        write(rows, Path(args.out))
    return 0 if all(r.ok for r in rows) else 1


def _load_plugins() -> None:
    """Import modules that register more commands (mesh, compare, study, view, export)."""
    import importlib

    for mod in ("fembone.apps.cli_vertebra", "fembone.apps.study_cli", "fembone.apps.viz_cli", "fembone.apps.export"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def _logging_options(p: argparse.ArgumentParser, defaults: bool) -> None:
    """``-v`` and ``--log-level`` (before or after the command: the sub-parsers' copies have
    no defaults, so they never overwrite what was given before the command)."""
    kw = {} if defaults else {"default": argparse.SUPPRESS}
    p.add_argument("-v", "--verbose", action="count", help="more progress detail (DEBUG level)",
                   **({"default": 0} if defaults else kw))
    p.add_argument("--log-level", type=str.upper, choices=LEVELS, metavar="LEVEL",
                   help="logging level: DEBUG, INFO (default), WARNING, ERROR", **({"default": None} if defaults else kw))


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = argparse.ArgumentParser(
        prog="fembone", description="Finite-element biomechanics of vertebral stabilisation (units: mm, N, MPa).",
        epilog="exit status: 0 done, 1 checks or study cases failed, 2 input error, 3 solver failure, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"fembone {__version__}")
    _logging_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (fn, configure, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        configure(p)
        _logging_options(p, defaults=False)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(args.log_level, args.verbose, quiet=getattr(args, "quiet", False))
    warnings.filterwarnings("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"fembone: warning: {msg}\n"
    try:
        return int(args.func(args) or 0)
    except SolverError as exc:
        print(f"fembone: solver error: {exc}", file=sys.stderr)
        return EXIT_SOLVER
    except FemboneError as exc:
        print(f"fembone: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("fembone: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("fembone: solver error: out of memory (try solver: amg or a coarser mesh)", file=sys.stderr)
        return EXIT_SOLVER
    except OSError as exc:  # a file that cannot be read or written, wherever it was opened
        where = f"'{exc.filename}': " if exc.filename else ""
        print(f"fembone: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
