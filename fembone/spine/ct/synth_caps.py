"""Synthesised caps: a block with a flat outer face on each endplate, made in voxel space. Units: mm.

Used where a vertebra from CT (or a voxelised surface) needs a region bonded to each endplate
with a flat outer face (a segment's half discs, :mod:`fembone.spine.segment_import`) and the
labels have none: :func:`synthesise_caps` returns labels with two cap labels added, which
:func:`fembone.spine.ct.geometry.build_ct_mesh` meshes like labelled PMMA caps.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from fembone.core.errors import InputError
from fembone.spine.ct.geometry import _frame, _ids, _largest
from fembone.spine.ct.image import Image

__all__ = ["synthesise_caps"]


def synthesise_caps(labels: Image, groups, height: float, frame: str = "anatomical", anterior=None, cranial=None,
                    where: str = "ct") -> tuple[Image, tuple[int, int], dict]:
    """Labels with two cap regions of ``height`` mm made in voxel space (an additive option).

    Used where a vertebra from CT (or a voxelised surface) needs a block on each endplate with a
    flat outer face (a segment's half discs) and the labels have none.  Listed cap labels are
    dropped.  Each column of voxels along the model's cranial axis that holds vertebral-body
    voxels is filled, above (below) the body's last voxel in it, with empty voxels up to a plane
    ``height`` mm beyond the endplate centre: the median body top (bottom) of the columns within
    6 mm of the body centroid axis, as the generator measures disc height from the deepest
    point of the dish (:mod:`fembone.spine.geometry.vertebra_setup`).  Where the endplate rim
    stands higher than that plane, the plane is raised to one voxel beyond the rim (reported as
    ``raised_mm``).  A column's fill stops at the first bone voxel (posterior elements).  The
    cranial axis must be an image axis (within 1 deg); the posterior elements must be labelled.
    Returns the new labels, the (superior, inferior) cap label values and a summary.
    """
    if not groups.posterior:
        raise InputError("synthesised half discs need the posterior elements labelled (labels.posterior)",
                         f"{where}.labels.posterior")
    bone_ids = _ids(groups.bone) + _ids(groups.lesion)
    L = labels.data.copy()
    L[np.isin(L, _ids(groups.caps))] = 0
    bone = np.isin(L, bone_ids)
    if not bone.any():
        raise InputError(f"none of the bone labels {list(_ids(groups.bone))} occurs in {labels.source}", f"{where}.labels.bone")
    info: dict = {}
    with warnings.catch_warnings():  # islands and a turned frame are reported when the labels are meshed
        warnings.simplefilter("ignore")
        bone = _largest(bone, info, "bone", labels.voxel_volume)
        post = bone & np.isin(L, _ids(groups.posterior))
        body = bone & ~post
        R, _, _ = _frame(labels, bone, body, post, 2.0, frame, anterior, cranial, where)
    A = labels.affine[:3, :3] / labels.spacing[None, :]
    cos = A.T @ R[:, 2]
    ax = int(np.argmax(np.abs(cos)))
    if abs(cos[ax]) < math.cos(math.radians(1.0)):
        raise InputError("synthesised half discs need the cranial axis along an image axis (the image is oblique)", where)
    sgn = 1 if cos[ax] > 0 else -1
    h = float(labels.spacing[ax])
    n_fill = max(1, int(round(height / h)))
    # columns along the cranial axis: move it last, cranial towards increasing index
    mv = lambda a: np.moveaxis(a, ax, -1)[..., ::sgn]  # noqa: E731
    B, K = mv(body), mv(bone)
    nk = B.shape[-1]
    k = np.arange(nk)
    from scipy import ndimage as ndi

    foot = ndi.binary_erosion(B.any(axis=-1), iterations=1)  # one voxel inside the body's outline: no notch at the rim
    ij = np.argwhere(foot)
    sp2 = np.delete(labels.spacing, ax)
    c = np.argwhere(B)[:, :2].mean(axis=0)
    near = np.linalg.norm((ij - c) * sp2, axis=1) <= 6.0
    if not near.any():
        raise InputError("the vertebral body has no voxels near its centroid axis", f"{where}.labels")
    cap_ids = (int(L.max()) + 1, int(L.max()) + 2)
    out = mv(L).copy()
    for name, val, top in (("superior", cap_ids[0], True), ("inferior", cap_ids[1], False)):
        flip = (lambda a: a) if top else (lambda a: a[..., ::-1])  # noqa: E731
        Bs, Ks, view = flip(B), flip(K), flip(out)  # outwards along increasing index
        t = np.where(foot, nk - 1 - np.argmax(Bs[..., ::-1], axis=-1), -1)  # last body voxel of each column
        ref = int(np.median(t[ij[near, 0], ij[near, 1]]))
        face = ref + n_fill
        rim = int(t[foot].max())  # the highest point of the endplate rim
        raised = max(0, rim + 1 - face)
        face += raised
        if face >= nk:
            raise InputError(f"the image ends {(nk - 1 - ref) * h:.1f} mm beyond the {name} endplate; a half disc "
                             f"needs {(face - ref) * h:.1f} mm (pad the image and labels)", f"{where}.image")
        above = k[None, None, :] > t[..., None]
        blocked = np.cumsum(Ks & above, axis=-1) > 0
        reach = foot & (t >= ref - n_fill)  # endplate within a half disc below its centre: no skirt down the body
        fill = reach[..., None] & above & ~blocked & (k[None, None, :] <= face) & (view == 0)
        fill &= fill[..., face:face + 1]  # whole columns only: a column stopped by bone is left empty
        fill = _clean_block(fill)
        view[fill] = val
        info[name] = {"height_mm": (face - ref) * h, "raised_mm": raised * h,
                      "volume_mm3": float(fill.sum() * labels.voxel_volume)}
    back = np.moveaxis(out[..., ::sgn], -1, ax)
    return Image(back.astype(labels.data.dtype, copy=False), labels.affine, labels.source), cap_ids, info


def _clean_block(fill: np.ndarray) -> np.ndarray:
    """The synthesised block without strands one voxel wide (opening by the in-plane cross) and
    without islands (largest face-connected part): thin parts fold the smoothed surface."""
    from scipy import ndimage as ndi

    if not fill.any():
        return fill
    st = np.zeros((3, 3, 3), bool)
    st[:, 1, 1] = st[1, :, 1] = True  # in-plane cross (a layer one voxel high at a shallow rim stays)
    out = ndi.binary_opening(fill, structure=st)
    lab, n = ndi.label(out)
    if n > 1:
        out = lab == int(np.argmax(np.bincount(lab.ravel())[1:])) + 1
    return out
