"""Export a model to peer solvers for cross-checks: a CalculiX/Abaqus input deck (``.inp``) or
an FEBio 4 file (``.feb``).  Units stay mm, N, MPa (neither code has units of its own).

Both formats get:

* the nodes and the tet4/tet10 elements (C3D4/C3D10, FEBio tet4/tet10).  All three codes
  order a quadratic tetrahedron's nodes the same way: corners, then mid-edge nodes on
  edges (1,2) (2,3) (3,1) (1,4) (2,4) (3,4) (``fembone.core.elements.TET10_EDGES``), so
  the connectivity is written as is;
* one material per distinct element stiffness ``model.C`` (mapped or painted properties give
  one material per distinct value): isotropic as E, nu; otherwise all 21 constants
  (``*ELASTIC, TYPE=ANISO``) or, for FEBio, orthotropic engineering constants in the
  material's symmetry frame (found from the eigenvectors of the contracted tensor C_ijkk,
  Cowin & Mehrabadi 1987, Q J Mech Appl Math 40:451);
* fixed and prescribed displacements, and the nodal forces and moments of every load case,
  one step per load case (surface tractions and pressures are already consistent nodal
  forces in the model).

``.inp``: every kinematic tie (rigid and distributing couplings, any other linear tie) is
written as ``*EQUATION`` from the same resolved constraint u = T q + g that fembone solves,
so the deck's answer is fembone's to solver precision.  A reference point is two nodes: its
translations, and a companion node whose u1, u2, u3 are the rotations rx, ry, rz (the
convention of CalculiX's ``*RIGID BODY`` ROT NODE); moments are ``*CLOAD`` on that node.
Tie offsets use one more node held at u1 = 1.

``.feb``: a rigid coupling becomes a rigid body (a ``rigid body`` material with its centre at
the reference point, carried by one small tet4, and a ``rigid`` node set); its loads and fixed
DOFs become rigid loads and ``rigid_fixed``.  A distributing coupling is written as the
nodal forces it transmits, T^T f (exact for the bone: the coupling adds no stiffness; the
reference point's own motion is not reported).  FEBio's elastic materials are
St Venant-Kirchhoff: the same answer as fembone's linear one only as strains go to zero.

Cannot be exported (one :class:`InputError` line names what): screws (Timoshenko beams
embedded in bone), the PMMA potting layer (an elastic foundation matrix) and any other extra
stiffness; for ``.feb`` also ties other than couplings, prescribed reference-point motion and
materials without orthotropic symmetry.  Probes, risk metrics and other post-processing are
never part of an export.
"""

from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from fembone.apps.cli import _parse_set, check_writable, command
from fembone.core.errors import InputError
from fembone.core.materials import VOIGT
from fembone.core.model import Model
from fembone.core.version import __version__

FORMATS = ("inp", "feb")
#: fembone Voigt order (xx yy zz xy yz xz) -> Abaqus/CalculiX order (11 22 33 12 13 23)
ABAQUS_ORDER = [0, 1, 2, 3, 5, 4]


