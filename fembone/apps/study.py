"""Parametric studies: one case file, many variants, one tidy table. Units: mm, N, MPa.

A study file (``fembone study STUDY.yaml``)::

    name: lesion-size-x-density
    base: L1_lytic.yaml                  # a case file, relative to the study file
    scenarios:                           # optional named variants (key-path overrides; null deletes a key)
      intact: {lesions: null}
      lytic: {}
    parameters:                          # key paths into the case -> values
      lesions[0].volume_fraction: [0.1, 0.2, 0.3]
      materials.trabecular.density: [0.10, 0.15, 0.20]
    design: grid                         # grid | zip | lhs | random
    samples: 20                          # lhs/random: number of points
    seed: 1                              # lhs/random: reproducible draws
    outputs: [axial_stiffness, posterior_wall_bulge, factor_of_risk]   # metrics for --report plots

Rules, in the order they apply to every case:

1. the scenario's overrides are applied to the parsed base case (``null`` deletes the key);
2. the design point's parameter values are set (``null`` deletes); a parameter whose key path
   lies under a key the scenario deleted (``lesions[0].volume_fraction`` in ``intact``) is not
   applied there: the case is the same for every value of it and is solved once;
3. a ``cement`` entry with ``volume_ml: 0`` or a ``lesions`` entry with ``volume_fraction: 0``
   is removed (and the key when its list is empty): 0 mL means no cement, 0 % no lesion.

For lhs/random a parameter is a range ``{min: a, max: b}`` (``log: true`` samples log-uniform)
or a list of choices.  Every case is resolved and checked before any case runs: key paths
must exist in the base case (or be creatable mapping keys), values must have the type of
the value they replace, and one case per scenario is built (not solved) so that misspelt
keys are errors naming the study key path (``parameters.lesions[0].volume_fractio``).
Problems of a value that the solver meets later (``nu: 0.5``) make that case fail: it is
recorded with its one-line error and the study goes on.

Output folder (default ``results/<study name>``)::

    cases/<case id>/record.json    status, error, rows of the case (written atomically, last)
    cases/<case id>/summary.json   fembone run's summary (+ VTU with --vtu)
    results.csv (+ results.parquet when pyarrow is installed), study.json
    plots/*.png, report.html       with --report

The case id is a hash of the resolved case and the fembone version: a rerun skips every case
that has a record (``retry_failed`` reruns the failed ones).  Within a worker process the
mesh and the :class:`~fembone.core.assembly.Assembler` (element geometry + sparsity pattern) are
kept per mesh file and order, so a case that changes only material values or loads does not
re-read the mesh or rebuild them.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import html
import io
import itertools
import json
import os
import sys
import threading
import time
import traceback
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fembone.core.version import __version__
from fembone.core import schema as S
from fembone.core.errors import InputError, show
from fembone.core.keypath import parse_path
from fembone.core.mesh import MeshCache

STUDY_KEYS = ("name", "description", "base", "scenarios", "parameters", "design", "samples", "seed", "outputs")
DESIGNS = ("grid", "zip", "lhs", "random")
#: columns before the parameters and after them, in this order
ID_COLUMNS = ("study", "case_id", "scenario")
STATUS_COLUMNS = ("loadcase", "status", "error")
#: metrics of the load-case summary copied into the table (when present), before probes/risk/volumes
BASE_METRICS = ("max_von_mises", "max_displacement", "equilibrium_error", "strain_energy")
DEFAULT_OUTPUTS_VERTEBRA = ("axial_stiffness", "posterior_wall_bulge", "factor_of_risk")
DEFAULT_OUTPUTS = ("max_displacement", "max_von_mises")


# -- study definition ---------------------------------------------------------------------
@dataclass
class StudyCase:
    """One resolved case of a study: a scenario and a design point."""

    index: int
    scenario: str
    params: dict[str, Any]  # key path -> value of the design point (as given)
    data: dict  # the resolved case (what is built and hashed)
    case_id: str = ""

    def __post_init__(self):
        if not self.case_id:
            self.case_id = case_hash(self.data)


@dataclass
class Study:
    name: str
    path: Path
    base_path: Path
    base_data: dict
    scenarios: dict[str, dict]
    parameters: dict[str, Any]
    design: str
    samples: int | None
    seed: int
    outputs: list[str]
    cases: list[StudyCase] = field(default_factory=list)
    description: str = ""

    @property
    def unique_cases(self) -> list[StudyCase]:
        """One case per case id (cases that resolve to the same case dict are solved once)."""
        seen: dict[str, StudyCase] = {}
        for c in self.cases:
            seen.setdefault(c.case_id, c)
        return list(seen.values())


def case_hash(data: dict) -> str:
    """Id of a resolved case: hash of its canonical JSON and the fembone version."""
    text = json.dumps({"case": data, "fembone": __version__}, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def delete_path(data: Any, path: str) -> bool:
    """Delete the key or list item at ``path``; returns False when it was not there."""
    toks = parse_path(path)
    cur = data
    for tok in toks[:-1]:
        ok = isinstance(cur, list) and isinstance(tok, int) and tok < len(cur) or isinstance(cur, dict) and isinstance(tok, str) and tok in cur
        if not ok:
            return False
        cur = cur[tok]
    last = toks[-1]
    if isinstance(last, int) and isinstance(cur, list) and last < len(cur):
        del cur[last]
        return True
    if isinstance(last, str) and isinstance(cur, dict) and last in cur:
        del cur[last]
        return True
    return False


def _lookup(data: Any, toks: list) -> tuple[bool, Any, int]:
    """(exists, value, depth reached) of a token path in ``data``."""
    cur = data
    for i, tok in enumerate(toks):
        if isinstance(tok, int):
            if not isinstance(cur, list) or tok >= len(cur):
                return False, None, i
        elif not isinstance(cur, dict) or tok not in cur:
            return False, None, i
        cur = cur[tok]
    return True, cur, len(toks)


def _kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if S.is_number(v):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return type(v).__name__


def _set(data: Any, toks: list, value: Any, where: str) -> None:
    """Set by tokens, creating missing mapping keys (never list items)."""
    cur = data
    for i, tok in enumerate(toks[:-1]):
        if isinstance(tok, int):
            cur = cur[tok]
            continue
        if tok not in cur:
            cur[tok] = {}
        cur = cur[tok]
    cur[toks[-1]] = value


def _check_path(data: Any, path: str, where: str, values: list) -> bool:
    """Check that ``path`` can be set in ``data`` with each of ``values``; True if it exists already."""
    try:
        toks = parse_path(path)
    except InputError as exc:
        raise InputError(exc.message, where) from None
    exists, old, depth = _lookup(data, toks)
    if not exists:
        # parents may be created as mappings only: walk what exists, then every later token must be a key
        _, parent, _ = _lookup(data, toks[:depth])
        tok = toks[depth]
        if isinstance(tok, int):
            n = len(parent) if isinstance(parent, list) else None
            have = f"it has {n} item(s)" if n is not None else f"it is {_kind(parent)}"
            raise InputError(f"item [{tok}] does not exist in the base case ({have})", where)
        if not isinstance(parent, dict):
            raise InputError(f"'{tok}' cannot be set: the base case has {_kind(parent)} ({show(parent)}) there", where)
        if any(isinstance(t, int) for t in toks[depth:]):
            raise InputError(f"'{tok}' does not exist in the base case, and list items cannot be created", where)
        kinds = {_kind(v) for v in values if v is not None}
        if len(kinds) > 1:
            raise InputError(f"values mix {' and '.join(sorted(kinds))}", where)
        return False
    ok = _kind(old)
    for v in values:
        k = _kind(v)
        if k != "null" and ok != "null" and k != ok:
            raise InputError(f"value {show(v)} is {k}, but the base case has {ok} here ({show(old)})", where)
    return True


def _drop_empty(data: dict) -> None:
    """0 mL of cement is no cement; a 0 % lesion is no lesion."""
    for key, amount in (("cement", "volume_ml"), ("lesions", "volume_fraction")):
        entries = data.get(key)
        if isinstance(entries, list):
            kept = [e for e in entries if not (isinstance(e, dict) and S.is_number(e.get(amount)) and e.get(amount) == 0)]
            if len(kept) != len(entries):
                if kept:
                    data[key] = kept
                else:
                    del data[key]


def design_points(parameters: dict, design: str, samples: int | None, seed: int) -> list[dict]:
    """The design's points: a list of {key path: value}."""
    names = list(parameters)
    if not names:
        return [{}]
    if design in ("grid", "zip"):
        lists = [parameters[n] for n in names]
        if design == "grid":
            return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
        return [dict(zip(names, combo, strict=True)) for combo in zip(*lists, strict=True)]
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(samples)
    cols = {}
    for name in names:
        spec = parameters[name]
        if design == "lhs":
            u = (rng.permutation(n) + rng.random(n)) / n
        else:
            u = rng.random(n)
        if isinstance(spec, dict):
            lo, hi = float(spec["min"]), float(spec["max"])
            if spec.get("log"):
                vals = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
            else:
                vals = lo + u * (hi - lo)
            cols[name] = [float(x) for x in vals]
        else:
            idx = np.minimum((u * len(spec)).astype(int), len(spec) - 1)
            cols[name] = [spec[i] for i in idx]
    return [{name: cols[name][i] for name in names} for i in range(n)]


