"""Result fields for pictures: field names, reading VTU results, splitting bone and screws.

Units: mm, N, MPa; strains are dimensionless (mm/mm).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fembone.core.errors import InputError
from fembone.spine.bone import YIELD_STRAIN_COMPRESSION, YIELD_STRAIN_TENSION


@dataclass(frozen=True)
class Field:
    """How a field name maps onto a VTU array."""

    array: str
    component: int | str | None  # index, 'magnitude' or None (scalar)
    label: str
    unit: str
    signed: bool = False
    categorical: bool = False

    @property
    def title(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


def _fields() -> dict[str, Field]:
    f = {
        "von_mises": Field("von_mises", None, "von Mises stress", "MPa"),
        "von_mises_nodal": Field("von_mises_nodal", None, "von Mises stress, nodal", "MPa"),
        "equivalent_strain": Field("equivalent_strain", None, "equivalent strain", "-"),
        "displacement": Field("displacement", "magnitude", "displacement", "mm"),
        "material": Field("material", None, "material", "", categorical=True),
        "lesion_fraction": Field("lesion_fraction", None, "lesion fraction", "-"),
        "cement_fraction": Field("cement_fraction", None, "cement fraction", "-"),
        "screw_von_mises": Field("screw_von_mises", None, "screw von Mises stress", "MPa"),
        "yield_index": Field("principal_strain", "yield", "strain / yield strain", "-"),
    }
    for i, ax in enumerate("xyz"):
        f[f"displacement_{ax}"] = Field("displacement", i, f"displacement {ax}", "mm", signed=True)
    for i, which in enumerate(("min", "mid", "max")):
        f[f"{which}_principal_stress"] = Field("principal_stress", i, f"{which} principal stress", "MPa", signed=True)
        f[f"{which}_principal_strain"] = Field("principal_strain", i, f"{which} principal strain", "-", signed=True)
    for i, c in enumerate(("xx", "yy", "zz", "xy", "yz", "xz")):
        f[f"stress_{c}"] = Field("stress", i, f"stress {c}", "MPa", signed=True)
        f[f"strain_{c}"] = Field("strain", i, f"strain {c}", "-", signed=True)
    return f


#: field name -> VTU array (any other scalar array of the VTU may be named as well)
FIELDS: dict[str, Field] = _fields()


# -- environment ----------------------------------------------------------------------------
def has_display() -> bool:
    """Whether an interactive window can be opened (X11/Wayland on Linux; always elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _pv():
    """pyvista, with VTK's 'bad X server connection' warning silenced where there is no display."""
    try:
        import pyvista as pv
    except ImportError:  # pragma: no cover - pyvista is a dependency
        raise InputError("pictures need the 'pyvista' package (pip install pyvista)") from None
    if not has_display():
        try:
            from vtkmodules.vtkCommonCore import vtkLogger

            vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
        except Exception:  # pragma: no cover
            pass
    return pv


# -- loading --------------------------------------------------------------------------------
def find_vtu(source: str | Path, loadcase: str | None = None) -> Path:
    """The VTU of ``loadcase`` (default: the first) in a result folder, or ``source`` itself."""
    p = Path(source)
    if p.is_file():
        if p.suffix.lower() != ".vtu":
            raise InputError("expected a result folder or a .vtu file", str(p))
        return p
    if not p.is_dir():
        raise InputError("no such result folder or VTU file", str(p))
    files = _vtu_files(p)
    if not files:
        raise InputError("no VTU files here (run the case without --no-vtu)", str(p))
    if loadcase is None:
        return next(iter(files.values()))
    if loadcase not in files:
        raise InputError(f"no load case '{loadcase}' (have: {', '.join(files)})", str(p))
    return files[loadcase]


def _vtu_files(folder: Path) -> dict[str, Path]:
    """Load case name -> VTU path, from summary.json's 'files' or the *.vtu present."""
    s = _summary(folder)
    files = {k: folder / v for k, v in s.get("files", {}).items() if (folder / v).is_file()}
    if not files:
        files = {q.stem: q for q in sorted(folder.glob("*.vtu")) if not q.name.startswith(".")}
    return files


def _summary(folder: Path) -> dict:
    p = Path(folder) / "summary.json"
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_grid(source, loadcase: str | None = None):
    """A pyvista grid from a result folder, a VTU, a ``meshio.Mesh`` or a pyvista dataset."""
    pv = _pv()
    if isinstance(source, pv.DataSet):
        return source
    if type(source).__name__ == "Mesh" and hasattr(source, "cells_dict"):
        return pv.from_meshio(source)
    path = find_vtu(source, loadcase)
    try:
        return pv.read(path)
    except Exception as exc:
        raise InputError(f"cannot read VTU ({type(exc).__name__}: {exc})", str(path)) from None


# -- geometry pieces ------------------------------------------------------------------------
def _cells_of(grid, types: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the cells of the given VTK types and their first ``n`` nodes (corners)."""
    ct = np.asarray(grid.celltypes)
    mask = np.isin(ct, list(types))
    if not mask.any():
        return mask, np.zeros((0, min(types.values())), int)
    n = min(types.values())
    conn = np.asarray(grid.cell_connectivity)
    offsets = grid.cell_offsets if hasattr(grid, "cell_offsets") else grid.offset
    offs = np.asarray(offsets)[:-1][mask]
    return mask, conn[offs[:, None] + np.arange(n)]


@dataclass
class Parts:
    """The bone as linear tetrahedra and the screws as polylines, with their arrays."""

    solid: object  # pv.UnstructuredGrid
    lines: object | None  # pv.PolyData
    bounds: tuple  # of the solid's used points (undeformed)
    screw_radius: float | None = None  # mm, for the tubes (else a screw_radius array or SCREW_RADIUS)


def screw_radius(meta: dict | None) -> float | None:
    """Radius (mm) of the screws listed in a model's or summary's ``meta['screws']``, if any."""
    ds = []
    for s in (meta or {}).get("screws", []) or []:
        if isinstance(s, dict):
            d = s.get("diameter", s.get("core_diameter"))
            if isinstance(d, int | float) and d > 0:
                ds.append(float(d))
    return 0.5 * float(np.median(ds)) if ds else None


def split(grid, screw_radius: float | None = None) -> Parts:
    """Linear tetrahedra (corners of tet4/tet10) and line cells (screws) of a result grid."""
    pv = _pv()
    tmask, tets = _cells_of(grid, {int(pv.CellType.TETRA): 4, int(pv.CellType.QUADRATIC_TETRA): 4})
    lmask, segs = _cells_of(grid, {int(pv.CellType.LINE): 2, int(pv.CellType.QUADRATIC_EDGE): 2})
    if not tmask.any():
        raise InputError("the result has no tetrahedral cells to show")
    points = np.asarray(grid.points, float)
    solid = pv.UnstructuredGrid({pv.CellType.TETRA: tets}, points)
    for k in grid.cell_data:
        solid.cell_data[k] = np.asarray(grid.cell_data[k])[tmask]
    for k in grid.point_data:
        solid.point_data[k] = np.asarray(grid.point_data[k])
    used = points[np.unique(tets)]
    lo, hi = used.min(axis=0), used.max(axis=0)
    bounds = (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
    lines = None
    if lmask.any():
        cells = np.column_stack([np.full(len(segs), 2), segs]).ravel()
        lines = pv.PolyData(points, lines=cells)
        for k in grid.cell_data:
            lines.cell_data[k] = np.asarray(grid.cell_data[k])[lmask]
        for k in grid.point_data:
            lines.point_data[k] = np.asarray(grid.point_data[k])
    return Parts(solid, lines, bounds, screw_radius)


def field_spec(name: str, grid=None) -> Field:
    """The :class:`Field` of a name in :data:`FIELDS` or of any array of ``grid``."""
    if name in FIELDS:
        return FIELDS[name]
    if grid is not None and (name in grid.cell_data or name in grid.point_data):
        arr = grid.cell_data[name] if name in grid.cell_data else grid.point_data[name]
        comp = "magnitude" if np.ndim(arr) == 2 and np.shape(arr)[1] > 1 else None
        return Field(name, comp, name.replace("_", " "), "")
    have = sorted(set(FIELDS) | (set(grid.cell_data) | set(grid.point_data) if grid is not None else set()))
    raise InputError(f"unknown field '{name}' (known: {', '.join(have)})", "--field")


def field_values(grid, name: str) -> tuple[np.ndarray, str, Field]:
    """Scalar values of a field on ``grid``: (values, 'cell' or 'point', spec)."""
    spec = field_spec(name, grid)
    if spec.array in grid.cell_data:
        arr, assoc = np.asarray(grid.cell_data[spec.array], float), "cell"
    elif spec.array in grid.point_data:
        arr, assoc = np.asarray(grid.point_data[spec.array], float), "point"
    else:
        raise InputError(
            f"field '{name}' needs the array '{spec.array}', which this result does not have "
            f"(arrays: {', '.join(sorted(set(grid.cell_data) | set(grid.point_data)))})",
            "--field",
        )
    c = spec.component
    if c is None:
        vals = arr if arr.ndim == 1 else arr[:, 0]
    elif c == "magnitude":
        vals = np.linalg.norm(arr.reshape(len(arr), -1), axis=1)
    elif c == "yield":
        vals = _yield_index(arr)
    else:
        vals = arr[:, c]
    return vals, assoc, spec


def _yield_index(principal: np.ndarray) -> np.ndarray:
    """Largest of |eps_min| / 0.77 % (compression) and eps_max / 0.70 % (tension); >= 1 is beyond yield."""
    comp = np.maximum(-principal[:, 0], 0.0) / YIELD_STRAIN_COMPRESSION
    tens = np.maximum(principal[:, 2], 0.0) / YIELD_STRAIN_TENSION
    return np.maximum(comp, tens)


def field_range(values: np.ndarray, spec: Field, robust: bool = True) -> tuple[float, float]:
    """Colour limits: percentiles 0.5-99.5 (or min-max), symmetric about 0 for signed fields."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    if spec.categorical:
        lo, hi = float(v.min()), float(v.max())
    elif robust:
        lo, hi = (float(x) for x in np.percentile(v, [0.5, 99.5]))
    else:
        lo, hi = float(v.min()), float(v.max())
    if spec.signed:  # white at zero: tension and compression keep their colours in every picture
        m = max(-lo, hi, 0.0)
        lo, hi = -m, m
    elif not spec.signed and not spec.categorical and lo >= 0:
        lo = 0.0
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-6 or 1.0)
    return lo, hi
