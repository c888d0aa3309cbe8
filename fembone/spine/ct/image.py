"""Medical images with their geometry: one reader for NIfTI, NRRD/MHA, DICOM series and VTK image data.

An :class:`Image` is a 3-D voxel array and the 4x4 affine that maps a voxel index
``(i, j, k)`` (voxel centres at integer indices) to world coordinates in **mm, RAS**
(as in NIfTI and 3D Slicer: x towards the patient's Right, y Anterior, z Superior).  Every reader returns that same convention, so a flipped or rotated storage
order never mirrors the anatomy:

* NIfTI (``.nii``, ``.nii.gz``) with nibabel: the header's sform/qform is RAS by definition
  (NIfTI-1 standard); ``scl_slope``/``scl_inter`` are applied; spatial units other than mm
  (m, um) are converted.
* NRRD/MetaImage (``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``) and DICOM series (a folder, or
  one ``.dcm`` file standing for its folder) with SimpleITK: ITK's geometry is LPS, turned
  into RAS by negating x and y.  DICOM falls back to pydicom (ImagePositionPatient,
  ImageOrientationPatient, PixelSpacing, RescaleSlope/Intercept; DICOM PS3.3 C.7.6.2) when
  SimpleITK is missing.
* VTK image data (``.vti``) with pyvista: origin, spacing and direction matrix; the file's
  coordinates are taken as RAS mm as written (VTK has no anatomical convention).

A missing optional reader is one line naming the extra: ``pip install fembone[ct]``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fembone.core.errors import InputError

__all__ = ["Image", "read_image", "check_same_grid", "affine_apply", "LPS_TO_RAS", "IMAGE_SUFFIXES"]

#: world LPS (ITK, DICOM) -> world RAS (NIfTI, Slicer): negate x and y
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".vti", ".dcm")
EXTRA = "pip install fembone[ct]"
GRID_TOL = 1e-3  # mm: two images share a grid when every voxel centre agrees to this


@dataclass
class Image:
    """Voxel values ``data`` (ni, nj, nk) and ``affine`` (4, 4): voxel index -> world RAS, mm."""

    data: np.ndarray
    affine: np.ndarray
    source: str = "<image>"

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel edge lengths along i, j, k (mm)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def voxel_volume(self) -> float:
        """mm^3."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        return affine_apply(self.affine, ijk)

    def world_to_index(self, x: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (n, 3) of world points ``x`` (n, 3) mm."""
        return affine_apply(np.linalg.inv(self.affine), x)

    def sample(self, x: np.ndarray, order: int = 1, ijk: np.ndarray | None = None) -> np.ndarray:
        """Values at world points ``x`` (n, 3): trilinear (``order=1``) or nearest voxel (0).

        Points beyond the outermost voxel centres take the edge values (constant extension).
        ``ijk``: the points' voxel indices when already known (same grid).
        """
        from scipy import ndimage as ndi

        if ijk is None:
            ijk = self.world_to_index(x)
        if order == 0:
            idx = np.rint(ijk).astype(np.int64)
            for a in range(3):
                np.clip(idx[:, a], 0, self.data.shape[a] - 1, out=idx[:, a])
            return self.data[idx[:, 0], idx[:, 1], idx[:, 2]]
        return ndi.map_coordinates(self.data, ijk.T, order=1, mode="nearest", prefilter=False)

    def crop(self, lo, hi) -> Image:
        """Sub-image of voxels ``lo <= (i, j, k) < hi`` with the affine shifted to match."""
        lo = np.maximum(np.asarray(lo, int), 0)
        hi = np.minimum(np.asarray(hi, int), self.shape)
        T = np.eye(4)
        T[:3, 3] = lo
        data = self.data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        return Image(np.ascontiguousarray(data), self.affine @ T, self.source)

    def axis_codes(self) -> str:
        """Anatomical direction of increasing i, j, k, e.g. ``'LPS'`` (nearest world axis)."""
        out = ""
        for a in range(3):
            v = self.affine[:3, a]
            m = int(np.argmax(np.abs(v)))
            out += ("RAS" if v[m] > 0 else "LPI")[m]
        return out


def affine_apply(A: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``A[:3, :3] x + A[:3, 3]`` for points ``x`` (n, 3); returned as the transpose of a (3, n)
    array (a 3 x 3 by 3 x n product is one fast BLAS call; (n, 3) @ (3, 3) is not)."""
    x = np.asarray(x, float).reshape(-1, 3)
    out = A[:3, :3] @ x.T
    out += A[:3, 3:4]
    return out.T


def check_same_grid(a: Image, b: Image, where: str) -> None:
    """Raise one line naming both files unless ``a`` and ``b`` have the same voxel grid."""
    if a.shape != b.shape:
        raise InputError(
            f"image and labels are on different grids: {Path(a.source).name} has {a.shape[0]}x{a.shape[1]}x"
            f"{a.shape[2]} voxels, {Path(b.source).name} {b.shape[0]}x{b.shape[1]}x{b.shape[2]} (resample one "
            "onto the other)", where)
    n = np.array(a.shape) - 1
    corners = np.array([[i, j, k] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])], float)
    d = float(np.abs(a.index_to_world(corners) - b.index_to_world(corners)).max())
    if d > GRID_TOL:
        raise InputError(
            f"image and labels are on different grids: {Path(a.source).name} and {Path(b.source).name} have "
            f"the same size but their voxel positions differ by up to {d:.3g} mm (origin, spacing or "
            "orientation); resample one onto the other", where)


