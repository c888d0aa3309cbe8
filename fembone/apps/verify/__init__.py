"""Verification problems with exact solutions: what ``fembone verify`` runs. Units: mm, N, MPa.

Each problem builds a model (through a case dictionary and :func:`fembone.cases.build_model`
where the case-file language can say it, through :class:`fembone.core.model.Model` directly where
it cannot, e.g. a prescribed field on every boundary node), solves it with
:func:`fembone.core.analysis.solve`, and compares with a closed-form value.  The result is a list
of rows::

    {"problem", "element", "dofs", "quantity", "computed", "exact", "error", "tolerance", "ok"}

``error`` is relative (|computed - exact| / |exact|) unless the quantity says otherwise:
rows whose exact value is 0 (round-off checks) give the measured relative residual, and
convergence-order rows give the relative shortfall below the expected order
(max(0, 1 - computed / exact)); being faster than expected is not an error.

Problems (exact solutions: shared/design/field.md, "Exact solutions for verification"):

1. Patch tests (Irons & Razzaque 1972; Zienkiewicz & Taylor vol. 1, §9.3): a linear field
   (tet4, tet10) and an equilibrated quadratic field (tet10: two Saint-Venant pure bendings
   plus a torsion, body-force free for any nu) prescribed on every boundary node of a box
   whose interior nodes are randomly moved; interior displacements and stresses must be
   reproduced to round-off.
2. Cantilever L = 100, 10 x 10, tip load P: Timoshenko deflection P L^3/(3EI) + P L/(kGA)
   with Cowper's k = 10(1+nu)/(12+11nu), for the clamped root face the case files use
   (beam theory is then only ~0.7 % off: the clamp stiffens the root); and convergence
   orders, both for that clamped beam (singular along the clamped edges: asymptotically both
   elements converge below order 2 there; on affordable meshes tet4 shows ~1.7, still leaving
   its bending-locking regime, and tet10 ~1.9) and for an exact 3-D solution with a smooth
   field (nu = 0, Saint-Venant flexure: root face carrying the exact warping, parabolic
   tip shear; Timoshenko with k = 5/6 is then exact), where tet4 and tet10 must reach their
   design orders 2 and 4 (the tip deflection is a compliance, error O(h^2p)).
3. Lame thick-walled hollow sphere under internal pressure: an octant meshed with gmsh,
   symmetry planes fixed normal-only; radial displacement at both radii, hoop stress at the
   inner radius.
4. Eshelby (1957) spherical inclusion, soft (lytic tumour in trabecular bone) and stiff
   (PMMA cement), in a block 10 radii wide under remote uniaxial stress: the uniform interior
   strain, volumetric and deviatoric parts.

Besides the four problems, two consistency checks run on small meshes: the stiffness is
symmetric with the six rigid-body motions in its null space (tet4/tet10, isotropic and
transversely isotropic), and every installed solver balances the reactions with the applied
loads and agrees with the others.

Modules: :mod:`~fembone.apps.verify.exact` (closed forms and problem parameters),
:mod:`~fembone.apps.verify.meshes` (meshes, measurements on them),
:mod:`~fembone.apps.verify.problems` (the four problems), :mod:`~fembone.apps.verify.consistency`
(stiffness and solver checks) and :mod:`~fembone.apps.verify.table` (rows, printing).
"""

from __future__ import annotations

import logging
import time

from fembone.apps.verify.consistency import (
    AGREEMENT_TOL,
    EQUILIBRIUM_TOL,
    TI_BONE,
    available_solvers,
    solver_problem,
    solver_rows,
    stiffness_properties,
    stiffness_rows,
)
from fembone.apps.verify.exact import (
    BEAM_B,
    BEAM_E,
    BEAM_H,
    BEAM_L,
    BEAM_NU,
    BEAM_P,
    BLOCK,
    INCLUSION_A,
    INCLUSIONS,
    MATRIX,
    PATCH_E,
    PATCH_NU,
    REMOTE_STRESS,
    SPHERE_A,
    SPHERE_B,
    SPHERE_E,
    SPHERE_NU,
    SPHERE_P,
    cowper_k_rectangle,
    eshelby_exact,
    eshelby_interior_strain,
    lame_sphere_displacement,
    lame_sphere_hoop,
    patch_field,
    saint_venant_flexure,
    timoshenko_tip_deflection,
)
from fembone.apps.verify.meshes import (
    distorted_box,
    face_mean,
    inclusion_mesh,
    quadrature_positions,
    sphere_octant_mesh,
    surface_stress,
)
from fembone.apps.verify.problems import (
    PATCH_TOL_STRESS,
    PATCH_TOL_U,
    TET4_DIVISIONS,
    TET10_DIVISIONS_CLAMPED,
    TET10_DIVISIONS_SMOOTH,
    ConvergenceStudy,
    PatchResult,
    cantilever,
    cantilever_rows,
    clamped_convergence,
    eshelby,
    eshelby_case,
    eshelby_rows,
    fit_order,
    isotropic_model,
    lame_rows,
    lame_sphere,
    patch_rows,
    patch_test,
    richardson,
    smooth_convergence,
    volumetric_deviatoric,
)
from fembone.apps.verify.table import (
    ELEMENT_NAMES,
    ROW_KEYS,
    describe,
    make_row,
    order_row,
    print_table,
)
from fembone.core.meshgen import box_mesh as box_mesh  # used by tests/verification

