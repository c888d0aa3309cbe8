"""Spinal ligaments of a segment as tension-only springs (opt-in: ``segment.ligaments``). Units: mm, N, N/mm.

For every level pair (upper, lower) each ligament is one spring between two reference points,
each a distributing coupling (RBE3) of a small node patch at the ligament's attachment on the
upper and on the lower vertebra (the patch's nodes within ``radius`` mm of the attachment
point, the reference point at their centroid).  With e the unit vector from the lower to the
upper reference point, the spring's elongation is delta = e . (u_upper - u_lower) and its
force k max(delta, 0): a unilateral element (:mod:`fembone.core.unilateral`) with direction
G = -e at the upper reference point's DOFs and +e at the lower one's (opening s = G^T u =
-delta), gap 0, engaged when s < 0.  The ligaments are slack at the unloaded state (no
pre-strain) and linear once taut (the linear region of the load-deformation curve).

Attachments (the generated vertebra, :mod:`fembone.spine.geometry.vertebra_cad`; the lamina is a
plate, the spinous process a box behind it; "the gap" is the disc or interlaminar space):

* ALL (anterior longitudinal): anterior body surface at the midline, ``margin`` mm from the
  endplate that faces the disc;
* PLL (posterior longitudinal): posterior body wall at the midline, ``margin`` mm from that endplate;
* LF (ligamentum flavum): canal face of the lamina at the midline, its edge facing the gap
  (the lower edge of the upper lamina, the upper edge of the lower one);
* ISL (interspinous): the spinous processes' edges facing the gap, at mid-length;
* SSL (supraspinous): the spinous tips' corners facing the gap.

Stiffness (linear region, lumbar, N/mm): Pintar et al. 1992, J Biomech 25:1351 [M: quoted
from memory, unverified]: ALL 33.0, PLL 20.4, LF 27.2, ISL 11.5, SSL 23.7.  The capsular
ligaments are represented by the facet springs (:mod:`fembone.spine.segment_mechanics`); the
intertransverse ligaments are omitted (small moment arm in flexion/extension and a low
stiffness).  ``scale`` multiplies every stiffness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fembone.core.errors import FemboneError
from fembone.core.unilateral import UnilateralSet

#: ligament -> stiffness (N/mm), Pintar et al. 1992 J Biomech 25:1351 [M]
STIFFNESS = {"ALL": 33.0, "PLL": 20.4, "LF": 27.2, "ISL": 11.5, "SSL": 23.7}
NAMES = tuple(STIFFNESS)


@dataclass(frozen=True)
class Ligaments:
    """Which ligaments, a stiffness factor, patch radius (mm) and the body attachments' margin (mm)."""

    names: tuple[str, ...] = NAMES
    scale: float = 1.0
    radius: float = 4.0  # mm; grown with the mesh size (at least one element size)
    margin: float = 3.0  # mm from the endplate (ALL, PLL)

    def stiffness(self, name: str) -> float:
        """Spring stiffness (N/mm) of ligament ``name``."""
        return self.scale * STIFFNESS[name]


def _nodes(mesh, elements: np.ndarray) -> np.ndarray:
    return np.unique(mesh.cells[elements])


def _edge(p: np.ndarray, upper: bool) -> float:
    """z of the edge facing the gap: the lowest point of the upper vertebra's part, the highest of the lower's."""
    return float(p[:, 2].min() if upper else p[:, 2].max())


def attachment(mesh, seg, lv: str, name: str, upper: bool, lig: Ligaments) -> tuple[np.ndarray, np.ndarray]:
    """(candidate nodes, attachment point) of ligament ``name`` on level ``lv`` (``upper``: the
    vertebra above the gap, which attaches at its lower side)."""
    lm, d = seg.landmarks[lv], seg.dims[lv]
    if name in ("ALL", "PLL"):
        cand = _nodes(mesh, seg.set(lv, "cortical_shell"))
        z = lm["inferior_endplate_z"] + lig.margin if upper else lm["superior_endplate_z"] - lig.margin
        y = lm["body_anterior_y"] if name == "ALL" else lm["posterior_wall_y"]
        return cand, np.array([0.0, y, z])
    post = _nodes(mesh, seg.set(lv, "posterior_elements"))
    p = mesh.points[post]
    y_front = lm["canal_posterior_y"]
    y_back = y_front - d.lamina_thickness
    if name == "LF":
        lam = post[(p[:, 1] >= y_back - 1e-6) & (p[:, 1] <= y_front + 1e-6) & (np.abs(p[:, 0]) <= d.spinous_thickness)]
        return post, np.array([0.0, y_front, _edge(mesh.points[lam], upper)])
    spin = post[(p[:, 1] < y_back - 1e-6) & (np.abs(p[:, 0]) <= d.spinous_thickness)]  # behind the lamina
    q = mesh.points[spin]
    if len(spin) == 0:
        raise FemboneError(f"{lv}: no spinous-process nodes for the {name} ligament")
    if name == "ISL":
        y = 0.5 * (q[:, 1].min() + y_back)
        near = np.abs(q[:, 1] - y) <= max(lig.radius, 0.25 * (y_back - q[:, 1].min()))
        return spin, np.array([0.0, y, _edge(q[near], upper)])
    y_tip = float(q[:, 1].min())  # SSL
    near = q[:, 1] <= y_tip + 0.25 * (y_back - y_tip)
    return spin, np.array([0.0, y_tip, _edge(q[near], upper)])


