"""Parse a case (a mapping read from YAML) into a typed :class:`~fembone.cases.spec.CaseSpec`.

One pass over the raw mapping; every problem is a one-line :class:`InputError` naming the
key path.  Registered extensions (:mod:`fembone.cases.registry`) parse their own keys.
Units: mm, N, MPa, N mm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fembone.cases.registry import EXTENSIONS, TOP_LEVEL, extension_keys, load_keys
from fembone.cases.spec import (
    Assign, CaseSpec, Coupling, Fix, MeshFile, PointLoad, ProbeSpec, SolverSpec, SurfaceLoad,
)
from fembone.core import schema as S
from fembone.core.errors import InputError
from fembone.core.materials import make_material
from fembone.core.selectors import parse_selector
from fembone.core.solvers import SOLVERS

AXIS_NAMES = {"x": 0, "y": 1, "z": 2, "rx": 3, "ry": 4, "rz": 5}
PROBE_FIELDS = {
    "displacement": ("x", "y", "z", "magnitude"),
    "strain": ("xx", "yy", "zz", "xy", "yz", "xz", "min_principal", "max_principal", "equivalent"),
    "stress": ("xx", "yy", "zz", "xy", "yz", "xz", "min_principal", "max_principal", "von_mises"),
}
LOAD_KEYS = ("force", "traction", "pressure", "nodal_force")


def parse_case(data: Any, base: Path | str = ".", source: str = "<case>") -> CaseSpec:
    """Validate a raw case mapping into a :class:`CaseSpec` (errors name ``source: key.path``)."""
    try:
        return _parse(data, Path(base), source)
    except InputError as exc:
        if exc.where and not exc.where.startswith(source) and not exc.where.startswith("/"):
            raise InputError(exc.message, f"{source}: {exc.where}") from None
        raise


def _parse(data: Any, base: Path, source: str) -> CaseSpec:
    allowed = TOP_LEVEL + extension_keys()
    if not isinstance(data, dict):
        raise InputError(f"a case file is a mapping of keys (name, mesh, materials, ...), got {S._tname(data)}", source)
    for k in data:
        if k not in allowed:
            raise InputError(f"unknown key (expected one of: {', '.join(allowed)})", f"{source}: {k}")
    name = S.string(data.get("name", Path(source).stem), f"{source}: name")
    description = S.string(data.get("description", ""), "description")
    extensions = {e.name: e.parse(data, source, base) for e in EXTENSIONS.values() if e.claims(data)}
    owner = next((e for e in EXTENSIONS.values() if e.name in extensions and e.owns_materials(data)), None)
    makers = [k for e in EXTENSIONS.values() for k in getattr(e, "mesh_keys", ()) if k in data]
    if "mesh" in data and makers:
        raise InputError(f"give either 'mesh' or '{makers[0]}', not both", "mesh")
    mesh = _mesh(data["mesh"], base, "mesh") if "mesh" in data else None
    if mesh is None and not makers:
        raise InputError("missing required key 'mesh'", "")
    materials = {} if owner else _materials(data.get("materials", {}))
    assign = [_assign(e, f"assign[{i}]") for i, e in enumerate(S.seq(data.get("assign", []), "assign"))]
    if owner is None:
        if not materials:
            raise InputError("missing required key 'materials'", "")
        if not assign and len(materials) == 1:
            assign = [Assign(next(iter(materials)), None, "assign")]
        for a in assign:
            if a.material not in materials:
                raise InputError(f"unknown material '{a.material}' (defined: {', '.join(materials) or 'none'})", f"{a.path}.material")
    constraints = [_constraint(e, f"constraints[{i}]") for i, e in enumerate(S.seq(data.get("constraints", []), "constraints"))]
    lcs = S.mapping(data.get("loadcases", {}), "loadcases")
    if not lcs:
        raise InputError("at least one load case is needed", "loadcases")
    loadcases = {lname: _loadcase(entries, f"loadcases.{lname}", extensions) for lname, entries in lcs.items()}
    probes = [_probe(pname, spec, f"probes.{pname}") for pname, spec in S.mapping(data.get("probes", {}), "probes").items()]
    return CaseSpec(
        name=name, source=source, base=base, mesh=mesh, materials=materials, assign=assign,
        constraints=constraints, loadcases=loadcases, probes=probes,
        solver=_solver(data.get("solver", "auto"), "solver"), description=description,
        extensions=extensions, resolved=data,
    )


def _mesh(spec, base: Path, path: str) -> MeshFile:
    order = None
    if isinstance(spec, dict):
        S.mapping(spec, path, allowed=("file", "order"), required=("file",))
        file = S.string(spec["file"], f"{path}.file")
        if "order" in spec:
            order = S.integer(spec["order"], f"{path}.order")
            if order not in (1, 2):
                raise InputError(f"order must be 1 or 2, got {order}", f"{path}.order")
    else:
        file = S.string(spec, path)
    p = Path(file) if Path(file).is_absolute() else base / file
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a mesh file", path)
    if not p.is_file():
        raise InputError(f"mesh file not found: {p}", path)
    return MeshFile(p, order, path)


def _materials(spec) -> dict:
    mats = S.mapping(spec, "materials")
    return {mname: make_material(mname, m, f"materials.{mname}") for mname, m in mats.items()}


def _assign(entry, p: str) -> Assign:
    S.mapping(entry, p, allowed=("material", "where"), required=("material",))
    where = parse_selector(entry["where"], f"{p}.where") if entry.get("where") is not None else None
    return Assign(S.string(entry["material"], f"{p}.material"), where, p)


def _components(value, path: str, allow_rot: bool) -> list[int]:
    if value == "all" or value is True:  # not 'in (...)': 1 == True would make 'fix: 1' mean all
        return [0, 1, 2, 3, 4, 5] if allow_rot else [0, 1, 2]
    names = S.seq(value, path)
    out = []
    allowed = ("x", "y", "z", "rx", "ry", "rz") if allow_rot else ("x", "y", "z")
    for i, n in enumerate(names):
        S.string(n, f"{path}[{i}]", choices=allowed)
        out.append(AXIS_NAMES[n])
    if len(set(out)) != len(out):
        raise InputError("a component is listed twice", path)
    return out


def _constraint(entry, path: str) -> Coupling | Fix:
    S.mapping(entry, path)
    if "coupling" in entry:
        S.mapping(entry, path, allowed=("coupling", "where", "point", "at"), required=("coupling", "where", "point"))
        kind = S.string(entry["coupling"], f"{path}.coupling", choices=("rigid", "distributing"))
        pname = S.string(entry["point"], f"{path}.point")
        at = tuple(S.vector(entry["at"], f"{path}.at")) if "at" in entry else None
        return Coupling(kind, parse_selector(entry["where"], f"{path}.where"), pname, at, path)
    S.mapping(entry, path, allowed=("where", "point", "fix", "value"))
    if ("where" in entry) == ("point" in entry):
        raise InputError("give exactly one of 'where' (mesh nodes) or 'point' (a reference point)", path)
    if "fix" not in entry and "value" not in entry:
        raise InputError("give 'fix: [x, y, z]' or 'value: [ux, uy, uz]'", path)
    point = S.string(entry["point"], f"{path}.point") if "point" in entry else None
    where = parse_selector(entry["where"], f"{path}.where") if point is None else None
    ncomp = 6 if point else 3
    comps: list[int] = []
    vals: list[float] = []
    if "fix" in entry:
        comps = _components(entry["fix"], f"{path}.fix", allow_rot=ncomp == 6)
        vals = [0.0] * len(comps)
    if "value" in entry:
        v = S.vector(entry["value"], f"{path}.value", n=ncomp, allow_none=True)
        for k, x in enumerate(v):
            if x is None:
                continue
            if k in comps:
                vals[comps.index(k)] = x
            else:
                comps.append(k)
                vals.append(x)
    if not comps:
        raise InputError("constrains no component", path)
    return Fix(where, point, tuple(comps), tuple(vals), path)


def _loadcase(entries, path: str, extensions: dict) -> list:
    S.seq(entries, path)
    if not entries:
        raise InputError("a load case needs at least one load", path)
    custom = load_keys()
    out = []
    for i, entry in enumerate(entries):
        p = f"{path}[{i}]"
        S.mapping(entry, p)
        owners = [e for e in EXTENSIONS.values() if any(k in entry for k in e.load_keys)]
        ext = next((e for e in owners if e.name in extensions), owners[0] if owners else None)  # the case's own first
        if ext is not None:
            out.append(ext.parse_load(entry, p, extensions.get(ext.name)))
            continue
        if "point" in entry:
            S.mapping(entry, p, allowed=("point", "force", "moment"), required=("point",))
            if "force" not in entry and "moment" not in entry:
                raise InputError("give 'force' and/or 'moment'", p)
            out.append(PointLoad(
                S.string(entry["point"], f"{p}.point"),
                tuple(S.vector(entry["force"], f"{p}.force")) if "force" in entry else None,
                tuple(S.vector(entry["moment"], f"{p}.moment")) if "moment" in entry else None, p,
            ))
            continue
        S.mapping(entry, p, allowed=("where",) + LOAD_KEYS + tuple(custom), required=("where",))
        kinds = [k for k in LOAD_KEYS if k in entry]
        if len(kinds) != 1:
            raise InputError(f"give exactly one of: {', '.join(LOAD_KEYS)}", p)
        kind = kinds[0]
        value = S.number(entry[kind], f"{p}.pressure") if kind == "pressure" else tuple(S.vector(entry[kind], f"{p}.{kind}"))
        out.append(SurfaceLoad(kind, parse_selector(entry["where"], f"{p}.where"), value, p))
    return out


def _probe(name: str, spec, path: str) -> ProbeSpec:
    S.mapping(spec, path, allowed=("field", "where", "reduce"), required=("field",))
    fld = S.string(spec["field"], f"{path}.field")
    parts = fld.split(".")
    if len(parts) != 2 or parts[0] not in PROBE_FIELDS or parts[1] not in PROBE_FIELDS[parts[0]]:
        opts = ", ".join(f"{k}.{{{'|'.join(v)}}}" for k, v in PROBE_FIELDS.items())
        raise InputError(f"unknown field '{fld}' (expected {opts})", f"{path}.field")
    reduce = S.string(spec.get("reduce", "mean"), f"{path}.reduce", choices=("mean", "min", "max"))
    where = parse_selector(spec["where"], f"{path}.where") if spec.get("where") is not None else None
    return ProbeSpec(name, fld, reduce, where, path)


def _solver(spec, path: str) -> SolverSpec:
    if isinstance(spec, dict):
        S.mapping(spec, path, allowed=("name", "rtol", "precision"))
        name = S.string(spec.get("name", "auto"), f"{path}.name", choices=("auto",) + tuple(SOLVERS))
        rtol = S.number(spec["rtol"], f"{path}.rtol", lo=0, lo_open=True, hi=1e-3) if "rtol" in spec else None
        prec = S.string(spec["precision"], f"{path}.precision", choices=("single", "double")) if "precision" in spec else None
        return SolverSpec(name, rtol, prec)
    return SolverSpec(S.string(spec, path, choices=("auto",) + tuple(SOLVERS)))
