"""Key paths into nested case data: ``loadcases.compression[0].force``, ``materials.bone.E``."""

from __future__ import annotations

import re
from typing import Any

from fembone.core.errors import InputError, show

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """'a.b[0].c' -> ['a', 'b', 0, 'c']; malformed paths are input errors."""
    if not isinstance(path, str) or not path:
        raise InputError(f"invalid key path {show(path)}")
    out: list[str | int] = []
    pos = 0
    for m in _TOKEN.finditer(path):
        sep = path[pos : m.start()]
        if (
            sep not in ("", ".")
            or (sep == "" and pos > 0 and m.group(1) is not None)  # 'a[0]b'
            or (sep == "." and (pos == 0 or m.group(2) is not None))  # '.a', 'a.[0]'
        ):
            raise InputError(f"invalid key path '{path}'")
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if pos != len(path):
        raise InputError(f"invalid key path '{path}'")
    return out


def get_path(data: Any, path: str) -> Any:
    cur = data
    for tok in parse_path(path):
        # an index only into a list, a key only into a mapping (not 'name[0]' -> first letter)
        ok = isinstance(cur, list) if isinstance(tok, int) else isinstance(cur, dict)
        try:
            if not ok:
                raise TypeError
            cur = cur[tok]
        except (KeyError, IndexError, TypeError):
            raise InputError(f"key path '{path}' does not exist in the case (at {show(tok)})") from None
    return cur


def set_path(data: Any, path: str, value: Any, create: bool = True) -> None:
    """Set ``value`` at ``path``; missing mapping keys are created when ``create``."""
    toks = parse_path(path)
    cur = data
    for i, tok in enumerate(toks[:-1]):
        nxt = toks[i + 1]
        if isinstance(tok, int):
            if not isinstance(cur, list) or tok >= len(cur):
                raise InputError(f"key path '{path}': index [{tok}] does not exist")
            cur = cur[tok]
            continue
        if not isinstance(cur, dict):
            raise InputError(f"key path '{path}': '{tok}' is not inside a mapping")
        if tok not in cur:
            if not create:
                raise InputError(f"key path '{path}' does not exist in the case (at '{tok}')")
            cur[tok] = [] if isinstance(nxt, int) else {}
        cur = cur[tok]
    last = toks[-1]
    if isinstance(last, int):
        if not isinstance(cur, list) or last >= len(cur):
            raise InputError(f"key path '{path}': index [{last}] does not exist")
        cur[last] = value
    else:
        if not isinstance(cur, dict):
            raise InputError(f"key path '{path}': '{last}' is not inside a mapping")
        cur[last] = value
