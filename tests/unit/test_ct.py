"""CT pipeline (fembone.spine.ct): readers, calibration, laws, lesion detection, label geometry, bad input.

Every phantom is made here (small NIfTI/MHA/VTI/DICOM files in tmp_path); expected values are
hand arithmetic from the published formulas (docstrings of fembone.spine.ct.laws), never the
code's own output.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fembone.core.errors import InputError
from fembone.spine.ct import build_ct_model_inputs, parse_ct_spec
from fembone.spine.ct.calibration import calibration_from_spec, fit_phantom
from fembone.spine.ct.image import Image, check_same_grid, read_image
from fembone.spine.ct.laws import LAWS, ash_to_app, make_law, qct_to_ash
from fembone.spine.ct.lesions import detect_lesion

nib = pytest.importorskip("nibabel")


def _nifti(path: Path, data, affine) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data), np.asarray(affine, float)), str(path))
    return path


# ----------------------------------------------------------------------------- calibration


def test_linear_and_density_calibration_by_hand():
    lin = calibration_from_spec({"kind": "linear", "slope": 0.8, "intercept": -10.0})
    assert lin.apply(np.array([100.0, 0.0]))[0] == pytest.approx(70.0)  # 0.8 * 100 - 10
    assert lin.apply(np.array([100.0, 0.0]))[1] == pytest.approx(-10.0)
    dens = calibration_from_spec({"kind": "density"})
    assert dens.apply(np.array([123.4]))[0] == 123.4
    assert calibration_from_spec(None).kind == "density"


def test_phantom_fit_and_r2_by_hand():
    # rods (0,0), (1,1), (2,3): slope Sxy/Sxx = 3/2, intercept 4/3 - 3/2 = -1/6,
    # SS_res = 1/36 + 1/9 + 1/36 = 1/6, SS_tot = 14/3  ->  R^2 = 1 - 1/28 = 27/28
    cal = calibration_from_spec({"kind": "phantom", "rods": [[0, 0], [1, 1], [2, 3]]})
    assert cal.slope == pytest.approx(1.5)
    assert cal.intercept == pytest.approx(-1.0 / 6.0)
    assert cal.r2 == pytest.approx(27.0 / 28.0)
    exact = fit_phantom([[-50, 0], [50, 100], [150, 200]])
    assert (exact.slope, exact.intercept, exact.r2) == pytest.approx((1.0, 50.0, 1.0))


def test_phantom_r2_below_0_9_warns_and_names_the_key():
    # (0,0) (1,2) (2,0) (3,2): slope 2/5, intercept 0.4, SS_res 3.2, SS_tot 4 -> R^2 = 0.2
    with pytest.warns(UserWarning, match=r"ct\.calibration\.rods: phantom fit R\^2 = 0\.200 < 0\.9"):
        cal = calibration_from_spec({"kind": "phantom", "rods": [[0, 0], [1, 2], [2, 0], [3, 2]]}, "ct.calibration")
    assert cal.r2 == pytest.approx(0.2)


@pytest.mark.parametrize("rods", [[], [[100, 50]]])
def test_fewer_than_two_rods_is_one_line_naming_the_key(rods):
    with pytest.raises(InputError, match=r"^ct\.calibration\.rods: a phantom calibration needs at least two rods") as e:
        calibration_from_spec({"kind": "phantom", "rods": rods}, "ct.calibration")
    assert "\n" not in str(e.value)


def test_calibration_keys_checked():
    with pytest.raises(InputError, match=r"ct\.calibration\.rods: 'rods' does not apply to kind 'linear'"):
        calibration_from_spec({"kind": "linear", "slope": 1, "intercept": 0, "rods": []}, "ct.calibration")
    with pytest.raises(InputError, match=r"ct\.calibration\.kind: unknown value 'hu'"):
        calibration_from_spec({"kind": "hu"}, "ct.calibration")


# ----------------------------------------------------------------------------- laws


RHO = 150.0  # mg/cc K2HPO4
ASH = 1.06 * 0.150 + 0.0389  # 0.1979 g/cc
APP = ASH / 0.6  # 0.329833 g/cc


@pytest.mark.parametrize(
    "name, expected",
    [
        ("kopperdahl2002", -34.7 + 3230.0 * 0.150),  # 449.8 MPa
        ("bonelab_kopperdahl", 2980.0 * 0.150**1.05),
        ("kopperdahl1998", 2980.0 * APP**1.05),
        ("morgan2003", 4730.0 * APP**1.56),
        ("keyak1994", 33900.0 * ASH**2.20),
    ],
)
def test_every_law_against_hand_values(name, expected):
    assert float(LAWS[name].modulus(RHO)) == pytest.approx(expected, rel=1e-12)


def test_conversions_and_published_check_values():
    assert float(qct_to_ash(0.150)) == pytest.approx(0.1979)
    assert float(ash_to_app(0.1979)) == pytest.approx(0.1979 / 0.6)
    # OGO's comment: K2HPO4 -31 mg/cc => ash 6 mg/cc
    assert float(qct_to_ash(-0.031)) == pytest.approx(0.006, abs=1e-4)
    # field.md: Morgan 2003 at rho_app 0.20 -> 384.1 MPa
    assert float(LAWS["morgan2003"].modulus_of(0.20)) == pytest.approx(384.1, abs=0.05)
    assert float(LAWS["kopperdahl2002"].modulus(10.743)) == pytest.approx(0.0, abs=0.01)  # zero crossing 34.7/3230


def test_law_specs():
    own = make_law({"a": 1000.0, "b": 2.0, "density": "ash"}, "ct.law")
    assert float(own.modulus(RHO)) == pytest.approx(1000.0 * ASH**2)
    const = make_law({"E": 2.0, "nu": 0.45}, "ct.law.lesion")
    assert (const.E, const.nu) == (2.0, 0.45)
    with pytest.raises(InputError, match=r"ct\.law: unknown density-modulus law 'carter'"):
        make_law("carter", "ct.law")


# ----------------------------------------------------------------------------- readers


def _oblique_affine():
    th = math.radians(30)
    R = np.array([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1.0]])
    A = np.eye(4)
    A[:3, :3] = R @ np.diag([0.8, 0.9, 1.25])
    A[:3, 3] = [-12.0, 30.0, 5.0]
    return A


def test_nifti_round_trip_keeps_the_affine(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    A = _oblique_affine()
    img = read_image(_nifti(tmp_path / "a.nii.gz", data, A))
    assert np.array_equal(img.data, data)
    assert np.allclose(img.affine, A, atol=1e-5)
    assert np.allclose(img.index_to_world([[1, 2, 3]]), A[:3, :3] @ [1, 2, 3] + A[:3, 3], atol=1e-5)


def test_nifti_in_metres_is_converted(tmp_path):
    im = nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.diag([0.001, 0.001, 0.002, 1.0]))
    im.header.set_xyzt_units("meter")
    nib.save(im, str(tmp_path / "m.nii"))
    assert np.allclose(read_image(tmp_path / "m.nii").spacing, [1.0, 1.0, 2.0])


def test_sitk_formats_agree_with_nibabel(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    data = np.random.default_rng(0).random((5, 4, 3)).astype(np.float32)  # (i, j, k)
    im = sitk.GetImageFromArray(data.transpose(2, 1, 0))
    im.SetSpacing((0.7, 0.8, 1.5))
    im.SetOrigin((10.0, -20.0, 30.0))
    th = math.radians(20)
    im.SetDirection((math.cos(th), -math.sin(th), 0, math.sin(th), math.cos(th), 0, 0, 0, 1))
    for suffix in (".mha", ".nrrd", ".nii.gz"):
        sitk.WriteImage(im, str(tmp_path / f"a{suffix}"))
    ref = read_image(tmp_path / "a.nii.gz")  # nibabel: the NIfTI header is RAS by definition
    for suffix in (".mha", ".nrrd"):
        img = read_image(tmp_path / f"a{suffix}")
        assert np.allclose(img.data, ref.data)
        assert np.allclose(img.affine, ref.affine, atol=1e-5)
    # ITK origin (LPS) -> RAS: x and y negated
    assert np.allclose(ref.affine[:3, 3], [-10.0, 20.0, 30.0], atol=1e-5)


def test_vti_reader(tmp_path):
    import pyvista as pv

    g = pv.ImageData(dimensions=(4, 3, 5), spacing=(0.5, 0.6, 0.7), origin=(1.0, 2.0, 3.0))
    vals = np.arange(g.n_points, dtype=float)
    g.point_data["rho"] = vals
    g.save(str(tmp_path / "a.vti"))
    img = read_image(tmp_path / "a.vti")
    assert img.shape == (4, 3, 5)
    assert np.allclose(img.affine, [[0.5, 0, 0, 1], [0, 0.6, 0, 2], [0, 0, 0.7, 3], [0, 0, 0, 1]])
    assert img.data[1, 2, 3] == vals[1 + 4 * (2 + 3 * 3)]  # VTK point order: i fastest


def _dicom_series(folder: Path, vol_hu: np.ndarray, spacing=(0.5, 0.6), dz=1.25, origin=(-40.0, 25.0, 100.0)):
    """A minimal CT series (LPS patient coordinates), stored values (HU + 1024)."""
    pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir()
    series = generate_uid()
    ni, nj, nk = vol_hu.shape
    for k in range(nk):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), series
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "phantom", "0"
        ds.InstanceNumber = nk - k  # written in reverse order: the reader must sort by position
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * dz]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # between rows, between columns
        ds.SliceThickness = dz
        ds.Rows, ds.Columns = nj, ni
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (vol_hu[:, :, k].T + 1024).astype(np.uint16).tobytes()  # rows = j, columns = i
        ds.save_as(str(folder / f"slice{k:03d}.dcm"), enforce_file_format=True)
    lps = np.eye(4)
    lps[:3, :3] = np.diag([spacing[0], spacing[1], dz])
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def test_dicom_series_pydicom_and_sitk(tmp_path):
    from fembone.spine.ct.image import read_dicom_pydicom

    vol = np.random.default_rng(1).integers(-200, 1500, (6, 5, 4)).astype(float)
    expected = _dicom_series(tmp_path / "dcm", vol)
    img = read_dicom_pydicom(tmp_path / "dcm", "ct.image")
    assert np.allclose(img.data, vol)
    assert np.allclose(img.affine, expected)
    pytest.importorskip("SimpleITK")
    img2 = read_image(tmp_path / "dcm")  # the SimpleITK (GDCM) path
    assert np.allclose(img2.data, vol)
    assert np.allclose(img2.affine, expected, atol=1e-4)


def test_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch):
    (tmp_path / "a.mha").write_text("x")
    (tmp_path / "dcm").mkdir()
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # import fails
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(InputError, match=r"^ct\.image: reading NRRD/MetaImage files needs SimpleITK, .*pip install fembone\[ct\]$"):
        read_image(tmp_path / "a.mha", where="ct.image")
    with pytest.raises(InputError, match=r"needs SimpleITK or pydicom.*pip install fembone\[ct\]"):
        read_image(tmp_path / "dcm", where="ct.image")
    monkeypatch.setitem(sys.modules, "nibabel", None)
    (tmp_path / "b.nii").write_bytes(b"0")
    with pytest.raises(InputError, match=r"needs nibabel.*pip install fembone\[ct\]"):
        read_image(tmp_path / "b.nii", where="ct.image")


def test_reader_errors(tmp_path):
    with pytest.raises(InputError, match=r"unsupported image format '\.png'"):
        (tmp_path / "a.png").write_bytes(b"x")
        read_image(tmp_path / "a.png")
    with pytest.raises(InputError, match="image file not found"):
        read_image(tmp_path / "none.nii.gz")
    _nifti(tmp_path / "f.nii", np.full((3, 3, 3), 1.5, np.float32), np.eye(4))
    with pytest.raises(InputError, match="label image has non-integer values"):
        read_image(tmp_path / "f.nii", labels=True)


def test_images_on_different_grids_name_both_files():
    a = Image(np.zeros((4, 4, 4)), np.eye(4), "scan.nii.gz")
    b = Image(np.zeros((4, 4, 5)), np.eye(4), "seg.nii.gz")
    with pytest.raises(InputError, match=r"^ct\.labels\.file: image and labels are on different grids: scan\.nii\.gz has 4x4x4 voxels, seg\.nii\.gz 4x4x5"):
        check_same_grid(a, b, "ct.labels.file")
    shifted = np.eye(4)
    shifted[0, 3] = 0.5
    with pytest.raises(InputError, match=r"differ by up to 0\.5 mm"):
        check_same_grid(a, Image(np.zeros((4, 4, 4)), shifted, "seg.nii.gz"), "ct.labels.file")


# ----------------------------------------------------------------------------- lesion detection


def test_density_deficit_lesion_volume_fraction():
    rng = np.random.default_rng(3)
    n = 40
    i, j, k = np.meshgrid(*(np.arange(n),) * 3, indexing="ij")
    body = (np.abs(i - 19.5) < 16) & (np.abs(j - 19.5) < 16) & (np.abs(k - 19.5) < 12)
    rho = np.where(body, rng.normal(150.0, 20.0, body.shape), 0.0)
    r = 7.0
    sphere = (i - 14.0) ** 2 + (j - 22.0) ** 2 + (k - 20.0) ** 2 <= r**2
    rho[sphere] = rng.normal(20.0, 10.0, int(sphere.sum()))
    res = detect_lesion(Image(rho, np.eye(4)), body)
    assert res.found
    expected = (4.0 / 3.0) * math.pi * r**3 / float(body.sum())  # 1436.8 / 24576 mm^3
    assert res.volume_fraction == pytest.approx(expected, rel=0.10), (res.volume_fraction, expected)
    assert res.mask[14, 22, 20] and not res.mask[30, 10, 20]
    assert res.reference_density == pytest.approx(150.0, abs=3.0)
    healthy = detect_lesion(Image(np.where(body, rng.normal(150.0, 20.0, body.shape), 0.0), np.eye(4)), body)
    assert not healthy.found and healthy.volume_fraction == 0.0


# ----------------------------------------------------------------------------- label geometry


def _toy_vertebra(n_pad: int = 0):
    """Labels on a 1 mm grid, world = RAS: body (1 trabecular, 2 cortical rim) ~ 28x22x20 mm,
    posterior arch ring (3) around a 14 mm foramen at -y, caps 5 (inferior) and 6 (superior),
    and a marker bump on the patient's right (+x) of the body."""
    x = np.arange(-20, 21)
    y = np.arange(-34, 16)
    z = np.arange(-14, 15)
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
    L = np.zeros(X.shape, np.uint8)
    ell = (X / 14.0) ** 2 + (Y / 11.0) ** 2
    body = (ell <= 1.0) & (np.abs(Z) <= 9)
    L[body] = 1
    inner = ((X / 12.6) ** 2 + (Y / 9.6) ** 2 <= 1.0) & (np.abs(Z) <= 8)
    L[body & ~inner] = 2
    ring = ((X**2 + (Y + 20.0) ** 2) <= 11.0**2) & ((X**2 + (Y + 20.0) ** 2) > 7.0**2) & (np.abs(Z) <= 5) & ~body
    L[ring] = 3
    L[(X >= 12) & (X <= 17) & (np.abs(Y) <= 2) & (np.abs(Z) <= 3)] = 1  # right-side marker
    L[(ell <= 1.0) & (Z >= 10) & (Z <= 12)] = 6
    L[(ell <= 1.0) & (Z <= -10) & (Z >= -12)] = 5
    A = np.eye(4)
    A[:3, 3] = [x[0], y[0], z[0]]
    rho = np.where(np.isin(L, [1, 3]), 150.0, np.where(L == 2, 600.0, np.where(L > 0, 0.0, -50.0)))
    return L, rho, A


