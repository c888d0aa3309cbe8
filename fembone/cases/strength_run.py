"""Run the strength analysis of a vertebra model and report it (see :mod:`fembone.cases.analysis`).

Three hooks on the built model: :func:`strength_postprocessor` (runs the path once, on the
first load case, then adds strength and the nonlinear factor of risk to every axial load
case), :func:`write_strength_files` (CSV curve and per-step VTUs next to summary.json) and
:func:`run_strength` (the analysis itself, usable from Python).  Units: mm, N, MPa.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fembone.core.errors import InputError
from fembone.core.nonlinear import PathOptions, PathResult, isotropic_moduli, plastic_set, solve_path
from fembone.core.plasticity import YieldCurve
from fembone.spine.strength import OFFSET_STRAIN, BoneLaw, compressive_curve, failure_strain, strength_metrics

log = logging.getLogger("fembone.strength")
TOP = "superior"
#: apparent density (g/cm^3) used for cortical and posterior bone when a keyak2001 law is given to them
#: (compact bone 1.8-1.9 g/cm^3 [M])
COMPACT_DENSITY = 1.85
#: floor of the apparent density mapped from CT (g/cm^3): calibrated densities below about
#: -37 mg/cc K2HPO4 would give a negative ash density, for which Keyak's power laws are undefined
MIN_DENSITY = 0.01


@dataclass
class StrengthRun:
    """A strength analysis: the path, what it means, and per-point failure thresholds."""

    path: PathResult
    displacement: np.ndarray  # platen travel, mm (compression positive)
    summary: dict
    elements: np.ndarray  # plastic elements
    fail_alpha: np.ndarray  # (n_points,) plastic strain from which a point counts as failed
    nq: int
    peak: int = -1  # step of the ultimate load (first local maximum of the force)

    def element_fields(self, k: int, n_elements: int) -> dict[str, np.ndarray]:
        """Cell fields of step ``k``: mean plastic strain, yielded and failed volume shares."""
        st = self.path.states[k]
        a = st.alpha.astype(float).reshape(-1, self.nq)
        v = self.path.point_volume.reshape(-1, self.nq)
        fa = self.fail_alpha.reshape(-1, self.nq)
        out = {n: np.zeros(n_elements) for n in ("plastic_strain", "yielded", "failed")}
        out["plastic_strain"][self.elements] = (a * v).sum(axis=1) / v.sum(axis=1)
        out["yielded"][self.elements] = ((a > 0) * v).sum(axis=1) / v.sum(axis=1)
        out["failed"][self.elements] = (((a > 0) & (a >= fa)) * v).sum(axis=1) / v.sum(axis=1)
        return out

    def failed_fraction(self, k: int) -> float:
        a = self.path.states[k].alpha.astype(float)
        v = self.path.point_volume
        return float((((a > 0) & (a >= self.fail_alpha)) * v).sum() / v.sum())


def _regions(model) -> dict[str, np.ndarray]:
    """Elements whose dominant phase is each bone region (share >= 1/2).

    Shares come from the painted fractions (``_trabecular_share``, ``_cortical_share``) or,
    in models without painting (a segment without lesions or cement), from the cell sets."""
    meta, sets = model.meta, model.mesh.cell_sets
    if "_trabecular_share" in meta:
        trab, cort = meta["_trabecular_share"], meta["_cortical_share"]
    elif "trabecular" in sets and "cortical_shell" in sets:
        trab, cort = np.zeros(model.mesh.n_elements), np.zeros(model.mesh.n_elements)
        trab[sets["trabecular"]], cort[sets["cortical_shell"]] = 1.0, 1.0
    else:
        raise InputError("a strength analysis needs a vertebra model with painted bone regions (trabecular, "
                         "cortical shell); this model has none", "analysis.type")
    names = [m.name for m in model.materials]
    post = np.zeros(model.mesh.n_elements, bool)
    if "posterior_elements" in names:
        post = model.material_id == names.index("posterior_elements")
    return {
        "trabecular": np.flatnonzero((trab >= 0.5) & (trab >= cort)),
        "cortical_shell": np.flatnonzero((cort >= 0.5) & (cort > trab)),
        "posterior_elements": np.flatnonzero(post & (trab < 0.5) & (cort < 0.5)),
    }


def _pad(knots: list[np.ndarray], stresses: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Curves of different knot counts in one array: extend each flat beyond its last knot."""
    m = max(k.shape[1] for k in knots)
    A, S = [], []
    for k, s in zip(knots, stresses, strict=True):
        extra = m - k.shape[1]
        if extra:
            k = np.column_stack([k] + [k[:, -1] + (j + 1.0) for j in range(extra)])
            s = np.column_stack([s] + [s[:, -1]] * extra)
        A.append(k)
        S.append(s)
    return np.vstack(A), np.vstack(S)