def load_study(path: str | Path, check: bool = True) -> Study:
    """Read a study file, resolve every case and check it (see the module doc)."""
    path = Path(path)
    src = str(path)
    data = S.load_yaml(path)
    if not isinstance(data, dict):
        raise InputError(f"a study file is a mapping of keys ({', '.join(STUDY_KEYS)}), got {S._tname(data)}", src)
    for k in data:
        if k not in STUDY_KEYS:
            raise InputError(f"unknown key (expected one of: {', '.join(STUDY_KEYS)})", f"{src}: {k}")
    try:
        return _load(path, data, check)
    except InputError as exc:
        if exc.where and not exc.where.startswith(src):
            raise InputError(exc.message, f"{src}: {exc.where}") from None
        raise


def _load(path: Path, data: dict, check: bool) -> Study:
    name = S.string(data.get("name", path.stem), "name")
    if not name.strip() or any(c in name for c in "/\\"):
        raise InputError(f"a study name must be a plain name (it names the output folder), got {show(name)}", "name")
    if "base" not in data:
        raise InputError("missing required key 'base' (the case file the study varies)", "")
    base_path = Path(S.string(data["base"], "base"))
    if not base_path.is_absolute():
        base_path = path.parent / base_path
    if not base_path.is_file():
        raise InputError(f"case file not found: {base_path}", "base")
    base = S.load_yaml(base_path)
    if not isinstance(base, dict):
        raise InputError(f"the base case must be a mapping of keys, got {S._tname(base)}", "base")
    design = S.string(data.get("design", "grid"), "design", choices=DESIGNS)
    seed = S.integer(data.get("seed", 1), "seed")
    samples = None
    if design in ("lhs", "random"):
        if "samples" not in data:
            raise InputError(f"design '{design}' needs 'samples' (the number of points)", "samples")
        samples = S.integer(data["samples"], "samples", lo=1)
    elif "samples" in data:
        raise InputError(f"'samples' is for the lhs and random designs, not '{design}'", "samples")
    # -- parameters
    params = S.mapping(data.get("parameters", {}) or {}, "parameters")
    values: dict[str, list] = {}
    for p, spec in params.items():
        where = f"parameters.{p}"
        parse_path_at(p, where)
        if isinstance(spec, dict):
            if design not in ("lhs", "random"):
                raise InputError(f"a range {{min, max}} needs design lhs or random (design is '{design}'); give a list of values", where)
            S.mapping(spec, where, allowed=("min", "max", "log"), required=("min", "max"))
            lo = S.number(spec["min"], f"{where}.min")
            hi = S.number(spec["max"], f"{where}.max")
            if hi < lo:
                raise InputError(f"max ({hi:g}) is below min ({lo:g})", where)
            if S.boolean(spec.get("log", False), f"{where}.log") and lo <= 0:
                raise InputError("a log range needs min > 0", f"{where}.min")
            values[p] = [lo, hi]
        elif isinstance(spec, list):
            if not spec:
                raise InputError("give at least one value", where)
            values[p] = spec
        else:
            raise InputError(f"expected a list of values{' or a range {min, max}' if design in ('lhs', 'random') else ''}, got {show(spec)}", where)
    if design == "zip":
        lens = {p: len(v) for p, v in params.items()}
        if len(set(lens.values())) > 1:
            raise InputError(f"design 'zip' needs lists of equal length, got {', '.join(f'{p}: {n}' for p, n in lens.items())}", "parameters")
    # -- scenarios
    scen_spec = S.mapping(data.get("scenarios") or {"base": {}}, "scenarios")
    scenarios: dict[str, dict] = {}
    for sname, over in scen_spec.items():
        over = {} if over is None else S.mapping(over, f"scenarios.{sname}")
        for p in over:
            parse_path_at(p, f"scenarios.{sname}.{p}")
        scenarios[str(sname)] = over
    outputs = [S.string(o, f"outputs[{i}]") for i, o in enumerate(S.seq(data.get("outputs", []) or [], "outputs"))]
    study = Study(
        name=name, path=path, base_path=base_path, base_data=base, scenarios=scenarios, parameters=params,
        design=design, samples=samples, seed=seed, outputs=outputs, description=str(data.get("description", "")),
    )
    points = design_points(params, design, samples, seed)
    # -- resolve: scenario, then parameters, then 0-amount entries
    idx = 0
    for sname, over in scenarios.items():
        sdata = copy.deepcopy(base)
        deleted = []
        for p, v in over.items():
            where = f"scenarios.{sname}.{p}"
            if v is None:
                if not delete_path(sdata, p):
                    raise InputError("cannot delete: the key does not exist in the base case", where)
                deleted.append(parse_path(p))
            else:
                _check_path(sdata, p, where, [v])
                _set(sdata, parse_path(p), copy.deepcopy(v), where)
        active = {}
        for p in params:
            toks = parse_path(p)
            if any(toks[: len(d)] == d for d in deleted):
                continue  # under a key this scenario deleted
            _check_path(sdata, p, f"parameters.{p}", values[p] if not isinstance(params[p], dict) else [0.0])
            active[p] = toks
        for point in points:
            cdata = copy.deepcopy(sdata)
            for p, toks in active.items():
                v = point[p]
                if v is None:
                    delete_path(cdata, p)
                else:
                    _set(cdata, toks, copy.deepcopy(v), f"parameters.{p}")
            _drop_empty(cdata)
            study.cases.append(StudyCase(idx, sname, dict(point), cdata))
            idx += 1
    if check:
        check_cases(study)
    return study


