"""T12-L2 segment range of motion under 7.5 N m pure moments against published in-vitro tests.

Coarse model (tet10, mesh_size 6 mm, shell 2 mm: the cortex keeps its membrane stiffness
E t; the ROM is within 3 % of the 4 mm / 1 mm shell model, README) of the generated T12, L1,
L2 with their discs and facet springs, intact and with T12-L2 posterior fixation (pedicle
screws in T12 and L2, 5.5 mm titanium rods).  Each published value and its band:

* L1-L2: Yamamoto et al. 1989, Spine 14:1256 (10 specimens, L1-sacrum, pure moments up to
  10 N m; one direction): flexion 5.8, extension 4.3, lateral bending 4.9, axial rotation
  2.3 deg at 10 N m.  The 7.5 N m mean lies between 0.75 x and 1.0 x the 10 N m mean (the
  load-displacement curve stiffens, so it is above the linear share and below the 10 N m
  value); the band widens that interval by a specimen spread of +-35 % (about one standard
  deviation in such tests; assumed, the abstract gives means only): [0.4875, 1.35] x R10.
* T12-L1 is the thoracolumbar transition: its band is the hull of the L1-L2 band and a lower
  thoracic band from Wilke et al. 2017, PLoS One 12:e0177823 (68 FSUs T1-T12 at +-7.5 N m,
  symmetric motion; full ranges for T10-T12: flexion/extension 6-8, lateral bending 8-9,
  axial rotation 7-8 deg, halved for one direction), widened by the same +-35 %.
* Fixation: Pimenta et al. 2012, ScientificWorldJournal 2012:381814 (L2-L3 FSUs, 7.5 N m,
  bilateral pedicle screws and rods on an intact disc): ROM reduced by 81 % (flexion-
  extension), 73 % (lateral bending), 48 % (axial rotation); band +-15 points (stated).

None of the bands was chosen after seeing the model's answer and no parameter was tuned.
The default annulus carries tension-only collagen fibres (two families at +-30 deg, 450 MPa in
16 % of the volume: the lumbar FE models' values, fembone.spine.annulus).  Known miss (pinned
outside its band, reasons in the README): extension at T12-L1 (extension stays close to flexion:
specimens are stiffer in extension, where the facets come into contact).  Two alternatives are
measured against the same bands: the isotropic annulus without fibres (the earlier default:
axial rotation about 2.5x Yamamoto's mean, fixation's axial-rotation reduction too large) and
facet contact (gap elements, ``facets: {model: contact}``), which is not the default.
"""

from __future__ import annotations

import pytest

from fembone.cases import build_model
from fembone.core.analysis import solve

pytestmark = pytest.mark.slow

MOMENTS = ("flexion", "extension", "lateral_bending", "axial_rotation")
YAMAMOTO_L1L2_10NM = {"flexion": 5.8, "extension": 4.3, "lateral_bending": 4.9, "axial_rotation": 2.3}
WILKE_T10T12_FULL = {"flexion": (6.0, 8.0), "extension": (6.0, 8.0), "lateral_bending": (8.0, 9.0), "axial_rotation": (7.0, 8.0)}
SPREAD = 0.35
PIMENTA_REDUCTION = {"flexion": 0.81, "lateral_bending": 0.73, "axial_rotation": 0.48}
REDUCTION_BAND = 0.15

KNOWN_MISSES = {("extension", "T12-L1")}
KNOWN_REDUCTION_MISSES: set = set()
#: the isotropic annulus (segment.disc.fibres: false), the earlier default
ISOTROPIC_MISSES = {("extension", "T12-L1"), ("extension", "L1-L2"), ("axial_rotation", "T12-L1"), ("axial_rotation", "L1-L2")}


def band(loadcase: str, pair: str) -> tuple[float, float]:
    """Published band (deg) for one direction at 7.5 N m."""
    r10 = YAMAMOTO_L1L2_10NM[loadcase]
    lo, hi = 0.75 * r10 * (1 - SPREAD), r10 * (1 + SPREAD)
    if pair == "T12-L1":
        a, b = WILKE_T10T12_FULL[loadcase]
        lo, hi = min(lo, a / 2 * (1 - SPREAD)), max(hi, b / 2 * (1 + SPREAD))
    return lo, hi


