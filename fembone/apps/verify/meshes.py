"""Meshes of the verification problems (box, beam, hollow-sphere and inclusion octants) and
what is measured on them (face means, quadrature positions, one-sided surface stresses). Units: mm, MPa.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fembone.apps.verify.exact import (
    BEAM_B,
    BEAM_H,
    BEAM_L,
    BLOCK,
    INCLUSION_A,
    SPHERE_A,
    SPHERE_B,
)
from fembone.core.loads import face_quadrature
from fembone.core.mesh import Mesh, check_mesh, promote_to_tet10
from fembone.core.meshgen import beam_mesh, box_mesh


class _Gmsh:
    """``with _Gmsh() as gmsh:`` a quiet gmsh session, finalised (or its model removed) on exit."""

    def __enter__(self):
        import gmsh

        self.gmsh = gmsh
        self.owner = not gmsh.isInitialized()
        if self.owner:
            try:
                gmsh.initialize(readConfigFiles=False, interruptible=False)
            except TypeError:  # older gmsh without these keywords
                gmsh.initialize()
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("fembone-verify")
        return gmsh

    def __exit__(self, *exc):
        try:
            self.gmsh.model.remove()
        finally:
            if self.owner:
                self.gmsh.finalize()
        return False


def distorted_box(divisions: int = 4, size: float = 10.0, amplitude: float = 0.2, seed: int = 7, order: int = 1) -> Mesh:
    """Box [-size/2, size/2]^3 with interior corner nodes moved randomly by up to ``amplitude`` x h.

    tet10 meshes are promoted after the perturbation, so mid-edge nodes sit at edge midpoints
    (straight-sided elements: the isoparametric map is affine and quadratic fields stay exact).
    """
    mesh = box_mesh((size,) * 3, (divisions,) * 3, origin=(-size / 2,) * 3)
    faces, _ = mesh.boundary_faces()
    interior = np.ones(mesh.n_nodes, bool)
    interior[np.unique(faces)] = False
    h = size / divisions
    rng = np.random.default_rng(seed)
    mesh.points[interior] += rng.uniform(-amplitude * h, amplitude * h, (interior.sum(), 3))
    check_mesh(mesh)
    return promote_to_tet10(mesh) if order == 2 else mesh


def _beam(n_section: int, order: int) -> Mesh:
    return beam_mesh(BEAM_L, BEAM_B, BEAM_H, n_length=10 * n_section, n_section=n_section, order=order)


def sphere_octant_mesh(h: float, order: int, path: str | Path, a=SPHERE_A, b=SPHERE_B, h_outer: float | None = None) -> None:
    """gmsh (OCC) octant of a hollow sphere; tet10 nodes lie on the spheres.

    Element size ``h`` at r = a, growing linearly to ``h_outer`` (default ``h``) at r = b.
    Physical groups: volume ``solid``; surfaces ``inner``, ``outer``, ``x0``, ``y0``, ``z0``.
    """
    with _Gmsh() as gmsh:
        occ = gmsh.model.occ
        shell, _ = occ.cut([(3, occ.addSphere(0, 0, 0, b))], [(3, occ.addSphere(0, 0, 0, a))])
        occ.intersect(shell, [(3, occ.addBox(0, 0, 0, 2 * b, 2 * b, 2 * b))])
        occ.synchronize()
        gmsh.model.addPhysicalGroup(3, [t for _, t in gmsh.model.getEntities(3)], name="solid")
        groups: dict[str, list[int]] = {}
        for _, tag in gmsh.model.getEntities(2):
            lo_hi = np.array(gmsh.model.getBoundingBox(2, tag))
            flat = [k for k in range(3) if lo_hi[3 + k] - lo_hi[k] < 1e-6 * b and abs(lo_hi[k]) < 1e-6 * b]
            if flat:
                name = "xyz"[flat[0]] + "0"
            else:
                c = np.array(occ.getCenterOfMass(2, tag))
                name = "inner" if np.linalg.norm(c) < 0.5 * (a + b) else "outer"
            groups.setdefault(name, []).append(tag)
        for name, tags in groups.items():
            gmsh.model.addPhysicalGroup(2, tags, name=name)
        h_outer = h if h_outer is None else h_outer
        fld = gmsh.model.mesh.field.add("MathEval")
        gmsh.model.mesh.field.setString(
            fld, "F", f"{h} + {(h_outer - h) / (b - a)} * (Sqrt(x*x + y*y + z*z) - {a})"
        )
        gmsh.model.mesh.field.setAsBackgroundMesh(fld)
        for opt in ("Mesh.MeshSizeExtendFromBoundary", "Mesh.MeshSizeFromPoints", "Mesh.MeshSizeFromCurvature"):
            gmsh.option.setNumber(opt, 0)
        gmsh.model.mesh.generate(3)
        if order == 2:
            gmsh.model.mesh.setOrder(2)
        gmsh.write(str(path))


def inclusion_mesh(h_inclusion: float, path1: str | Path | None, path2: str | Path | None,
                   a: float = INCLUSION_A, block: float = BLOCK) -> None:
    """gmsh octant [0, block a]^3 with an embedded sphere octant; sizes h at the sphere, ~block a/4 far.

    Physical volumes ``inclusion`` and ``matrix`` (conforming interface); ``path1`` gets the
    tet4 mesh, ``path2`` the tet10 mesh with nodes on the curved interface.
    """
    B = block * a
    with _Gmsh() as gmsh:
        occ = gmsh.model.occ
        ball = occ.intersect([(3, occ.addSphere(0, 0, 0, a))], [(3, occ.addBox(0, 0, 0, a, a, a))])[0]
        occ.fragment([(3, occ.addBox(0, 0, 0, B, B, B))], ball)
        occ.synchronize()
        inc, mat = [], []
        for _, tag in gmsh.model.getEntities(3):
            (inc if np.linalg.norm(occ.getCenterOfMass(3, tag)) < a else mat).append(tag)
        gmsh.model.addPhysicalGroup(3, inc, name="inclusion")
        gmsh.model.addPhysicalGroup(3, mat, name="matrix")
        sphere_faces = []
        for _, tag in gmsh.model.getBoundary([(3, t) for t in inc], oriented=False):
            lo_hi = np.array(gmsh.model.getBoundingBox(2, abs(tag)))
            if np.all(lo_hi[3:] - lo_hi[:3] > 1e-6 * a):  # not a symmetry plane
                sphere_faces.append(abs(tag))
        fld = gmsh.model.mesh.field
        dist = fld.add("Distance")
        fld.setNumbers(dist, "SurfacesList", sphere_faces)
        thr = fld.add("Threshold")
        fld.setNumber(thr, "InField", dist)
        fld.setNumber(thr, "SizeMin", h_inclusion)
        fld.setNumber(thr, "SizeMax", B / 4)
        fld.setNumber(thr, "DistMin", 0.0)
        fld.setNumber(thr, "DistMax", 0.6 * B)
        fld.setAsBackgroundMesh(thr)
        for opt in ("Mesh.MeshSizeExtendFromBoundary", "Mesh.MeshSizeFromPoints", "Mesh.MeshSizeFromCurvature"):
            gmsh.option.setNumber(opt, 0)
        gmsh.model.mesh.generate(3)
        if path1 is not None:
            gmsh.write(str(path1))
        if path2 is not None:
            gmsh.model.mesh.setOrder(2)
            gmsh.write(str(path2))

# ---------------------------------------------------------------------------------------------
# measuring on meshes


def face_mean(mesh: Mesh, faces: np.ndarray, values: np.ndarray) -> float:
    """Area-weighted mean over ``faces`` of a nodal scalar field ``values`` (nn,)."""
    N, nda, _ = face_quadrature(mesh.points, faces)
    dA = np.linalg.norm(nda, axis=2)
    vq = np.einsum("qn,fn...->fq...", N, values[faces])
    return float((vq * dA).sum() / dA.sum())


def quadrature_positions(mesh: Mesh, qpoints: np.ndarray) -> np.ndarray:
    """Physical coordinates (ne, nq, 3) of reference points ``qpoints`` in every element."""
    N = mesh.element.shape(qpoints)  # (nq, nen)
    return np.einsum("qn,enj->eqj", N, mesh.points[mesh.cells])


def surface_stress(mesh: Mesh, C: np.ndarray, u_nodes: np.ndarray, faces: np.ndarray):
    """Element stresses on boundary ``faces``: the one-sided trace, without nodal averaging.

    Each face is matched to its element; the element's stress field is evaluated at the face
    quadrature points.  Returns stress (nf, nq, 3, 3) MPa, positions (nf, nq, 3) mm and area
    weights (nf, nq) mm^2, faces in the order given.
    """
    from fembone.core.assembly import gradients_at
    from fembone.core.elements import TET4_FACES, TET10_FACES, face_element
    from fembone.core.results import (
        displacement_gradient,
        strain_from_gradient,
        stress_from_strain,
    )

    bfaces, belem = mesh.boundary_faces()
    nn = mesh.n_nodes

    def key(f):
        c = np.sort(f[:, :3], axis=1).astype(np.int64)
        return (c[:, 0] * nn + c[:, 1]) * nn + c[:, 2]

    bk = key(bfaces)
    order = np.argsort(bk)
    pos = order[np.minimum(np.searchsorted(bk, key(faces), sorter=order), len(bk) - 1)]
    if np.any(bk[pos] != key(faces)):
        raise ValueError("surface_stress: some faces are not on the mesh boundary")
    bf, el = bfaces[pos], belem[pos]
    local = TET4_FACES if mesh.order == 1 else TET10_FACES
    k = np.full(len(bf), -1)
    for j in range(4):
        k[np.all(mesh.cells[el][:, local[j, :3]] == bf[:, :3], axis=1)] = j
    fe = face_element(bf.shape[1])
    eta = fe.quadrature(4 if fe.order == 2 else 2).points
    L = np.column_stack([1.0 - eta.sum(axis=1), eta])  # tri3 shape functions (nq, 3)
    N, nda, xq = face_quadrature(mesh.points, bf)
    sig = np.empty((len(bf), len(eta), 3, 3))
    for j in range(4):
        g = np.flatnonzero(k == j)
        if not len(g):
            continue
        xi = L @ mesh.element.node_coords()[local[j, :3]]
        grads, _ = gradients_at(mesh, xi, el[g])
        H = displacement_gradient(u_nodes, mesh.cells[el[g]], grads)
        sig[g] = stress_from_strain(strain_from_gradient(H).transpose(3, 0, 1, 2), C[el[g]])
    return sig, xq, np.linalg.norm(nda, axis=2)