def parse_path_at(path: str, where: str) -> list:
    try:
        return parse_path(path)
    except InputError as exc:
        raise InputError(exc.message, where) from None


#: error messages that mean a misspelt or misplaced key (structure), not a bad value
_STRUCTURAL = ("unknown key", "expected a", "expected one of", "missing required key", "keys must be", "invalid key path")


def check_cases(study: Study) -> None:
    """Build (not solve) the first case of each scenario: misspelt or mistyped keys are study errors.

    An error at (or under) a parameter or scenario key path names that study key; a bad
    value (outside its range) is left for the run, where that case fails alone.
    """
    from fembone.cases import build_model

    first: dict[str, StudyCase] = {}
    for c in study.cases:
        first.setdefault(c.scenario, c)
    for sname, c in first.items():
        try:
            build_model(copy.deepcopy(c.data), base=study.base_path.parent, source=str(study.base_path), mesh_cache=_MESHES)
        except InputError as exc:
            case_where = exc.where or ""
            prefix = f"{study.base_path}: "
            if case_where.startswith(prefix):
                case_where = case_where[len(prefix):]
            msg = exc.message
            structural = msg.startswith(_STRUCTURAL) or "unknown value" in msg
            key = _study_key_for(study, sname, case_where)
            if key is not None and structural:
                raise InputError(msg, key) from None
            if key is None and structural:
                raise InputError(f"the base case is invalid: {exc}", "base") from None
            # a value problem: that case (and maybe others) will fail and be recorded


