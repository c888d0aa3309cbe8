"""Rows of the verification table and their printing.

A row: ``{"problem", "element", "dofs", "quantity", "computed", "exact", "error", "tolerance", "ok"}``
(see :mod:`fembone.apps.verify` for what ``error`` means).
"""

from __future__ import annotations

import math

import numpy as np

ROW_KEYS = ("problem", "element", "dofs", "quantity", "computed", "exact", "error", "tolerance", "ok")
ELEMENT_NAMES = {1: "tet4", 2: "tet10"}


def make_row(
    problem: str, element: str, dofs: int, quantity: str, computed: float, exact: float, tolerance: float,
    error: float | None = None, ok: bool | None = None,
) -> dict:
    """One table row; ``error`` defaults to the relative error, ``ok`` to error <= tolerance."""
    computed, exact = float(computed), float(exact)
    if error is None:
        error = abs(computed - exact) / abs(exact) if exact != 0 else abs(computed)
    error = float(error)
    if ok is None:
        ok = bool(np.isfinite(error) and error <= tolerance)
    return {
        "problem": problem, "element": element, "dofs": int(dofs), "quantity": quantity,
        "computed": computed, "exact": exact, "error": error, "tolerance": float(tolerance), "ok": bool(ok),
    }


def order_row(problem: str, element: str, dofs: int, quantity: str, order: float, expected: float,
              tolerance: float = 0.25, ok: bool | None = None) -> dict:
    """A convergence-order row: error = relative shortfall below ``expected``."""
    shortfall = max(0.0, 1.0 - order / expected) if np.isfinite(order) else math.inf
    if ok is None:
        ok = shortfall <= tolerance
    return make_row(problem, element, dofs, quantity, order, expected, tolerance, error=shortfall, ok=ok)


def describe(row: dict) -> str:
    """One line for assertion messages: computed, exact, error and tolerance of a row."""
    return (
        f"{row['problem']} [{row['element']}, {row['dofs']} DOFs] {row['quantity']}: computed {row['computed']:.10g}, "
        f"exact {row['exact']:.10g}, error {row['error']:.3e} (tolerance {row['tolerance']:.1e})"
    )


def print_table(rows: list[dict], file=None) -> None:
    """Print rows as an aligned table: problem, element, DOFs, quantity, computed, exact, error."""
    head = ("problem", "element", "DOFs", "quantity", "computed", "exact", "error", "tol", "")
    body = [
        (
            r["problem"], r["element"], f"{r['dofs']:,}", r["quantity"], f"{r['computed']:.6g}", f"{r['exact']:.6g}",
            f"{r['error']:.2e}", f"{r['tolerance']:.3g}", "ok" if r["ok"] else "FAIL",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    right = {2, 4, 5, 6, 7}

    def fmt(cells):
        return "  ".join(
            (str(c).rjust(w) if i in right else str(c).ljust(w)) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(fmt(head), file=file)
    print("  ".join("-" * w for w in widths).rstrip(), file=file)
    for cells in body:
        print(fmt(cells), file=file)
    n_bad = sum(not r["ok"] for r in rows)
    print(f"{len(rows)} checks, {len(rows) - n_bad} passed, {n_bad} failed", file=file)
