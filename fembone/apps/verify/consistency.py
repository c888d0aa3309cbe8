"""Consistency checks: stiffness symmetry and rigid-body null space; equilibrium and agreement
of every installed solver. Units: mm, N, MPa.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from fembone.apps.verify.meshes import distorted_box
from fembone.apps.verify.table import ELEMENT_NAMES, make_row
from fembone.cases import build_model
from fembone.core.analysis import Result, solve
from fembone.core.assembly import Assembler
from fembone.core.constraints import DofLayout
from fembone.core.materials import Isotropic, Material, TransverseIsotropic
from fembone.core.meshgen import box_mesh, write_mesh

TI_BONE = TransverseIsotropic(name="trabecular", E_axial=400.0, E_transverse=140.0, nu_axial=0.3,
                              nu_transverse=0.3, G_axial=100.0, axis=(1.0, 2.0, 3.0))


def stiffness_properties(order: int, material: Material) -> tuple[float, float, int]:
    """(max|K - K^T| / max|K|, max|K R| / (max|K| max|R|), DOFs) on a distorted box, no constraints."""
    mesh = distorted_box(3, order=order, seed=3)
    asm = Assembler(mesh)
    if isinstance(material, Isotropic):
        C = material.stiffness()
        lam, mu = np.full(mesh.n_elements, C[0, 1]), np.full(mesh.n_elements, C[3, 3])
        K = asm.matrix(lam, mu)
    else:
        K = asm.matrix(C=np.broadcast_to(material.stiffness(), (mesh.n_elements, 6, 6)))
    kmax = abs(K).max()
    sym = abs(K - K.T).max() / kmax
    R = DofLayout(mesh.n_nodes).rigid_modes(mesh.points, scale=float(np.ptp(mesh.points, axis=0).max()))
    null = np.abs(K @ R).max() / (kmax * np.abs(R).max())
    return float(sym), float(null), K.shape[0]


def stiffness_rows(quick: bool = False) -> list[dict]:
    rows = []
    for order in (1, 2):
        for mat in (Isotropic(name="iso", E=1000.0, nu=0.3), TI_BONE):
            sym, null, n = stiffness_properties(order, mat)
            law = "isotropic" if isinstance(mat, Isotropic) else "transv. isotropic"
            el = ELEMENT_NAMES[order]
            rows.append(make_row(f"stiffness, {law}", el, n, "max|K-K^T|/max|K|", sym, 0.0, 1e-12, error=sym))
            rows.append(make_row(f"stiffness, {law}", el, n, "rigid modes: |KR|/|K||R|", null, 0.0, 1e-12, error=null))
    return rows


def solver_problem(solver: str) -> Result:
    """A small tet10 block fixed at z = 0 under traction, pressure and an oblique force; ``solver``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "block.msh"
        write_mesh(box_mesh((10.0, 10.0, 20.0), (4, 4, 8)), path)
        case = {
            "name": f"equilibrium-{solver}",
            "mesh": {"file": path.name, "order": 2},
            "materials": {"bone": {"type": "transverse_isotropic", "E_axial": 400.0, "E_transverse": 140.0,
                                   "nu_axial": 0.3, "nu_transverse": 0.3, "G_axial": 100.0, "axis": [0.2, 0.1, 1.0]}},
            "constraints": [{"where": {"set": "zmin"}, "fix": ["x", "y", "z"]}],
            "loadcases": {
                "mixed": [
                    {"where": {"set": "zmax"}, "traction": [0.1, -0.2, -1.0]},
                    {"where": {"set": "xmax"}, "pressure": 0.3},
                    {"where": {"set": "ymin"}, "force": [5.0, 20.0, -7.0]},
                ],
            },
            "solver": {"name": solver, "rtol": 1e-13} if solver in ("amg", "pardiso") else solver,
        }
        model = build_model(case, base=tmp, source=f"verify:{solver}")
    return solve(model)


#: tolerances of the solver checks (relative)
EQUILIBRIUM_TOL = 1e-8
AGREEMENT_TOL = 1e-8


def available_solvers() -> list[str]:
    from fembone.core.solvers import SOLVERS

    return [name for name, cls in SOLVERS.items() if cls.available()]


def solver_rows(quick: bool = False) -> list[dict]:
    rows = []
    ref = None
    for name in available_solvers():
        res = solver_problem(name)
        lc = res.loadcases["mixed"]
        n = res.model.n_dofs
        rows.append(make_row(f"equilibrium, {name}", "tet10", n, "|reactions + loads| (rel.)", lc.equilibrium_error, 0.0,
                             EQUILIBRIUM_TOL, error=lc.equilibrium_error))
        if ref is None:
            ref_name, ref = name, lc.u
            continue
        diff = float(np.abs(lc.u - ref).max() / np.abs(ref).max())
        rows.append(make_row(f"agreement, {name}", "tet10", n, f"max|u - u_{ref_name}|/max|u|", diff, 0.0,
                             AGREEMENT_TOL, error=diff))
    return rows