def _case(fixed: bool, facets=True, fibres=True) -> dict:
    c = {"name": "T12-L2-fixed" if fixed else "T12-L2",
         "segment": {"levels": ["T12", "L1", "L2"], "mesh_size": 6.0, "order": 2, "shell_thickness": 2.0, "facets": facets,
                     "disc": {"fibres": fibres}},
         "materials": {"preset": "normal"},
         "loadcases": {k: [{"preset": k, "moment": 7500}] for k in MOMENTS}}
    if fixed:
        c.update(screws=[{"placement": "bilateral_transpedicular", "levels": ["T12", "L2"]}], rods={"diameter": 5.5, "material": "titanium"})
    return c


def _rom(facets, fibres=True, fixations=(False, True)) -> dict:
    out = {}
    for fixed in fixations:
        model = build_model(_case(fixed, facets, fibres), base=".", source="validation")
        res = solve(model, nodal=False)
        out[fixed] = {k: res.loadcases[k].extra["segment"]["range_of_motion_deg"] for k in MOMENTS}
        if fibres and not fixed and facets is True:  # engaged fibres per family, recomputed from u (fibre strain > 0)
            G = model.meta["_unilateral"].G
            out["fibres"] = {k: ((-(G.T @ res.loadcases[k].u[: G.shape[0]])) > 0).reshape(-1, 2)
                             for k in MOMENTS}
            out["engaged_reported"] = {k: res.loadcases[k].extra["segment"]["annulus_fibres"]["engaged"] for k in MOMENTS}
    print(f"facets {facets}, fibres {fibres}\nload case        pair     intact  band (deg)      fixed  reduction  Pimenta 2012")
    for k in MOMENTS:
        for p, v in out[False][k].items():
            lo, hi = band(k, p)
            fx = out.get(True, {}).get(k, {}).get(p, float("nan"))
            pim = PIMENTA_REDUCTION.get(k, PIMENTA_REDUCTION["flexion"])
            print(f"{k:16s} {p:8s} {v:6.2f}  [{lo:4.2f}, {hi:4.2f}]   {fx:6.2f}   {1 - fx / v:6.1%}     {pim:.0%}")
    return out


@pytest.fixture(scope="module")
def rom():
    """The default model: annulus fibres, linear facet springs."""
    return _rom(True)


@pytest.fixture(scope="module")
def rom_isotropic():
    """The isotropic annulus (no fibres), intact only: the earlier default, for what the fibres change."""
    return _rom(True, fibres=False, fixations=(False,))


@pytest.fixture(scope="module")
def rom_contact():
    """Facet contact (gap elements: 0.5 mm gap, 600 N/mm in compression only), measured to choose the default;
    intact only (its fixation reductions, measured once with fixations=(False, True), are in the README)."""
    return _rom({"model": "contact", "gap": 0.5}, fixations=(False,))


def _against_band(v: float, loadcase: str, pair: str, misses: set, label: str) -> None:
    """v inside its band, or (a known miss) above it; the message says which moved."""
    lo, hi = band(loadcase, pair)
    if (loadcase, pair) in misses:
        assert v > hi, f"{label} {loadcase} {pair}: {v:.2f} deg is now inside [{lo:.2f}, {hi:.2f}]: update the misses and the README"
    else:
        assert lo <= v <= hi, f"{label} {loadcase} {pair}: {v:.2f} deg outside [{lo:.2f}, {hi:.2f}]"


@pytest.mark.parametrize("loadcase", MOMENTS)
@pytest.mark.parametrize("pair", ["T12-L1", "L1-L2"])
def test_intact_rom_within_published_band(rom, loadcase, pair):
    _against_band(rom[False][loadcase][pair], loadcase, pair, KNOWN_MISSES, "default")


@pytest.mark.parametrize("loadcase", MOMENTS)
@pytest.mark.parametrize("pair", ["T12-L1", "L1-L2"])
def test_isotropic_annulus_misses_axial_rotation(rom_isotropic, loadcase, pair):
    """Without fibres (segment.disc.fibres: false) axial rotation and extension lie above their bands:
    the shear stiffness of an isotropic 4.2 MPa annulus is what the fibres replace."""
    _against_band(rom_isotropic[False][loadcase][pair], loadcase, pair, ISOTROPIC_MISSES, "isotropic")