def _write_pair(tmp_path: Path, name: str, L, rho, A):
    _nifti(tmp_path / f"{name}_im.nii.gz", rho.astype(np.float32), A)
    _nifti(tmp_path / f"{name}_seg.nii.gz", L, A)


def _spec(name: str, **kw):
    d = {"image": f"{name}_im.nii.gz",
         "labels": {"file": f"{name}_seg.nii.gz", "bone": [1, 2, 3], "cortical": [2], "posterior": [3], "caps": [5, 6]},
         "calibration": {"kind": "density"}, "law": "kopperdahl2002", "mesh_size": 2.5, "order": 1, "cranial": "+z"}
    d.update(kw)
    return parse_ct_spec(d)


def _summary(out):
    m = out.mesh
    V = np.abs(m.volumes())
    cap = out.fractions["cap"] > 0.5
    return {"volume": V.sum(), "EV": (out.modulus * V)[~cap].sum(), "xmax": m.points[:, 0].max(),
            "xmin": m.points[:, 0].min(), "ymin": m.points[:, 1].min(), "zmax": m.points[:, 2].max()}


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """The toy vertebra stored plainly (RAS header), built once for the geometry tests."""
    folder = tmp_path_factory.mktemp("toy")
    L, rho, A = _toy_vertebra()
    _write_pair(folder, "plain", L, rho, A)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RAS-consistent header: no frame warning
        out = build_ct_model_inputs(_spec("plain"), folder)
    return L, out