def bone_plastic_set(model, laws: dict[str, BoneLaw | None], path: str = "analysis.laws"):
    """The plastic set of a vertebra model: elements, laws and failure thresholds per point.

    Trabecular density: ``model.meta['_apparent_density']`` (per element, g/cm^3) when a builder
    provides it, else the material preset's ``trabecular_density``.  CT models (cell data
    ``ct_modulus_MPa``, ``ct_density_mgcc``): each element's own mapped bone modulus is its
    E_bone (the strain-based yield then follows the mapped stiffness) and its apparent density
    comes from the calibrated density, rho_app = (1.06 rho_QCT + 0.0389) / 0.6
    (:func:`fembone.spine.ct.laws.qct_to_app`), for every bone region."""
    info = model.meta.get("materials", {})
    by_name = {m.name: m for m in model.materials}
    els, knots, stresses, ratio, fail = [], [], [], [], []
    used = {}
    ct = None
    if "ct_modulus_MPa" in model.cell_data and "ct_density_mgcc" in model.cell_data:
        from fembone.spine.ct.laws import qct_to_app

        qct = np.asarray(model.cell_data["ct_density_mgcc"], float) / 1000.0
        ct = (np.asarray(model.cell_data["ct_modulus_MPa"], float), np.maximum(qct_to_app(qct), MIN_DENSITY), qct)
    for region, idx in _regions(model).items():
        law = laws.get(region)
        if law is None or len(idx) == 0:
            continue
        try:
            K, G = isotropic_moduli(model.C[idx])
        except ValueError as exc:
            raise InputError(f"{region}: {exc}", f"materials.{region}") from None
        E_el = 9.0 * K * G / (3.0 * K + G)
        if ct is not None:  # CT: the element's own mapped bone modulus and calibrated density
            E_bone = np.maximum(ct[0][idx], 1e-6)
            rho, rho_qct = ct[1][idx], ct[2][idx]
        else:
            rho_qct = None
            mat = by_name.get(region)
            if getattr(mat, "E", None) is None:
                raise InputError(f"a strength analysis needs isotropic {region} bone (set its transverse_ratio to 1)",
                                 f"materials.{region}")
            E_bone = np.full(len(idx), float(mat.E))
            rho = info.get("trabecular_density") if region == "trabecular" else COMPACT_DENSITY
        if region == "trabecular" and "_apparent_density" in model.meta:  # per element, from the builder
            rho = np.asarray(model.meta["_apparent_density"], float)[idx]
        a, s = compressive_curve(law, E_bone, E_el / E_bone, rho_app=rho, rho_qct=rho_qct)
        els.append(idx)
        knots.append(a)
        stresses.append(s)
        ratio.append(np.full(len(idx), law.tension_ratio))
        fail.append(failure_strain(law, a))
        used[region] = {"law": law.name, "elements": int(len(idx)), "post_yield": law.post_yield,
                        "yield_strain_compression": law.yield_strain_compression,
                        "yield_strain_tension": law.yield_strain_tension, "source": law.source}
        if law.yield_stress is not None:
            used[region].update(yield_strain_compression=None, yield_strain_tension=None,
                                yield_stress={"a": law.yield_stress[0], "b": law.yield_stress[1],
                                              "formula": "a rho_QCT^b MPa (g/cm^3), compression and tension"})
        if ct is not None:
            used[region]["bone_modulus"] = "per element, mapped from CT (ct_modulus_MPa)"
            used[region]["apparent_density"] = {"from": "CT: (1.06 rho_QCT + 0.0389) / 0.6", "mean": float(np.mean(rho))}
    if not els:
        raise InputError("no bone region has an elastic-plastic law: nothing can fail", path)
    elements = np.concatenate(els)
    A, Sv = _pad(knots, stresses)
    pset = plastic_set(model, elements, YieldCurve(A, Sv), np.concatenate(ratio))
    nq = pset.law.n // len(elements)
    return pset, np.repeat(np.concatenate(fail), nq), nq, used


