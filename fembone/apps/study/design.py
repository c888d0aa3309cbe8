"""Study definition: reading the study file, design points (grid, zip, lhs, random), resolved cases.

See :mod:`fembone.apps.study` for the study-file format and the rules applied to every case.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fembone.apps.study.caches import _MESHES
from fembone.core import schema as S
from fembone.core.errors import InputError, show
from fembone.core.keypath import parse_path
from fembone.core.version import __version__

STUDY_KEYS = ("name", "description", "base", "scenarios", "parameters", "design", "samples", "seed", "outputs")
DESIGNS = ("grid", "zip", "lhs", "random")


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
