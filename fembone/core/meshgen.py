"""Small structured tetrahedral meshes (boxes, beams) made with numpy alone. Units: mm.

Used by the verification suite, the benchmarks and quick experiments: each hexahedral
cell of a structured grid is split into six tetrahedra around its main diagonal
(Kuhn/Freudenthal triangulation), which is conforming between neighbouring cells.
"""

from __future__ import annotations

import itertools

import numpy as np

from fembone.core.mesh import Mesh, promote_to_tet10, tet_volumes


def box_mesh(
    lengths=(1.0, 1.0, 1.0),
    divisions=(2, 2, 2),
    origin=(0.0, 0.0, 0.0),
    order: int = 1,
    coords: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Mesh:
    """Box [origin, origin + lengths] split into nx*ny*nz*6 tetrahedra.

    Facet sets ``xmin, xmax, ymin, ymax, zmin, zmax`` name the six sides; ``coords``
    (three 1-D arrays) overrides the uniform grid lines.
    """
    if coords is None:
        coords = tuple(
            o + np.linspace(0.0, L, n + 1) for o, L, n in zip(origin, lengths, divisions, strict=True)
        )
    xs, ys, zs = (np.asarray(c, float) for c in coords)
    nx, ny, nz = len(xs) - 1, len(ys) - 1, len(zs) - 1
    X, Y, Z = np.meshgrid(xs, ys, zs, indexing="ij")
    points = np.column_stack([X.ravel(), Y.ravel(), Z.ravel()])

    def nid(i, j, k):
        return (i * (ny + 1) + j) * (nz + 1) + k

    I, J, K = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    I, J, K = I.ravel(), J.ravel(), K.ravel()
    corner = {}
    for d in itertools.product((0, 1), repeat=3):
        corner[d] = nid(I + d[0], J + d[1], K + d[2])
    tets = []
    for perm in itertools.permutations(range(3)):
        path = [(0, 0, 0)]
        cur = [0, 0, 0]
        for ax in perm:
            cur[ax] = 1
            path.append(tuple(cur))
        tets.append(np.column_stack([corner[p] for p in path]))
    cells = np.vstack(tets)
    neg = tet_volumes(points, cells) < 0
    cells[neg] = cells[neg][:, [0, 2, 1, 3]]

    mesh = Mesh(points, cells, source="box")
    faces, _ = mesh.boundary_faces()
    fc = points[faces].mean(axis=1)
    lo = np.array([xs[0], ys[0], zs[0]])
    hi = np.array([xs[-1], ys[-1], zs[-1]])
    tol = 1e-9 * np.linalg.norm(hi - lo)
    for ax, name in enumerate("xyz"):
        mesh.facet_sets[f"{name}min"] = faces[np.abs(fc[:, ax] - lo[ax]) < tol]
        mesh.facet_sets[f"{name}max"] = faces[np.abs(fc[:, ax] - hi[ax]) < tol]
    if order == 2:
        mesh = promote_to_tet10(mesh)
    return mesh


def beam_mesh(
    length: float = 100.0, width: float = 10.0, height: float = 10.0, n_length: int = 20, n_section: int = 2,
    order: int = 1,
) -> Mesh:
    """Prismatic cantilever along +x: x in [0, L], y in [-w/2, w/2], z in [-h/2, h/2]."""
    return box_mesh(
        (length, width, height),
        (n_length, n_section, n_section),
        origin=(0.0, -width / 2, -height / 2),
        order=order,
    )


def write_mesh(mesh: Mesh, path) -> None:
    """Write a mesh with its named sets as gmsh 2.2 .msh (physical groups) or any meshio format."""
    import meshio

    ctype = "tetra" if mesh.order == 1 else "tetra10"
    ftype = "triangle" if mesh.order == 1 else "triangle6"
    cells = [(ctype, mesh.cells)]
    names = list(mesh.cell_sets) + list(mesh.facet_sets)
    phys_vol = np.zeros(mesh.n_elements, int)
    # volume groups must not overlap in gmsh; later sets win
    for k, name in enumerate(mesh.cell_sets, start=1):
        phys_vol[mesh.cell_sets[name]] = k
    phys = [phys_vol]
    field_data = {name: np.array([k, 3]) for k, name in enumerate(mesh.cell_sets, start=1)}
    for k, name in enumerate(mesh.facet_sets, start=len(mesh.cell_sets) + 1):
        cells.append((ftype, mesh.facet_sets[name]))
        phys.append(np.full(len(mesh.facet_sets[name]), k))
        field_data[name] = np.array([k, 2])
    if not mesh.cell_sets:
        phys[0][:] = 0
    m = meshio.Mesh(
        mesh.points,
        cells,
        cell_data={"gmsh:physical": phys, "gmsh:geometrical": phys},
        field_data=field_data,
    )
    path = str(path)
    if path.endswith(".msh"):
        meshio.write(path, m, file_format="gmsh22", binary=False)
    else:
        meshio.write(path, meshio.Mesh(mesh.points, [(ctype, mesh.cells)]))
    del names