def run_strength(model, spec) -> StrengthRun:
    """Push the platen of ``model`` down by ``spec.max_displacement`` and follow the force (see module doc)."""
    mesh = model.mesh
    uz = int(model.layout.extra_dofs(model.points[TOP].index)[0][2])
    fixed = any(uz in np.asarray(dofs) for dofs, _ in model.prescribed.values())
    cset = model.constraints
    if not fixed:  # force-controlled load cases leave the platen free along z: hold it for this analysis
        cset = copy.deepcopy(model.constraints)
        cset.fix(np.array([uz]), 0.0, label="platen displacement (strength analysis)")
    pset, fail_alpha, nq, used = bone_plastic_set(model, spec.laws, f"{spec.path}.laws")
    opt = PathOptions(steps=spec.steps, rtol=spec.tolerance, linear=spec.linear, stop_drop=spec.stop_after_peak,
                      solver=model.solver)
    log.info("strength analysis: platen down to %.3g mm in %d steps, %d elastic-plastic elements",
             spec.max_displacement, spec.steps, len(pset.elements))
    path = solve_path(model, pset, np.array([uz]), np.array([-spec.max_displacement]), opt, constraints=cset)
    d = path.lam * spec.max_displacement
    body = np.concatenate([mesh.cell_sets[g] for g in ("cortical_shell", "trabecular") if g in mesh.cell_sets])
    z = mesh.points[np.unique(mesh.cells[body]), 2]
    height = float(np.ptp(z))
    m = strength_metrics(d, path.force, OFFSET_STRAIN * height)
    lam_y, F_y = path.first_yield()
    k = m["peak_index"]  # the first local maximum (ultimate load), not the path's largest force
    run = StrengthRun(path, d, {}, pset.elements, fail_alpha, nq, peak=k)
    summary = {
        "strength": m["strength"], "unit": "N", "displacement_at_peak": m["displacement_at_peak"],
        "peak_reached": m["peak_reached"], "path_maximum": m["path_maximum"],
        "yield_force": m["yield_force"], "yield_displacement": m["yield_displacement"],
        "yield_offset": m["offset"], "yield_offset_note": f"{100 * OFFSET_STRAIN:g} % of the bone height {height:.1f} mm",
        "first_yield_force": F_y, "first_yield_displacement": lam_y * spec.max_displacement,
        "initial_stiffness": m["initial_stiffness"],
        "failed_volume_fraction_at_peak": run.failed_fraction(k) if path.states else None,
        "yielded_volume_fraction_at_peak": float(path.yielded_fraction[k]),
        "max_displacement": spec.max_displacement, "steps_requested": spec.steps,
        "finished": path.finished, "message": path.message, "laws": used,
        "solver": {key: (round(v, 3) if isinstance(v, float) else v) for key, v in path.stats.items()},
        "curve": {"displacement": [float(x) for x in d], "force": [float(x) for x in path.force]},
        "small_strain": True,
    }
    seg = model.meta.get("_segment")
    if seg is not None and path.states:  # a segment: which vertebra failed
        failed = run.element_fields(k, mesh.n_elements)["failed"]
        vol = np.abs(mesh.volumes())
        by = {}
        for lv in seg.levels:
            e = np.intersect1d(seg.elements[lv], pset.elements)
            by[lv] = float((failed[e] * vol[e]).sum() / vol[e].sum()) if len(e) else 0.0
        summary["failed_volume_fraction_at_peak_by_level"] = by
    if not m["peak_reached"]:
        summary["note"] = "the force still rose at the last step: strength is a lower bound (raise max_displacement)"
    run.summary = summary
    log.info("strength %.0f N at %.3f mm (%d steps, %d Newton iterations, %.1f s)", m["strength"],
             m["displacement_at_peak"], path.stats["steps"], path.stats["newton_iterations"], path.stats["wall_s"])
    return run