def test_label_geometry_groups_caps_and_frame(toy_model):
    L, out = toy_model
    m = out.mesh
    for g in ("cortical_shell", "trabecular", "posterior_elements", "cap_superior", "cap_inferior"):
        assert len(m.cell_sets[g]), g
    for f in ("endplate_superior", "endplate_inferior", "posterior_wall", "cap_superior_face", "cap_inferior_face"):
        assert len(m.facet_sets[f]), f
    # cap outer faces flat and at the caps' outer planes: world z = 12.5 / -12.5 (voxel faces), body centroid at z 0
    for f, zc in (("cap_superior_face", 12.5), ("cap_inferior_face", -12.5)):
        z = m.points[np.unique(m.facet_sets[f]), 2]
        assert np.ptp(z) < 1e-9
        assert z[0] == pytest.approx(zc, abs=0.35)
    # superior cap above the body, posterior elements behind it (model frame: +y anterior)
    cen = m.centroids()
    assert cen[m.cell_sets["cap_superior"], 2].mean() > 9 > cen[m.cell_sets["trabecular"], 2].max() - 1
    assert cen[m.cell_sets["posterior_elements"], 1].mean() < -12
    wall = m.points[np.unique(m.facet_sets["posterior_wall"])]
    assert np.all(wall[:, 1] < -6) and np.all(np.abs(wall[:, 0]) < 10)
    s = _summary(out)
    assert s["xmax"] > 16.0 and s["xmin"] > -15.0  # the marker stays on the patient's right
    # volume of the labelled solid (voxel count, 1 mm^3 each) within the smoothing/mesh error
    assert s["volume"] == pytest.approx(float(np.isin(L, [1, 2, 3, 5, 6]).sum()), rel=0.05)
    bone_only = out.fractions["cap"] == 0
    assert out.modulus[bone_only].max() <= -34.7 + 3230 * 0.6 + 1e-6  # no bone element stiffer than the cortex


