"""Solve a :class:`~fembone.core.model.Model`: assemble, constrain, factorise once, solve every load case.

Every run checks global equilibrium: the reactions on supported DOFs plus the applied
loads must sum to zero (force and moment) to 1e-8 relative, and the result reports the
error it measured.  Units: mm, N, MPa.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from fembone.core.assembly import Assembler, ElementGeometry
from fembone.core.constraints import Reduction, check_constrained, reduce_system
from fembone.core.errors import SolverError
from fembone.core.loads import face_quadrature
from fembone.core.model import Model, Probe
from fembone.core.results import Fields, compute_fields, equivalent_strain, principal, von_mises
from fembone.core.solvers import AMG, MaskedMatrix, Solver, choose_solver
from fembone.core.unilateral_newton import LCP_LIMIT, NEWTON_START_RTOL

EQUILIBRIUM_TOL = 1e-8
#: model.meta keys reported in summary.json's provenance block rather than under meta
PROVENANCE_META = ("case_hash", "resolved_case")

#: from this many DOFs on, the start of each stage is logged at INFO (shown by default on
#: the command line); below it at DEBUG (``-v``), so small runs print what they always did
LONG_DOFS = 100_000

Progress = Callable[[str, float, str], None]
log = logging.getLogger("fembone.analysis")


def _quiet(stage: str, seconds: float, detail: str) -> None:
    pass


@dataclass
class LoadCaseResult:
    """Solution of one load case."""

    name: str
    u: np.ndarray  # (n_dofs,) all DOFs
    fields: Fields
    reaction_force: np.ndarray  # (3,) N, sum over supported DOFs
    reaction_moment: np.ndarray  # (3,) N mm about the origin
    applied_force: np.ndarray
    applied_moment: np.ndarray
    equilibrium_error: float
    strain_energy: float  # N mm
    probes: dict[str, float] = field(default_factory=dict)
    points: dict[str, list[float]] = field(default_factory=dict)  # reference point motions
    #: reactions (N, N mm) on the prescribed DOFs of each reference point (zero where free)
    point_reactions: dict[str, list[float]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    #: every load case's full displacement vector, for postprocessors that superpose load cases
    solutions: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def displacement(self) -> np.ndarray:
        return self.fields.displacement

    def summary(self) -> dict:
        vm = self.fields.von_mises
        d = np.linalg.norm(self.fields.displacement, axis=1)
        out = {
            "probes": {k: float(v) for k, v in self.probes.items()},
            "max_von_mises": float(vm.max()),
            "max_displacement": float(d.max()),
            "reaction_force": [float(x) for x in self.reaction_force],
            "reaction_moment": [float(x) for x in self.reaction_moment],
            "applied_force": [float(x) for x in self.applied_force],
            "applied_moment": [float(x) for x in self.applied_moment],
            "equilibrium_error": float(self.equilibrium_error),
            "strain_energy": float(self.strain_energy),
        }
        if self.points:
            out["points"] = self.points
        out.update({k: _jsonable(v) for k, v in self.extra.items() if not k.startswith("_")})
        return out


@dataclass
class Result:
    """All load cases of a model, with what was measured on the way."""

    model: Model
    geometry: ElementGeometry
    K: sp.csr_matrix
    reduction: Reduction
    loadcases: dict[str, LoadCaseResult]
    solver: str
    solver_info: dict
    timings: dict[str, float]
    linear_solver: Solver | None = None  # the set-up solver, reusable by the next similar model
    started: float = 0.0  # time.perf_counter() when solve() began (for the wall time in provenance)

    def to_meshio(self, loadcase: str):
        """The mesh with one load case's fields (displacement mm, stress MPa, strain) as a ``meshio.Mesh``."""
        from fembone.core.fieldmesh import loadcase_mesh

        if loadcase not in self.loadcases:
            raise KeyError(f"no load case '{loadcase}' (load cases: {', '.join(self.loadcases)})")
        return loadcase_mesh(self, self.loadcases[loadcase])

    def to_pyvista(self, loadcase: str):
        """The same as :meth:`to_meshio`, as a ``pyvista.UnstructuredGrid`` ready to plot."""
        import pyvista as pv

        return pv.from_meshio(self.to_meshio(loadcase))

    def summary(self) -> dict:
        m = self.model
        return {
            "case": m.name,
            "nodes": int(m.mesh.n_nodes),
            "elements": int(m.mesh.n_elements),
            "element_type": "tet4" if m.mesh.order == 1 else "tet10",
            "dofs": int(m.n_dofs),
            "solver": self.solver,
            "solver_info": _jsonable(self.solver_info),
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "units": {"length": "mm", "force": "N", "stress": "MPa", "moment": "N mm"},
            "loadcases": {k: v.summary() for k, v in self.loadcases.items()},
            "meta": _jsonable({k: v for k, v in m.meta.items() if not k.startswith("_") and k not in PROVENANCE_META}),
        }


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def assemble(model: Model, assembler: Assembler | None = None) -> tuple[Assembler, sp.csr_matrix]:
    """Global stiffness (N/mm) of the model, reusing ``assembler`` (geometry + pattern) if given."""
    if assembler is None or assembler.n_dofs != model.n_dofs:
        assembler = Assembler(model.mesh, n_dofs=model.n_dofs)
    lame = model.lame()
    if lame is not None:
        K = assembler.matrix(*lame, fmt="csr")
    else:
        K = assembler.matrix(C=model.C, fmt="csr")
    n = model.n_dofs
    for Kx in model.meta.get("_extra_stiffness", []):
        Kx = sp.csr_matrix(Kx)
        Kx.resize((n, n))  # extra nodes added after this matrix was built have no entries in it
        K = K + Kx
    return assembler, K.tocsr()


