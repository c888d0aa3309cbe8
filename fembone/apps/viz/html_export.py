"""Interactive scenes (vtk.js) in one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path

from fembone.apps.viz.scene import scene
from fembone.core.errors import InputError


# -- HTML ---------------------------------------------------------------------------------------
def export_html(
    vtu,
    html: str | Path,
    field: str = "von_mises",
    clip: str = "sagittal",
    loadcase: str | None = None,
    deform: float | str = 0.0,
) -> Path:
    """An interactive scene (vtk.js, rotate/zoom in any browser) in one self-contained HTML file.

    ``vtu`` is a VTU file, a result folder (with ``loadcase``) or a pyvista grid.  Needs the
    'trame-pyvista' package with pyvista >= 0.49 ('trame', 'trame-vtk', 'trame-vuetify'
    before); without it this raises an :class:`InputError` naming the package to install.
    """
    check_html_export()
    pl = scene(vtu, field, clip, loadcase, deform, title="")
    html = Path(html)
    html.parent.mkdir(parents=True, exist_ok=True)
    try:
        _export_html(pl, html)
    finally:
        pl.close()
    return html


def html_requirements() -> list[tuple[str, str]]:
    """(module, pip package) pairs that pyvista's HTML export needs with this pyvista."""
    import pyvista as pv

    if _version(pv.__version__) >= (0, 49):
        return [("trame_pyvista", "trame-pyvista")]
    return [("trame", "trame"), ("trame_vtk", "trame-vtk"), ("trame_vuetify", "trame-vuetify")]


def check_html_export() -> None:
    """Raise an :class:`InputError` naming the packages to install when HTML export cannot work."""
    import importlib

    missing = []
    for mod, pkg in html_requirements():
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(pkg)
    if missing:
        raise InputError(
            f"HTML export needs the package{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(pip install {' '.join(missing)})"
        )


def _export_html(pl, html: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        component = getattr(pl, "trame", None)  # pyvista >= 0.49: registered by trame-pyvista
        try:
            if component is not None:
                component.export_html(str(html))
            else:
                pl.export_html(str(html))
        except ImportError as exc:
            raise InputError(f"HTML export failed: {exc} (pip install {' '.join(p for _, p in html_requirements())})") from None


def _version(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)
