"""Annulus fibre directions (fembone.spine.annulus): unit, circumferential, +-angle to the transverse plane."""

from __future__ import annotations

import numpy as np
import pytest

from fembone.spine.annulus import AnnulusFibres, fibre_directions


def test_directions_are_circumferential_at_plus_minus_the_angle():
    rng = np.random.default_rng(3)
    centre = np.array([1.0, -2.0, 5.0])
    pts = centre + rng.normal(size=(50, 3)) * [15, 12, 3]
    a = fibre_directions(pts, centre, 30.0)
    radial = (pts - centre) * [1, 1, 0]
    np.testing.assert_allclose(np.linalg.norm(a, axis=2), 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.einsum("nfi,ni->nf", a, radial), 0.0, atol=1e-12)  # no radial part
    np.testing.assert_allclose(a[:, 0, 2], np.sin(np.radians(30)), rtol=1e-14)  # +30 deg
    np.testing.assert_allclose(a[:, 1, 2], -np.sin(np.radians(30)), rtol=1e-14)  # -30 deg
    # the horizontal part turns the same way round the axis for both families (z . (r x a) > 0)
    assert np.all(np.cross(radial, a[:, 0])[:, 2] > 0) and np.all(np.cross(radial, a[:, 1])[:, 2] > 0)


def test_a_point_on_the_axis_is_refused():
    with pytest.raises(ValueError, match="axis"):
        fibre_directions(np.array([[0.0, 0.0, 3.0]]), np.zeros(3), 30.0)


def test_family_modulus_is_half_the_fibres():
    assert AnnulusFibres(E=500.0, volume_fraction=0.2).family_modulus == pytest.approx(50.0, rel=1e-15)
