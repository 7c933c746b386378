"""Learned whitening: the PCA whitening turned toward what copies keep.

PCA whitening (`engine.pca`) scales every direction of descriptor space by how much the
frames vary along it, whether that variation is content (which tells videos apart) or what
a re-upload changes (crop, flip, greyscale, re-encoding, captions). Given frames and their
copies, learned whitening (Mikolajczyk and Matas 2007; Radenovic et al., "Fine-tuning CNN
image retrieval with no human annotation", TPAMI 2018, section 3.4) first whitens the
differences between a frame and its copy (the directions edits move a frame along shrink),
then keeps the directions along which the frames vary most in that space, each scaled to
unit variance. Both steps are linear and closed-form, so the result is again a `PCA`
(mean, projection) that the runtime applies unchanged.

The pairs come from a collection built by `engine.evaluation.collection` (training footage
only): every copy whose frames show its source whole (a re-upload, partial copy,
insertion or compilation, with any edit chain), each of its frames matched with the
source frame at the same moment of the copied segment (`copy_pairs`).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..pca import PCA, fit_pca

# Layouts whose frames show the source whole; a picture-in-picture, reaction or vertical
# copy's whole frame is mostly something else.
WHOLE_FRAME_LAYOUTS = ("reupload", "partial", "insertion", "compilation")


def copy_pairs(videos: Mapping[str, dict], descriptors: Mapping[str, np.ndarray], fps: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Frames of copies and of their sources at the same moment.

    videos: a collection's labels {id: {"kind": "copy", "layout": ..., "segments":
    [{"source": id, "source_span": [s, s], "span": [s, s]}, ...]}, ...} (times in seconds;
    other kinds are skipped); descriptors: {id: [T, D]} sampled at `fps` from time 0 ->
    (copy frames [P, D], source frames [P, D]), row p of one the copy of row p of the other.
    """
    a, b = [], []
    for vid, lab in videos.items():
        if lab.get("kind") != "copy" or lab.get("layout") not in WHOLE_FRAME_LAYOUTS or vid not in descriptors:
            continue
        for seg in lab.get("segments", ()):
            src = descriptors.get(seg["source"])
            if src is None:
                continue
            (s0, s1), (c0, c1) = seg["source_span"], seg["span"]
            speed = (s1 - s0) / max(c1 - c0, 1e-6)
            # copy frames whose time lies inside the segment, a quarter frame clear of its end
            for k in range(int(np.ceil(c0 * fps)), int((c1 - 0.25 / fps) * fps) + 1):
                j = int(round((s0 + (k / fps - c0) * speed) * fps))
                if k < len(descriptors[vid]) and 0 <= j < len(src):
                    a.append(descriptors[vid][k])
                    b.append(src[j])
    dim = next(iter(descriptors.values())).shape[1] if descriptors else 0
    if not a:
        return np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32)
    return np.asarray(a, np.float32), np.asarray(b, np.float32)


def fit_learned_whitening(pca: PCA, frames: np.ndarray, copies: np.ndarray, sources: np.ndarray,
                          copy_shrinkage: float = 0.1, data_shrinkage: float = 1.0) -> PCA:
    """Learned whitening on top of a fitted PCA whitening, as one `PCA`.

    frames [N, D_in]: the frames `pca` was fitted on (their mean must be `pca.mean`); copies,
    sources [P, D_in]: matching frames (`copy_pairs`). copy_shrinkage: added to the
    eigenvalues of the copy differences' covariance, as a fraction of their mean (a few
    thousand pairs do not pin down every direction); data_shrinkage: the same for the
    frames' covariance in the copy-whitened space. Output dimension: `pca.dim`.
    Chosen on the collection benchmark's train and validation splits (notebooks/RESULTS.md,
    round 16).
    """
    if len(copies) < 2 or len(copies) != len(sources):
        raise ValueError(f"learned whitening needs matching copy and source frames, got {len(copies)} and {len(sources)}")
    p = torch.from_numpy(pca.projection.astype(np.float64))
    mean = torch.from_numpy(pca.mean.astype(np.float64))
    d = p.shape[1]
    diff = (torch.from_numpy(np.asarray(copies, np.float64)) - torch.from_numpy(np.asarray(sources, np.float64))) @ p
    cs = diff.T @ diff / len(diff)
    cs += copy_shrinkage * float(torch.trace(cs)) / d * torch.eye(d, dtype=torch.float64)
    val, vec = torch.linalg.eigh(cs)
    copy_white = vec @ torch.diag(val.rsqrt()) @ vec.T  # C_S^(-1/2), symmetric
    # the frames' main directions there, each scaled to unit variance: a PCA whitening of the
    # copy-whitened frames; the result keeps pca.mean (the frames' mean) as its own
    y = ((torch.from_numpy(np.asarray(frames, np.float64)) - mean) @ p @ copy_white).numpy()
    data = fit_pca(y, d, data_shrinkage)
    return PCA(pca.mean.astype(np.float32), ((p @ copy_white).numpy() @ data.projection).astype(np.float32))
