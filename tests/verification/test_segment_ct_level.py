"""Verification of segments with a CT or imported level (fembone.spine.segment_import).

* Mapped modulus: a synthetic CT (a box body with an arch, uniform 200 mg/cc K2HPO4) as the L2
  of an L1-L2 segment: every bone element with no disc voxel in it has the density law's
  modulus, Bonelab's E = 2980 rho^1.05 (rho in g/cc) = 2980 x 0.2^1.05 MPa, the elements wholly
  in its lesion label the lytic tissue's 2 MPa, and the disc elements the segment's annulus and
  nucleus.
* Same element, same stiffness as the CT case: the VerSe L2 with its labelled caps as half
  discs meshes exactly as the CT pipeline meshes it alone; every bone element free of cap
  voxels has the CT case's stiffness (build_ct_model_inputs) to rounding.
* Equilibrium of an L1-L3 segment with the VerSe L2 (synthesised half discs): reactions
  balance the applied force and moments to 1e-8 in every load case; likewise an L3-L4
  segment whose L4 is the imported ArtiSynth surface.
* Rigid motion through mid-disc ties on unequal outlines: the real L2's disc faces differ
  from the generated L1's and L3's, and the dual mortar rows reproduce every rigid motion (and
  every linear field) of the stack to 1e-10, so a rigid motion of the top plate moves the
  whole stack rigidly.
* Range of motion (reported, not pinned to the literature): the CT segment against the
  all-generated segment of the same levels and mesh, and Yamamoto et al. 1989 (Spine 14:1256,
  L1-L2 and L2-L3 at 10 N m).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from fembone.cases import build_model
from fembone.core.analysis import solve
from fembone.core.constraints import ConstraintSet, DofLayout
from fembone.core.materials import Isotropic
from fembone.spine.segment import face_area, tie_discs

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "vertebrae"
IM, SEG = DATA / "sub-verse004_0000_vertebra_21_im.nii.gz", DATA / "sub-verse004_0000_vertebra_21_seg.nii.gz"
OBJ = DATA / "L4_Schrumpfverpacken.obj"
need_data = pytest.mark.skipif(not (IM.is_file() and SEG.is_file() and OBJ.is_file()), reason="shared vertebra data missing")
VERSE = {"image": str(IM), "labels": {"file": str(SEG), "bone": [1, 2, 3, 4], "cortical": [2, 4], "posterior": [3, 4],
                                      "caps": [5, 6]},
         "calibration": {"kind": "density"}, "law": "bonelab_kopperdahl", "mesh_size": 3.0}
MOMENTS = {k: [{"preset": k, "moment": 7500}] for k in ("flexion", "extension", "lateral_bending", "axial_rotation")}
#: Yamamoto et al. 1989, Spine 14:1256, 10 N m, one direction (deg): L1-L2 and L2-L3 (quoted from memory [M])
YAMAMOTO = {"L1-L2": {"flexion": 5.8, "extension": 4.3, "lateral_bending": 4.9, "axial_rotation": 2.3},
            "L2-L3": {"flexion": 6.5, "extension": 4.3, "lateral_bending": 7.0, "axial_rotation": 2.6}}


def _case(levels, vertebrae, loads=None, mesh_size=4.0) -> dict:
    return {"name": "seg", "segment": {"levels": levels, "mesh_size": mesh_size, "order": 1, "vertebrae": vertebrae},
            "materials": {"preset": "normal"},
            "loadcases": loads or {"compression": [{"preset": "compression", "force": 400}], **MOMENTS}}


def _E(C: np.ndarray) -> np.ndarray:
    return 1.0 / np.linalg.inv(C)[:, 0, 0]


def _build(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the VerSe header's axes, small islands: reported, expected
        return build_model(case, base=".", source=case["name"])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A box body (30 x 26 x 25 mm) with an arch around a canal, 1 mm voxels, 200 mg/cc bone."""
    import nibabel as nib

    d = tmp_path_factory.mktemp("synthetic_ct")
    n = (50, 60, 50)
    x, y, z = np.meshgrid(*[np.arange(k) - k // 2 for k in n], indexing="ij")
    L = np.zeros(n, np.int16)
    L[(np.abs(x) <= 15) & (y >= 0) & (y <= 25) & (np.abs(z) <= 12)] = 1
    L[(np.abs(x) <= 15) & (y >= -20) & (y < 0) & (np.abs(z) <= 6) & ~((np.abs(x) <= 8) & (y >= -14))] = 3
    L[(np.abs(x) <= 5) & (y >= 8) & (y <= 18) & (np.abs(z) <= 5)] = 2  # a lesion label in the body
    aff = np.eye(4)
    aff[:3, 3] = [-(k // 2) for k in n]
    nib.save(nib.Nifti1Image(L, aff), str(d / "seg.nii.gz"))
    nib.save(nib.Nifti1Image(np.where(L > 0, 200.0, -50.0), aff), str(d / "im.nii.gz"))
    return d


def test_ct_level_modulus_is_the_density_law(cache, synthetic):
    ct = {"image": str(synthetic / "im.nii.gz"), "labels": {"file": str(synthetic / "seg.nii.gz"), "bone": [1, 3], "posterior": [3],
                                                             "lesion": [2]},
          "calibration": {"kind": "density"}, "law": "bonelab_kopperdahl", "anterior": "+y", "cranial": "+z", "mesh_size": 3.0}
    model = _build(_case(["L1", "L2"], {"L2": {"ct": ct}}, mesh_size=3.0))
    seg = model.meta["_segment"]
    E = _E(model.C)
    els = seg.elements["L2"]
    bone = np.concatenate([seg.set("L2", g) for g in ("cortical_shell", "trabecular", "posterior_elements")])
    pure = bone[np.isclose(model.cell_data["ct_density_mgcc"][bone], 200.0, rtol=0, atol=1e-9)]
    hand = 2980.0 * 0.2**1.05  # Bonelab / Kopperdahl law, rho 0.2 g/cc
    E_pure = E[pure]
    print(f"hand {hand:.6f} MPa; {len(pure)} of {len(bone)} L2 bone elements at 200 mg/cc: E {E_pure.min():.9f}..{E_pure.max():.9f}")
    assert len(pure) > 0.5 * len(bone)
    full = pure[E_pure > hand * (1 - 1e-6)]  # elements without disc-voxel (annulus) quadrature points
    assert len(full) > 0.3 * len(bone)
    assert np.allclose(E[full], hand, rtol=1e-12, atol=0)
    assert E_pure.max() <= hand * (1 + 1e-12)
    lesion = seg.set("L2", "lesion")  # the CT lesion label: lytic tissue, E 2 MPa (fembone.spine.ct.laws)
    whole = lesion[model.cell_data["ct_lesion_fraction"][lesion] == 1.0]
    print(f"lesion: {len(lesion)} elements, {len(whole)} wholly inside: E {E[whole].min():.12f}..{E[whole].max():.12f}")
    assert len(whole) > 5 and np.allclose(E[whole], 2.0, rtol=1e-12, atol=0)
    for grp, mat in (("disc_superior_annulus", (4.2, 0.45)), ("disc_inferior_nucleus", (1.0, 0.499))):
        ids = seg.set("L2", grp)
        assert len(ids) and np.allclose(model.C[ids], Isotropic(name="m", E=mat[0], nu=mat[1]).stiffness(), rtol=1e-12)
    assert len(els) == len(np.unique(np.concatenate([bone] + [seg.set("L2", g) for g in ("disc_superior_annulus", "disc_superior_nucleus",
                                                                                       "disc_inferior_annulus", "disc_inferior_nucleus")])))


@need_data
def test_ct_level_has_the_ct_case_stiffness(cache):
    from fembone.spine.ct import build_ct_model_inputs, parse_ct_spec

    model = _build(_case(["L1", "L2"], {"L2": {"ct": {**VERSE, "order": 1}, "half_discs": "labels"}}))
    seg = model.meta["_segment"]
    alone = build_ct_model_inputs(parse_ct_spec({**VERSE, "order": 1}), ".")
    assert alone.mesh.n_elements == len(seg.elements["L2"])
    bone = np.flatnonzero(alone.fractions["cap"] == 0.0)
    mine = model.C[seg.elements["L2"][bone]]
    err = np.abs(mine - alone.C[bone]).max() / np.abs(alone.C[bone]).max()
    print(f"{len(bone)} L2 elements free of cap voxels: stiffness against the CT case, max relative difference {err:.1e}")
    assert err < 1e-13
    shift = np.asarray(model.meta["segment"]["imported"]["L2"]["body_centroid_shift_mm"])
    x = model.mesh.points[seg.nodes["L2"]] - [0, 0, seg.offset["L2"]] + shift
    assert np.allclose(x, alone.mesh.points, atol=1e-9)  # the same mesh, moved


@pytest.fixture(scope="module")
def ct_segment(cache):
    model = _build(_case(["L1", "L2", "L3"], {"L2": {"ct": VERSE}}))
    return model, solve(model)


@need_data
def test_ct_segment_equilibrium(ct_segment):
    model, res = ct_segment
    for name, lc in res.loadcases.items():
        print(f"{name}: equilibrium error {lc.equilibrium_error:.1e} ({model.n_dofs} DOFs)")
        assert lc.equilibrium_error < 1e-8, name


@need_data
def test_rigid_motion_passes_ties_on_unequal_outlines(ct_segment):
    model, _ = ct_segment
    seg, mesh = model.meta["_segment"], model.mesh
    cs = ConstraintSet(DofLayout(mesh.n_nodes))
    info = tie_discs(cs, seg)
    for up, lo in seg.pairs():
        a, b = (face_area(mesh, mesh.facet_sets[k]) for k in (f"{up}.disc_inferior_face", f"{lo}.disc_superior_face"))
        print(f"{up}-{lo}: faces {a:.1f} and {b:.1f} mm^2")
        assert abs(a / b - 1) > 0.01  # the outlines differ
    red = cs.build()
    R = cs.layout.rigid_modes(mesh.points, scale=1.0)
    lin = np.zeros((3 * mesh.n_nodes, 9))
    for i in range(3):
        for j in range(3):
            lin[i::3, 3 * i + j] = mesh.points[:, j]
    fields = np.hstack([R, lin])
    gap = np.abs(cs._T0 @ fields - fields)[red.dependent].max() / np.abs(mesh.points).max()
    print(f"tied {[d['tied_nodes'] for d in info]}, free {[d['free_nodes'] for d in info]}; rigid/linear fields through "
          f"the ties: max error {gap:.1e} (relative)")
    assert gap < 1e-10


@need_data
def test_rigid_motion_of_the_top_plate_moves_the_stack_rigidly(cache):
    """The support moved from the bottom disc face to the top plate, which is given a rigid motion
    (0.1 mm, 1e-3 rad about a skew axis): with no load, every node of the stack (generated L1 and
    L3, CT L2, mortar ties on unequal outlines, facet springs) follows that rigid motion."""
    model = _build(_case(["L1", "L2", "L3"], {"L2": {"ct": VERSE}}, {"rigid": [{"preset": "compression", "force": 0.0}]}))
    cs, ref = model.constraints, model.points["superior"]
    assert len(cs._fixed_dofs) == 1  # the bottom support only
    t, th = np.array([0.1, -0.05, 0.08]), 1e-3 * np.array([0.6, -0.3, 0.74])
    cs._fixed_dofs[0] = model.layout.extra_dofs(ref.index)[0]
    cs._fixed_vals[0] = np.concatenate([t, th])
    res = solve(model)
    lc = res.loadcases["rigid"]
    x = model.mesh.points - ref.position
    exact = t + np.cross(th, x)
    u = lc.u[: 3 * model.mesh.n_nodes].reshape(-1, 3)
    err = np.abs(u - exact).max() / np.abs(exact).max()
    print(f"rigid plate motion: stack displacement off the rigid field by {err:.1e} (relative), strain energy "
          f"{lc.strain_energy:.1e} N mm")
    assert err < 1e-10 and abs(lc.strain_energy) < 1e-9  # a 0.1 mm squeeze of the stack stores ~10 N mm


@need_data
@pytest.mark.slow
def test_range_of_motion_report(ct_segment):
    """Reported only: the CT L2 segment, the all-generated one (same levels and mesh), Yamamoto 1989."""
    _, res = ct_segment
    gen = _build(_case(["L1", "L2", "L3"], {}))
    rg = solve(gen)
    for k in MOMENTS:
        a = res.loadcases[k].extra["segment"]["range_of_motion_deg"]
        b = rg.loadcases[k].extra["segment"]["range_of_motion_deg"]
        print(f"{k:16s} CT L2: L1-L2 {a['L1-L2']:6.2f}  L2-L3 {a['L2-L3']:6.2f} | generated: {b['L1-L2']:6.2f} {b['L2-L3']:6.2f}"
              f" | Yamamoto 1989 (10 N m): {YAMAMOTO['L1-L2'][k]} {YAMAMOTO['L2-L3'][k]} deg")
        assert all(np.isfinite(v) for v in (*a.values(), *b.values()))


@need_data
def test_surface_level_segment_equilibrium(cache):
    model = _build(_case(["L3", "L4"], {"L4": {"surface": {"file": str(OBJ), "units": "m"}}},
                         {"compression": [{"preset": "compression", "force": 400}], "flexion": MOMENTS["flexion"]}))
    res = solve(model)
    info = model.meta["segment"]["imported"]["L4"]
    print(f"L4 from the surface: discs {info['discs']['superior']['face_area_mm2']:.0f} / "
          f"{info['discs']['inferior']['face_area_mm2']:.0f} mm^2, ties {model.meta['segment']['discs']}")
    for name, lc in res.loadcases.items():
        print(f"{name}: equilibrium error {lc.equilibrium_error:.1e}")
        assert lc.equilibrium_error < 1e-8, name
