"""Parametric lumbar vertebra (L1..L5) meshed with gmsh / OpenCASCADE.

Frame (RAS, as in 3D Slicer), units mm:
    origin at the centroid of the vertebral body, +x to the patient's right,
    +y anterior, +z cranial.  The posterior elements lie at negative y, the
    superior endplate rim at z = +height/2, the inferior rim at z = -height/2.

Geometry (dimensions: :mod:`.vertebra_dims`; solids: :mod:`.vertebra_cad`):
    body      waisted (``waist``, default 6 %) loft of a kidney-shaped section
              (elliptic anteriorly, squarer posteriorly with a shallow concave
              posterior wall), endplates dished ``endplate_dish`` mm (default 1);
    shell     conforming cortical layer of ``shell_thickness`` mm (default 1.0):
              body minus an inner body whose section is the outer section
              offset inwards by the thickness and whose endplates lie that
              much deeper; side walls and both endplates are covered;
    posterior elliptic-cylinder pedicles on the transverse (convergence) angle,
              a lamina plate closing the canal, a spinous process and two
              transverse processes (articular processes are not modelled);
              ``posterior=False`` leaves them out (vertebral-body specimens);
    regions   ellipsoidal inclusions (lesions, cement, kyphoplasty cavity and rim),
              :mod:`.vertebra_regions`; void ones are holes;
    set-up    PMMA caps or half discs on both endplates, :mod:`.vertebra_setup`.

Physical groups written to the .msh (names exact):
    volumes   ``cortical_shell``, ``trabecular``, ``posterior_elements`` (bone outside
              every inclusion); one group per inclusion fragment, named by the
              '+'-joined sorted labels of the inclusions containing it (``lesion0``,
              ``cement0+lesion0``); ``cap_superior``/``cap_inferior`` or
              ``disc_{superior,inferior}_{annulus,nucleus}``.  Every tetrahedron
              is in exactly one volume group;
    surfaces  ``endplate_superior``, ``endplate_inferior`` (outer cranial/caudal
              faces of the body; interfaces with caps or discs when present),
              ``posterior_wall`` (outer body wall between the pedicles that bounds
              the vertebral foramen), ``<label>_surface`` (the wall of each void),
              ``cap_superior_face``/``cap_inferior_face`` or
              ``disc_superior_face``/``disc_inferior_face`` (flat outer faces).

Meshing: tet4 (order 1) or tet10 (order 2, mid-edge nodes on the CAD surfaces;
the few tets this folds get straight edges) plus tri3/tri6 facets of the named
surfaces, gmsh MSH 4.1 binary, which ``meshio.read`` returns with the group
names in ``cell_sets_dict``.  The shell (and inclusion fragments replacing it)
is meshed at min(size, 2 x thickness), so there is at least one element through it.

Fragmenting: the body and its inner (core) loft are 1 mm apart and both BSpline;
a general boolean between them costs seconds proving that they do not intersect.
So the outer body is fragmented with what touches it from outside (posterior
elements; then caps or discs in OpenCASCADE's "glue shift" mode, as they were
cut by the bone and only touch it) and with the shell parts of breaching
inclusions, the core with the inclusions' core parts, and the two results are
joined in "glue full" mode (no face/face intersections: valid because the two
groups meet nowhere, or along identical faces where a breach crosses the core
boundary).  Meshes of the plain vertebra are unchanged by this (same groups,
same element counts as the former single general fragment).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fembone.core.errors import FemboneError, InputError
from fembone.spine.geometry.gmsh_session import gmsh_model
from fembone.spine.geometry.vertebra_cad import _loft, _posterior_solid, _validate_shell
from fembone.spine.geometry.vertebra_dims import (
    LEVELS,
    VertebraDims,
    _Layout,
    _layout,
    vertebra_dims,
    vertebra_landmarks,
)
from fembone.spine.geometry.vertebra_mesh import (
    _body_surfaces,
    _finish_order,
    _flat_faces,
    _mesh_sizes,
)
from fembone.spine.geometry.vertebra_regions import Inclusion, _clip, region_name
from fembone.spine.geometry.vertebra_setup import (
    SETUP_SURFACE_GROUPS,
    SETUP_VOLUME_GROUPS,
    Setup,
    setup_solids,
)

__all__ = [
    "LEVELS",
    "SURFACE_GROUPS",
    "VOLUME_GROUPS",
    "VertebraDims",
    "generate_vertebra",
    "vertebra_dims",
    "vertebra_landmarks",
]

VOLUME_GROUPS = ("cortical_shell", "trabecular", "posterior_elements")
SURFACE_GROUPS = ("endplate_superior", "endplate_inferior", "posterior_wall")
_RESERVED = set(VOLUME_GROUPS) | set(SURFACE_GROUPS) | {
    g for d in (SETUP_VOLUME_GROUPS, SETUP_SURFACE_GROUPS) for gs in d.values() for g in gs
}


def _validate(size: float, order: int, shell_thickness: float, dims: VertebraDims) -> None:
    if not (isinstance(order, (int, np.integer)) and order in (1, 2)):
        raise InputError(f"order must be 1 (tet4) or 2 (tet10), got {order!r}", where="order")
    if not (math.isfinite(size) and 0.3 <= size <= 10.0):
        raise InputError(f"element size must be between 0.3 and 10 mm, got {size!r}", where="size")
    _validate_shell(shell_thickness, dims)


@dataclass(frozen=True)
class _Options:
    """Validated keyword options of :func:`generate_vertebra`."""

    inclusions: tuple[Inclusion, ...] = ()
    void_labels: frozenset[str] = frozenset()
    setup: Setup | None = None
    posterior: bool = True


def _options(dims: VertebraDims, lay: _Layout, inclusions, void_labels, setup, cap_thickness, disc_height,
             nucleus_area_fraction, posterior) -> _Options:
    incs = tuple(inclusions)
    for i, inc in enumerate(incs):
        if not isinstance(inc, Inclusion):
            raise InputError(f"inclusions[{i}] must be an Inclusion, got {type(inc).__name__}", "inclusions")
        if inc.label in _RESERVED or inc.label.endswith("_surface"):
            raise InputError(f"inclusion label {inc.label!r} clashes with a built-in group name", "inclusions.label")
    labels = {inc.label for inc in incs}
    voids = frozenset(void_labels or ())
    if not voids <= labels:
        raise InputError(f"void label(s) {sorted(voids - labels)} name no inclusion (labels: {sorted(labels)})",
                         "void_labels")
    if not isinstance(posterior, bool):
        raise InputError(f"posterior must be true or false, got {posterior!r}", "posterior")
    st = Setup.build(setup, dims, lay, cap_thickness, disc_height, nucleus_area_fraction)
    return _Options(incs, voids, st, posterior)


def generate_vertebra(
    path: str | Path,
    level: str = "L1",
    size: float = 2.0,
    order: int = 1,
    shell_thickness: float = 1.0,
    dims: VertebraDims | None = None,
    verbose: bool = False,
    *,
    inclusions: Sequence[Inclusion] = (),
    void_labels: set[str] | frozenset[str] = frozenset(),
    setup: str | None = None,
    cap_thickness: float = 3.0,
    disc_height: float = 5.0,
    nucleus_area_fraction: float = 0.43,
    posterior: bool = True,
) -> Path:
    """Mesh a parametric lumbar vertebra and write it as a gmsh 4.1 ``.msh`` file.

    ``size`` is the characteristic element size in mm (the cortical shell is
    meshed at ``min(size, 2 * shell_thickness)``, small radii with at least 8
    elements per turn); ``order`` 1 gives tet4/tri3, 2 gives tet10/tri6
    (mid-edge nodes on the CAD surfaces).  Frame: RAS, origin at the body
    centroid, mm.  ``dims`` overrides the tabulated ``level``.

    Keyword options (defaults give the plain vertebra):
    ``inclusions``: :class:`Inclusion` ellipsoids meshed conformingly, one volume
    group per fragment named by the '+'-joined sorted labels containing it;
    ``void_labels``: labels whose fragments are removed (holes), each hole's wall
    written as facet group ``<label>_surface``; ``setup``: ``None``, ``"caps"``
    (PMMA caps, flat faces ``cap_thickness`` mm from the deepest endplate point)
    or ``"discs"`` (half discs of ``disc_height`` mm, nucleus covering
    ``nucleus_area_fraction`` of the section), see :mod:`.vertebra_setup`;
    ``posterior=False`` drops the posterior elements.  Volumes of the inclusion
    groups and of the body, without meshing: :func:`.inclusion_volumes`.

    Returns the written path.  Safe to call from worker threads (calls are
    serialised); gmsh is finalised again on return unless the caller had
    initialised it.  Raises :class:`InputError` for bad arguments and
    :class:`FemboneError` when OpenCASCADE or the mesher fails.
    """
    dims = vertebra_dims(level) if dims is None else dims
    _validate(float(size), order, float(shell_thickness), dims)
    lay = _layout(dims)
    opts = _options(dims, lay, inclusions, void_labels, setup, cap_thickness, disc_height,
                    nucleus_area_fraction, posterior)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with gmsh_model(f"vertebra_{dims.level}", verbose) as gmsh:
            _build_and_mesh(gmsh, dims, lay, float(size), int(order), float(shell_thickness), opts)
            gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
            gmsh.option.setNumber("Mesh.Binary", 1)
            gmsh.option.setNumber("Mesh.SaveAll", 0)
            gmsh.write(str(path))
    except FemboneError:
        raise
    except Exception as exc:  # gmsh raises plain Exception with its last error
        raise FemboneError(f"{dims.level}: gmsh failed to build or mesh the vertebra: {exc}") from exc
    return path


# ----------------------------------------------------------------------------- fragments


class _Pieces:
    """Which current volume tags came from which input solid, through successive fragments."""

    def __init__(self) -> None:
        self.owners: dict[object, set[int]] = {}

    def add(self, key, dimtags) -> None:
        self.owners.setdefault(key, set()).update(t for d, t in dimtags if d == 3)

    def get(self, *keys) -> set[int]:
        return set().union(*(self.owners.get(k, set()) for k in keys))

    def dimtags(self, *keys) -> list[tuple[int, int]]:
        return [(3, t) for t in sorted(self.get(*keys))]

    def fragment(self, gmsh, objects, tools, glue: int = 0) -> None:
        """Fragment ``objects`` with ``tools``.  ``glue``: OpenCASCADE's gluing options, which skip
        face/face intersections: 1 (BOPAlgo_GlueShift) when the arguments only touch, sharing parts
        of faces; 2 (BOPAlgo_GlueFull) when they touch nowhere or only along identical faces."""
        if not objects or not tools:
            return
        gmsh.option.setNumber("Geometry.OCCBooleanGlue", glue)
        try:
            _, mapping = gmsh.model.occ.fragment(objects, tools)
        finally:
            gmsh.option.setNumber("Geometry.OCCBooleanGlue", 0)
        repl = {t: {tg for d, tg in m if d == 3} for (_, t), m in zip(list(objects) + list(tools), mapping)}
        for k, tags in self.owners.items():
            self.owners[k] = set().union(*(repl.get(t, {t}) for t in tags))


def _build_solids(gmsh, dims: VertebraDims, lay: _Layout, t: float, opts: _Options) -> _Pieces:
    occ = gmsh.model.occ
    pieces = _Pieces()
    outer = _loft(occ, dims, lay, 0.0)
    inner = _loft(occ, dims, lay, t)
    pieces.add("outer", [(3, outer)])
    pieces.add("inner", [(3, inner)])
    post: list[tuple[int, int]] = []
    post_z = None
    if opts.posterior:
        post = _posterior_solid(occ, dims, lay)
        box = occ.getBoundingBox(*post[0])  # tight: boxes and elliptic prisms
        post_z = (box[2], box[5])
        post, _ = occ.cut(post, [(3, outer)], removeObject=True, removeTool=False)
        pieces.add("posterior", post)
    setup, touches_post = [], False
    if opts.setup is not None:
        solids, touches_post = setup_solids(occ, dims, lay, opts.setup, outer, post, post_z)
        for key, dts in solids.items():
            pieces.add(("setup", key), dts)
            setup.append(("setup", key))
    core_incl, shell_incl = [], []
    for j, inc in enumerate(opts.inclusions):
        key = ("incl", j)
        if inc.clip == "trabecular":
            pieces.add(key, _clip(occ, inc, inner, dims.level))
            core_incl.append(key)
            continue
        # a breach: its part in the core and its part in the shell, both cut by the same core solid
        body_part = _clip(occ, inc, outer, dims.level)
        in_core = _clip(occ, inc, inner, dims.level, required=False)
        in_shell, _ = occ.cut(body_part, [(3, inner)], removeObject=True, removeTool=False)
        pieces.add((key, "core"), in_core)
        pieces.add((key, "shell"), [dt for dt in in_shell if dt[0] == 3])
        core_incl.append((key, "core"))
        shell_incl.append((key, "shell"))
    # the outer body with what touches it from outside and the shell parts of breaches
    pieces.fragment(gmsh, pieces.dimtags("outer"), pieces.dimtags("posterior", *shell_incl))
    # caps and discs only touch the bone (they were cut by it): glue "shift" (partial coincidences)
    touched = ("outer", "posterior") if touches_post else ("outer",)
    pieces.fragment(gmsh, pieces.dimtags(*touched), pieces.dimtags(*setup), glue=1)
    # the core with its inclusions; they meet the outer pieces only along identical faces (none, or
    # where a breach crosses the core boundary): glue "full"
    pieces.fragment(gmsh, pieces.dimtags("inner"), pieces.dimtags(*core_incl))
    pieces.fragment(gmsh, pieces.dimtags("outer"), pieces.dimtags("inner"), glue=2)
    for j in range(len(opts.inclusions)):  # the two parts of a breach carry its label
        if (("incl", j), "core") in pieces.owners:
            pieces.add(("incl", j), pieces.dimtags((("incl", j), "core"), (("incl", j), "shell")))
    occ.synchronize()
    return pieces


@dataclass
class _Regions:
    groups: dict[str, set[int]]  # volume group -> volume tags (voids included)
    void: set[int]
    void_by_label: dict[str, set[int]]
    thin: set[int]  # volumes meshed at the shell size
    body: set[int]  # shell, core and the inclusions in them (voids included)


def _classify(dims: VertebraDims, pieces: _Pieces, opts: _Options) -> _Regions:
    core, body = pieces.get("inner"), pieces.get("outer")
    labels: dict[int, set[str]] = {}
    for j, inc in enumerate(opts.inclusions):
        for tg in pieces.get(("incl", j)):
            labels.setdefault(tg, set()).add(inc.label)
    kind = opts.setup.kind if opts.setup is not None else None
    setup_names = {
        ("setup", "superior"): "cap_superior" if kind == "caps" else "disc_superior_annulus",
        ("setup", "inferior"): "cap_inferior" if kind == "caps" else "disc_inferior_annulus",
        ("setup", "superior_nucleus"): "disc_superior_nucleus",
        ("setup", "inferior_nucleus"): "disc_inferior_nucleus",
    }
    groups: dict[str, set[int]] = {name: set() for name in VOLUME_GROUPS}
    void: set[int] = set()
    void_by_label: dict[str, set[int]] = {}
    thin: set[int] = set()
    everything = set().union(*pieces.owners.values())
    for tg in sorted(everything):
        if tg in labels:
            name = region_name(labels[tg])
            if tg in body and tg not in core:
                thin.add(tg)
            hole = labels[tg] & opts.void_labels
            if hole:
                void.add(tg)
                for lab in hole:
                    void_by_label.setdefault(lab, set()).add(tg)
        elif tg in core:
            name = "trabecular"
        elif tg in body:
            name = "cortical_shell"
            thin.add(tg)
        elif tg in pieces.get("posterior"):
            name = "posterior_elements"
        else:
            owner = [k for k in setup_names if tg in pieces.get(k)]
            if len(owner) != 1:
                raise FemboneError(f"{dims.level}: volume {tg} belongs to {len(owner)} set-up regions after fragmenting")
            name = setup_names[owner[0]]
        groups.setdefault(name, set()).add(tg)
    for name in ("cortical_shell", "trabecular"):
        if not groups[name]:
            raise FemboneError(f"{dims.level}: fragmenting the body left no {name} (inclusions too large?)")
    return _Regions(groups, void, void_by_label, thin, body)


def _void_surfaces(gmsh, regions: _Regions) -> dict[str, list[int]]:
    """For each void label, the faces between its removed volumes and the volumes kept."""
    out = {}
    for lab, vols in sorted(regions.void_by_label.items()):
        faces = set()
        for tg in vols:
            _, fs = gmsh.model.getAdjacencies(3, tg)
            for f in fs:
                up, _ = gmsh.model.getAdjacencies(2, int(f))
                if any(int(u) not in regions.void for u in up):
                    faces.add(int(f))
        out[f"{lab}_surface"] = sorted(faces)
    return out


def _build_and_mesh(gmsh, dims: VertebraDims, lay: _Layout, size: float, order: int, t: float,
                    opts: _Options = _Options()) -> None:
    occ = gmsh.model.occ
    pieces = _build_solids(gmsh, dims, lay, t, opts)
    regions = _classify(dims, pieces, opts)
    void_faces = _void_surfaces(gmsh, regions)
    if regions.void:
        occ.remove([(3, tg) for tg in sorted(regions.void)], recursive=True)
        occ.synchronize()
    kept = {name: tags - regions.void for name, tags in regions.groups.items()}
    for name in [*VOLUME_GROUPS, *sorted(set(kept) - set(VOLUME_GROUPS))]:
        if kept[name]:
            gmsh.model.addPhysicalGroup(3, sorted(kept[name]), name=name)

    h_shell = min(size, 2.0 * t)
    _mesh_sizes(gmsh, size, regions.thin - regions.void, h_shell)
    gmsh.model.mesh.generate(3)

    body = regions.body - regions.void
    bone = body | kept["posterior_elements"]
    exclude = {f for fs in void_faces.values() for f in fs}
    faces = _body_surfaces(gmsh, dims, lay, body, bone, exclude, t)
    faces.update(void_faces)
    if opts.setup is not None:
        sup_name, inf_name = SETUP_SURFACE_GROUPS[opts.setup.kind]
        vol_names = SETUP_VOLUME_GROUPS[opts.setup.kind]
        sup = set().union(*(kept.get(n, set()) for n in vol_names if "superior" in n))
        inf = set().union(*(kept.get(n, set()) for n in vol_names if "inferior" in n))
        faces[sup_name] = _flat_faces(gmsh, sup, opts.setup.z_face)
        faces[inf_name] = _flat_faces(gmsh, inf, -opts.setup.z_face)
        if not faces[sup_name] or not faces[inf_name]:
            raise FemboneError(f"{dims.level}: could not find the flat outer faces of the {opts.setup.kind}")
    for name, tags in faces.items():
        if tags:
            gmsh.model.addPhysicalGroup(2, tags, name=name)
    _finish_order(gmsh, order, dims.level)
