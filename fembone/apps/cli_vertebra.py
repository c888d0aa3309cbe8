"""Vertebra commands: ``fembone mesh vertebra|segment|surface`` and ``fembone compare``."""

from __future__ import annotations

import time
from pathlib import Path

from fembone.apps.cli import StageLog, command
from fembone.core.errors import InputError


def _mesh_configure(p):
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    v = sub.add_parser("vertebra", help="parametric lumbar vertebra (gmsh), RAS frame, named groups")
    v.add_argument("--level", default="L1", help="L1..L5 (default L1)")
    v.add_argument("--size", type=float, default=2.0, help="element size, mm (default 2.0)")
    v.add_argument("--order", type=int, default=2, choices=(1, 2))
    v.add_argument("--shell", type=float, default=1.0, help="cortical shell thickness, mm (default 1.0)")
    v.add_argument("-o", "--out", required=True, help="output .msh file")
    g = sub.add_parser("segment", help="stacked parametric vertebrae with discs (T12..L5), groups prefixed by level")
    g.add_argument("--levels", required=True, help="cranial-caudal range, e.g. T12-L2")
    g.add_argument("--size", type=float, default=2.0, help="element size, mm (default 2.0)")
    g.add_argument("--order", type=int, default=2, choices=(1, 2))
    g.add_argument("--shell", type=float, default=1.0, help="cortical shell thickness, mm (default 1.0)")
    g.add_argument("--disc-height", type=float, default=10.0, help="mid-disc height, mm (default 10)")
    g.add_argument("-o", "--out", required=True, help="output .msh file")
    s = sub.add_parser("surface", help="tetrahedral vertebra mesh from a closed surface (stl, obj, ply, vtk)")
    s.add_argument("surface")
    s.add_argument("--units", choices=("m", "mm"), default="mm", help="units of the surface file")
    s.add_argument("--size", type=float, default=2.0)
    s.add_argument("--order", type=int, default=2, choices=(1, 2))
    s.add_argument("--shell", type=float, default=1.0)
    s.add_argument("--anterior", help="the file's anterior axis, e.g. +x (detected if omitted)")
    s.add_argument("--cranial", help="the file's cranial axis, e.g. +z (detected if omitted)")
    s.add_argument("-o", "--out", required=True)


@command("mesh", "make a vertebra mesh: parametric (gmsh) or from a segmented surface", _mesh_configure)
def cmd_mesh(args) -> int:
    from fembone.core.mesh import read_mesh

    log = StageLog()
    t = time.perf_counter()
    if args.what == "vertebra":
        from fembone.spine.geometry import generate_vertebra

        if args.size <= 0:
            raise InputError(f"--size must be > 0, got {args.size}")
        path = generate_vertebra(args.out, level=args.level, size=args.size, order=args.order, shell_thickness=args.shell)
    elif args.what == "segment":
        from fembone.spine.segment import SegmentGeometry, parse_levels, write_segment

        if not 0.5 <= args.size <= 10:
            raise InputError(f"--size must be between 0.5 and 10 mm, got {args.size}", "--size")
        g = SegmentGeometry(parse_levels(args.levels, "--levels"), args.size, args.order, args.shell, args.disc_height)
        path = write_segment(g, args.out)
    else:
        try:
            from fembone.spine.geometry.surface import mesh_surface
        except ImportError:
            raise InputError("surface meshing is not available in this version") from None
        path = mesh_surface(
            args.surface, args.out, units=args.units, size=args.size, order=args.order,
            shell_thickness=args.shell, anterior=args.anterior, cranial=args.cranial,
        )
    m = read_mesh(path)
    log("mesh", time.perf_counter() - t, f"{m.n_nodes:,} nodes, {m.n_elements:,} elements -> {path}")
    groups = ", ".join(f"{k} ({len(v)})" for k, v in {**m.cell_sets, **m.facet_sets}.items())
    print(f"{path}: {m.n_nodes} nodes, {m.n_elements} {'tet4' if m.order == 1 else 'tet10'}; groups: {groups}")
    return 0


def _compare_configure(p):
    p.add_argument("items", nargs="+", help="case files (.yaml, solved now) or result folders with summary.json")
    p.add_argument("--intact", help="name of the intact case for 'stiffness restored' (default: a case named *intact*)")
    p.add_argument("--out", "-o", default="results/compare", help="folder for compare.csv/json and solved cases")
    p.add_argument("--figure", help="PNG panel of the cases on one colour scale")
    p.add_argument("--field", default="von_mises", help="field for --figure (default von_mises)")
    p.add_argument("--quiet", "-q", action="store_true")


@command("compare", "before/after table of cases (stiffness, bulge, failed volume, strength, risk); "
         "strength_curves.png when cases ran a strength analysis", _compare_configure)
def cmd_compare(args) -> int:
    from fembone.apps.compare import comparison, format_table, load_summary, strength_notes, strength_runs, write_tables
    from fembone.apps.compare_segment import is_segment

    log = StageLog(quiet=args.quiet)
    out = Path(args.out)
    summaries = []
    for item in args.items:
        t = time.perf_counter()
        s = load_summary(item, out, progress=log)
        log("case", time.perf_counter() - t, s["case"])
        s["_dir"] = str(Path(item) if Path(item).is_dir() else out / s["case"])
        summaries.append(s)
    names = [s["case"] for s in summaries]
    rows = comparison(summaries, args.intact)
    print(format_table(rows, names))
    csv_path, json_path = write_tables(rows, names, out)
    print(f"written: {csv_path}, {json_path}")
    for line in strength_notes(summaries):
        print(line)
    runs = strength_runs(summaries)
    if runs:  # force-displacement curves of the strength analyses on one pair of axes
        from fembone.apps.viz.curves import overlay_png

        print(f"written: {overlay_png(runs, out / 'strength_curves.png')}")
    if args.figure and all(is_segment(s) for s in summaries):  # segments: charts of ROM, load sharing, risk, implants
        from fembone.apps.viz.segment_panel import segment_panel

        print(f"written: {segment_panel(summaries, args.figure, titles=names)}")
    elif args.figure:
        from fembone.apps import viz

        viz.compare_panel([s["_dir"] for s in summaries], args.figure, field=args.field, titles=names)
        print(f"written: {args.figure}")
    return 0