def _flip_i(L, rho, A):
    B = A.copy()
    B[:3, 0] = -A[:3, 0]
    B[:3, 3] = A[:3, 3] + (L.shape[0] - 1) * A[:3, 0]
    return L[::-1], rho[::-1], B


def _swap_ij(L, rho, A):
    B = A.copy()
    B[:3, 0], B[:3, 1] = A[:3, 1], A[:3, 0].copy()
    return L.transpose(1, 0, 2), rho.transpose(1, 0, 2), B


def test_flipped_and_transposed_storage_gives_the_same_model(tmp_path, toy_model):
    """i reversed and (i, j) swapped at once, the affine following: the same world, the same model."""
    L, rho, A = _toy_vertebra()
    ref = _summary(toy_model[1])
    Lx, rx, Ax = _swap_ij(*_flip_i(L, rho, A))
    _write_pair(tmp_path, "flipswap", np.ascontiguousarray(Lx), np.ascontiguousarray(rx), Ax)
    s = _summary(build_ct_model_inputs(_spec("flipswap"), tmp_path))
    for k in ("volume", "EV"):
        assert s[k] == pytest.approx(ref[k], rel=0.01), (k, s[k], ref[k])
    for k in ("xmax", "xmin", "ymin", "zmax"):
        assert s[k] == pytest.approx(ref[k], abs=0.05), (k, s[k], ref[k])


