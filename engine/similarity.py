"""Video-to-video similarity (the paper's section 3.6).

- cosine (TCA_c): dot product of L2-normalised video embeddings.
- chamfer (TCA_f): mean over query frames of the best-matching target frame,
  sim(q, t) = mean_i max_j <q_i, t_j>. Asymmetric: a short query inside a long video
  scores high, which is what partial-copy search needs.
- symmetric chamfer (TCA_sym): (chamfer(q, t) + chamfer(t, q)) / 2.

Many targets are scored at once from one concatenated frame matrix with offsets (the
index's frame store layout): one matrix product, then segment max/mean with reduceat.

A query may come with its variants (`engine.variants`): its frames [L, Tq, d] and video
vectors [L, d], the query itself first. Each query frame (or the video vector) then counts
with its best match over the L looks, a variant's less `VARIANT_MARGIN`.
"""
from __future__ import annotations

import enum

import numpy as np


# A variant look (greyscale, low detail) is less specific than the query itself: degraded,
# two slides of one template or two shots of one set look more alike, so it must beat
# the query's own look by this much (cosine) to count. Chosen on the collection benchmark's
# train and validation splits of two draws (notebooks/RESULTS.md, rounds 11 and 13: 0.03
# with the 512-d whitening, 0.02 with the 1024-d one, whose cosines spread wider).
VARIANT_MARGIN = 0.02


class Measure(str, enum.Enum):
    COSINE = "cosine"
    CHAMFER = "chamfer"
    SYMMETRIC_CHAMFER = "symmetric_chamfer"


def cosine(query: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """query [d] (or its looks [L, d]), videos [N, d] (all L2-normalised) -> [N] (the best
    look's, variants less VARIANT_MARGIN)."""
    return _looks_similarity(np.asarray(query, np.float32)[..., None, :], videos)[0]


def _looks_similarity(query: np.ndarray, target: np.ndarray) -> np.ndarray:
    """query [Tq, d] or its looks [L, Tq, d], target [F, d] -> [Tq, F], the best look per
    cell (variants less VARIANT_MARGIN)."""
    q = np.asarray(query, np.float32)
    t = np.asarray(target, np.float32)
    if q.ndim == 2:
        return q @ t.T
    s = (q.reshape(-1, q.shape[-1]) @ t.T).reshape(q.shape[0], q.shape[1], -1)
    s[1:] -= VARIANT_MARGIN
    return s.max(axis=0)


def frame_similarity(query: np.ndarray, target: np.ndarray, background: np.ndarray | None = None,
                     views: int = 1) -> np.ndarray:
    """Frame-to-frame cosine matrix: query [Tq, d] (or its looks [L, Tq, d], each cell then the
    best look's), target [views * Tt, d] -> [Tq, Tt]; minus
    each target row's background [views * Tt] when given (see `engine.background`). With
    views > 1 the target rows are the index's layout, the whole frames then each inner
    picture's (`engine.inner_pictures.stored_rows`), and each cell is the best of them at that time."""
    s = _looks_similarity(query, target)
    if background is not None:
        s -= np.asarray(background, np.float32)[None, :]
    return s.reshape(len(s), views, -1).max(axis=1) if views > 1 else s


def chamfer(query: np.ndarray, target: np.ndarray) -> float:
    """mean_i max_j <q_i, t_j> for one pair."""
    return float(frame_similarity(query, target).max(axis=1).mean())


def symmetric_chamfer(query: np.ndarray, target: np.ndarray) -> float:
    s = frame_similarity(query, target)
    return float((s.max(axis=1).mean() + s.max(axis=0).mean()) / 2)


def evidence(best: np.ndarray, normalized: bool) -> np.ndarray:
    """What frames' best matches contribute to a chamfer score. Normalised (background
    subtracted), a frame no better than its background adds no evidence: 0, not a penalty
    that depends on the video it was compared with. Raw cosines count as they are."""
    return np.maximum(best, 0.0) if normalized else best


def chamfer_many(
    query: np.ndarray,
    frames: np.ndarray,
    offsets: np.ndarray,
    symmetric: bool = False,
    chunk_frames: int = 262_144,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Chamfer of one query against N videos stored back to back.

    query [Tq, d], or its looks [L, Tq, d] (each query frame's best match over them counts,
    a variant's less VARIANT_MARGIN); frames [F, d] (any float dtype, e.g. a float16
    memmap); offsets [N + 1] with video n at frames[offsets[n]:offsets[n+1]] (every video
    non-empty) -> float32 [N].
    background [F]: each frame's background, subtracted from its similarities (corpus-aware
    similarity, `engine.background`), each frame's best match then counting only as far
    as it is above 0 (`evidence`); None compares raw cosines. Works through the frames in
    chunks of whole videos so memory stays bounded.
    """
    q = np.asarray(query, np.float32)
    offsets = np.asarray(offsets, np.int64)
    chunk_frames = max(chunk_frames // (len(q) if q.ndim == 3 else 1), 1)  # the same memory whatever the looks
    n = len(offsets) - 1
    out = np.empty(n, np.float32)
    a = 0
    while a < n:
        b = a + 1
        while b < n and offsets[b + 1] - offsets[a] <= chunk_frames:
            b += 1
        lo, hi = offsets[a], offsets[b]
        s = _looks_similarity(q, frames[lo:hi])  # [Tq, F_chunk]
        if background is not None:
            s -= np.asarray(background[lo:hi], np.float32)[None, :]
        starts = offsets[a:b] - lo
        score = evidence(np.maximum.reduceat(s, starts, axis=1), background is not None).mean(axis=0)
        if symmetric:
            lengths = np.diff(offsets[a : b + 1])
            col = evidence(s.max(axis=0), background is not None)
            score = (score + np.add.reduceat(col, starts) / lengths) / 2
        out[a:b] = score
        a = b
    return out
