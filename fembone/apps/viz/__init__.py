"""Pictures of result fields with pyvista: views, previews, comparison panels, HTML scenes.

Everything reads the VTU files that :mod:`fembone.core.output` writes (one per load case) or
the in-memory :class:`~fembone.core.analysis.Result`.  Units: mm, N, MPa; strains are
dimensionless (mm/mm).

* :func:`plot` -- one view of one field of one load case (interactive window where a
  display exists, otherwise or with ``screenshot=`` an off-screen PNG);
* :func:`write_previews` -- ``<loadcase>.png`` next to each VTU (``fembone run``);
* :func:`compare_panel` -- several cases side by side on one colour scale with their
  key metrics (``fembone compare --figure``);
* :func:`export_html` -- an interactive scene in one self-contained HTML file.

A view shows the field on the bone (cut by a clip plane through the origin: sagittal
x = 0, coronal y = 0, axial z = 0; the half towards +x / +y / +z is removed so that the
cut faces the camera), the lesion (purple) and cement (grey) regions as translucent
iso-surfaces of ``lesion_fraction``/``cement_fraction`` = 0.5 with their outlines on the
cut, the bone beyond its yield strain (minimum principal strain below -0.77 % or
maximum principal strain above 0.70 %, Morgan & Keaveny 2001) in translucent red, and
screws (line cells) as tubes coloured by ``screw_von_mises`` when present.  The camera
looks from the right-anterior-superior side (frame: +x right, +y anterior, +z cranial)
with a parallel projection fitted to the whole (uncut) model, so every view of a model,
and every panel of a comparison, has the same scale.  Colour limits are robust by
default: the 0.5 and 99.5 percentiles of the field (symmetric about zero for signed
fields), so that a few peak elements at supports do not wash out the picture.

Modules: :mod:`~fembone.apps.viz.fields` (field names, reading results),
:mod:`~fembone.apps.viz.scene` (one view: overlays, camera), :mod:`~fembone.apps.viz.pictures`
(PNGs), :mod:`~fembone.apps.viz.panel` (comparison panels) and
:mod:`~fembone.apps.viz.html_export` (HTML scenes).
"""

from __future__ import annotations

from fembone.apps.viz.fields import (
    FIELDS,
    Field,
    Parts,
    field_range,
    field_spec,
    field_values,
    find_vtu,
    has_display,
    read_grid,
    screw_radius,
    split,
)
from fembone.apps.viz.html_export import _version as _version  # used by tests
from fembone.apps.viz.html_export import check_html_export, export_html, html_requirements
from fembone.apps.viz.panel import PANEL_METRICS, compare_panel, metrics_text
from fembone.apps.viz.pictures import plot, write_previews
from fembone.apps.viz.scene import (
    BACKGROUND,
    CEMENT_COLOR,
    CLIPS,
    LESION_COLOR,
    SCREW_COLOR,
    SCREW_RADIUS,
    TEXT_COLOR,
    WINDOW_SIZE,
    YIELD_COLOR,
    View,
    add_legend,
    add_result,
    auto_deform,
    scene,
    set_camera,
)
from fembone.apps.viz.scene import _new_plotter as _new_plotter  # used by tests

__all__ = [
    "BACKGROUND", "CEMENT_COLOR", "CLIPS", "FIELDS", "Field", "LESION_COLOR", "PANEL_METRICS", "Parts",
    "SCREW_COLOR", "SCREW_RADIUS", "TEXT_COLOR", "View", "WINDOW_SIZE", "YIELD_COLOR", "add_legend",
    "add_result", "auto_deform", "check_html_export", "compare_panel", "export_html", "field_range",
    "field_spec", "field_values", "find_vtu", "has_display", "html_requirements", "metrics_text", "plot",
    "read_grid", "scene", "screw_radius", "set_camera", "split", "write_previews",
]