def test_header_with_lps_axes_is_turned_not_mirrored(tmp_path):
    """World rotated 180 deg about z (what an LPS array under a RAS label gives): the model
    frame follows the anatomy, with a warning, and the right-side marker stays right."""
    L, rho, A = _toy_vertebra()
    B = np.diag([-1.0, -1.0, 1.0, 1.0]) @ A
    _write_pair(tmp_path, "lps", L, rho, B)
    with pytest.warns(UserWarning, match=r"disagree with the anatomy.*\+x -> -x, \+y -> -y, \+z -> \+z \(a rotation, not a mirror\)"):
        out = build_ct_model_inputs(_spec("lps"), tmp_path)
    s = _summary(out)
    assert s["xmax"] > 16.0 and s["xmin"] > -15.0
    assert np.allclose(out.frame_to_world[:3, :3], np.diag([-1.0, -1.0, 1.0]))


# ----------------------------------------------------------------------------- bad input, end to end


def test_no_bone_label_names_key_and_file(tmp_path):
    L, rho, A = _toy_vertebra()
    _write_pair(tmp_path, "toy", L, rho, A)
    spec = _spec("toy", labels={"file": "toy_seg.nii.gz", "bone": [7, 8]})
    with pytest.raises(InputError, match=r"^ct\.labels\.bone: none of the bone labels \[7, 8\] occurs in .*toy_seg\.nii\.gz \(labels present: 0, 1, 2, 3, 5, 6\)$"):
        build_ct_model_inputs(spec, tmp_path)