def solve(
    model: Model, progress: Progress | None = None, assembler: Assembler | None = None,
    solver: Solver | None = None, nodal: bool = True,
) -> Result:
    """Solve all load cases of ``model`` with one factorisation (or one AMG hierarchy).

    Reuse across similar models (studies): ``assembler`` keeps element geometry and the
    sparsity pattern; ``solver`` (``Result.linear_solver`` of an earlier run) keeps PARDISO's
    ordering and symbolic analysis when the pattern is unchanged.  ``nodal=False`` skips
    nodal stress recovery (only needed for pictures and VTU point data).
    """
    started = time.perf_counter()
    progress = progress or _quiet
    timings: dict[str, float] = {}
    mesh = model.mesh
    level = logging.INFO if model.n_dofs >= LONG_DOFS else logging.DEBUG

    log.log(level, "assembling %s: %s DOFs, %s elements", model.name, f"{model.n_dofs:,}", f"{mesh.n_elements:,}")
    t = time.perf_counter()
    assembler, K = assemble(model, assembler)
    timings["assemble"] = time.perf_counter() - t
    progress("assemble", timings["assemble"], f"{model.n_dofs:,} DOFs, {K.nnz:,} non-zeros")

    t = time.perf_counter()
    red = model.constraints.build()
    check_constrained(
        model.layout, mesh.points, mesh.cells, model.constraints, red, model.meta.get("_extra_edges"),
        grounded=model.meta.get("_grounded"),
    )
    names = list(model.loads)
    F = np.column_stack([model.loads[n] for n in names])
    wanted = choose_solver(model.n_dofs, model.solver, n_rhs=len(names))
    if solver is None or type(solver) is not type(wanted):
        solver = wanted
    for k, v in model.solver_options.items():
        setattr(solver, k, v)
    # AMG-CG only multiplies by K_q and builds its hierarchy from it: for supports alone
    # (a selection) it gets K masked on the fly instead of a second matrix (memory)
    uset = model.meta.get("_unilateral")  # unilateral elements: facet contact (exact LCP), annulus fibres (Newton)
    newton = uset is not None and uset.n > LCP_LIMIT
    masked = not newton and isinstance(solver, AMG) and red.is_selection and MaskedMatrix.fits(K, red.dependent)
    if model.prescribed:  # displacement-controlled load cases: their own offsets g
        G = np.column_stack([red.offset(*model.prescribed[n]) if n in model.prescribed else red.g for n in names])
        Kq = MaskedMatrix(K, red.dependent) if masked else reduce_system(K, red)
        Fq = red.T.T @ (F - K @ G)
    elif masked:
        G = None
        Kq = MaskedMatrix(K, red.dependent)
        Fq = red.T.T @ (F - (K @ red.g)[:, None] if np.any(red.g) else F)
    else:
        G = None
        Kq, Fq = reduce_system(K, red, F)
    B = model.layout.rigid_modes(mesh.points, scale=float(np.ptp(mesh.points, axis=0).max()))
    B[red.dependent] = 0.0
    log.log(level, "setting up solver %s (%s)", solver.name, _SETUP_WORDS.get(solver.name, "factorisation"))
    # with many unilateral elements the factor (cycle) is made with them half engaged, K_q + G_q diag(k/2) G_q^T:
    # the start of Newton and its CG preconditioner, within a factor 2 of every active set's matrix
    Gq = _reduced_columns(uset, red.T) if newton else None
    solver.setup((Kq + Gq @ sp.diags(0.5 * np.asarray(uset.k, float)) @ Gq.T).tocsr() if newton else Kq, near_nullspace=B)
    timings["factorise"] = time.perf_counter() - t
    progress("factorise", timings["factorise"], f"solver {solver.name}")

    log.log(level, "solving %d load case(s) with %s", len(names), solver.name)
    t = time.perf_counter()
    ahead = uset is not None and not newton and uset.in_block(solver.name)  # their columns join the load cases' block
    Fq = Fq.reshape(len(Fq), -1)
    rtol = solver.rtol
    if newton:  # only Newton's start: an iterative solver need not converge it far
        solver.rtol = max(rtol, NEWTON_START_RTOL)
    Q = solver.solve(np.hstack([Fq, uset.reduced(red.T)]) if ahead else Fq).reshape(len(Fq), -1)
    solver.rtol = rtol
    Xc, Q = (red.T @ Q[:, len(names):] if ahead else None), Q[:, : len(names)]
    U = red.expand(Q) if G is None else red.T @ Q + G
    timings["solve"] = time.perf_counter() - t
    if newton:  # many elements (fibres): semismooth Newton per load case
        U, F, timings["unilateral"] = _unilateral_newton(uset, solver, red, Kq, Gq, Fq, Q, G, F, names)
    elif uset is not None:
        U, F, timings["contact"] = _unilateral(uset, solver, red, U, F, names, Xc)
    solver.trim()  # what the next set-up rebuilds anyway (an AMG hierarchy) is not kept through post-processing
    del Kq
    progress("solve", timings["solve"], f"{len(names)} load case(s), residual {solver.info.get('residual', 0):.1e}")

    log.log(level, "post-processing %d load case(s)%s", len(names), "" if nodal else " (no nodal recovery)")
    t = time.perf_counter()
    results = {}
    for k, name in enumerate(names):
        results[name] = postprocess(model, assembler.geometry, K, red, U[:, k], F[:, k], name, nodal=nodal,
                                    solutions={n: U[:, j] for j, n in enumerate(names)})
    results = {n: r for n, r in results.items() if n not in model.companions}
    timings["postprocess"] = time.perf_counter() - t
    progress("post-process", timings["postprocess"], "")
    out = Result(model, assembler.geometry, K, red, results, solver.name, dict(solver.info), timings)
    out.linear_solver = solver
    out.started = started
    return out