def _study_key_for(study: Study, scenario: str, case_where: str) -> str | None:
    """The study key path (parameters.X or scenarios.S.X) an error at a case key path comes from."""
    if not case_where:
        return None
    try:
        wt = parse_path(case_where.split(":")[0].strip())
    except InputError:
        return None
    best = None
    for p in list(study.parameters) + [f"@{q}" for q in study.scenarios.get(scenario, {})]:
        sp = p[1:] if p.startswith("@") else p
        pt = parse_path(sp)
        n = min(len(pt), len(wt))
        if pt[:n] == wt[:n]:
            key = f"scenarios.{scenario}.{sp}" if p.startswith("@") else f"parameters.{sp}"
            if best is None or len(pt) > best[0]:
                best = (len(pt), key)
    return best[1] if best else None


# -- per-worker caches (mesh and assembler) -------------------------------------------------
_LOCK = threading.RLock()
_MESHES = MeshCache(4)  # per-worker parsed meshes, passed explicitly to the case builder
_ASSEMBLERS: OrderedDict = OrderedDict()
_SOLVERS: dict = {}  # per-worker: the last linear solver per mesh key (PARDISO analysis reuse)
CACHE_SIZE = 4


def _assembler_for(model):
    """A cached Assembler of the model's mesh (key: mesh file + order + DOF count), or None."""
    import numpy as np

    mesh = model.mesh
    key = (str(mesh.source), mesh.order, model.n_dofs)
    with _LOCK:
        asm = _ASSEMBLERS.get(key)
        if asm is not None:
            same = asm.mesh is mesh or (
                asm.mesh.cells.shape == mesh.cells.shape and np.array_equal(asm.mesh.cells, mesh.cells)
                and np.array_equal(asm.mesh.points, mesh.points)
            )
            if same:
                _ASSEMBLERS.move_to_end(key)
                return key, asm
            del _ASSEMBLERS[key]
    return key, None