def test_all_densities_not_positive_names_calibration_and_file(tmp_path):
    L, rho, A = _toy_vertebra()
    _write_pair(tmp_path, "toy", L, -np.abs(rho) - 1.0, A)
    with pytest.raises(InputError, match=r"^ct\.calibration: all calibrated densities in the bone labels are <= 0 mg/cc .*toy_im\.nii\.gz$"):
        build_ct_model_inputs(_spec("toy"), tmp_path)


def test_image_and_labels_on_different_grids_end_to_end(tmp_path):
    L, rho, A = _toy_vertebra()
    _nifti(tmp_path / "toy_im.nii.gz", rho.astype(np.float32), A)
    B = A.copy()
    B[2, 3] += 1.0
    _nifti(tmp_path / "toy_seg.nii.gz", L, B)
    with pytest.raises(InputError, match=r"^ct\.labels\.file: image and labels are on different grids: toy_im\.nii\.gz and toy_seg\.nii\.gz .* differ by up to 1 mm"):
        build_ct_model_inputs(_spec("toy"), tmp_path)


def test_spec_errors_name_the_key():
    with pytest.raises(InputError, match=r"^ct\.mesh_sise: unknown key"):
        parse_ct_spec({"image": "a.nii", "labels": {"file": "b.nii", "bone": [1]}, "mesh_sise": 1})
    with pytest.raises(InputError, match=r"^ct: give 'labels'"):
        parse_ct_spec({"image": "a.nii"})
    with pytest.raises(InputError, match=r"^ct\.law\.trabecular: unknown density-modulus law 'morgan'"):
        parse_ct_spec({"image": "a.nii", "labels": {"file": "b.nii", "bone": [1]}, "law": {"trabecular": "morgan"}})
    with pytest.raises(InputError, match=r"^ct\.labels\.caps: label 5 is both a cap and bone"):
        parse_ct_spec({"image": "a.nii", "labels": {"file": "b.nii", "bone": [1, 5], "caps": [5]}})
    with pytest.raises(InputError, match=r"^ct\.calibration\.rods: a phantom calibration needs at least two rods"):
        parse_ct_spec({"image": "a.nii", "labels": {"file": "b.nii", "bone": [1]},
                       "calibration": {"kind": "phantom", "rods": [[0, 0]]}})


