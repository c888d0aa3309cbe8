"""PNG pictures: one view shown or written (:func:`plot`), previews of every load case (:func:`write_previews`)."""

from __future__ import annotations

from pathlib import Path

from fembone.apps.viz.fields import _pv, find_vtu, has_display, screw_radius, split
from fembone.apps.viz.scene import (
    TEXT_COLOR,
    WINDOW_SIZE,
    _new_plotter,
    add_result,
    scene,
    set_camera,
)


def plot(
    source,
    field: str = "von_mises",
    clip: str = "sagittal",
    loadcase: str | None = None,
    deform: float | str = 0.0,
    screenshot: str | Path | None = None,
    off_screen: bool | None = None,
    clim: tuple[float, float] | None = None,
    window_size=WINDOW_SIZE,
    title: str | None = None,
) -> Path | None:
    """Show one view, or write it to ``screenshot`` (PNG); returns the PNG written, if any.

    Off-screen (no display, or ``off_screen=True``) without ``screenshot``, the picture
    goes to the VTU's name with ``.png``.
    """
    if off_screen is None:
        off_screen = screenshot is not None or not has_display()
    pl = scene(source, field, clip, loadcase, deform, clim, title, off_screen, window_size)
    try:
        if not off_screen:
            pl.show(screenshot=str(screenshot) if screenshot else None)
            return Path(screenshot) if screenshot else None
        if screenshot is None:
            screenshot = find_vtu(source, loadcase).with_suffix(".png") if isinstance(source, str | Path) else Path("view.png")
        screenshot = Path(screenshot)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        pl.screenshot(str(screenshot))
        return screenshot
    finally:
        pl.close()


def write_previews(result, out_dir, field: str = "von_mises", clip: str | None = None, window_size=WINDOW_SIZE) -> list[Path]:
    """``<loadcase>.png`` next to each load case's VTU in ``out_dir`` (and ``strength_curve.png``
    after a strength analysis, first: it needs matplotlib only).

    The default view is an axial cut (z = 0, seen from above) for models with screws, a
    sagittal cut (x = 0) for other vertebrae and the whole model otherwise.
    """
    from fembone.core.output import _safe, loadcase_mesh

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    strength = result.model.meta.get("strength")
    if isinstance(strength, dict) and strength.get("curve"):  # strength analysis: its force-displacement curve
        from fembone.apps.viz.curves import CURVE_PNG, strength_curve_png

        written.append(strength_curve_png({"meta": {"strength": strength}}, out / CURVE_PNG, title=result.model.name))
    pv = _pv()
    pl = None
    try:
        for name, lc in result.loadcases.items():
            grid = pv.from_meshio(loadcase_mesh(result, lc))
            parts = split(grid, screw_radius(result.model.meta))
            c = clip or ("axial" if parts.lines is not None else "sagittal" if "lesion_fraction" in grid.cell_data else "none")
            if pl is not None:
                pl.close()
            pl = _new_plotter(True, window_size)
            add_result(pl, parts, field, c)
            pl.add_text(f"{result.model.name} - {name}, {field.replace('_', ' ')}" + (f", {c} cut" if c != "none" else ""),
                        position="upper_left", font_size=11, color=TEXT_COLOR)
            set_camera(pl, parts.bounds, c, right_margin=0.18)
            path = out / f"{_safe(name)}.png"
            pl.screenshot(str(path))
            written.append(path)
    finally:
        if pl is not None:
            pl.close()
    return written
