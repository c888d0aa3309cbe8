"""Spinal ligaments as tension-only springs (fembone.spine.ligaments, segment.ligaments).

Hand answers: the column of one spring gives G^T u = -elongation for a rigid translation of
the upper reference point along e (and a zero force in compression); two points on ground
springs k0 pulled apart by P carry lambda = 2 k P / (k0 + 2 k) (each point: k0 u = +-(P - lambda) e,
elongation 2 (P - lambda) / k0, lambda = k x elongation), pushed together lambda = 0.  On a small
T12-L1 segment: equilibrium in every load case, the attachments' anatomical order, the
ligaments stiffen flexion and extension, the ALL alone only extension; bad input.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from fembone.cases import build_model
from fembone.cases.segment_spec import parse_segment
from fembone.core.analysis import solve
from fembone.core.errors import FemboneError
from fembone.core.unilateral import UnilateralSet, correct
from fembone.spine.ligaments import STIFFNESS, ligament_columns, ligament_forces

MOMENTS = ("flexion", "extension", "lateral_bending", "axial_rotation")
E = np.array([0.36, -0.48, 0.8])  # a unit vector (0.36^2 + 0.48^2 + 0.8^2 = 1), lower -> upper


def _column() -> np.ndarray:
    rows, vals = ligament_columns(np.arange(3), np.arange(3, 6), E)
    g = np.zeros(6)
    g[rows] = vals
    return g


@pytest.mark.parametrize("t", [0.7, -0.7])
def test_column_is_minus_elongation_and_force_tension_only(t):
    """Upper reference point moved rigidly by t e (mm), the lower one fixed: G^T u = -t; the force
    k max(t, 0) (N): k t when stretched, 0 when compressed."""
    u = np.zeros(6)
    u[:3] = t * E
    assert _column() @ u == pytest.approx(-t, abs=1e-15)
    model = SimpleNamespace(layout=SimpleNamespace(extra_dofs=lambda r: np.array([np.arange(6 * r, 6 * r + 6)])),
                            meta={"_ligaments": [{"pair": "A-B", "name": "SSL", "refs": [0, 1], "e": E, "k": 23.7}]})
    u12 = np.zeros(12)
    u12[:3] = t * E
    assert ligament_forces(model, u12)["A-B"]["SSL"] == pytest.approx(23.7 * max(t, 0.0), abs=1e-14)


def test_two_points_on_ground_springs_pulled_and_pushed():
    """k0 = 100 N/mm per point and direction, k = 30 N/mm, P = 10 N along e: pulled apart
    lambda = 2 k P / (k0 + 2 k) = 3.75 N, elongation 0.125 mm; pushed together lambda = 0, elongation -0.2 mm."""
    k0, k, P = 100.0, 30.0, 10.0
    K0 = k0 * np.eye(6)
    g = _column()
    uset = UnilateralSet(sp.csc_matrix(g[:, None]), np.array([k]), np.array([0.0]), ["A-B SSL"])
    F = np.column_stack([np.concatenate([P * E, -P * E]), np.concatenate([-P * E, P * E])])
    U, Fc = correct(uset, lambda B: np.linalg.solve(K0, B), sp.identity(6, format="csr"), np.linalg.solve(K0, F), F,
                    ["pull", "push"])
    elong = E @ (U[:3] - U[3:])
    assert elong == pytest.approx([2 * P / (k0 + 2 * k), -2 * P / k0], rel=1e-12)
    lam = 2 * k * P / (k0 + 2 * k)
    assert (Fc - F)[:3, 0] == pytest.approx(-lam * E, rel=1e-12)  # the ligament pulls the upper point down along e
    assert np.abs((Fc - F)[:, 1]).max() == 0.0
    assert uset.info["closed"] == {"pull": ["A-B SSL"], "push": []}


def _case(ligaments) -> dict:
    return {"name": "T12-L1", "segment": {"levels": ["T12", "L1"], "mesh_size": 6.0, "order": 1, "ligaments": ligaments},
            "materials": {"preset": "normal"}, "loadcases": {k: [{"preset": k, "moment": 7500}] for k in MOMENTS}}


@pytest.fixture(scope="module")
def runs():
    out = {}
    for key, lig in (("none", False), ("all", True), ("ALL", {"names": ["ALL"]})):
        model = build_model(_case(lig), base=".", source="test")
        out[key] = (model, solve(model, nodal=False))
    return out


def _rom(runs, key, lc):
    return runs[key][1].loadcases[lc].extra["segment"]["range_of_motion_deg"]["T12-L1"]


def test_equilibrium_and_outputs(runs):
    model, res = runs["all"]
    labels = model.meta["_unilateral"].labels
    assert [lab for lab in labels if lab.startswith("T12-L1 ")] == [f"T12-L1 {n}" for n in STIFFNESS]
    for lc in MOMENTS:
        assert res.loadcases[lc].equilibrium_error < 1e-8, lc
        forces = res.loadcases[lc].extra["segment"]["ligament_forces"]["T12-L1"]
        assert set(forces) == set(STIFFNESS) and min(forces.values()) >= 0.0
    assert "ligament_forces" not in runs["none"][1].loadcases["flexion"].extra["segment"]


def test_attachments_in_anatomical_order(runs):
    """Anterior to posterior ALL, PLL, LF, ISL, SSL; every spring runs from the lower vertebra up (e_z > 0)."""
    springs = runs["all"][0].meta["_ligaments"]
    y = [np.mean([runs["all"][0].layout.extra_points[r][1] for r in s["refs"]]) for s in springs]
    assert [s["name"] for s in springs] == list(STIFFNESS)
    assert np.all(np.diff(y) < 0), y
    assert all(s["e"][2] > 0.8 for s in springs)


def test_ligaments_stiffen_flexion_and_extension(runs):
    """With all five: extension ROM <= without (the ALL engages), flexion ROM < without; the ALL is in
    tension in extension and slack in flexion, the SSL the reverse."""
    assert _rom(runs, "all", "extension") <= _rom(runs, "none", "extension")
    assert _rom(runs, "all", "flexion") < _rom(runs, "none", "flexion")
    f = {lc: runs["all"][1].loadcases[lc].extra["segment"]["ligament_forces"]["T12-L1"] for lc in ("flexion", "extension")}
    assert f["extension"]["ALL"] > 0.0 and f["flexion"]["ALL"] == 0.0
    assert f["flexion"]["SSL"] > 0.0 and f["extension"]["SSL"] == 0.0


def test_all_alone_acts_in_extension_only(runs):
    """The ALL alone: extension ROM smaller than without it, flexion unchanged (the ALL is slack there)."""
    assert _rom(runs, "ALL", "extension") < 0.99 * _rom(runs, "none", "extension")
    assert _rom(runs, "ALL", "flexion") == pytest.approx(_rom(runs, "none", "flexion"), rel=1e-6)


def test_default_is_off():
    spec = parse_segment({"segment": {"levels": ["T12", "L1"]}}, "t", Path("."))
    assert spec.ligaments is None


@pytest.mark.parametrize("value, where", [
    ({"names": ["ALL", "ACL"]}, "segment.ligaments.names[1]"),
    ({"scale": -1.0}, "segment.ligaments.scale"),
    ({"stiffness": 10}, "segment.ligaments.stiffness"),
    ("yes", "segment.ligaments"),
])
def test_bad_input_names_the_key(value, where):
    with pytest.raises(FemboneError) as e:
        parse_segment({"segment": {"levels": ["T12", "L1"], "ligaments": value}}, "t", Path("."))
    assert str(e.value).startswith(where + ":") and "\n" not in str(e.value)
