"""Property-based fuzzing of the case loader: any input gives a Model or an InputError.

``build_model`` is fed random YAML-like data (junk, and random mutations of a valid case
that uses every section of the case-file contract); ``schema.parse_yaml`` is fed random
text.  Nothing is solved: the mesh is a 12-element box, so each build takes milliseconds.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fembone.cases import build_model
from fembone.core.errors import InputError
from fembone.core.meshgen import box_mesh, write_mesh
from fembone.core.model import Model
from fembone.core.schema import parse_yaml

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "cases"

FUZZ = settings(
    max_examples=200,  # mutations of the valid case: the most telling inputs
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def tiny_mesh(tmp_path_factory) -> Path:
    """A 2 x 1 x 1 mm box of 12 tet4 with facet sets xmin..zmax and element set 'left'."""
    mesh = box_mesh((2.0, 1.0, 1.0), (2, 1, 1))
    mesh.cell_sets["left"] = np.flatnonzero(mesh.centroids()[:, 0] < 1.0)
    path = tmp_path_factory.mktemp("fuzz") / "box.msh"
    write_mesh(mesh, path)
    return path


def valid_case(mesh_file: Path) -> dict:
    """A case touching every section of the contract; it builds as is."""
    return {
        "name": "fuzz",
        "description": "fuzzing base case",
        "mesh": {"file": str(mesh_file), "order": 1},
        "materials": {
            "steel": {"E": 10000.0, "nu": 0.3},
            "bone": {
                "type": "transverse_isotropic", "E_axial": 400.0, "E_transverse": 140.0, "nu_axial": 0.3,
                "nu_transverse": 0.3, "G_axial": 100.0, "axis": [0, 0, 1],
            },
        },
        "assign": [{"material": "steel"}, {"material": "bone", "where": {"set": "left"}}],
        "constraints": [
            {"where": {"plane": {"x": 0.0}}, "fix": ["x", "y", "z"]},
            {"where": {"box": {"min": [2, 0, 0], "max": [2, 1, 0]}}, "value": [None, 0.01, None]},
            {"coupling": "rigid", "where": {"set": "zmax"}, "point": "top", "at": [1.0, 0.5, 1.5]},
            {"coupling": "distributing", "where": {"set": "ymax"}, "point": "side"},
            {"point": "side", "fix": ["rx"]},
        ],
        "loadcases": {
            "tip": [{"where": {"plane": {"x": 2.0}}, "force": [0, 0, -10.0]}],
            "push": [
                {"where": {"set": "xmax"}, "traction": [-1.0, 0, 0]},
                {"where": {"sphere": {"center": [2, 1, 1], "radius": 0.5}}, "nodal_force": [0, 1, 0]},
            ],
            "squeeze": [{"where": {"set": "ymin"}, "pressure": 0.5}],
            "bend": [{"point": "top", "force": [0, 0, -4], "moment": [7.5, 0, 0]}],
        },
        "probes": {
            "tip_uz": {"field": "displacement.z", "where": {"plane": {"x": 2.0}}, "reduce": "mean"},
            "vm": {"field": "stress.von_mises", "where": {"cylinder": {"start": [0, 0.5, 0.5], "end": [2, 0.5, 0.5], "radius": 1}}},
            "eps": {"field": "strain.min_principal", "where": {"ellipsoid": {"center": [1, 0.5, 0.5], "radii": [1, 1, 1]}}, "reduce": "min"},
        },
        "solver": {"name": "auto", "rtol": 1e-8, "precision": "double"},
    }


# -- strategies ----------------------------------------------------------------------------
CONTRACT_KEYS = [
    "name", "description", "mesh", "file", "order", "materials", "type", "E", "nu", "E_axial", "E_transverse",
    "nu_axial", "nu_transverse", "G_axial", "axis", "assign", "material", "where", "constraints", "fix", "value",
    "coupling", "point", "at", "loadcases", "force", "traction", "pressure", "nodal_force", "moment", "probes",
    "field", "reduce", "solver", "rtol", "precision", "set", "plane", "box", "sphere", "ellipsoid", "cylinder",
    "x", "y", "z", "tol", "min", "max", "center", "radius", "radii", "axes", "start", "end", "rigid",
    "distributing", "steel", "bone", "top", "side", "tip", "all",
]
CONTRACT_VALUES = [
    "x", "y", "z", "rx", "all", "steel", "bone", "rigid", "distributing", "isotropic", "transverse_isotropic",
    "transverse_isotropic ", "xmax", "zmin", "left", "nowhere", "displacement.z", "stress.xx", "strain.bogus",
    "mean", "max", "auto", "superlu", "amg", "single", "../meshes/cantilever_tet4.msh", "missing.msh",
    "cantilever.yaml", "", ".", "/", "top",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(),  # includes ints too large for a float
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 3, -1, 0.5, 0.49, -1.0, 1e-300, 1e300, 1e308]),
    st.sampled_from(CONTRACT_VALUES),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(CONTRACT_KEYS), st.text(max_size=8), st.integers(-3, 3), st.none(), st.booleans())
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=8,
)
#: random data and text are cheaper to cover and their failures shallower: fewer examples
FUZZ_LIGHT = settings(FUZZ, max_examples=100)


def _paths(node, prefix=()):
    """Every (container path, key) location in nested data."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(prefix + (k,))
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append(prefix + (i,))
            out.extend(_paths(v, prefix + (i,)))
    return out