def strength_postprocessor(model, geom, res) -> dict:
    """Model postprocessor: run the strength analysis once; strength and nonlinear factor of risk per load case."""
    if res.name in model.companions:
        return {}
    run = model.meta.get("_strength_run")
    if run is None:
        run = run_strength(model, model.meta["_strength_spec"])
        model.meta["_strength_run"] = run
        model.meta["strength"] = run.summary
    out: dict = {}
    risk = res.extra.get("risk")
    pre = model.meta.get("load_presets", {}).get(res.name, {})
    S = run.summary["strength"]
    if isinstance(risk, dict) and risk.get("load_unit") == "N" and pre.get("kind") == "force" and S > 0:
        applied = risk.get("applied_load")
        risk["strength"] = S
        risk["strength_method"] = "nonlinear (first peak of the platen force-displacement curve)"
        if applied is not None:
            risk["factor_of_risk_nonlinear"] = float(applied) / S
        if risk.get("strength_estimate"):
            risk["strength_linear_over_nonlinear"] = float(risk["strength_estimate"]) / S
    if run.path.states:
        cd = dict(res.extra.get("_cell_data", {}))
        fields = run.element_fields(run.peak, model.mesh.n_elements)
        cd.update({f"{k}_at_peak": v for k, v in fields.items()})
        out["_cell_data"] = cd
    return out


def write_strength_files(result, out: Path, vtu: bool = True) -> dict[str, str]:
    """``strength_curve.csv`` and (``vtu``) ``strength.pvd`` with one VTU per converged step."""
    from fembone.core.output import atomic_write_text, write_pvd

    run: StrengthRun | None = result.model.meta.get("_strength_run")
    if run is None:
        return {}
    out = Path(out)
    p = run.path
    rows = ["step,load_factor,platen_displacement_mm,force_N,newton_iterations,step_cuts,"
            "yielded_volume_fraction,failed_volume_fraction"]
    for k in range(len(p.lam)):
        failed = run.failed_fraction(k) if p.states else float("nan")
        rows.append(f"{k},{p.lam[k]:.6g},{run.displacement[k]:.6g},{p.force[k]:.6g},{p.iterations[k]},{p.cuts[k]},"
                    f"{p.yielded_fraction[k]:.6g},{failed:.6g}")
    atomic_write_text(out / "strength_curve.csv", "\n".join(rows) + "\n")
    files = {"strength_curve": "strength_curve.csv"}
    if vtu and p.states:
        import meshio

        model = result.model
        mesh = model.mesh
        ctype = "tetra" if mesh.order == 1 else "tetra10"
        (out / "strength").mkdir(exist_ok=True)
        steps = {}
        for k, st in enumerate(p.states):
            cells = run.element_fields(k, mesh.n_elements)
            cells["material"] = model.material_id.astype(np.int32)
            u = st.u[: 3 * mesh.n_nodes].reshape(-1, 3).astype(float)
            name = f"strength/step_{k:03d}.vtu"
            meshio.write(out / name, meshio.Mesh(mesh.points, [(ctype, mesh.cells)], point_data={"displacement": u},
                                                 cell_data={n: [v] for n, v in cells.items()}), binary=True)
            steps[f"step {k}: {run.displacement[k]:.3f} mm, {p.force[k]:.0f} N"] = name
        files["strength_steps"] = write_pvd(out / "strength.pvd", steps).name
    return files
