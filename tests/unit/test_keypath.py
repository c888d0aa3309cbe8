"""Key paths into case data: parsing, reading, writing, and --set style overrides."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fembone.cases import apply_overrides
from fembone.core.errors import InputError
from fembone.core.keypath import get_path, parse_path, set_path

CASE = {
    "materials": {"bone": {"E": 400.0, "nu": 0.3}},
    "loadcases": {"tip": [{"where": {"set": "top"}, "force": [0, 0, -10.0]}, {"point": "p", "moment": [1, 2, 3]}]},
    "name": "demo",
}


@pytest.mark.parametrize(
    "path, tokens",
    [
        ("name", ["name"]),
        ("materials.bone.E", ["materials", "bone", "E"]),
        ("loadcases.tip[0].force", ["loadcases", "tip", 0, "force"]),
        ("loadcases.tip[1].moment[2]", ["loadcases", "tip", 1, "moment", 2]),
        ("a[0][12]", ["a", 0, 12]),
        ("[3]", [3]),
        ("bone E.x", ["bone E", "x"]),  # keys may hold spaces
        ("a-b_c.d1", ["a-b_c", "d1"]),
    ],
)
def test_parse_path(path, tokens):
    assert parse_path(path) == tokens


@pytest.mark.parametrize(
    "path",
    ["", "a..b", "a.", ".a", "a.[0]", "a[0]b", "a[x]", "a[-1]", "a[]", "a[0", "a]", "a[0]]", "[", None, 3, ["a"]],
)
def test_parse_path_rejects(path):
    with pytest.raises(InputError, match="invalid key path"):
        parse_path(path)


def test_get_path():
    assert get_path(CASE, "materials.bone.E") == 400.0
    assert get_path(CASE, "loadcases.tip[0].force[2]") == -10.0
    assert get_path(CASE, "loadcases.tip[1]") == {"point": "p", "moment": [1, 2, 3]}


@pytest.mark.parametrize(
    "path, at",
    [
        ("materials.steel.E", "'steel'"),
        ("loadcases.tip[5]", "5"),
        ("materials.bone.E.x", "'x'"),
        ("name[0]", "0"),  # no indexing into strings
        ("materials[0]", "0"),  # nor into mappings
        ("loadcases.tip.x", "'x'"),  # nor keys into lists
    ],
)
def test_get_path_missing(path, at):
    with pytest.raises(InputError) as exc:
        get_path(CASE, path)
    msg = str(exc.value)
    assert f"key path '{path}' does not exist" in msg and f"(at {at})" in msg
    assert "\n" not in msg


def test_set_path_existing_and_created():
    data = copy.deepcopy(CASE)
    set_path(data, "materials.bone.E", 500.0)
    set_path(data, "loadcases.tip[0].force[1]", 7.0)
    set_path(data, "materials.steel.nu", 0.3)  # created
    set_path(data, "solver.name", "amg")  # created
    assert data["materials"]["bone"]["E"] == 500.0
    assert data["loadcases"]["tip"][0]["force"] == [0, 7.0, -10.0]
    assert data["materials"]["steel"] == {"nu": 0.3}
    assert data["solver"] == {"name": "amg"}


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("loadcases.tip[9].force", "index [9] does not exist"),
        ("loadcases.tip[0].force[3]", "index [3] does not exist"),
        ("name.x", "'x' is not inside a mapping"),
        ("materials.bone.E.x", "'x' is not inside a mapping"),
        ("loadcases.tip.x", "'x' is not inside a mapping"),
        ("new.list[0]", "index [0] does not exist"),  # created lists are empty
        ("a..b", "invalid key path"),
    ],
)
def test_set_path_errors(path, fragment):
    data = copy.deepcopy(CASE)
    with pytest.raises(InputError) as exc:
        set_path(data, path, 1)
    assert fragment in str(exc.value)


def test_set_path_no_create():
    data = copy.deepcopy(CASE)
    with pytest.raises(InputError, match="does not exist"):
        set_path(data, "materials.steel.E", 1.0, create=False)
    assert "steel" not in data["materials"]
    set_path(data, "materials.bone.E", 1.0, create=False)
    assert data["materials"]["bone"]["E"] == 1.0


def test_apply_overrides_copies():
    out = apply_overrides(CASE, {"materials.bone.E": 12.0, "loadcases.tip[0].where.set": "bottom"})
    assert out["materials"]["bone"]["E"] == 12.0
    assert out["loadcases"]["tip"][0]["where"] == {"set": "bottom"}
    assert CASE["materials"]["bone"]["E"] == 400.0  # the original is untouched
    assert CASE["loadcases"]["tip"][0]["where"] == {"set": "top"}


_names = st.text(st.characters(blacklist_characters=".[]", blacklist_categories=("Cs",)), min_size=1, max_size=6)
_tokens = st.lists(st.one_of(_names, st.integers(0, 99)), min_size=1, max_size=6)


def _format(tokens) -> str:
    out = ""
    for t in tokens:
        out += f"[{t}]" if isinstance(t, int) else (f".{t}" if out else t)
    return out


@settings(max_examples=100, deadline=None)
@given(_tokens)
def test_parse_format_round_trip(tokens):
    assert parse_path(_format(tokens)) == tokens


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=".[]0123456789ab -", max_size=20))
def test_parse_path_never_crashes(text):
    try:
        toks = parse_path(text)
    except InputError:
        return
    assert toks and all(isinstance(t, str | int) for t in toks)
    assert parse_path(_format(toks)) == toks


@settings(max_examples=50, deadline=None)
@given(st.lists(_names, min_size=1, max_size=5), st.integers())
def test_set_then_get(keys, value):
    """Setting a path of keys in an empty mapping creates it; get_path reads it back."""
    path = _format(keys)
    data: dict = {}
    set_path(data, path, value)
    assert get_path(data, path) == value