# ----------------------------------------------------------------------------- existing mesh, lesions, bins


def test_existing_mesh_detected_lesion_takes_the_lesion_law(tmp_path):
    """A box mesh file in the image's world frame is mapped as it is; a low-density sphere in
    the body is detected, and elements inside it take the lytic-tissue law (E 2 MPa)."""
    import meshio

    from fembone.core.meshgen import box_mesh

    n = 30
    i, j, k = np.meshgrid(*(np.arange(n),) * 3, indexing="ij")
    body = (i >= 3) & (i < 27) & (j >= 3) & (j < 27) & (k >= 3) & (k < 27)
    rho = np.where(body, 150.0, -20.0)
    sphere = (i - 15.0) ** 2 + (j - 15.0) ** 2 + (k - 15.0) ** 2 <= 6.0**2
    rho[sphere] = 10.0
    L = np.where(body, 1, 0).astype(np.uint8)
    _nifti(tmp_path / "les_im.nii.gz", rho.astype(np.float32), np.eye(4))
    _nifti(tmp_path / "les_seg.nii.gz", L, np.eye(4))
    mesh = box_mesh((20.0, 20.0, 20.0), (8, 8, 8), origin=(5.0, 5.0, 5.0))
    meshio.write(str(tmp_path / "box.vtu"), meshio.Mesh(mesh.points, [("tetra", mesh.cells)]))
    spec = parse_ct_spec({"image": "les_im.nii.gz", "labels": {"file": "les_seg.nii.gz", "bone": [1]},
                          "mesh": "box.vtu", "order": 1, "law": "kopperdahl2002", "lesion_detection": {"threshold": 0.5}})
    out = build_ct_model_inputs(spec, tmp_path)
    les = out.meta["lesion"]
    assert les["source"] == "detected"
    assert les["volume_fraction"] == pytest.approx((4 / 3) * math.pi * 6.0**3 / 24.0**3, rel=0.12)
    inside = np.linalg.norm(out.mesh.centroids() - 15.0, axis=1) < 3.0
    assert np.allclose(out.modulus[inside], 2.0) and np.allclose(out.poisson[inside], 0.45)
    far = np.linalg.norm(out.mesh.centroids() - 15.0, axis=1) > 9.5
    assert np.allclose(out.modulus[far], -34.7 + 3230 * 0.150)
    assert set(np.flatnonzero(inside)) <= set(out.mesh.cell_sets["lesion"])
    assert np.allclose(out.frame_to_world, np.eye(4))


def test_bins_keep_the_integral_of_the_modulus():
    from fembone.core.meshgen import box_mesh
    from fembone.spine.ct.mapping import RegionLaws, map_materials

    rho = np.random.default_rng(5).uniform(60.0, 400.0, (14, 14, 14))
    A = np.eye(4)
    A[:3, 3] = -1.0
    mesh = box_mesh((10.0, 10.0, 10.0), (4, 4, 4))
    law = LAWS["morgan2003"]
    free = map_materials(mesh, Image(rho, A), RegionLaws(law, law))
    binned = map_materials(mesh, Image(rho, A), RegionLaws(law, law), n_bins=5)
    V = np.abs(mesh.volumes())
    assert len(np.unique(np.round(binned.modulus, 9))) <= 5
    assert np.all((binned.bin_id >= 0) & (binned.bin_id < 5))
    assert (binned.modulus * V).sum() == pytest.approx((free.modulus * V).sum(), rel=1e-12)
    assert np.allclose(binned.bin_modulus[binned.bin_id], binned.modulus)