def test_fibres_bring_axial_rotation_to_yamamoto(rom, rom_isotropic):
    """L1-L2 axial rotation: 2.0-3.0x Yamamoto's 10 N m mean without fibres, and with them within the
    interval the 7.5 N m mean lies in (0.75-1.0x the 10 N m mean, before the specimen spread)."""
    iso = rom_isotropic[False]["axial_rotation"]["L1-L2"] / YAMAMOTO_L1L2_10NM["axial_rotation"]
    fib = rom[False]["axial_rotation"]["L1-L2"] / YAMAMOTO_L1L2_10NM["axial_rotation"]
    print(f"L1-L2 axial rotation / Yamamoto 10 N m mean: isotropic {iso:.2f}, fibres {fib:.2f}")
    assert 2.0 < iso < 3.0, iso
    assert 0.75 <= fib <= 1.0, fib


@pytest.mark.parametrize("loadcase", list(PIMENTA_REDUCTION))
@pytest.mark.parametrize("pair", ["T12-L1", "L1-L2"])
def test_fixation_reduction_against_pimenta(rom, loadcase, pair):
    red = 1 - rom[True][loadcase][pair] / rom[False][loadcase][pair]
    pub = PIMENTA_REDUCTION[loadcase]
    lo, hi = pub - REDUCTION_BAND, min(1.0, pub + REDUCTION_BAND)
    if (loadcase, pair) in KNOWN_REDUCTION_MISSES:
        assert red > hi, f"{loadcase} {pair}: reduction {red:.1%} is now inside [{lo:.0%}, {hi:.0%}]: update the misses and README"
    else:
        assert lo <= red <= hi, f"{loadcase} {pair}: reduction {red:.1%} outside [{lo:.0%}, {hi:.0%}] (Pimenta {pub:.0%})"


# ----------------------------------------------------------------- facet contact (not the default)
@pytest.mark.parametrize("loadcase", MOMENTS)
@pytest.mark.parametrize("pair", ["T12-L1", "L1-L2"])
def test_contact_rom_against_published_band(rom_contact, loadcase, pair):
    """Facet contact (0.5 mm gap, with the fibres) keeps the default's one miss, extension at T12-L1."""
    _against_band(rom_contact[False][loadcase][pair], loadcase, pair, KNOWN_MISSES, "contact")


@pytest.mark.parametrize("pair", ["T12-L1", "L1-L2"])
def test_contact_leaves_extension_near_flexion(rom, rom_contact, pair):
    """Why contact is not the default: the joint's normal is horizontal, so flexion and extension
    move it by a few hundredths of a mm against a 0.5 mm gap; the joints stay open in flexion and
    extension, which then differ from the springs' by < 2 % (the springs carried ~5 N)."""
    for k in ("flexion", "extension"):
        assert rom_contact[False][k][pair] == pytest.approx(rom[False][k][pair], rel=0.02)


@pytest.mark.parametrize("pair", ["T12-L1", "L1-L2"])
def test_contact_softens_axial_rotation(rom, rom_contact, pair):
    """Contact removes the tension-side springs and adds a gap on the compressed side: axial
    rotation grows."""
    assert rom_contact[False]["axial_rotation"][pair] > 1.05 * rom[False]["axial_rotation"][pair]


def test_axial_rotation_engages_one_fibre_family(rom):
    """The crossed-ply action (README): in axial rotation one family is stretched nearly everywhere and
    the other slack; in bending about half of each family (the tension side).  The summary's engaged
    count equals the fibres with positive strain recomputed from the displacements."""
    for k in MOMENTS:
        fam = rom["fibres"][k].mean(axis=0)
        print(f"{k:16s} engaged per family {fam[0]:.3f} / {fam[1]:.3f}")
        assert rom["engaged_reported"][k] == int(rom["fibres"][k].sum())
        if k == "axial_rotation":
            assert max(fam) > 0.95 and min(fam) < 0.05
        else:
            assert 0.4 < fam[0] < 0.6 and 0.4 < fam[1] < 0.6
