"""The ``risk`` block of a vertebra load case (a model postprocessor). Units: N, N mm, mm, MPa.

* stiffness: axial F / |u_z| of the platen or plate (N/mm; under displacement control the
  platen's reaction over its displacement), rotational M / |theta| (N mm / rad);
* trabecular failure after Pistoia et al. (Bone 30:842, 2002): failed volume = share of
  trabecular bone whose effective strain sqrt(2U/E) exceeds 0.7 %; strength = the load at
  which 2 % of it does (for moment cases with a preload, the preload held fixed);
  factor of risk = applied / strength (Keaveny & Bouxsein 2008);
* the cortex judged separately against cortical yield strains;
* posterior-wall bulge relative to the wall's own rigid motion (Whyne et al. 2001);
* cement stresses in bulk and interdigitated cement against PMMA strengths.
The formulas are in :mod:`fembone.spine.risk` and :mod:`fembone.spine.cement`.
"""

from __future__ import annotations

import numpy as np

from fembone.core.results import displacement_gradient, strain_from_gradient, stress_from_strain
from fembone.core.selectors import orient_faces
from fembone.spine import risk
from fembone.spine.cement import cement_phase_stress, cement_utilisation

TOP = "superior"


def _strain_q(model, geom, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strain and stress (ne, nq, 3, 3) at quadrature points of a full displacement vector."""
    un = u[: 3 * model.mesh.n_nodes].reshape(-1, 3)
    H = displacement_gradient(un, model.mesh.cells, geom.grads)  # (nq, 3, 3, ne)
    eps = strain_from_gradient(H).transpose(3, 0, 1, 2)  # (ne, nq, 3, 3)
    return eps, stress_from_strain(eps, model.C)


def vertebra_risk(model, geom, res) -> dict:
    mesh = model.mesh
    out: dict = {}
    pre = model.meta.get("load_presets", {}).get(res.name)
    top = res.points.get(TOP)
    applied = None
    if pre and top is not None:
        if pre["kind"] == "force":
            uz = abs(top[2])
            if pre.get("displacement") is not None:
                force = abs(res.point_reactions[TOP][2])
                out["platen_displacement"] = pre["displacement"]
                out["platen_force"] = force
                applied = force
            else:
                applied = pre["magnitude"]
            out["axial_stiffness"] = applied / uz if uz > 0 else None
            out["applied_load"] = applied
            out["load_unit"] = "N"
        else:
            d = np.asarray(pre["direction"])
            th = abs(float(np.asarray(top[3:]) @ d))
            out["rotational_stiffness"] = pre["magnitude"] / th if th > 0 else None
            applied = pre["magnitude"]
            out["applied_load"] = applied
            out["load_unit"] = "N mm"
            if pre.get("follower"):
                out["axial_preload"] = pre["follower"]
    wall = orient_faces(mesh, mesh.facet_sets["posterior_wall"])[0]
    u = res.fields.displacement
    out["posterior_wall_bulge"] = risk.bulge(u, mesh.points, wall)
    out["posterior_wall_bulge_absolute"] = risk.bulge_absolute(u, mesh.points, wall)
    wdet = geom.wdet.T
    E = risk.young_modulus(model.C)
    eps, sig = res.fields.strain_q, res.fields.stress_q
    trab = model.meta["_trabecular_share"]
    tf = risk.trabecular_failure(eps, sig, E, wdet, trab)
    out["failed_volume_fraction"] = tf["failed_volume_fraction"]
    out["tail_in_mixed_elements"] = tf.get("tail_mixed_share")
    companion = model.meta.get("_preload_companions", {}).get(res.name)
    if applied is not None:
        if companion is not None and companion in res.solutions:
            # the moment alone = this load case less its preload (linear superposition)
            u_pre = res.solutions[companion]
            eps_p, sig_p = _strain_q(model, geom, u_pre)
            st = risk.strength_with_preload(eps - eps_p, sig - sig_p, E, wdet, trab, applied, eps_p, sig_p)
            out["strength_note"] = "moment at failure with the axial preload held fixed"
        else:
            st = risk.strength_with_preload(eps, sig, E, wdet, trab, applied)
        lam = st["strength_multiplier"]
        if np.isfinite(lam) and lam > 0:
            out["strength_estimate"] = st["strength"]
            out["factor_of_risk"] = 1.0 / lam
    cortex = risk.cortical_failure(eps, wdet, model.meta["_cortical_share"])
    out.update(cortex)
    C_pmma = model.materials[[m.name for m in model.materials].index("pmma")].stiffness()
    out.update(cement_utilisation(cement_phase_stress(eps, C_pmma), wdet,
                                  {"bulk": model.meta["_cement_share"], "interdigitated": model.meta["_interdigitated_share"]}))
    out.update(risk.cement_metrics(res.fields.stress, model.meta["_cement_share"]))
    return {"risk": out}