def _get(node, path):
    for k in path:
        node = node[k]
    return node


@st.composite
def mutated_cases(draw, mesh_file: Path):
    case = valid_case(mesh_file)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(case)
        op = draw(st.sampled_from(["replace", "delete", "add", "swap", "duplicate", "wrap"]))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _get(case, path[:-1]), path[-1]
        if op == "replace":
            parent[key] = draw(junk)
        elif op == "delete":
            del parent[key]
        elif op == "add":
            target = parent[key] if isinstance(parent[key], dict | list) else parent
            if isinstance(target, dict):
                target[draw(keys)] = draw(junk)
            else:
                target.insert(draw(st.integers(0, len(target))), draw(junk))
        elif op == "swap":  # a value from elsewhere in the case: plausible but misplaced
            other = _get(case, draw(st.sampled_from(paths)))
            parent[key] = copy.deepcopy(other)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif op == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"value": parent[key]}, str(parent[key])]))
    return case


def _check_build(data) -> None:
    try:
        model = build_model(data, base=CASES, source="fuzz.yaml")
    except InputError as exc:
        text = str(exc)
        assert "\n" not in text and text.strip() == text and text
        return
    assert isinstance(model, Model)


# -- tests ---------------------------------------------------------------------------------
def test_valid_base_case_builds(tiny_mesh):
    model = build_model(valid_case(tiny_mesh), base=CASES, source="fuzz.yaml")
    assert set(model.loads) == {"tip", "push", "squeeze", "bend"}
    assert set(model.points) == {"top", "side"}
    assert len(model.probes) == 3


def test_base_case_round_trips_through_yaml(tiny_mesh):
    import yaml

    text = yaml.safe_dump(valid_case(tiny_mesh))
    assert isinstance(build_model(parse_yaml(text, "x.yaml"), base=CASES, source="x.yaml"), Model)


@FUZZ
@given(data=st.data())
def test_mutated_case_gives_model_or_input_error(tiny_mesh, data):
    _check_build(data.draw(mutated_cases(tiny_mesh)))


@FUZZ_LIGHT
@given(data=junk)
def test_junk_gives_input_error(data):
    _check_build(data)


@FUZZ_LIGHT
@given(data=st.dictionaries(st.sampled_from(CONTRACT_KEYS[:12] + ["bogus"]), junk, max_size=4), mesh_first=st.booleans())
def test_junk_sections_give_input_error(tiny_mesh, data, mesh_first):
    if mesh_first:
        data = {"mesh": str(tiny_mesh), **data}
    _check_build(data)


def _parse(text: str) -> None:
    try:
        parse_yaml(text, "fuzz.yaml")
    except InputError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith("fuzz.yaml")


YAML_TOKENS = [
    ":", ": ", "- ", "-", "{", "}", "[", "]", ",", "\n", "  ", "\t", "#", "'", '"', "&a ", "*a", "*b", "!!python/object/apply:os.system ",
    "!!python/name:os.system", "!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!binary ", "!!set ", "!!omap ", "!!str ",
    "!!map ", "!!seq ", "!foo ", "? ", "|", ">", "---\n", "...\n", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "<<: ", "~",
    "null", "true", "yes", "2020-02-30", "2001-12-14t21:59:43.10-05:00", "0x1F", "0o17", "1_0", ".inf", ".nan", "1e400",
    "1" * 30, "E", "nu", "mesh", "materials", "a", "b", "\\u0000", "\x00", "\x85", "\ufeff", "é", "\r",
]


@FUZZ
@given(st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join))
def test_parse_yaml_tokens(text):
    _parse(text)


@FUZZ_LIGHT
@given(st.text(max_size=200))
def test_parse_yaml_random_text(text):
    _parse(text)


KNOWN_BAD_YAML = {
    "impossible-date": "a: 2020-02-30",
    "bad-int": "a: !!int abc",
    "bad-bool": "a: !!bool maybe",
    "bad-timestamp": "a: !!timestamp 99",
    "list-as-key": "? [1, 2]\n: 3",
    "python-tag": "a: !!python/object/apply:os.system ['true']",
    "deep-nesting": "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 300)),
    "unclosed": "[" * 200,
    "duplicate-key": "a: 1\na: 2",
}


@pytest.mark.parametrize("text", KNOWN_BAD_YAML.values(), ids=KNOWN_BAD_YAML.keys())
def test_parse_yaml_known_bad(text):
    with pytest.raises(InputError) as exc:
        parse_yaml(text, "fuzz.yaml")
    assert str(exc.value).startswith("fuzz.yaml") and "\n" not in str(exc.value)