def read_image(path: str | Path, labels: bool = False, where: str | None = None) -> Image:
    """Read a 3-D image (see the module notes); ``labels=True`` returns integer labels.

    ``where`` (a case-file key path) prefixes errors; the file name is always named.
    """
    p = Path(path)
    src = str(path)
    where = where or src
    name = p.name.lower()
    if p.is_dir() or name.endswith(".dcm"):
        folder = p if p.is_dir() else p.parent
        if not folder.is_dir():
            raise InputError(f"DICOM folder not found: {folder}", where)
        img = _read_dicom(folder, where)
    else:
        if not p.is_file():
            raise InputError(f"image file not found: {src}", where)
        if name.endswith((".nii", ".nii.gz")):
            img = _read_nifti(p, where)
        elif name.endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
            img = _read_sitk(p, where)
        elif name.endswith(".vti"):
            img = _read_vti(p, where)
        else:
            raise InputError(
                f"unsupported image format '{''.join(p.suffixes) or p.name}' (use .nii, .nii.gz, .nrrd, .nhdr, "
                ".mha, .mhd, .vti or a DICOM folder)", where)
    img.source = src
    data = np.asarray(img.data)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 2:
        raise InputError(f"expected a 3-D image with at least 2 voxels per axis, got shape {data.shape}", where)
    if not np.all(np.isfinite(img.affine)) or abs(np.linalg.det(img.affine[:3, :3])) < 1e-12:
        raise InputError("image geometry is degenerate (zero or non-finite voxel size or direction)", where)
    if labels:
        if np.issubdtype(data.dtype, np.floating):
            if not np.all(np.isfinite(data)) or np.any(data != np.rint(data)):
                raise InputError("label image has non-integer values", where)
        data = data.astype(np.int32)
    else:
        data = data.astype(np.float64)
        if not np.all(np.isfinite(data)):
            raise InputError("image has non-finite voxel values (NaN or inf)", where)
    img.data = np.ascontiguousarray(data)
    return img


# ----------------------------------------------------------------------------- readers


def _missing(package: str, what: str, where: str) -> InputError:
    return InputError(f"reading {what} needs {package}, which is not installed; install the CT extra: {EXTRA}", where)


def _read_nifti(p: Path, where: str) -> Image:
    try:
        import nibabel as nib
    except ImportError:
        raise _missing("nibabel", "NIfTI images", where) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = nib.load(str(p))
            data = np.asanyarray(img.dataobj)
        affine = np.asarray(img.affine, float)
        units = img.header.get_xyzt_units()[0]
    except Exception as exc:  # nibabel raises many types for damaged files
        raise InputError(f"cannot read NIfTI image ({_first_line(exc)})", where) from None
    scale = {"meter": 1000.0, "micron": 1e-3}.get(units, 1.0)  # 'mm' and 'unknown' are taken as mm
    affine[:3] *= scale
    return Image(data, affine)


def _sitk(what: str, where: str):
    try:
        import SimpleITK as sitk
    except ImportError:
        raise _missing("SimpleITK", what, where) from None
    return sitk


def _sitk_to_image(img) -> Image:
    import SimpleITK as sitk

    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"expected a 3-D scalar image, got dimension {img.GetDimension()} with "
                         f"{img.GetNumberOfComponentsPerPixel()} component(s)")
    data = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # ITK arrays are (k, j, i)
    D = np.array(img.GetDirection(), float).reshape(3, 3)
    A = np.eye(4)
    A[:3, :3] = D * np.array(img.GetSpacing(), float)[None, :]
    A[:3, 3] = img.GetOrigin()
    return Image(data, LPS_TO_RAS @ A)