def patch(points: np.ndarray, cand: np.ndarray, at: np.ndarray, radius: float, what: str) -> np.ndarray:
    """The candidate nodes within ``radius`` mm of ``at``, the radius grown (x1.5, up to 6 times)
    until they are at least 4 and not collinear (their rotation must be distributable)."""
    r = radius
    for _ in range(7):
        out = cand[np.linalg.norm(points[cand] - at, axis=1) <= r]
        if len(out) >= 4:
            x = points[out] - points[out].mean(axis=0)
            s = np.linalg.svd(x, compute_uv=False)
            if s[1] > 1e-3 * s[0]:
                return out
        r *= 1.5
    raise FemboneError(f"{what}: fewer than 4 non-collinear nodes within {r / 1.5:.1f} mm of {np.round(at, 1).tolist()}")


def add_ligaments(model, seg, lig: Ligaments, h: float) -> tuple[UnilateralSet, list[dict]]:
    """Reference points and couplings of every ligament of every level pair; returns their
    unilateral set (columns sized to the DOFs after the last reference point) and a summary.
    ``h``: mesh size (mm), the least patch radius.  ``model.meta['_ligaments']`` gets the springs."""
    mesh = model.mesh
    springs, info = [], []
    for up, lo in seg.pairs():
        for name in lig.names:
            refs, centres, sizes = [], [], []
            for lv, upper in ((up, True), (lo, False)):
                cand, at = attachment(mesh, seg, lv, name, upper, lig)
                nodes = patch(mesh.points, cand, at, max(lig.radius, h), f"segment.ligaments: {up}-{lo} {name} ({lv})")
                c = mesh.points[nodes].mean(axis=0)
                j = int(model.layout.add_extra(c)[0])
                model.constraints.distributing_coupling(nodes, np.ones(len(nodes)), j, mesh.points,
                                                        label=f"segment: ligament {up}-{lo} {name} ({lv} patch)")
                refs.append(j)
                centres.append(c)
                sizes.append(len(nodes))
            v = centres[0] - centres[1]
            length = float(np.linalg.norm(v))
            if length < 1e-6:
                raise FemboneError(f"segment.ligaments: {up}-{lo} {name}: the two attachments coincide")
            springs.append({"pair": f"{up}-{lo}", "name": name, "refs": refs, "e": v / length, "k": lig.stiffness(name)})
            info.append({"pair": f"{up}-{lo}", "name": name, "upper": centres[0].tolist(), "lower": centres[1].tolist(),
                         "length": length, "stiffness": lig.stiffness(name), "nodes": sizes})
    model.meta["_ligaments"] = springs
    return ligament_set(model, springs), info


def ligament_columns(dofs_up: np.ndarray, dofs_lo: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, values) of one spring's column: -e at the upper point's DOFs, +e at the lower's, so
    that G^T u = -e . (u_upper - u_lower) = -elongation (engaged, in tension, when negative)."""
    return np.concatenate([dofs_up, dofs_lo]), np.concatenate([-e, e])


def ligament_set(model, springs: list[dict]) -> UnilateralSet:
    """The springs as a :class:`UnilateralSet` (gap 0, labels 'T12-L1 ALL')."""
    nd = model.layout.n_dofs
    rows, vals, cols = [], [], []
    for i, s in enumerate(springs):
        a, b = (model.layout.extra_dofs(r)[0, :3] for r in s["refs"])
        r, v = ligament_columns(a, b, s["e"])
        rows.append(r)
        vals.append(v)
        cols.append(np.full(6, i))
    G = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nd, len(springs)))
    return UnilateralSet(G, np.array([s["k"] for s in springs]), np.zeros(len(springs)),
                         [f"{s['pair']} {s['name']}" for s in springs])


def ligament_forces(model, u: np.ndarray) -> dict:
    """Tension (N) of each ligament, pair -> name -> k max(delta, 0), delta = e . (u_upper - u_lower) (mm)."""
    out: dict = {}
    for s in model.meta.get("_ligaments", []):
        a, b = (model.layout.extra_dofs(r)[0, :3] for r in s["refs"])
        delta = float(s["e"] @ (u[a] - u[b]))
        out.setdefault(s["pair"], {})[s["name"]] = s["k"] * max(delta, 0.0)
    return out
