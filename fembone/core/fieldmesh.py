"""A load case's mesh with its fields, as a meshio mesh (for VTU files) or a pyvista grid.

Kept apart from :mod:`fembone.core.analysis` (which uses it lazily) and
:mod:`fembone.core.output` (which writes it) so that neither imports the other in a cycle.
Units: mm, N, MPa.
"""

from __future__ import annotations

import numpy as np

from fembone.core.results import equivalent_strain, principal, sym6, von_mises


def loadcase_mesh(result, lc):
    """A ``meshio.Mesh`` of the bone (and any line cells) with the load case's fields."""
    import meshio

    model = result.model
    mesh = model.mesh
    f = lc.fields
    ctype = "tetra" if mesh.order == 1 else "tetra10"
    cells = [(ctype, mesh.cells)]
    cell_data = {
        "von_mises": [von_mises(f.stress)],
        "stress": [sym6(f.stress)],
        "strain": [sym6(f.strain)],
        "principal_stress": [principal(f.stress)],
        "principal_strain": [principal(f.strain)],
        "equivalent_strain": [equivalent_strain(f.strain)],
        "material": [model.material_id.astype(np.int32)],
    }
    for key, val in {**model.cell_data, **lc.extra.get("_cell_data", {})}.items():
        cell_data[key] = [np.asarray(val)]
    point_data = {
        "displacement": f.displacement,
        "stress_nodal": sym6(f.nodal_stress),
        "strain_nodal": sym6(f.nodal_strain),
        "von_mises_nodal": von_mises(f.nodal_stress),
    }
    for key, val in lc.extra.get("_point_data", {}).items():
        point_data[key] = val
    lines = model.meta.get("_lines")
    if not lines:
        return meshio.Mesh(mesh.points, cells, point_data=point_data, cell_data=cell_data)
    # screws: line cells on extra nodes appended after the mesh nodes, with their own fields
    nn = mesh.n_nodes
    ext = model.layout.extra_points
    pts = np.vstack([mesh.points, ext])
    conn = np.vstack([l for _, l in lines]) + nn
    ue = lc.u[3 * nn :].reshape(-1, 6)[:, :3] if len(ext) else np.zeros((0, 3))
    pd = {}
    for k, v in point_data.items():
        pad = np.zeros((len(ext),) + v.shape[1:]) if k != "displacement" else ue
        pd[k] = np.concatenate([v, pad])
    ld = lc.extra.get("_line_data", {})
    nl = len(conn)
    cd = {}
    for k, v in cell_data.items():
        arr = v[0]
        if k in ld:
            line_val = np.asarray(ld[k], arr.dtype)
        elif k == "material":
            line_val = np.full(nl, len(model.materials), arr.dtype)
        else:
            line_val = np.zeros((nl,) + arr.shape[1:], arr.dtype)
        cd[k] = [arr, line_val]
    for k, v in ld.items():
        if k not in cd:
            cd[k] = [np.zeros(mesh.n_elements), np.asarray(v, float)]
    cd["screw"] = [np.full(mesh.n_elements, -1, np.int32), np.concatenate([np.full(len(l), i, np.int32) for i, (_, l) in enumerate(lines)])]
    return meshio.Mesh(pts, cells + [("line", conn)], point_data=pd, cell_data=cd)




def youngs_modulus(C: np.ndarray) -> np.ndarray:
    """Per-element Young's modulus (MPa) from Voigt stiffnesses ``C`` (ne, 6, 6).

    3 / (S11 + S22 + S33) with S = C^-1: the exact E of an isotropic element, and the mean
    axial compliance's modulus of an anisotropic one.
    """
    S = np.linalg.inv(np.asarray(C, float))
    return 3.0 / (S[:, 0, 0] + S[:, 1, 1] + S[:, 2, 2])


def model_mesh(model):
    """A ``meshio.Mesh`` of a model before any solve: material id, Young's modulus and the
    model's own per-element fields (mapped CT density and modulus, lesion and cement shares)."""
    import meshio

    mesh = model.mesh
    ctype = "tetra" if mesh.order == 1 else "tetra10"
    cell_data = {
        "material": [model.material_id.astype(np.int32)],
        "youngs_modulus": [youngs_modulus(model.C)],
    }
    for key, val in model.cell_data.items():
        cell_data[key] = [np.asarray(val)]
    return meshio.Mesh(mesh.points, [(ctype, mesh.cells)], cell_data=cell_data)