# -- materials ---------------------------------------------------------------------------
def material_groups(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group elements by identical stiffness: (group of each element (ne,), stiffness per group (ng, 6, 6))."""
    flat = np.ascontiguousarray(C.reshape(len(C), 36))
    unique, inverse = np.unique(flat, axis=0, return_inverse=True)
    return inverse.reshape(-1), unique.reshape(-1, 6, 6)


def isotropic_constants(C: np.ndarray, rtol: float = 1e-12) -> tuple[float, float] | None:
    """(E, nu) when the Voigt stiffness C is isotropic, else None (lambda = C12, mu = C44)."""
    lam, mu = C[0, 1], C[3, 3]
    iso = np.zeros((6, 6))
    iso[:3, :3] = lam
    iso[np.arange(6), np.arange(6)] += np.r_[2 * mu, 2 * mu, 2 * mu, mu, mu, mu]
    if not np.allclose(C, iso, rtol=rtol, atol=rtol * np.abs(C).max()):
        return None
    return float(mu * (3 * lam + 2 * mu) / (lam + mu)), float(lam / (2 * (lam + mu)))


def abaqus_aniso(C: np.ndarray) -> list[float]:
    """The 21 constants of ``*ELASTIC, TYPE=ANISO``: D1111, D1122, D2222, D1133, ... D2323
    (upper triangle column by column in the order 11 22 33 12 13 23, engineering shear)."""
    D = C[np.ix_(ABAQUS_ORDER, ABAQUS_ORDER)]
    return [float(D[i, j]) for j in range(6) for i in range(j + 1)]


#: tensor index pair of each Voigt index (xx yy zz xy yz xz)
PAIRS = np.array([[0, 0], [1, 1], [2, 2], [0, 1], [1, 2], [0, 2]])


def _tensor(C: np.ndarray) -> np.ndarray:
    """C_ijkl from Voigt C (engineering shear: C_IJ = C_ijkl with no factors)."""
    return C[VOIGT[:, :, None, None], VOIGT[None, None, :, :]]


def orthotropic_constants(C: np.ndarray, rtol: float = 1e-9) -> tuple[dict, np.ndarray] | None:
    """Engineering constants {E1.., G12.., v12, v23, v31} and the frame (rows: axes 1, 2, 3)
    in which C is orthotropic, or None.  v_ij = -S_ij / S_ii with S = C^-1 in that frame
    (FEBio's ``orthotropic elastic`` convention)."""
    T = _tensor(C)
    _, Q = np.linalg.eigh(np.einsum("ijkk->ij", T))  # symmetry axes (Cowin & Mehrabadi 1987)
    R = Q.T
    Tr = np.einsum("ai,bj,ck,dl,ijkl->abcd", R, R, R, R, T)
    Cr = Tr[PAIRS[:, 0, None], PAIRS[:, 1, None], PAIRS[None, :, 0], PAIRS[None, :, 1]]
    off = Cr.copy()
    off[:3, :3] = 0.0
    off[[3, 4, 5], [3, 4, 5]] = 0.0
    if np.abs(off).max() > rtol * np.abs(Cr).max():
        return None
    S = np.linalg.inv(Cr)
    c = {"E1": 1 / S[0, 0], "E2": 1 / S[1, 1], "E3": 1 / S[2, 2],
         "G12": 1 / S[3, 3], "G23": 1 / S[4, 4], "G31": 1 / S[5, 5],
         "v12": -S[0, 1] / S[0, 0], "v23": -S[1, 2] / S[1, 1], "v31": -S[0, 2] / S[2, 2]}
    return {k: float(v) for k, v in c.items()}, R


# -- checks ------------------------------------------------------------------------------
def check_exportable(model: Model, fmt: str) -> None:
    """One :class:`InputError` naming what the model holds that ``fmt`` cannot carry."""
    meta = model.meta
    missing = []
    if meta.get("_lines") or meta.get("_screws"):
        missing.append("screws (beams embedded in bone)")
    if "_foundation" in meta:
        missing.append("the potting layer (elastic foundation; use boundary: {inferior: fixed})")
    elif meta.get("_extra_stiffness"):
        missing.append("extra stiffness matrices")
    if missing:
        raise InputError(f"the .{fmt} export cannot carry {' and '.join(missing)}", model.name)


#: CalculiX reads at most 20 characters per field: 13 significant digits fit with sign and exponent
NUM = "%.13g"


def _fmt(x: float) -> str:
    return NUM % float(x)


def step_offsets(model: Model, red) -> np.ndarray:
    """(n_dofs, n_load_cases) prescribed values g of each load case (``model.prescribed``
    overrides some for displacement control; mm, rad)."""
    return np.column_stack([
        red.offset(*model.prescribed[name]) if name in model.prescribed else red.g for name in model.loads
    ])


# -- CalculiX / Abaqus --------------------------------------------------------------------
def write_inp(model: Model, path: str | Path) -> Path:
    """Write a CalculiX/Abaqus input deck; returns its path."""
    check_exportable(model, "inp")
    mesh, layout = model.mesh, model.layout
    red = model.constraints.build()
    nn, nx, n = mesh.n_nodes, layout.n_extra, model.n_dofs
    # node and DOF numbering: mesh nodes 1..nn, reference translations, reference rotations, unit node
    d = np.arange(n)
    j, k = np.divmod(d - 3 * nn, 6)
    node = np.where(d < 3 * nn, d // 3 + 1, np.where(k < 3, nn + 1 + j, nn + nx + 1 + j))
    comp = np.where(d < 3 * nn, d % 3, k % 3) + 1
    tie = red.dependent & ~red.fixed
    G = step_offsets(model, red)
    fixed = np.flatnonzero(red.fixed)
    # ties over free AND prescribed DOFs (T_react), so each step's *BOUNDARY values reach them;
    # what is left of g on a tie row is a constant of the tie itself (written on a unit node)
    R = red.T_react.tocsr() if red.T_react is not None else red.T.tocsr()
    const = G[tie] - R[tie][:, fixed] @ G[fixed]
    if not np.allclose(const, const[:, :1], rtol=1e-12, atol=1e-14 * (np.abs(G).max() or 1.0)):
        raise InputError("tie offsets that change between load cases cannot be written to .inp", model.name)
    const = const[:, 0] if const.size else np.zeros(int(tie.sum()))
    const[np.abs(const) <= 1e-14 * (np.abs(G).max() or 1.0)] = 0.0
    unit = nn + 2 * nx + 1 if np.any(const != 0) else None

    out = io.StringIO()
    w = out.write
    w(f"** {model.name}: exported by fembone {__version__}; units mm, N, MPa\n")
    for name, rp in model.points.items():
        w(f"** reference point '{name}' ({rp.kind} coupling): node {nn + 1 + rp.index} (ux uy uz), "
          f"node {nn + nx + 1 + rp.index} (u1 u2 u3 = rx ry rz, rad)\n")
    w(f"*HEADING\n{model.name} (fembone {__version__})\n*NODE, NSET=NALL\n")
    pts = [mesh.points, layout.extra_points, layout.extra_points]
    if unit:
        pts.append(np.zeros((1, 3)))
    P = np.vstack(pts)
    np.savetxt(out, np.column_stack([np.arange(1, len(P) + 1), P]), fmt=["%d", NUM, NUM, NUM], delimiter=", ")

    group, Cs = material_groups(model.C)
    etype = "C3D4" if mesh.order == 1 else "C3D10"
    for g, C in enumerate(Cs):
        ids = np.flatnonzero(group == g)
        used = np.bincount(model.material_id[ids], minlength=len(model.materials)).argmax()
        w(f"** M{g + 1}: {len(ids)} elements, mostly fembone material '{model.materials[used].name}'\n")
        w(f"*ELEMENT, TYPE={etype}, ELSET=M{g + 1}\n")
        np.savetxt(out, np.column_stack([ids + 1, mesh.cells[ids] + 1]), fmt="%d", delimiter=", ")
    for g, C in enumerate(Cs):
        w(f"*MATERIAL, NAME=M{g + 1}\n")
        iso = isotropic_constants(C)
        if iso:
            w(f"*ELASTIC\n{_fmt(iso[0])}, {_fmt(iso[1])}\n")
        else:
            c = abaqus_aniso(C)
            w("*ELASTIC, TYPE=ANISO\n")
            for a in range(0, 21, 8):
                w(", ".join(_fmt(v) for v in c[a:a + 8]) + "\n")
        w(f"*SOLID SECTION, ELSET=M{g + 1}, MATERIAL=M{g + 1}\n")

    rows = np.flatnonzero(tie)
    if len(rows):
        w("** ties (couplings, embeddings) of the resolved constraint u = T q + g\n")
    for r, c0 in zip(rows, const, strict=True):
        s = slice(R.indptr[r], R.indptr[r + 1])
        keep = R.data[s] != 0
        terms = [(node[r], comp[r], 1.0)] + [
            (node[c], comp[c], -v) for c, v in zip(R.indices[s][keep], R.data[s][keep], strict=True)
        ]
        if c0 != 0:
            terms.append((unit, 1, -c0))
        w(f"*EQUATION\n{len(terms)}\n")
        for a in range(0, len(terms), 4):
            w(", ".join(f"{t[0]}, {t[1]}, {_fmt(t[2])}" for t in terms[a:a + 4]) + "\n")

    still = (G[fixed] == 0).all(axis=1)
    zero, moved = fixed[still], fixed[~still]
    if len(zero):
        w("*BOUNDARY\n")
        np.savetxt(out, np.column_stack([node[zero], comp[zero], comp[zero]]), fmt="%d", delimiter=", ")
    for k, (lc, f) in enumerate(model.loads.items()):
        w(f"** load case '{lc}'\n*STEP\n*STATIC\n")
        if len(moved) or unit:
            w("*BOUNDARY\n")
            for dof in moved:
                w(f"{node[dof]}, {comp[dof]}, {comp[dof]}, {_fmt(G[dof, k])}\n")
            if unit:
                w(f"{unit}, 1, 1, 1.0\n")
        nz = np.flatnonzero(f)
        w("*CLOAD, OP=NEW\n")
        if len(nz):
            np.savetxt(out, np.column_stack([node[nz], comp[nz], f[nz]]), fmt=["%d", "%d", NUM], delimiter=", ")
        else:
            w("1, 1, 0.0\n")
        w("*NODE PRINT, NSET=NALL\nU\n*NODE FILE\nU\n*EL FILE\nS\n*END STEP\n")
    path = Path(path)
    path.write_text(out.getvalue(), encoding="ascii")
    return path


# -- FEBio ---------------------------------------------------------------------------------
def _feb_plan(model: Model):
    """Check the ties are couplings FEBio can carry; the map of distributing reference DOFs onto mesh DOFs."""
    layout, nn = model.layout, model.mesh.n_nodes
    red = model.constraints.build()
    tie = red.dependent & ~red.fixed
    rigid = [rp for rp in model.points.values() if rp.kind == "rigid"]
    dist = [rp for rp in model.points.values() if rp.kind != "rigid"]
    expected = np.zeros(model.n_dofs, bool)
    for rp in rigid:
        expected[(3 * np.asarray(rp.nodes)[:, None] + np.arange(3)).ravel()] = True
    dist_dofs = np.concatenate([layout.extra_dofs(rp.index)[0] for rp in dist]) if dist else np.zeros(0, int)
    expected[dist_dofs] = True
    if np.any(tie & ~expected):
        raise InputError("the .feb export carries rigid and distributing couplings only, not other ties (e.g. embedded nodes)", model.name)
    points = {rp.index for rp in model.points.values()}
    if layout.n_extra and set(range(layout.n_extra)) - points:
        raise InputError("the .feb export cannot carry extra nodes that are not coupling reference points", model.name)
    Td = red.T.tocsr()[dist_dofs]
    if Td.nnz and Td.indices.max() >= 3 * nn:
        raise InputError("a distributing coupling that leans on another reference point cannot be written to .feb", model.name)
    G = step_offsets(model, red)
    if np.any(G[3 * nn:][red.fixed[3 * nn:]] != 0):
        raise InputError("prescribed reference-point motion cannot be written to .feb", model.name)
    return red, G, rigid, dist_dofs, Td


def write_feb(model: Model, path: str | Path) -> Path:
    """Write an FEBio 4.0 file; returns its path."""
    check_exportable(model, "feb")
    red, G, rigid, dist_dofs, Td = _feb_plan(model)
    mesh = model.mesh
    nn, order = mesh.n_nodes, mesh.order
    size = float(np.ptp(mesh.points, axis=0).max()) or 1.0
    group, Cs = material_groups(model.C)
    out = io.StringIO()
    w = out.write
    w('<?xml version="1.0" encoding="ISO-8859-1"?>\n')
    w(f"<!-- {escape(model.name)}: exported by fembone {__version__}; units mm, N, MPa -->\n")
    w('<febio_spec version="4.0">\n<Module type="solid"/>\n<Material>\n')
    E_ref = 1.0
    for g, C in enumerate(Cs):
        iso = isotropic_constants(C)
        if iso:
            E_ref = max(E_ref, iso[0])
            w(f'<material id="{g + 1}" name="M{g + 1}" type="isotropic elastic"><density>1</density>'
              f"<E>{_fmt(iso[0])}</E><v>{_fmt(iso[1])}</v></material>\n")
            continue
        ortho = orthotropic_constants(C)
        if ortho is None:
            raise InputError(f"material group M{g + 1} has no orthotropic symmetry; FEBio export needs it (use --format inp)", model.name)
        c, R = ortho
        E_ref = max(E_ref, c["E1"], c["E2"], c["E3"])
        w(f'<material id="{g + 1}" name="M{g + 1}" type="orthotropic elastic"><density>1</density>'
          + "".join(f"<{k}>{_fmt(v)}</{k}>" for k, v in c.items())
          + f'<mat_axis type="vector"><a>{",".join(map(_fmt, R[0]))}</a><d>{",".join(map(_fmt, R[1]))}</d></mat_axis></material>\n')
    for r, rp in enumerate(rigid):
        w(f'<material id="{len(Cs) + r + 1}" name="RB_{rp.name}" type="rigid body"><density>1</density>'
          f"<E>{_fmt(E_ref)}</E><v>0.3</v><center_of_mass>{','.join(map(_fmt, rp.position))}</center_of_mass></material>\n")
    w("</Material>\n<Mesh>\n<Nodes name=\"all\">\n")
    np.savetxt(out, np.column_stack([np.arange(1, nn + 1), mesh.points]), fmt='<node id="%d">%.17g,%.17g,%.17g</node>')
    handle = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]) * 1e-3 * size
    for r, rp in enumerate(rigid):  # the rigid body's carrier: a small tet4 at the reference point
        for a in range(4):
            w(f'<node id="{nn + 4 * r + a + 1}">{",".join(map(_fmt, rp.position + handle[a]))}</node>\n')
    w("</Nodes>\n")
    etype = "tet4" if order == 1 else "tet10"
    fmt = '<elem id="%d">' + ",".join(["%d"] * mesh.cells.shape[1]) + "</elem>"
    for g in range(len(Cs)):
        ids = np.flatnonzero(group == g)
        w(f'<Elements type="{etype}" name="M{g + 1}">\n')
        np.savetxt(out, np.column_stack([ids + 1, mesh.cells[ids] + 1]), fmt=fmt)
        w("</Elements>\n")
    for r, rp in enumerate(rigid):
        conn = ",".join(str(nn + 4 * r + a + 1) for a in range(4))
        w(f'<Elements type="tet4" name="RB_{rp.name}"><elem id="{mesh.n_elements + r + 1}">{conn}</elem></Elements>\n')

    fixed = red.fixed[: 3 * nn].reshape(-1, 3)
    values = G[: 3 * nn].reshape(nn, 3, -1)  # per load case
    zero = fixed & (values == 0).all(axis=2)
    patterns = sorted({tuple(p) for p in zero[zero.any(axis=1)].tolist()})
    sets = {}
    for p in patterns:
        name = "fixed_" + "".join(a for a, on in zip("xyz", p, strict=True) if on)
        sets[name] = np.flatnonzero((zero == p).all(axis=1))
    for a, ax in enumerate("xyz"):
        moved = np.flatnonzero(fixed[:, a] & ~zero[:, a])
        if len(moved):
            sets[f"prescribed_{ax}"] = moved
    for rp in rigid:
        sets[f"rigid_{rp.name}"] = np.asarray(rp.nodes)
    loads = {}
    for k, (lc, f) in enumerate(model.loads.items()):
        fm = f[: 3 * nn].copy()
        if len(dist_dofs):
            fm += np.asarray(Td.T @ f[dist_dofs]).ravel()[: 3 * nn]
        fm = fm.reshape(-1, 3)
        ids = np.flatnonzero(np.any(fm != 0, axis=1))
        loads[lc] = (ids, fm[ids])
        if len(ids):
            sets[f"load_{k + 1}"] = ids
    for name, ids in sets.items():
        w(f'<NodeSet name="{name}">' + ",".join(map(str, np.asarray(ids) + 1)) + "</NodeSet>\n")
    w("</Mesh>\n<MeshDomains>\n")
    for g in range(len(Cs)):
        w(f'<SolidDomain name="M{g + 1}" mat="M{g + 1}"/>\n')
    for rp in rigid:
        w(f'<SolidDomain name="RB_{rp.name}" mat="RB_{rp.name}"/>\n')
    w("</MeshDomains>\n<MeshData>\n")
    for a, ax in enumerate("xyz"):
        for k in range(len(model.loads)) if f"prescribed_{ax}" in sets else ():
            w(f'<NodeData name="u_{ax}_{k + 1}" node_set="prescribed_{ax}" data_type="scalar">'
              + "".join(f'<node lid="{i + 1}">{_fmt(values[n, a, k])}</node>' for i, n in enumerate(sets[f"prescribed_{ax}"]))
              + "</NodeData>\n")
    for k, (ids, fm) in enumerate(loads.values()):
        if len(ids):
            w(f'<NodeData name="F_{k + 1}" node_set="load_{k + 1}" data_type="vec3">'
              + "".join(f'<node lid="{i + 1}">{",".join(map(_fmt, v))}</node>' for i, v in enumerate(fm))
              + "</NodeData>\n")
    w("</MeshData>\n<Boundary>\n")
    for name in sets:
        if name.startswith("fixed_"):
            dofs = "".join(f"<{a}_dof>{int(a in name[6:])}</{a}_dof>" for a in "xyz")
            w(f'<bc name="{name}" node_set="{name}" type="zero displacement">{dofs}</bc>\n')
    for rp in rigid:
        w(f'<bc name="rigid_{rp.name}" node_set="rigid_{rp.name}" type="rigid"><rb>RB_{rp.name}</rb></bc>\n')
    w("</Boundary>\n<Rigid>\n")
    for rp in rigid:
        fx = red.fixed[model.layout.extra_dofs(rp.index)[0]]
        if fx.any():
            dofs = "".join(f"<{d}_dof>{int(b)}</{d}_dof>" for d, b in zip(("Rx", "Ry", "Rz", "Ru", "Rv", "Rw"), fx, strict=True))
            w(f'<rigid_bc name="fixed_RB_{rp.name}" type="rigid_fixed"><rb>RB_{rp.name}</rb>{dofs}</rigid_bc>\n')
    w("</Rigid>\n<LoadData>\n")
    for k in range(len(loads)):  # load case k ramps up during step k (time k .. k + 1)
        w(f'<load_controller id="{k + 1}" type="loadcurve"><interpolate>LINEAR</interpolate><extend>CONSTANT</extend>'
          f"<points><pt>{k},0</pt><pt>{k + 1},1</pt></points></load_controller>\n")
    w("</LoadData>\n<Output><plotfile type=\"febio\"><var type=\"displacement\"/><var type=\"stress\"/></plotfile>\n")
    w(f'<logfile><node_data data="ux;uy;uz" delim="," file={quoteattr(Path(path).stem + "_u.txt")}/></logfile></Output>\n<Step>\n')
    for k, (lc, f) in enumerate(model.loads.items()):
        ids, fm = loads[lc]
        w(f'<step id="{k + 1}" name={quoteattr(lc)}>\n<Control><analysis>STATIC</analysis><time_steps>1</time_steps>'
          '<step_size>1</step_size><solver type="solid"><symmetric_stiffness>symmetric</symmetric_stiffness></solver></Control>\n')
        moved = [ax for ax in "xyz" if f"prescribed_{ax}" in sets]
        if moved:  # prescribed values of this load case (displacement control may change them)
            w("<Boundary>" + "".join(
                f'<bc name="prescribed_{ax}_{k + 1}" node_set="prescribed_{ax}" type="prescribed displacement"><dof>{ax}</dof>'
                f'<value lc="{k + 1}" type="map">u_{ax}_{k + 1}</value><relative>0</relative></bc>' for ax in moved) + "</Boundary>\n")
        if len(ids):
            w(f'<Loads><nodal_load name="F_{k + 1}" type="nodal_force" node_set="load_{k + 1}">'
              f'<value lc="{k + 1}" type="map">F_{k + 1}</value></nodal_load></Loads>\n')
        rl = []
        for rp in rigid:
            fr = f[model.layout.extra_dofs(rp.index)[0]]
            for a, (kind, dof) in enumerate(zip(["rigid_force"] * 3 + ["rigid_moment"] * 3, ("Rx", "Ry", "Rz", "Ru", "Rv", "Rw"), strict=True)):
                if fr[a] != 0:
                    rl.append(f'<rigid_load type="{kind}"><rb>RB_{rp.name}</rb><dof>{dof}</dof>'
                              f'<value lc="{k + 1}">{_fmt(fr[a])}</value><load_type>LOAD</load_type><relative>0</relative></rigid_load>\n')
        if rl:
            w("<Rigid>\n" + "".join(rl) + "</Rigid>\n")
        w("</step>\n")
    w("</Step>\n</febio_spec>\n")
    path = Path(path)
    path.write_text(out.getvalue(), encoding="latin-1")
    return path


def export(model: Model, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``model`` as ``fmt`` ('inp' or 'feb'; default: from the file suffix)."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}' (known: {', '.join(FORMATS)})", "--format")
    return write_inp(model, path) if fmt == "inp" else write_feb(model, path)


# -- command line ----------------------------------------------------------------------------
def _configure(p) -> None:
    p.add_argument("case", help="case file (YAML)")
    p.add_argument("--format", choices=FORMATS, help="inp (CalculiX/Abaqus) or feb (FEBio); default: from -o's suffix")
    p.add_argument("-o", "--out", required=True, help="output file (.inp or .feb)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a case value by key path")


@command("export", "write a case as a CalculiX/Abaqus deck (.inp) or an FEBio file (.feb)", _configure)
def cmd_export(args) -> int:
    from fembone.cases import load_case

    fmt = (args.format or Path(args.out).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InputError(f"cannot tell the format from '{args.out}': give --format inp or --format feb", "--out")
    folder = Path(args.out).absolute().parent
    check_writable(folder, "--out")
    model = load_case(args.case, _parse_set(args.set))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = export(model, args.out, fmt)
    except OSError as exc:
        raise InputError(f"cannot write '{args.out}' ({exc.strerror or exc})", "--out") from None
    m = model.mesh
    print(f"written: {path} ({fmt}: {m.n_nodes:,} nodes, {m.n_elements:,} {'tet4' if m.order == 1 else 'tet10'}, "
          f"{len(model.loads)} load case(s), {len(model.points)} reference point(s))")
    return 0
