"""Patch tests (Irons & Razzaque 1972): fields the element space contains are reproduced exactly.

A field is prescribed on every boundary node of a box whose interior nodes were moved at
random; the interior displacements and the stresses at every quadrature point must match
the field to round-off.  tet4 and tet10 reproduce linear fields; tet10 also reproduces the
quadratic field of :func:`fembone.apps.verify.patch_field`, which is an exact, body-force-free
elasticity solution (so the discrete equations are satisfied by its interpolant).
"""

from __future__ import annotations

import numpy as np
import pytest

from fembone.apps import verify as V
from fembone.core.materials import Isotropic

CASES = [(1, "linear"), (2, "linear"), (2, "quadratic")]


@pytest.mark.parametrize("seed", [7, 11])
@pytest.mark.parametrize(("order", "kind"), CASES, ids=[f"{V.ELEMENT_NAMES[o]}-{k}" for o, k in CASES])
def test_patch_reproduces_field(order, kind, seed):
    r = V.patch_test(order, kind, divisions=3 if seed != 7 else 4, seed=seed)
    assert r.u_error <= V.PATCH_TOL_U, (
        f"{r.element} {kind} patch: interior max|u| computed {r.u_max[0]:.12g}, exact {r.u_max[1]:.12g}, "
        f"max error {r.u_error:.3e} (relative) > {V.PATCH_TOL_U:g}"
    )
    assert r.stress_error <= V.PATCH_TOL_STRESS, (
        f"{r.element} {kind} patch: max|stress| computed {r.stress_max[0]:.12g}, exact {r.stress_max[1]:.12g}, "
        f"max error {r.stress_error:.3e} (relative) > {V.PATCH_TOL_STRESS:g}"
    )
    assert r.equilibrium_error <= 1e-8, f"equilibrium error {r.equilibrium_error:.3e} > 1e-8"


def test_patch_rows_all_pass():
    for row in V.patch_rows():
        assert row["ok"], V.describe(row)


def test_tet4_does_not_pass_quadratic_patch():
    """The test discriminates: tet4 cannot represent the quadratic field."""
    r = V.patch_test(1, "quadratic")
    assert r.u_error > 1e-4, f"tet4 reproduced a quadratic field (error {r.u_error:.3e}): the patch test is not discriminating"


def test_mesh_is_distorted_with_straight_tet10_edges():
    m4 = V.distorted_box(4, seed=7)
    m10 = V.distorted_box(4, seed=7, order=2)
    regular = V.box_mesh((10.0,) * 3, (4,) * 3, origin=(-5.0,) * 3)
    moved = np.abs(m4.points - regular.points).max()
    assert moved > 0.1, f"interior nodes moved by at most {moved:.3g} mm: the mesh is not distorted"
    from fembone.core.elements import TET10_EDGES

    c = m10.cells
    mid = 0.5 * (m10.points[c[:, TET10_EDGES[:, 0]]] + m10.points[c[:, TET10_EDGES[:, 1]]])
    dev = np.abs(mid - m10.points[c[:, 4:]]).max()
    assert dev < 1e-12, f"tet10 mid-edge nodes off the edge midpoints by {dev:.3e} mm"


@pytest.mark.parametrize("kind", ["linear", "quadratic"])
def test_patch_field_is_an_elasticity_solution(kind):
    """sigma(x) = C : eps(u(x)) and div sigma = 0, checked with central differences."""
    u, sigma = V.patch_field(kind)
    C = Isotropic(E=V.PATCH_E, nu=V.PATCH_NU).stiffness()
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, (20, 3))
    d = 1e-3
    H = np.empty((len(x), 3, 3))  # du_a/dx_b
    dS = np.zeros((len(x), 3))  # div sigma
    for b in range(3):
        e = np.zeros(3)
        e[b] = d
        H[:, :, b] = (u(x + e) - u(x - e)) / (2 * d)
        dS += (sigma(x + e)[:, :, b] - sigma(x - e)[:, :, b]) / (2 * d)
    eps = 0.5 * (H + H.transpose(0, 2, 1))
    ev = np.stack([eps[:, 0, 0], eps[:, 1, 1], eps[:, 2, 2], 2 * eps[:, 0, 1], 2 * eps[:, 1, 2], 2 * eps[:, 0, 2]], 1)
    sv = ev @ C.T
    s = sigma(x)
    sv_exact = np.stack([s[:, 0, 0], s[:, 1, 1], s[:, 2, 2], s[:, 0, 1], s[:, 1, 2], s[:, 0, 2]], 1)
    err = np.abs(sv - sv_exact).max() / np.abs(sv_exact).max()
    assert err < 1e-8, f"C:eps(u) differs from sigma: max error {err:.3e}"
    div = np.abs(dS).max() / np.abs(sv_exact).max()
    assert div < 1e-8, f"div sigma = {div:.3e} (relative): the field needs a body force"


def test_surface_stress_trace_is_exact_for_the_quadratic_field():
    """verify.surface_stress (used for the Lame hoop stress) on a field tet10 represents exactly."""
    mesh = V.distorted_box(3, seed=2, order=2)
    u, sigma = V.patch_field("quadratic")
    C = np.broadcast_to(Isotropic(E=V.PATCH_E, nu=V.PATCH_NU).stiffness(), (mesh.n_elements, 6, 6))
    faces = np.vstack([mesh.facet_sets["xmin"], mesh.facet_sets["zmax"]])
    sig, xq, dA = V.surface_stress(mesh, C, u(mesh.points), faces)
    want = sigma(xq.reshape(-1, 3)).reshape(sig.shape)
    err = np.abs(sig - want).max() / np.abs(want).max()
    assert err < 1e-10, f"surface stress trace: max|sigma| computed {np.abs(sig).max():.12g}, exact {np.abs(want).max():.12g}, error {err:.3e}"
    assert dA.sum() == pytest.approx(200.0, rel=1e-12), f"area of two box sides: computed {dA.sum():.12g}, exact 200"


def test_table_and_json(capsys):
    import json

    rows = V.patch_rows()
    assert all(set(r) == set(V.ROW_KEYS) for r in rows)
    json.dumps(rows)  # the CLI's --json output
    V.print_table(rows)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["problem", "element", "DOFs", "quantity"]
    assert len(out) == len(rows) + 3 and out[-1] == f"{len(rows)} checks, {len(rows)} passed, 0 failed"
