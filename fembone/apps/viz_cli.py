"""``fembone view``: look at a result field (window, PNG or interactive HTML).

    fembone view results/L1-lytic --field min_principal_strain --clip sagittal \\
        --loadcase flexion --deform 200 --screenshot flexion.png --html flexion.html
    fembone view cases/L2_verse_ct.yaml --field ct_density_mgcc     # the model, before any solve

With a display and neither --screenshot nor --html, a window opens; without a display
(or with --off-screen) the picture is written next to the VTU as ``<load case>.png``.
Given a case file, the model is built (mesh and material map, no solve) and written to
``<out>/model.vtu`` (``--out``, default ``results/<case name>``) with material id,
Young's modulus (MPa) and the model's own fields (CT density mg/cc and modulus MPa, lesion
and cement shares); the default field is then the mapped modulus.
A result folder of a strength analysis (``strength_curve.csv``) also gets
``strength_curve.png``: the force-displacement curve with its peak and yield points;
``--field strength_curve`` draws only that (to --screenshot when given).
"""

from __future__ import annotations

from pathlib import Path

from fembone.apps.cli import command
from fembone.core.errors import InputError


def _deform(text: str):
    if text == "auto":
        return "auto"
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"--deform expects a number or 'auto', got '{text}'") from None
    if not v == v or v < 0:
        raise InputError(f"--deform must be >= 0, got {text}")
    return v


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size expects WIDTHxHEIGHT, e.g. 800x600, got '{text}'") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise InputError(f"--size out of range: {text}")
    return w, h


def _clim(text: str | None):
    if text is None:
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--clim expects LOW,HIGH, got '{text}'") from None
    if not lo < hi:
        raise InputError(f"--clim needs LOW < HIGH, got '{text}'")
    return lo, hi


def _view_configure(p):
    from fembone.apps.viz import CLIPS

    p.add_argument("result", help="result folder (with summary.json and VTUs), a .vtu file, or a case file "
                   "(.yaml/.json: the model before any solve)")
    p.add_argument("--out", "-o", help="with a case file: folder for model.vtu (default results/<case name>)")
    p.add_argument(
        "--field", "-f", default=None,
        help="von_mises (default for results; for a case file: ct_modulus_MPa when CT-mapped, else youngs_modulus), "
        "ct_density_mgcc, min_principal_strain, max_principal_strain, equivalent_strain, displacement, "
        "displacement_x/y/z, min/max_principal_stress, stress_xx.., strain_xx.., yield_index, material, "
        "lesion_fraction, cement_fraction, strength_curve (the force-displacement PNG of a strength run), "
        "or any array of the VTU",
    )
    p.add_argument("--clip", "-c", default="sagittal", choices=CLIPS, help="cut plane (default sagittal: x = 0)")
    p.add_argument("--loadcase", "-l", help="load case (default: the first)")
    p.add_argument("--deform", "-d", default="0", help="displacement scale factor for the deformed shape, or 'auto'")
    p.add_argument("--clim", help="colour limits LOW,HIGH (default: robust 0.5-99.5 %% range)")
    p.add_argument("--screenshot", "-s", help="write the picture to this PNG (off-screen)")
    p.add_argument("--html", help="write an interactive HTML scene (needs trame-pyvista)")
    p.add_argument("--size", default="800x600", help="picture size WIDTHxHEIGHT (default 800x600)")
    p.add_argument("--off-screen", action="store_true", help="never open a window")


CASE_SUFFIXES = (".yaml", ".yml", ".json")


def _model_vtu(case: str, out: str | None) -> tuple[Path, str]:
    """Build a case's model (no solve) and write ``model.vtu``; returns its path and the default field."""
    from fembone.apps.cli import writable_dir
    from fembone.cases.generic import load_case
    from fembone.core.fieldmesh import model_mesh

    if not Path(case).is_file():
        raise InputError("no such case file", case)
    model = load_case(case)
    folder = writable_dir(out if out else Path("results") / model.name)
    path = folder / "model.vtu"
    model_mesh(model).write(path, binary=True)
    print(f"written: {path}")
    return path, ("ct_modulus_MPa" if "ct_modulus_MPa" in model.cell_data else "youngs_modulus")


def _strength_curve(args) -> bool:
    """Write strength_curve.png of a strength run's result folder; True when that was all that was asked."""
    from fembone.apps.viz.curves import strength_curve_png

    only = args.field == "strength_curve"
    folder = Path(args.result) if Path(args.result).is_dir() else Path(args.result).parent
    try:
        png = strength_curve_png(folder, args.screenshot if only else None)
    except OSError as exc:  # e.g. a read-only result folder: the field view still comes
        if only:
            raise
        print(f"fembone: warning: strength_curve.png not written ({exc.strerror or exc})")
        return False
    if only and png is None:
        raise InputError(f"no strength analysis in this result (no strength_curve.csv): {folder}", "--field")
    if png is not None:
        print(f"written: {png}")
    return only


@command("view", "show a result field: window, PNG (--screenshot) or interactive HTML (--html)", _view_configure)
def cmd_view(args) -> int:
    from fembone.apps import viz

    deform = _deform(args.deform)
    size = _size(args.size)
    clim = _clim(args.clim)
    is_case = Path(args.result).suffix.lower() in CASE_SUFFIXES
    if is_case:
        vtu_path, default_field = _model_vtu(args.result, args.out)
        args.result, args.field = str(vtu_path), args.field or default_field
    args.field = args.field or "von_mises"
    if not is_case and _strength_curve(args):
        return 0
    vtu = viz.find_vtu(args.result, args.loadcase)
    if args.html:
        path = viz.export_html(vtu, args.html, field=args.field, clip=args.clip, deform=deform)
        print(f"written: {path}")
    if args.screenshot or not args.html:
        off = True if (args.screenshot or args.off_screen or not viz.has_display()) else None
        src = args.result if Path(args.result).is_dir() else vtu
        path = viz.plot(
            src, args.field, args.clip, loadcase=args.loadcase, deform=deform, screenshot=args.screenshot,
            off_screen=off, clim=clim, window_size=size,
        )
        if path is not None and off:
            print(f"written: {path}")
    return 0
