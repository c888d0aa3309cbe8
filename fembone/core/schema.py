"""Small helpers to validate case-file data with errors that name the key path.

Every check raises :class:`fembone.core.errors.InputError` whose ``where`` is the path of the
offending key, e.g. ``loadcases.tip[0].where.plane``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from fembone.core.errors import InputError, show


class _Loader(yaml.SafeLoader):
    """Safe YAML (no object construction from tags) that rejects duplicate keys."""

    def construct_object(self, node, deep=False):
        # scalar constructors raise plain Python errors on bad values ('2020-02-30',
        # '!!int abc', '!!bool maybe'): report them as YAML errors at the node's line
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            value = f" {show(node.value)}" if isinstance(node, yaml.ScalarNode) else ""
            detail = f" ({str(exc).splitlines()[0]})" if isinstance(exc, ValueError) and str(exc) else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read{value} as {tag}{detail}", node.start_mark
            ) from None


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, f"a mapping key must be a plain value, got {_tname(key)}", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; syntax errors become one-line input errors with the line number."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file ({exc.__class__.__name__})", str(path)) from None
    return parse_yaml(text, str(path))


#: deepest nesting a case file may have (real cases need fewer than 10 levels)
MAX_DEPTH = 64


def _depth(node) -> int:
    """Nesting depth of a composed YAML node tree, without recursion."""
    deepest, stack = 0, [(node, 1)]
    seen = set()
    while stack:
        n, d = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        deepest = max(deepest, d)
        if isinstance(n, yaml.SequenceNode):
            stack.extend((c, d + 1) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            stack.extend((v, d + 1) for _, v in n.value)
    return deepest


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text safely; anything malformed or nested deeper than MAX_DEPTH is an input error."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _depth(node) > MAX_DEPTH:
                raise InputError(f"invalid YAML: nesting deeper than {MAX_DEPTH} levels", source)
            return loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"invalid YAML: {problem}", where) from None
    except RecursionError:
        raise InputError("invalid YAML: nesting too deep", source) from None


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def mapping(value, path: str, allowed: tuple[str, ...] | None = None, required: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"expected a mapping, got {_tname(value)}", path)
    for k in value:
        if not isinstance(k, str):
            raise InputError(f"keys must be strings, got {show(k)}", path)
        if allowed is not None and k not in allowed:
            raise InputError(f"unknown key (expected one of: {', '.join(allowed)})", join(path, k))
    for k in required:
        if k not in value:
            raise InputError(f"missing required key '{k}'", path)
    return value


def seq(value, path: str) -> list:
    if not isinstance(value, list):
        raise InputError(f"expected a list, got {_tname(value)}", path)
    return value


def number(value, path: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> float:
    if not is_number(value):
        raise InputError(f"expected a number, got {show(value)}", path)
    v = float(value)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise InputError(f"must be {'>' if lo_open else '>='} {lo:g}, got {v:g}", path)
    if hi is not None and v > hi:
        raise InputError(f"must be <= {hi:g}, got {v:g}", path)
    return v


def is_number(value) -> bool:
    """A finite int or float (not a bool; ints too large for a float are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def integer(value, path: str, lo: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"expected an integer, got {show(value)}", path)
    if lo is not None and value < lo:
        raise InputError(f"must be >= {lo}, got {value}", path)
    return value


def string(value, path: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {show(value)}", path)
    if choices is not None and value not in choices:
        raise InputError(f"unknown value '{value}' (expected one of: {', '.join(choices)})", path)
    return value


def vector(value, path: str, n: int = 3, allow_none: bool = False) -> list:
    if not isinstance(value, list) or len(value) != n:
        raise InputError(f"expected a list of {n} numbers, got {show(value)}", path)
    out = []
    for i, v in enumerate(value):
        if v is None and allow_none:
            out.append(None)
        else:
            out.append(number(v, join(path, i)))
    return out


def boolean(value, path: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"expected true or false, got {show(value)}", path)
    return value


def _tname(v) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(type(v), type(v).__name__)