def _unilateral(uset, solver: Solver, red: Reduction, U: np.ndarray, F: np.ndarray, names: list[str], X=None):
    """:func:`fembone.core.unilateral.correct` with the load cases' solver (its info kept: the load cases')."""
    from fembone.core.unilateral import correct

    t = time.perf_counter()
    info = dict(solver.info)
    U, F = correct(uset, solver.solve, red.T, U, F, names, X)
    uset.info["solver_info"] = {k: v for k, v in solver.info.items() if isinstance(v, (int, float, str))}
    solver.info.clear()
    solver.info.update(info)
    return U, F, time.perf_counter() - t


def _reduced_columns(uset, T: sp.spmatrix) -> sp.csc_matrix:
    """G_q = T^T G of unilateral elements (directions padded to the model's DOFs)."""
    from fembone.core.unilateral import _padded

    return sp.csc_matrix(T.T @ _padded(uset.G, T.shape[0]))


def _unilateral_newton(uset, solver: Solver, red: Reduction, Kq: sp.csr_matrix, Gq: sp.csc_matrix, Fq: np.ndarray,
                       Q: np.ndarray, G, F: np.ndarray, names: list[str]):
    """:func:`fembone.core.unilateral_newton.solve_cases` from the load cases' solutions with the
    elements half engaged, preconditioned by that factor or cycle (one application per block)."""
    from fembone.core.unilateral import _padded
    from fembone.core.unilateral_newton import RTOL, RTOL_DIRECT, solve_cases

    t = time.perf_counter()
    offsets = G if G is not None else (np.repeat(red.g[:, None], len(names), axis=1) if np.any(red.g) else None)
    rtol = RTOL if solver.name in ("amg", "pmg") else RTOL_DIRECT
    Q, Lam = solve_cases(uset, Kq, Gq, Fq, red.T, offsets, Q, _block_preconditioner(solver), names, rtol)
    U = red.T @ Q + (offsets if offsets is not None else 0.0)
    return U, F + np.asarray(_padded(uset.G, U.shape[0]) @ Lam), time.perf_counter() - t


