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

The pairs come from two places, each set weighing the same in the fit:
- a collection built by `engine.evaluation.collection` (training footage only): every copy
  whose frames show its source whole (a re-upload, partial copy, insertion or compilation,
  with any edit chain), each of its frames matched with the source frame at the same
  moment of the copied segment (`copy_pairs`);
- any videos, each frame paired with spatially edited versions of itself (`augmented_pairs`,
  the S2VS / HAP-VR family of `engine.training.augment`: crop, flip, colour, blur, noise,
  downscale, letterbox, captions, logo). These need no labels, and they teach the
  degradations a generated collection's edit list lacks (blur, noise, overlays).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..backbone import FrameEncoder
from ..pca import PCA, fit_pca
from . import augment
from .views import cnn_input, decode_uncropped

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


def augmented_pairs(encoder: FrameEncoder, paths: Sequence[Path], views: int, fps: float, seed: int,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Frames of videos and of edited versions of them, described by `encoder`.

    Each video is sampled at `fps` and seen through `views` random chains of 1-3 spatial
    edits (`augment.random_view`, drawn once per video and view, as a real edited copy
    would be; no picture-in-picture, whose frame is mostly another video). Unreadable videos
    are skipped with a note on stderr. -> (edited [P, D], original [P, D]), float32, row p of
    one an edit of row p of the other; the same `seed` gives the same pairs.
    """
    rng, logo = np.random.default_rng(seed), augment.drawn_logo()
    edited, original = [], []
    for path in tqdm(paths, desc="augmented pairs", unit="video", disable=not progress):
        frames = decode_uncropped(path, fps)
        if not frames:
            continue
        clean = encoder.describe(np.stack([cnn_input(f) for f in frames]))
        for _ in range(views):
            _, edit = augment.random_view(rng, (), logo)
            edited.append(encoder.describe(np.stack([cnn_input(edit(f, i)) for i, f in enumerate(frames)])))
            original.append(clean)
    if not edited:
        return np.zeros((0, encoder.dim), np.float32), np.zeros((0, encoder.dim), np.float32)
    return np.concatenate(edited).astype(np.float32), np.concatenate(original).astype(np.float32)


def fit_learned_whitening(pca: PCA, frames: np.ndarray, pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                          copy_shrinkage: float = 0.1, data_shrinkage: float = 1.0) -> PCA:
    """Learned whitening on top of a fitted PCA whitening, as one `PCA`.

    frames [N, D_in]: the frames `pca` was fitted on (their mean must be `pca.mean`); pairs:
    one or more sets (copies [P, D_in], sources [P, D_in]) of matching frames (`copy_pairs`,
    `augmented_pairs`); each set weighs the same in the covariance of the differences,
    whatever its size. copy_shrinkage: added to the eigenvalues of that covariance, as a
    fraction of their mean (a few thousand pairs do not pin down every direction);
    data_shrinkage: the same for the frames' covariance in the copy-whitened space. Output
    dimension: `pca.dim`. Chosen on the collection benchmark's train and validation splits
    (notebooks/RESULTS.md, rounds 16 and 17).
    """
    if not pairs or any(len(c) < 2 or len(c) != len(s) for c, s in pairs):
        raise ValueError("learned whitening needs sets of matching copy and source frames, got "
                         + (", ".join(f"{len(c)} and {len(s)}" for c, s in pairs) or "none"))
    p = torch.from_numpy(pca.projection.astype(np.float64))
    mean = torch.from_numpy(pca.mean.astype(np.float64))
    d = p.shape[1]
    cs = torch.zeros(d, d, dtype=torch.float64)
    for copies, sources in pairs:
        diff = (torch.from_numpy(np.asarray(copies, np.float64)) - torch.from_numpy(np.asarray(sources, np.float64))) @ p
        cs += diff.T @ diff / len(diff) / len(pairs)
    cs += copy_shrinkage * float(torch.trace(cs)) / d * torch.eye(d, dtype=torch.float64)
    val, vec = torch.linalg.eigh(cs)
    copy_white = vec @ torch.diag(val.rsqrt()) @ vec.T  # C_S^(-1/2), symmetric
    # the frames' main directions there, each scaled to unit variance: a PCA whitening of the
    # copy-whitened frames; the result keeps pca.mean (the frames' mean) as its own
    y = ((torch.from_numpy(np.asarray(frames, np.float64)) - mean) @ p @ copy_white).numpy()
    data = fit_pca(y, d, data_shrinkage)
    return PCA(pca.mean.astype(np.float32), ((p @ copy_white).numpy() @ data.projection).astype(np.float32))