def _read_sitk(p: Path, where: str) -> Image:
    sitk = _sitk("NRRD/MetaImage files", where)
    try:
        return _sitk_to_image(sitk.ReadImage(str(p)))
    except Exception as exc:
        raise InputError(f"cannot read image ({_first_line(exc)})", where) from None


def _read_dicom(folder: Path, where: str) -> Image:
    try:
        import SimpleITK as sitk
    except ImportError:
        try:
            import pydicom  # noqa: F401
        except ImportError:
            raise _missing("SimpleITK or pydicom", "a DICOM series", where) from None
        return read_dicom_pydicom(folder, where)
    try:
        reader = sitk.ImageSeriesReader()
        ids = reader.GetGDCMSeriesIDs(str(folder))
        if not ids:
            raise InputError(f"no DICOM series in folder {folder}", where)
        if len(ids) > 1:
            raise InputError(f"folder {folder} holds {len(ids)} DICOM series; put one series in a folder of its own", where)
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), ids[0]))
        return _sitk_to_image(reader.Execute())
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read DICOM series ({_first_line(exc)})", where) from None


def read_dicom_pydicom(folder: Path, where: str) -> Image:
    """A DICOM series with pydicom: slices sorted along the slice normal, HU by rescale (PS3.3 C.7.6.2)."""
    import pydicom

    slices = []
    for f in sorted(Path(folder).iterdir()):
        if not f.is_file():
            continue
        try:
            ds = pydicom.dcmread(str(f))
        except Exception:  # not a DICOM file: skip (folders often hold a DICOMDIR or notes)
            continue
        if "ImagePositionPatient" in ds and "PixelData" in ds:
            slices.append(ds)
    if not slices:
        raise InputError(f"no DICOM series in folder {folder}", where)
    series = {str(getattr(s, "SeriesInstanceUID", "")) for s in slices}
    if len(series) > 1:
        raise InputError(f"folder {folder} holds {len(series)} DICOM series; put one series in a folder of its own", where)
    iop = np.array(slices[0].ImageOrientationPatient, float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    pos = np.array([np.array(s.ImagePositionPatient, float) for s in slices])
    order = np.argsort(pos @ normal)
    slices = [slices[i] for i in order]
    pos = pos[order]
    if len(slices) < 2:
        raise InputError("a DICOM series needs at least 2 slices", where)
    steps = np.diff(pos @ normal)
    dz = float(np.median(steps))
    if dz <= 0 or np.any(np.abs(steps - dz) > 0.01 * dz):
        raise InputError(f"DICOM slices are not evenly spaced (steps {steps.min():.3g} to {steps.max():.3g} mm)", where)
    dr, dc = (float(v) for v in slices[0].PixelSpacing)  # between rows, between columns
    vol = np.stack([s.pixel_array.astype(float) * float(getattr(s, "RescaleSlope", 1.0))
                    + float(getattr(s, "RescaleIntercept", 0.0)) for s in slices])  # (k, row, col)
    A = np.eye(4)
    A[:3, 0] = row * dc  # i: along a row (increasing column)
    A[:3, 1] = col * dr  # j: down a column (increasing row)
    A[:3, 2] = (pos[-1] - pos[0]) / (len(slices) - 1)
    A[:3, 3] = pos[0]
    return Image(vol.transpose(2, 1, 0), LPS_TO_RAS @ A)


def _read_vti(p: Path, where: str) -> Image:
    import pyvista as pv

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = pv.read(str(p))
    except Exception as exc:
        raise InputError(f"cannot read VTK image ({_first_line(exc)})", where) from None
    if not isinstance(g, pv.ImageData):
        raise InputError(f"expected VTK image data, got {type(g).__name__}", where)
    names = list(g.point_data.keys())
    if not names:
        raise InputError("VTK image has no point data (voxel values)", where)
    name = g.point_data.active_scalars_name or names[0]
    arr = np.asarray(g.point_data[name])
    if arr.ndim != 1:
        raise InputError(f"VTK image array '{name}' has {arr.shape[1]} components; expected a scalar", where)
    data = arr.reshape(tuple(g.dimensions), order="F")
    D = np.asarray(getattr(g, "direction_matrix", np.eye(3)), float)
    A = np.eye(4)
    A[:3, :3] = D * np.asarray(g.spacing, float)[None, :]
    A[:3, 3] = g.origin
    return Image(data, A)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def voxel_size_mm(img: Image) -> float:
    """Smallest voxel edge (mm)."""
    return float(min(img.spacing))


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Index bounds ``lo <= ijk < hi`` of the true voxels of ``mask``, widened by ``margin``."""
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return np.zeros(3, int), np.array(mask.shape)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + margin, mask.shape)
    return lo, hi
