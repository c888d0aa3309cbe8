"""Bad segment input: each mistake is one InputError line naming the key (parsing only, no mesh)."""

from __future__ import annotations

import pytest

from fembone.cases import parse_case
from fembone.core.errors import InputError
from fembone.spine.segment import parse_levels

LOADS = {"flexion": [{"preset": "flexion", "moment": 7500}]}


def case(**kw) -> dict:
    c = {"name": "seg", "segment": {"levels": ["T12", "L1", "L2"], "mesh_size": 4.0, "order": 1},
         "materials": {"preset": "normal"}, "loadcases": LOADS}
    c.update(kw)
    return c


def error(c) -> str:
    with pytest.raises(InputError) as exc:
        parse_case(c, ".", "seg.yaml")
    msg = str(exc.value)
    print(msg)
    assert "\n" not in msg
    return msg


def test_levels_from_range_and_list():
    assert parse_levels("T12-L2") == ("T12", "L1", "L2")
    assert parse_levels(["l3", "L4"]) == ("L3", "L4")


@pytest.mark.parametrize("levels, words", [
    (["L2", "L1"], "out of order"),
    (["T12", "L2"], "adjacent"),
    (["L1"], "at least two"),
    (["L1", "S1"], "unknown level"),
    ("L2-T12", "cranial to caudal"),
])
def test_levels_out_of_order_or_not_adjacent(levels, words):
    msg = error(case(segment={"levels": levels}))
    assert "segment.levels" in msg and words in msg


def test_screw_level_not_in_segment():
    msg = error(case(screws=[{"placement": "bilateral_transpedicular", "levels": ["T12", "L3"]}]))
    assert "screws[0].levels[1]" in msg and "L3" in msg and "not in the segment" in msg


@pytest.mark.parametrize("key", ["lesions", "cement"])
def test_lesion_or_cement_on_a_missing_level(key):
    entry = {"type": "lytic", "volume_fraction": 0.2} if key == "lesions" else {"volume_ml": 3.0, "access": "bipedicular"}
    msg = error(case(**{key: [{"level": "L4", **entry}]}))
    assert f"{key}[0].level" in msg and "L4" in msg
    msg = error(case(**{key: [entry]}))
    assert f"{key}[0]" in msg and "names its level" in msg


def test_rod_cannot_reach_a_screw_head():
    screws = [{"placement": "bilateral_transpedicular", "levels": ["T12", "L2"]}]
    msg = error(case(screws=screws, rods={"diameter": 5.5, "levels": ["T12", "L1", "L2"]}))
    assert "rods.levels" in msg and "cannot reach a screw head at L1" in msg
    msg = error(case(screws=[{"placement": "bilateral_transpedicular", "levels": ["T12", "L2"], "sides": ["left"]}],
                     rods={"diameter": 5.5}))
    assert "rods" in msg and "right" in msg
    msg = error(case(rods={"diameter": 5.5}))
    assert "rods" in msg and "screw" in msg


def test_rods_need_a_segment_and_segment_excludes_vertebra():
    c = {"name": "v", "vertebra": {"level": "L1"}, "materials": {"preset": "normal"}, "loadcases": LOADS, "rods": {"diameter": 5.5}}
    assert "segment" in error(c)
    assert "vertebra" in error(case(vertebra={"level": "L1"}))


def test_segment_parses_and_loads_route_to_it():
    spec = parse_case(case(screws=[{"placement": "bilateral_transpedicular", "levels": ["T12", "L2"]}],
                           rods={"diameter": 5.5}), ".", "seg.yaml")
    seg = spec.extensions["segment"]
    assert "vertebra" not in spec.extensions
    assert [s.name for s, _, _ in seg.screws] == ["T12_left", "T12_right", "L2_left", "L2_right"]
    assert spec.loadcases["flexion"][0].magnitude == 7500
    assert seg.index == "L1"


@pytest.mark.parametrize("fibres, key", [
    ({"E": -450}, "segment.disc.fibres.E"),
    ({"angle_deg": 120}, "segment.disc.fibres.angle_deg"),
    ({"volume_fraction": 0.0}, "segment.disc.fibres.volume_fraction"),
    ({"modulus": 450}, "segment.disc.fibres"),
    ("yes", "segment.disc.fibres"),
])
def test_bad_annulus_fibres_name_the_key(fibres, key):
    seg = {"levels": ["T12", "L1"], "mesh_size": 4.0, "order": 1, "disc": {"fibres": fibres}}
    assert key in error(case(segment=seg))


def test_annulus_fibres_default_on_and_switch_off():
    """Default: the lumbar FE models' collagen (450 MPa, 16 %, +-30 deg): 36 MPa per family."""
    on = parse_case(case(), ".", "seg.yaml").extensions["segment"].fibres
    assert (on.angle_deg, on.E, on.volume_fraction) == (30.0, 450.0, 0.16)
    assert on.family_modulus == pytest.approx(36.0, rel=1e-12)
    off = parse_case(case(segment={"levels": ["T12", "L1"], "disc": {"fibres": False}}), ".", "seg.yaml")
    assert off.extensions["segment"].fibres is None
    some = parse_case(case(segment={"levels": ["T12", "L1"], "disc": {"fibres": {"angle_deg": 25}}}), ".", "seg.yaml")
    assert some.extensions["segment"].fibres.angle_deg == 25.0 and some.extensions["segment"].fibres.E == 450.0