def _block_preconditioner(solver: Solver):
    """The set-up solver as a fixed operator on a block R (n, k) -> approx K^-1 R: a factor solve
    (PARDISO, SuperLU, CHOLMOD: all columns in one call), the p-multigrid cycle, or AMG's V-cycle
    column by column."""
    if hasattr(solver, "_apply"):  # PARDISO
        return lambda R: solver._apply(R).reshape(R.shape)
    if getattr(solver, "M", None) is not None and solver.name == "pmg":
        return lambda R: solver.M(R).reshape(R.shape)
    if getattr(solver, "M", None) is not None:  # AMG
        return lambda R: np.column_stack([solver.M @ R[:, j] for j in range(R.shape[1])])
    if hasattr(solver, "lu"):
        return solver.lu.solve
    if hasattr(solver, "factor"):
        return solver.factor
    raise SolverError(f"solver {solver.name} cannot precondition the unilateral Newton")


_SETUP_WORDS = {"amg": "AMG hierarchy", "pardiso": "ordering and factorisation", "superlu": "factorisation"}


def _all_points(model: Model) -> np.ndarray:
    return np.vstack([model.mesh.points, model.layout.extra_points])


def _dof_positions(model: Model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every DOF: its node position, whether it is a translation, and its axis (0-2)."""
    pts = _all_points(model)
    nn = model.mesh.n_nodes
    ne = model.layout.n_extra
    node = np.concatenate([np.arange(3 * nn) // 3, nn + np.arange(6 * ne) // 6])
    comp = np.concatenate([np.arange(3 * nn) % 3, np.arange(6 * ne) % 6])
    return pts[node], comp < 3, comp % 3


def force_resultants(model: Model, v: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Resultant force (N) and moment about the origin (N mm) of a DOF vector of forces/moments."""
    pos, is_t, axis = _dof_positions(model)
    if mask is not None:
        v = np.where(mask, v, 0.0)
    F = np.zeros(3)
    M = np.zeros(3)
    for a in range(3):
        sel = is_t & (axis == a)
        F[a] = v[sel].sum()
        f = np.zeros((sel.sum(), 3))
        f[:, a] = v[sel]
        M += np.cross(pos[sel], f).sum(axis=0)
        M[a] += v[(~is_t) & (axis == a)].sum()
    return F, M


def postprocess(
    model: Model, geom: ElementGeometry, K: sp.csr_matrix, red: Reduction, u: np.ndarray, f: np.ndarray, name: str,
    nodal: bool = True, solutions: dict[str, np.ndarray] | None = None,
) -> LoadCaseResult:
    mesh = model.mesh
    un = u[: 3 * mesh.n_nodes].reshape(-1, 3)
    fields = compute_fields(mesh, geom, model.C, un, nodal=nodal)
    r = red.reactions(K @ u - f)
    support = red.fixed
    if "_foundation" in model.meta:  # springs to ground: their forces on the body are reactions too
        Kf = sp.csr_matrix(model.meta["_foundation"])
        Kf.resize((len(u), len(u)))
        r = r - Kf @ u
        support = support.copy()
        support[model.meta["_grounded"]] = True
    RF, RM = force_resultants(model, r, support)
    AF, AM = force_resultants(model, f)
    scale = max(np.linalg.norm(AF), np.abs(np.where(red.fixed, r, 0)).sum() / 2, 1e-300)
    mscale = max(np.linalg.norm(AM), scale * float(np.ptp(mesh.points, axis=0).max()), 1e-300)
    err = max(np.linalg.norm(RF + AF) / scale, np.linalg.norm(RM + AM) / mscale)
    if err > EQUILIBRIUM_TOL:
        warnings.warn(f"load case '{name}': equilibrium error {err:.2e} exceeds {EQUILIBRIUM_TOL:g}", stacklevel=2)
    res = LoadCaseResult(
        name, u, fields, RF, RM, AF, AM, float(err), 0.5 * float(u @ (K @ u)),
    )
    for p in model.probes:
        res.probes[p.name] = evaluate_probe(model, geom, fields, p)
    for pname, rp in model.points.items():
        dofs = model.layout.extra_dofs(rp.index)[0]
        res.points[pname] = [float(x) for x in u[dofs]]
        res.point_reactions[pname] = [float(x) for x in np.where(red.fixed[dofs], r[dofs], 0.0)]
    res.solutions = solutions or {name: u}
    for post in model.postprocessors:
        res.extra.update(post(model, geom, res))
    res.solutions = {}
    return res


def evaluate_probe(model: Model, geom: ElementGeometry, fields: Fields, probe: Probe) -> float:
    """A probe's scalar: mean (area- or volume-weighted), min or max of a field component."""
    kind, comp = probe.field.split(".")
    if kind == "displacement":
        u = fields.displacement
        if probe.reduce == "mean" and probe.faces is not None:
            N, nda, _ = face_quadrature(model.mesh.points, probe.faces)
            uq = np.einsum("qn,fna->fqa", N, u[probe.faces])
            dA = np.linalg.norm(nda, axis=2)
            vals = _disp_component(uq, comp)
            return float((vals * dA).sum() / dA.sum())
        vals = _disp_component(u[probe.nodes], comp)
        return float({"mean": np.mean, "min": np.min, "max": np.max}[probe.reduce](vals))
    t = fields.strain if kind == "strain" else fields.stress
    vals = tensor_component(t[probe.elements], comp)
    if probe.reduce == "mean":
        w = geom.volumes[probe.elements]
        return float((vals * w).sum() / w.sum())
    return float(vals.min() if probe.reduce == "min" else vals.max())


def _disp_component(u: np.ndarray, comp: str) -> np.ndarray:
    if comp == "magnitude":
        return np.linalg.norm(u, axis=-1)
    return u[..., "xyz".index(comp)]


def tensor_component(t: np.ndarray, comp: str) -> np.ndarray:
    """Scalar component of (n, 3, 3) tensors by name (xx .. xz, min/max_principal, von_mises, equivalent)."""
    if comp == "von_mises":
        return von_mises(t)
    if comp == "equivalent":
        return equivalent_strain(t)
    if comp == "min_principal":
        return principal(t)[:, 0]
    if comp == "max_principal":
        return principal(t)[:, 2]
    a, b = "xyz".index(comp[0]), "xyz".index(comp[1])
    return t[:, a, b]