def _keep_assembler(key, asm) -> None:
    with _LOCK:
        _ASSEMBLERS[key] = asm
        while len(_ASSEMBLERS) > CACHE_SIZE:
            _ASSEMBLERS.popitem(last=False)


def clear_caches() -> None:
    with _LOCK:
        _MESHES.clear()
        _ASSEMBLERS.clear()
        _SOLVERS.clear()


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
    from fembone.core import analysis
    from fembone.cases import build_model
    from fembone.core.output import write_results

    case_dir = Path(task["case_dir"])
    t0 = time.perf_counter()
    record = {
        "case_id": task["case_id"], "fembone": __version__, "status": "ok", "error": "",
        "worker": f"{os.uname().nodename}:{os.getpid()}:{threading.get_ident()}",
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
                    from fembone.apps import viz# optional

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


def save_record(case_dir: Path, record: dict) -> None:
    from fembone.core.output import atomic_write_text

    atomic_write_text(Path(case_dir) / "record.json", json.dumps(record, indent=1, allow_nan=True, default=float) + "\n")


def read_record(case_dir: Path) -> dict | None:
    p = Path(case_dir) / "record.json"
    try:
        rec = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and rec.get("status") in ("ok", "failed") else None


def _scalar(v) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def summary_rows(summary: dict) -> list[dict]:
    """Per load case: loadcase, metrics, probes.*, risk.*, volumes.* (scalars only)."""
    vols = summary.get("meta", {}).get("volumes", {}) or {}
    rows = []
    for lc, s in summary.get("loadcases", {}).items():
        row: dict[str, Any] = {"loadcase": lc}
        for k in BASE_METRICS:
            if k in s:
                row[k] = s[k]
        for k, v in (s.get("probes") or {}).items():
            row[f"probes.{k}"] = v
        for k, v in (s.get("risk") or {}).items():
            if _scalar(v):
                row[f"risk.{k}"] = v
        for k, v in vols.items():
            if _scalar(v):
                row[f"volumes.{k}"] = v
        row["dofs"] = summary.get("dofs")
        rows.append(row)
    return rows


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


def case_dir(out: Path, case_id: str) -> Path:
    return Path(out) / "cases" / case_id


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
        from tqdm import tqdm
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


# -- the table ------------------------------------------------------------------------------
def write_study_json(study: Study, out: Path) -> None:
    from fembone.core.output import atomic_write_text

    doc = {
        "name": study.name, "study_file": str(study.path), "base": str(study.base_path), "design": study.design,
        "parameters": list(study.parameters), "scenarios": list(study.scenarios), "fembone": __version__,
        "cases": [{"index": c.index, "case_id": c.case_id, "scenario": c.scenario, "parameters": c.params} for c in study.cases],
    }
    atomic_write_text(Path(out) / "study.json", json.dumps(doc, indent=1, default=repr) + "\n")


def table_rows(study: Study, out: Path) -> list[dict]:
    """Rows of every case that has a record, in study order (one per case x load case)."""
    rows = []
    cache: dict[str, dict | None] = {}
    for c in study.cases:
        if c.case_id not in cache:
            cache[c.case_id] = read_record(case_dir(out, c.case_id))
        rec = cache[c.case_id]
        if rec is None:
            continue
        head = {"study": study.name, "case_id": c.case_id, "scenario": c.scenario}
        head.update({p: c.params.get(p) for p in study.parameters})
        if rec["status"] == "ok" and rec.get("rows"):
            for r in rec["rows"]:
                rows.append({**head, "loadcase": r.get("loadcase", ""), "status": "ok", "error": "", **{k: v for k, v in r.items() if k != "loadcase"}})
        else:
            rows.append({**head, "loadcase": "", "status": rec["status"], "error": rec.get("error", "")})
    return rows


def columns(study: Study, rows: list[dict]) -> list[str]:
    cols = list(ID_COLUMNS) + list(study.parameters) + list(STATUS_COLUMNS)
    metrics: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols and k not in metrics:
                metrics.append(k)

    def rank(k: str):
        if k in BASE_METRICS:
            return (0, BASE_METRICS.index(k), k)
        for i, pre in enumerate(("probes.", "risk.", "volumes.")):
            if k.startswith(pre):
                return (1 + i, 0, k)
        return (9, 0, k)

    return cols + sorted(metrics, key=rank)


def write_table(study: Study, out: Path) -> list[dict]:
    """results.csv (and results.parquet when pyarrow is importable) from the per-case records."""
    from fembone.core.output import atomic_write_text

    out = Path(out)
    rows = table_rows(study, out)
    cols = columns(study, rows)
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    wr.writeheader()
    for r in rows:
        wr.writerow({k: _csv_value(r.get(k)) for k in cols})
    atomic_write_text(out / "results.csv", buf.getvalue())
    _write_parquet(rows, cols, out / "results.parquet")
    return rows


def _csv_value(v):
    if v is None:
        return ""
    if isinstance(v, list | dict):
        return json.dumps(v)
    return v


def _write_parquet(rows: list[dict], cols: list[str], path: Path) -> bool:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    data = {}
    for c in cols:
        vals = [r.get(c) for r in rows]
        vals = [json.dumps(v) if isinstance(v, list | dict) else v for v in vals]
        kinds = {type(v) for v in vals if v is not None}
        if kinds and not kinds <= {int, float} and not kinds <= {str} and not kinds <= {bool}:
            vals = [None if v is None else str(v) for v in vals]
        elif kinds == {int, float}:
            vals = [None if v is None else float(v) for v in vals]
        data[c] = vals
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.table(data), tmp)
    os.replace(tmp, path)
    return True