def test_bone_masked_interpolation_keeps_surface_elements_at_bone_density():
    """Bone voxels 150 mg/cc, soft tissue around 0: the mesh of the labelled box reaches half a
    voxel beyond the outermost bone voxel centres; masked interpolation keeps the bone's own
    density there, plain interpolation mixes in soft tissue."""
    from fembone.core.meshgen import box_mesh
    from fembone.spine.ct.mapping import RegionLaws, RegionMap, map_materials

    L = np.zeros((16, 16, 16), np.int32)
    L[3:13, 3:13, 3:13] = 1  # voxel centres 3..12: the bone box spans 2.5..12.5 mm
    rho = np.where(L == 1, 150.0, 0.0)
    mesh = box_mesh((10.0, 10.0, 10.0), (4, 4, 4), origin=(2.5, 2.5, 2.5))
    law = LAWS["kopperdahl2002"]
    lab = Image(L, np.eye(4), "seg")
    masked = map_materials(mesh, Image(rho, np.eye(4)), RegionLaws(law, law), RegionMap(lab, {}, None, L == 1))
    plain = map_materials(mesh, Image(rho, np.eye(4)), RegionLaws(law, law), RegionMap(lab, {}, None, L == 1),
                          mask_bone=False)
    assert np.allclose(masked.modulus, -34.7 + 3230 * 0.150, rtol=1e-12)
    assert plain.modulus.min() < 0.8 * masked.modulus.min()


def test_view_shows_the_mapped_material_before_any_solve(tmp_path):
    """``fembone view CASE.yaml`` builds the CT model (no solve) and writes model.vtu with the
    mapped density and modulus: the toy's trabecular 150 mg/cc maps to Kopperdahl 2002's
    -34.7 + 3230 x 0.150 = 449.8 MPa, and that is the stiffness the model carries."""
    meshio = pytest.importorskip("meshio")
    pytest.importorskip("pyvista")
    import yaml

    from fembone.apps.cli import main

    L, rho, A = _toy_vertebra()
    _write_pair(tmp_path, "toy", L, rho, A)
    ct = {"image": "toy_im.nii.gz",
          "labels": {"file": "toy_seg.nii.gz", "bone": [1, 2, 3], "cortical": [2], "posterior": [3], "caps": [5, 6]},
          "calibration": {"kind": "density"}, "law": "kopperdahl2002", "mesh_size": 2.5, "order": 1, "cranial": "+z"}
    case = tmp_path / "toy.yaml"
    case.write_text(yaml.safe_dump({"name": "toy", "ct": ct,
                                    "loadcases": {"compression": [{"preset": "compression", "displacement": -0.2}]}}))
    png = tmp_path / "density.png"
    assert main(["view", str(case), "--out", str(tmp_path / "out"), "--field", "ct_density_mgcc",
                 "--screenshot", str(png), "--size", "320x240"]) == 0
    assert png.is_file() and png.stat().st_size > 2000
    assert not (tmp_path / "out" / "summary.json").exists()  # nothing was solved
    m = meshio.read(tmp_path / "out" / "model.vtu")
    cd = {k: np.asarray(v[0], float) for k, v in m.cell_data.items()}
    trab = np.isclose(cd["ct_density_mgcc"], 150.0, rtol=1e-9)
    assert trab.sum() > 0.2 * len(trab)  # the whole interior of body and arch
    assert cd["ct_modulus_MPa"][trab] == pytest.approx(-34.7 + 3230.0 * 0.150, rel=1e-12)
    assert cd["youngs_modulus"][trab] == pytest.approx(-34.7 + 3230.0 * 0.150, rel=1e-9)
    assert cd["ct_density_mgcc"].max() == pytest.approx(600.0)  # the cortical rim's density
    # default field of a case file: the mapped modulus; a missing case file is one line
    assert main(["view", str(case), "--out", str(tmp_path / "out2"), "--screenshot", str(tmp_path / "e.png"),
                 "--size", "320x240"]) == 0
    assert main(["view", str(tmp_path / "nope.yaml")]) == 2
