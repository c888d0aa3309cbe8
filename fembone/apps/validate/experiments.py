"""Published experiments and models that fembone reproduces, each in the set-up its paper used.

Every experiment builds ordinary case dictionaries (the same keys as a case file), solves
them and returns rows: quantity, computed value, published value, pass band and source.
Bands are stated with their reason in :data:`BANDS`; none was set by looking at fembone's
answer.  Units: mm, N, MPa, N mm, mL.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fembone.cases import build_model
from fembone.core.analysis import solve


@dataclass(frozen=True)
class Resolution:
    """Mesh of every validation model: ``coarse`` for the test suite, ``full`` for converged figures."""

    name: str
    mesh_size: float
    order: int


COARSE = Resolution("coarse", 3.0, 1)
FULL = Resolution("full", 2.0, 2)


@dataclass
class Row:
    experiment: str
    quantity: str
    computed: float
    published: float | None
    low: float
    high: float
    unit: str
    source: str
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.computed) and self.low <= self.computed <= self.high)

    def as_dict(self) -> dict:
        return {**self.__dict__, "ok": self.ok}


SOURCES = {
    "costa": "Costa et al. 2020, Bone Rep 12:100257 (micro-FE, lytic lesions as holes, 4-35 % of body)",
    "kinzl": "Kinzl, Benneker, Boger, Zysset & Pahr 2012, Eur Spine J 21:920 (39 body sections, PMMA fills)",
    "belkoff": "Belkoff, Mathis, Jasper & Deramond 2001, Spine 26:1537 (cement volume restoring stiffness, T6-L5)",
    "molloy": "Molloy, Mathis & Belkoff 2003, Spine 28:1549 (fill fraction restoring stiffness: 29.8 %)",
    "tschirhart": "Tschirhart, Finkelstein & Whyne 2006, Ann Biomed Eng 34:494 (metastatic segment, 800 N: bulge 0.48 mm; 1 N m flexion: 0.018 mm)",
    "salvatore": "Salvatore et al. 2018, BMC Musculoskelet Disord 19:56 (tumour 0/15/30 % of body: bulge +178 %, +88 %)",
    "verse": "VerSe CT cohort nonlinear FE strength 3.4 +- 1.6 kN (field notes; Bonelab spineFE benchmark)",
    "bonelab": "Bonelab spineFE benchmark, VerSe sub-verse004 L2 (voxel FE, PMMA caps, 0.2 mm): linear stiffness 12,362 N/mm",
    "eswaran": "Eswaran et al. 2007, Comput Methods Appl Mech Eng 196:3025 (micro-FE of 13 vertebrae: shell 0.38 +- 0.06 mm, 38-68 % of vertebral stiffness)",
}

#: pass bands and why (published value p)
BANDS = {
    "costa": "p x [0.5, 1.5], at least +-2 points: the abstract gives only the trend line (3 % at 4 %, 30 % at "
             "35 %); location alone moved the loss, and the specimens differ from a parametric L1",
    "kinzl_partial": "[0, 16 %]: partial fills gave < 16 % and no significant change",
    "kinzl_column": "[16, 50 %]: above the partial-fill ceiling, below 1.5 x the +33 % mean",
    "restore": "[2, 8] mL: Belkoff 2001's range of volumes that restored stiffness across levels and cements",
    "bulge_ratio": "p x [0.5, 1.5]: ratios from a different segment model (L3-L5) and load",
    "bulge_axial": "[0.1, 1.0] mm: within a factor of ~5 of the published 0.48 mm (tumour size and bone density "
                   "of that model are not given)",
    "load_type": "[5, 100]: axial 800 N bulges far more than 1 N m flexion (published ratio 27)",
    "strength": "[1.8, 5.0] kN: the VerSe cohort mean +- 1 SD",
    "cortex": "[38, 68 %]: the published range itself",
    "bonelab": "p x [0.8, 1.2]: a 1 mm voxel model against smoothed tetrahedra of the same scan; the law and "
               "set-up are the benchmark's own",
}


def _solve(case: dict, lc: str) -> dict:
    model = build_model(case, base=".", source=f"validate:{case['name']}")
    return solve(model, nodal=False).loadcases[lc].extra["risk"]


def _vertebra(res: Resolution, name: str, setup: str, posterior: bool, loadcases: dict, **extra) -> dict:
    case = {
        "name": name,
        "vertebra": {"level": "L1", "mesh_size": res.mesh_size, "order": res.order, "posterior": posterior},
        "materials": {"preset": "normal"},
        "boundary": {"setup": setup},
        "loadcases": loadcases,
    }
    case.update(copy.deepcopy(extra))
    return case


COMPRESS = {"compression": [{"preset": "compression", "displacement": -0.1}]}


def costa(res: Resolution, progress: Callable[[str], None]) -> list[Row]:
    """Stiffness loss against lesion size: vertebral body, PMMA caps, central holes (Costa 2020)."""
    body = lambda **kw: _vertebra(res, "costa", "in_vitro", False, COMPRESS, **kw)  # noqa: E731
    k0 = _solve(body(), "compression")["axial_stiffness"]
    rows = []
    for vf in (0.04, 0.15, 0.25, 0.35):
        progress(f"Costa 2020: hole of {vf:.0%}")
        k = _solve(body(lesions=[{"type": "void", "volume_fraction": vf, "location": "central"}]), "compression")["axial_stiffness"]
        loss = 100 * (1 - k / k0)
        p = 3.0 + (30.0 - 3.0) * (vf - 0.04) / (0.35 - 0.04)
        half = max(0.5 * p, 2.0)
        rows.append(Row("costa2020", f"stiffness loss, hole {vf:.0%} of body", loss, p, p - half, p + half, "%",
                        SOURCES["costa"], BANDS["costa"]))
    return rows


def kinzl(res: Resolution, progress: Callable[[str], None]) -> list[Row]:
    """Partial against endplate-to-endplate cement fills in vertebral bodies (Kinzl 2012)."""
    body = lambda **kw: _vertebra(res, "kinzl", "in_vitro", False, COMPRESS, **kw)  # noqa: E731
    k0 = _solve(body(), "compression")["axial_stiffness"]
    progress("Kinzl: partial fill")
    kp = _solve(body(cement=[{"volume_ml": 3.0, "access": "bipedicular"}]), "compression")["axial_stiffness"]
    progress("Kinzl: endplate-to-endplate fill")
    # a central column of interdigitated cement reaching both endplates (the body is ~25 mm high)
    kc = _solve(body(cement=[{"ellipsoid": {"center": [0.0, 2.0, 0.0], "radii": [8.0, 8.0, 20.0]}}]), "compression")["axial_stiffness"]
    return [
        Row("kinzl2012", "stiffness gain, partial fill (3 mL bipedicular)", 100 * (kp / k0 - 1), 16.0, 0.0, 16.0, "%",
            SOURCES["kinzl"], BANDS["kinzl_partial"]),
        Row("kinzl2012", "stiffness gain, endplate-to-endplate fill", 100 * (kc / k0 - 1), 33.0, 16.0, 50.0, "%",
            SOURCES["kinzl"], BANDS["kinzl_column"]),
    ]


def restore(res: Resolution, progress: Callable[[str], None]) -> list[Row]:
    """Cement volume that restores intact stiffness in a vertebra with a 30 % lytic lesion."""
    whole = lambda **kw: _vertebra(res, "restore", "in_vitro", True, COMPRESS, **kw)  # noqa: E731
    lesion = [{"type": "lytic", "volume_fraction": 0.30, "location": "central"}]
    k0 = _solve(whole(), "compression")["axial_stiffness"]
    vols, ks = [0.0], [_solve(whole(lesions=lesion), "compression")["axial_stiffness"]]
    for v in (2.0, 4.0, 6.0, 8.0):
        progress(f"cement {v:g} mL in a 30 % lesion")
        vols.append(v)
        ks.append(_solve(whole(lesions=lesion, cement=[{"volume_ml": v, "access": "bipedicular"}]), "compression")["axial_stiffness"])
        if ks[-1] >= k0:
            break
    ks_a, vols_a = np.array(ks), np.array(vols)
    if ks_a[-1] < k0:
        v_restore = float("inf")
    else:
        j = int(np.argmax(ks_a >= k0))
        v_restore = float(np.interp(k0, ks_a[j - 1 : j + 1], vols_a[j - 1 : j + 1]))
    return [Row("belkoff2001", "cement restoring intact stiffness (30 % lytic L1)", v_restore, None, 2.0, 8.0, "mL",
                SOURCES["belkoff"] + "; " + SOURCES["molloy"], BANDS["restore"])]


def bulge(res: Resolution, progress: Callable[[str], None]) -> list[Row]:
    """Posterior-wall bulge against tumour size and load type, loaded through discs."""
    loads = {"axial": [{"preset": "compression", "force": 800}],
             "flexion": [{"preset": "flexion", "moment": 1000}]}
    b = {}
    for vf in (0.0, 0.15, 0.30):
        progress(f"bulge: tumour {vf:.0%}")
        extra = {"lesions": [{"type": "lytic", "volume_fraction": vf, "location": "central"}]} if vf else {}
        case = _vertebra(res, "bulge", "discs", True, loads, **extra)
        model = build_model(case, base=".", source="validate:bulge")
        r = solve(model, nodal=False)
        b[vf] = {lc: r.loadcases[lc].extra["risk"]["posterior_wall_bulge"] for lc in loads}
    r1, r2 = b[0.15]["axial"] / b[0.0]["axial"], b[0.30]["axial"] / b[0.15]["axial"]
    ratio = b[0.30]["axial"] / max(b[0.30]["flexion"], 1e-300)
    return [
        Row("salvatore2018", "bulge ratio, tumour 15 % / none (800 N)", r1, 2.78, 1.39, 4.17, "", SOURCES["salvatore"], BANDS["bulge_ratio"]),
        Row("salvatore2018", "bulge ratio, tumour 30 % / 15 % (800 N)", r2, 1.88, 0.94, 2.82, "", SOURCES["salvatore"], BANDS["bulge_ratio"]),
        Row("tschirhart2006", "bulge, tumour 30 %, 800 N axial", b[0.30]["axial"], 0.48, 0.1, 1.0, "mm", SOURCES["tschirhart"], BANDS["bulge_axial"]),
        Row("tschirhart2006", "bulge ratio, 800 N axial / 1 N m flexion", ratio, 26.7, 5.0, 100.0, "", SOURCES["tschirhart"], BANDS["load_type"]),
    ]


def strength(res: Resolution, progress: Callable[[str], None]) -> list[Row]:
    """Strength of a normal L1 between PMMA caps (linear Pistoia estimate)."""
    r = _solve(_vertebra(res, "strength", "in_vitro", True, COMPRESS), "compression")
    return [Row("verse", "strength of a normal L1 (linear estimate)", r["strength_estimate"] / 1000.0, 3.4, 1.8, 5.0, "kN",
                SOURCES["verse"], BANDS["strength"])]


def cortex(res: Resolution, progress: Callable[[str], None]) -> list[Row]:
    """Share of the axial force the cortical shell carries at mid-height (vertebral body, caps)."""
    case = _vertebra(res, "cortex", "in_vitro", False, COMPRESS)
    model = build_model(case, base=".", source="validate:cortex")
    lc = solve(model, nodal=False).loadcases["compression"]
    mesh = model.mesh
    vol, szz = np.abs(mesh.volumes()), lc.fields.stress[:, 2, 2]
    slab = np.zeros(mesh.n_elements, bool)
    slab[np.abs(mesh.centroids()[:, 2]) < 2.0] = True  # a 4 mm slab: sum(sigma_zz V) / 4 mm = force
    cort, trab = mesh.cell_sets["cortical_shell"], mesh.cell_sets["trabecular"]
    fc = float((szz * vol)[cort][slab[cort]].sum())
    ft = float((szz * vol)[trab][slab[trab]].sum())
    return [Row("eswaran2007", "cortical share of axial force at mid-height", 100 * fc / (fc + ft), None, 38.0, 68.0, "%",
                SOURCES["eswaran"], BANDS["cortex"])]


SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vertebrae"


def bonelab(res: Resolution, progress: Callable[[str], None]) -> list[Row]:
    """Stiffness of the CT-based VerSe L2 in the benchmark's own set-up (needs ../shared/data)."""
    image, labels = SHARED / "sub-verse004_0000_vertebra_21_im.nii.gz", SHARED / "sub-verse004_0000_vertebra_21_seg.nii.gz"
    if not image.is_file():
        return []
    case = {"name": "verse-L2", "ct": {"image": str(image), "calibration": {"kind": "density"}, "law": "bonelab_kopperdahl",
            "labels": {"file": str(labels), "bone": [1, 2, 3, 4], "cortical": [2, 4], "posterior": [3, 4], "caps": [5, 6]},
            "mesh_size": 1.5 if res.order == 2 else 2.5, "order": res.order},
            "boundary": {"setup": "in_vitro"}, "loadcases": {"compression": [{"preset": "compression", "displacement": -0.2}]}}
    k = _solve(case, "compression")["axial_stiffness"]
    return [Row("bonelab", "CT L2 stiffness (0.2 mm, PMMA caps)", k, 12362.0, 0.8 * 12362.0, 1.2 * 12362.0, "N/mm",
                SOURCES["bonelab"], BANDS["bonelab"])]


EXPERIMENTS: dict[str, Callable[[Resolution, Callable[[str], None]], list[Row]]] = {
    "costa2020": costa,
    "kinzl2012": kinzl,
    "cement_volume": restore,
    "bulge": bulge,
    "strength": strength,
    "cortex": cortex,
    "bonelab_ct": bonelab,
}