__all__ = [
    "AGREEMENT_TOL", "BEAM_B", "BEAM_E", "BEAM_H", "BEAM_L", "BEAM_NU", "BEAM_P", "BLOCK", "ConvergenceStudy",
    "ELEMENT_NAMES", "EQUILIBRIUM_TOL", "INCLUSIONS", "INCLUSION_A", "MATRIX", "PATCH_E", "PATCH_NU",
    "PATCH_TOL_STRESS", "PATCH_TOL_U", "PROBLEMS", "PatchResult", "REMOTE_STRESS", "ROW_KEYS", "SPHERE_A",
    "SPHERE_B", "SPHERE_E", "SPHERE_NU", "SPHERE_P", "TET10_DIVISIONS_CLAMPED", "TET10_DIVISIONS_SMOOTH",
    "TET4_DIVISIONS", "TI_BONE", "available_solvers", "box_mesh", "cantilever", "cantilever_rows",
    "clamped_convergence", "cowper_k_rectangle", "describe", "distorted_box", "eshelby", "eshelby_case",
    "eshelby_exact", "eshelby_interior_strain", "eshelby_rows", "face_mean", "fit_order", "inclusion_mesh",
    "isotropic_model", "lame_rows", "lame_sphere", "lame_sphere_displacement", "lame_sphere_hoop", "make_row",
    "order_row", "patch_field", "patch_rows", "patch_test", "print_table", "quadrature_positions",
    "richardson", "run_all", "saint_venant_flexure", "smooth_convergence", "solver_problem", "solver_rows",
    "sphere_octant_mesh", "stiffness_properties", "stiffness_rows", "surface_stress",
    "timoshenko_tip_deflection", "volumetric_deviatoric",
]


PROBLEMS = {
    "patch": patch_rows,
    "cantilever": cantilever_rows,
    "lame": lame_rows,
    "eshelby": eshelby_rows,
    "stiffness": stiffness_rows,
    "solvers": solver_rows,
}


#: what each problem does, for the line logged when it starts
STARTING = {
    "patch": "patch tests (tet4/tet10, linear and quadratic fields)",
    "cantilever": "cantilever: Timoshenko deflection and convergence orders",
    "lame": "Lame hollow sphere (gmsh octant)",
    "eshelby": "Eshelby spherical inclusions, soft and stiff (gmsh)",
    "stiffness": "stiffness symmetry and rigid-body null space",
    "solvers": "solver agreement",
}
log = logging.getLogger("fembone.verify")


def run_all(quick: bool = False, problems=None, progress=None) -> list[dict]:
    """Run the verification problems (all, or those named in ``problems``) and return their rows.

    ``quick`` uses coarser meshes and skips the clamped-cantilever convergence study.
    A line is logged (INFO on ``fembone.verify``, shown by ``fembone verify``) as each
    problem starts and when it ends; ``progress(name, seconds)`` is called after each problem.
    """
    rows = []
    names = list(problems or PROBLEMS)
    for k, name in enumerate(names, 1):
        log.info("verify %d/%d: %s%s ...", k, len(names), STARTING.get(name, name), " (quick)" if quick else "")
        t = time.perf_counter()
        new = PROBLEMS[name](quick=quick)
        rows.extend(new)
        dt = time.perf_counter() - t
        log.info("verify %d/%d: %s done in %.1f s, %d/%d rows ok", k, len(names), name, dt,
                 sum(bool(r["ok"]) for r in new), len(new))
        if progress is not None:
            progress(name, dt)
    return rows