def read_table(path: str | Path) -> list[dict]:
    """results.csv as a list of dicts (numbers parsed, empty cells None)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def _parse(v: str):
    if v == "":
        return None
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


# -- report ---------------------------------------------------------------------------------
def metric_column(name: str, cols: list[str]) -> str | None:
    for c in (name, f"risk.{name}", f"probes.{name}", f"volumes.{name}"):
        if c in cols:
            return c
    return None


def _num(v) -> float | None:
    return float(v) if S.is_number(v) else None


def write_report(study: Study, out: Path, rows: list[dict] | None = None, stream=None) -> Path:
    """plots/<metric>__<parameter>.png (metric against each parameter, a line per scenario) and report.html."""
    stream = stream or sys.stderr
    out = Path(out)
    rows = table_rows(study, out) if rows is None else rows
    cols = columns(study, rows)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
        print("fembone: warning: matplotlib is not installed: report without plots (pip install matplotlib)", file=stream)
    wanted = study.outputs or [
        m for m in (DEFAULT_OUTPUTS_VERTEBRA if any(c.startswith("risk.") for c in cols) else DEFAULT_OUTPUTS)
    ]
    metrics = []
    for m in wanted:
        c = metric_column(m, cols)
        if c is None:
            print(f"fembone: warning: output '{m}' is not in the results (columns: {', '.join(cols[len(ID_COLUMNS) + len(study.parameters) + 3:])})", file=stream)
        else:
            metrics.append((m, c))
    ok = [r for r in rows if r.get("status") == "ok"]
    loadcases = list(dict.fromkeys(r["loadcase"] for r in ok))
    plots: list[tuple[str, str]] = []
    if plt is not None and ok:
        (out / "plots").mkdir(parents=True, exist_ok=True)
        for m, c in metrics:
            for p in study.parameters:
                fname = f"plots/{_safe(m)}__{_safe(p)}.png"
                if _plot(plt, study, ok, loadcases, m, c, p, out / fname):
                    plots.append((f"{m} against {p}", fname))
    (out / "report.html").write_text(_html(study, out, rows, cols, plots), encoding="utf-8")
    return out / "report.html"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _plot(plt, study: Study, rows, loadcases, metric, col, param, path: Path) -> bool:
    others = [q for q in study.parameters if q != param]
    loadcases = [lc for lc in loadcases if any(r["loadcase"] == lc and _num(r.get(col)) is not None for r in rows)]
    if not loadcases:
        return False
    n = len(loadcases)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    any_data = False
    scen = list(study.scenarios)
    styles = ["-", "--", ":", "-."]
    for ax, lc in zip(axes[0], loadcases, strict=False):
        sub = [r for r in rows if r["loadcase"] == lc and _num(r.get(param)) is not None and _num(r.get(col)) is not None]
        # one line per scenario (and per value of the other parameter in a two-parameter grid)
        group_by_other = study.design == "grid" and len(others) == 1 and len({str(r.get(others[0])) for r in sub}) <= 6
        groups: dict[tuple, list] = {}
        for r in sub:
            g = (r["scenario"], r.get(others[0]) if group_by_other else None)
            groups.setdefault(g, []).append((_num(r[param]), _num(r[col])))
        colours = {}
        for (s, o), pts in groups.items():
            pts.sort()
            xs = [x for x, _ in pts]
            ys = [y for _, y in pts]
            label = s if o is None else f"{s}, {others[0].split('.')[-1]}={o}"
            if o is not None:
                colours.setdefault(str(o), f"C{len(colours) % 10}")
            colour = colours.get(str(o), f"C{scen.index(s) % 10}" if s in scen else None)
            ls = styles[scen.index(s) % len(styles)] if s in scen else "-"
            if study.design in ("grid", "zip") and len(set(xs)) == len(xs):
                ax.plot(xs, ys, ls, marker="o", color=colour, label=label, ms=4)
            else:
                ax.plot(xs, ys, "o", color=colour, label=label, ms=4, alpha=0.8)
            any_data = True
        ax.set_title(lc, fontsize=10)
        ax.set_xlabel(param, fontsize=9)
        ax.set_ylabel(metric, fontsize=9)
        ax.grid(alpha=0.3)
        if groups:
            ax.legend(fontsize=6, framealpha=0.6)
    fig.suptitle(f"{study.name}: {metric}", fontsize=10)
    fig.tight_layout()
    if any_data:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return any_data


def _html(study: Study, out: Path, rows, cols, plots) -> str:
    e = html.escape
    n_cases = len({r["case_id"] for r in rows})
    failed = sorted({r["case_id"] for r in rows if r.get("status") == "failed"})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>fembone study {e(study.name)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
        "tr.failed td{background:#fdd}img{max-width:100%;margin:4px}</style></head><body>",
        f"<h1>Study {e(study.name)}</h1>",
        f"<p>{e(study.description)}</p>" if study.description else "",
        f"<p>Base case <code>{e(str(study.base_path))}</code>; design <b>{e(study.design)}</b>; "
        f"scenarios: {e(', '.join(study.scenarios))}; parameters: {e(', '.join(study.parameters) or 'none')}. "
        f"{len(study.cases)} case(s) ({len(study.unique_cases)} distinct), {n_cases} with results, {len(failed)} failed. "
        f"Units: mm, N, MPa. fembone {e(__version__)}.</p>",
    ]
    if plots:
        parts.append("<h2>Plots</h2>")
        for title, f in plots:
            parts.append(f"<figure><img src='{e(f)}' alt='{e(title)}'><figcaption>{e(title)}</figcaption></figure>")
    pics = _pictures(study, out)
    if pics:
        parts.append("<h2>Stress pictures</h2>")
        for title, f in pics:
            parts.append(f"<figure><img src='{e(f)}' alt='{e(title)}' style='max-width:45%'><figcaption>{e(title)}</figcaption></figure>")
    parts.append("<h2>Results</h2><p>Also in <a href='results.csv'>results.csv</a>.</p><table><tr>")
    parts.extend(f"<th>{e(c)}</th>" for c in cols)
    parts.append("</tr>")
    for r in rows:
        cls = " class='failed'" if r.get("status") == "failed" else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{e(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(p for p in parts if p)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.5g}"
    return str(v)


def _pictures(study: Study, out: Path) -> list[tuple[str, str]]:
    """PNG previews of the first finished case of each scenario (when fembone.apps.viz wrote any)."""
    try:
        import fembone.apps.viz  # noqa: F401
    except ImportError:
        return []
    pics = []
    seen = set()
    for c in study.cases:
        if c.scenario in seen:
            continue
        d = case_dir(out, c.case_id)
        pngs = sorted(d.glob("*.png")) if d.is_dir() else []
        if pngs:
            seen.add(c.scenario)
            label = ", ".join(f"{k}={v}" for k, v in c.params.items())
            for p in pngs[:4]:
                pics.append((f"{c.scenario} ({label}): {p.stem}", str(p.relative_to(out))))
    return pics
