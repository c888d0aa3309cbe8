"""Imported and CT segment levels (fembone.spine.segment_import): bad input names its key; the
voxeliser, the synthesised half discs and the nucleus split against hand values (no FE solve)."""

from __future__ import annotations

import numpy as np
import pytest

# one-line error helper of the segment input tests (tests/unit is on sys.path under pytest)
from test_segment_input import error

from fembone.cases import parse_case
from fembone.spine.ct import LabelSpec
from fembone.spine.ct.image import Image
from fembone.spine.ct.synth_caps import synthesise_caps
from fembone.spine.segment_import import split_nucleus, voxelise

CT = {"image": "im.nii.gz", "labels": {"file": "seg.nii.gz", "bone": [1, 3], "posterior": [3]}}


def case(vertebrae, **kw) -> dict:
    c = {"name": "seg", "segment": {"levels": ["L1", "L2", "L3"], "mesh_size": 4.0, "order": 1, "vertebrae": vertebrae},
         "materials": {"preset": "normal"}, "loadcases": {"flexion": [{"preset": "flexion", "moment": 7500}]}}
    c.update(kw)
    return c


def test_vertebrae_level_not_in_levels():
    msg = error(case({"L4": {"ct": CT}}))
    assert "segment.vertebrae.L4" in msg and "not in the segment" in msg


@pytest.mark.parametrize("entry, key, words", [
    ({"ct": CT, "surface": {"file": "a.obj"}}, "segment.vertebrae.L2", "one of"),
    ({}, "segment.vertebrae.L2", "one of"),
    ({"ct": {**CT, "order": 2}}, "segment.vertebrae.L2.ct.order", "element order"),
    ({"ct": {**CT, "mesh": "m.msh"}}, "segment.vertebrae.L2.ct.mesh", "labels"),
    ({"ct": {"image": "im.nii.gz"}}, "segment.vertebrae.L2.ct.labels", "labels"),
    ({"ct": CT, "half_discs": "labels"}, "segment.vertebrae.L2.half_discs", "cap labels"),
    ({"surface": {"file": "a.obj", "units": "cm"}}, "segment.vertebrae.L2.surface.units", "cm"),
    ({"surface": {"file": "a.obj"}, "half_discs": "labels"}, "segment.vertebrae.L2.half_discs", "synthesised"),
    ({"ct": {**CT, "bogus": 1}}, "segment.vertebrae.L2.ct", "bogus"),
    ({"surface": {"file": "a.obj", "cranial": "up"}}, "segment.vertebrae.L2.surface.cranial", "up"),
])
def test_bad_imported_level(entry, key, words):
    msg = error(case({"L2": entry}))
    assert key in msg and words in msg


def test_what_needs_landmarks_is_refused_on_an_imported_level():
    v = {"L2": {"ct": CT}}
    msg = error(case(v, screws=[{"placement": "bilateral_transpedicular", "levels": ["L1", "L2"]}]))
    assert "screws[0].levels[1]" in msg and "segment.vertebrae.L2" in msg and "landmarks" in msg
    msg = error(case(v, lesions=[{"level": "L2", "type": "lytic", "volume_fraction": 0.2}]))
    assert "lesions[0].level" in msg and "ct.labels.lesion" in msg
    msg = error(case(v, cement=[{"level": "L2", "volume_ml": 3.0, "access": "bipedicular"}]))
    assert "cement[0].level" in msg


def test_imported_level_parses():
    spec = parse_case(case({"l2": {"ct": CT}}), ".", "seg.yaml").extensions["segment"]
    imp = spec.imported["L2"]
    assert imp.kind == "ct" and imp.ct.order == 1 and imp.ct.mesh_size == 4.0 and imp.half_discs == "synthesise"


def _cube(a: float, b: float):
    P = np.array([[x, y, z] for x in (a, b) for y in (a, b) for z in (a, b)], float)
    F = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return P, F


def test_voxelise_cube_counts_the_voxel_centres_inside():
    """Cube 0.25..10.25 mm, pitch 1: exactly 10 voxel centres inside along each axis (hand count)."""
    P, F = _cube(0.25, 10.25)
    img = voxelise(P, F, 1.0, margin=(3.0, 3.0))
    assert int(img.data.sum()) == 1000
    x = img.index_to_world(np.argwhere(img.data > 0))
    assert x.min(axis=0).min() > 0.25 and x.max(axis=0).max() < 10.25


def test_synthesised_caps_of_a_box_body():
    """Body 21 x 17 x 11 voxels (1 mm) with an arch behind it; half disc 4 mm: each cap is the
    body footprint eroded by one voxel (19 x 15), less its 4 corner columns (the opening by the
    in-plane cross drops them), 4 voxels high above the body's last voxel."""
    n = (41, 51, 41)
    L = np.zeros(n, np.int16)
    L[10:31, 20:37, 15:26] = 1  # body: x 21, y 17, z 11 voxels
    L[10:31, 8:20, 18:23] = 3  # arch behind it (y < 20), not taller than the body
    L[16:25, 12:20, 18:23] = 0  # the canal
    img = Image(L, np.eye(4), "box")
    new, caps, info = synthesise_caps(img, LabelSpec("box", bone=(1, 3), posterior=(3,)), 4.0, "image")
    sup, inf = (np.argwhere(new.data == c) for c in caps)
    for cap, k0 in ((sup, 26), (inf, 11)):
        assert len(cap) == (19 * 15 - 4) * 4
        assert cap[:, 2].min() == k0 and cap[:, 2].max() == k0 + 3
        assert cap[:, 0].min() == 11 and cap[:, 0].max() == 29 and cap[:, 1].min() == 21 and cap[:, 1].max() == 35
    assert info["superior"]["height_mm"] == 4.0 and info["superior"]["raised_mm"] == 0.0
    assert (new.data[L > 0] == L[L > 0]).all()  # bone untouched


def test_nucleus_of_a_rectangular_face():
    """Face 2a x 2b (a = 20, b = 12 mm): k_x / k_y = a / b, so the ellipse has semi-axes
    A = 2 a sqrt(f / pi), B = 2 b sqrt(f / pi) (pi A B = f 4 a b), centred on the face centre."""
    a, b, f, c = 20.0, 12.0, 0.43, np.array([3.0, -2.0])
    pts = np.array([[c[0] - a, c[1] - b, 5], [c[0] + a, c[1] - b, 5], [c[0] + a, c[1] + b, 5], [c[0] - a, c[1] + b, 5]], float)
    face = np.array([[0, 1, 2], [0, 2, 3]])
    A, B = 2 * a * np.sqrt(f / np.pi), 2 * b * np.sqrt(f / np.pi)
    probe = np.array([[c[0] + 0.99 * A, c[1], 0], [c[0] + 1.01 * A, c[1], 0], [c[0], c[1] + 0.99 * B, 0], [c[0], c[1] - 1.01 * B, 0]])
    inside, d = split_nucleus(pts, face, probe, f)
    assert inside.tolist() == [True, False, True, False]
    assert d["semi_axes_mm"] == pytest.approx([A, B], rel=1e-12)
    assert d["face_area_mm2"] == pytest.approx(4 * a * b, rel=1e-12) and d["centre"] == pytest.approx(c.tolist(), abs=1e-12)
