"""Corpus-aware similarity: how much each indexed frame (and video) looks like everything else.

In a real collection some frames match almost every video of a channel: its intro
bumper, end card, watermark, black gaps, the slide template. A frame's *background* is
how well it matches the *other* videos of the collection (CSLS, Lample et al. 2018; VSC
2022's score normalisation): the mean of its best similarity in each of the k videos
that match it best after the first `skip` (see `frame_background`). Subtracting it from every
frame-to-frame similarity, sim'(q_i, t_j) = <q_i, t_j> - background[j], turns "matches
everything" into "matches nothing in particular", while a true copy keeps its margin.
The query side needs nothing: a query frame's own background would shift every video's
chamfer score by the same amount, so it cannot change a ranking.

The index computes the backgrounds when it is saved (so they stay right as videos are
added) and stores them beside the frames; a query costs one subtraction more.

The same backgrounds say which frames a video vector should be made of: a model without
TCA pools its frames weighted by their `distinctiveness` ((1 - background) cubed), so
bumpers, end cards and black gaps, which match the whole collection, weigh almost
nothing (`distinctive_pooling`; notebooks/RESULTS.md, round 14); a stored video has such a
vector for its whole frames, each inner picture and each window of a few seconds
(`distinctive_views`).
"""
from __future__ import annotations

import numpy as np

from .similarity import PICTURE_MARGIN, lower_disagreeing

DEFAULT_K = 10
DEFAULT_SKIP = 3
# Exponent of (1 - background) in a frame's weight. 1 to 4 are level on the collection
# benchmark's train and validation splits of two draws (round 14: mean cosine mAP
# 0.493-0.496, 8 the worst, 0.475; round 29, a vector per view: 0.603 for 2, 3 and 4). 3
# darkens what a small collection's channels share: in the shipped demo index (channels of
# 4-6 uploads, whose bumper is shared by as few videos as a clip with some copies) intros
# and end cards get 0.42 of their share of the weights, against 0.57 with 2 (notebooks/RESULTS.md).
DISTINCTIVE_POWER = 3


def frame_background(frames: np.ndarray, offsets: np.ndarray, k: int = DEFAULT_K, skip: int = DEFAULT_SKIP,
                     chunk: int = 1024, reference: tuple[np.ndarray, np.ndarray] | None = None,
                     same: np.ndarray | None = None, text: np.ndarray | None = None,
                     reference_text: np.ndarray | None = None) -> np.ndarray:
    """How much each frame looks like the rest of the collection.

    For every frame, its best cosine similarity in each *other* video, sorted; the
    background is the mean of the k values after the `skip` best. One value per video, so
    a long video cannot fill the neighbourhood alone; skipping the best few, so that the
    handful of true copies a frame may have does not make it look common (a bumper or a
    slide template is shared by dozens of videos, a copied shot by a few).

    frames [F, d] (L2-normalised, any float dtype, e.g. a memmap); offsets [N + 1] with
    video n at frames[offsets[n]:offsets[n+1]] -> float32 [F]. reference: (frames [R, d],
    offsets [M + 1]) of other videos to measure against instead of the collection itself
    (a large index's fixed sample); same [N]: the reference video that is video n itself
    (-1: none). With fewer other videos, the ranks there are (0 when there are none).
    text: the frames' text sketches [F, k] (`engine.text`; NaN rows: none) and
    reference_text the reference's [R, k] (default: `text`, when no reference is given): a
    frame is measured as the ranking compares it, its cells with frames whose text
    disagrees lowered, so a slide or terminal whose template the channel shares is as
    common as its words are, not as its template (notebooks/RESULTS.md, round 37). Exact:
    [chunk, R] matrix products.
    """
    offsets = np.asarray(offsets, np.int64)
    n_frames, n_videos = int(offsets[-1]), len(offsets) - 1
    if reference is None:
        ref_frames, ref_offsets, same = frames, offsets, np.arange(n_videos)
    else:
        ref_frames, ref_offsets = reference
        ref_offsets = np.asarray(ref_offsets, np.int64)
        same = np.full(n_videos, -1) if same is None else np.asarray(same)
    n_ref = len(ref_offsets) - 1
    out = np.zeros(n_frames, np.float32)
    n_other = n_ref - (1 if reference is None else 0)
    lo = min(skip, max(n_other - k, 0))  # small collections: skip less
    hi = min(lo + k, n_other)
    if n_frames == 0 or hi <= lo:
        return out
    all_ref = np.asarray(ref_frames, np.float32)
    if text is not None and reference_text is None and reference is None:
        reference_text = text
    owner = np.repeat(np.arange(n_videos), np.diff(offsets))
    for a in range(0, n_frames, chunk):
        b = min(a + chunk, n_frames)
        sims = np.asarray(frames[a:b], np.float32) @ all_ref.T
        if text is not None and reference_text is not None:
            lower_disagreeing(sims, text[a:b], reference_text)
        best = np.maximum.reduceat(sims, ref_offsets[:-1], axis=1)
        own = same[owner[a:b]]
        rows = np.flatnonzero(own >= 0)
        best[rows, own[rows]] = -np.inf  # its own video does not count
        out[a:b] = _finite_mean(-np.sort(-best, axis=1)[:, lo:hi])
    return out


def video_background(videos: np.ndarray, k: int = DEFAULT_K, reference: np.ndarray | None = None,
                     same: np.ndarray | None = None) -> np.ndarray:
    """The same for video vectors: mean of each video's k best cosine similarities to the
    other videos (or to `reference` [M, d], skipping same[n] >= 0, the video itself).
    videos [N, d] (L2-normalised) -> float32 [N]."""
    v = np.asarray(videos, np.float32)
    n = len(v)
    ref = v if reference is None else np.asarray(reference, np.float32)
    same = np.arange(n) if reference is None else (np.full(n, -1) if same is None else np.asarray(same))
    n_other = len(ref) - (1 if reference is None else 0)
    if n == 0 or n_other < 1:
        return np.zeros(n, np.float32)
    kk = min(k, n_other)
    out = np.empty(n, np.float32)
    for a in range(0, n, 4096):
        s = v[a : a + 4096] @ ref.T
        own = same[a : a + len(s)]
        rows = np.flatnonzero(own >= 0)
        s[rows, own[rows]] = -np.inf
        out[a : a + len(s)] = _finite_mean(-np.partition(-s, kk - 1, axis=1)[:, :kk])
    return out


def query_background(frames: np.ndarray, reference: tuple[np.ndarray, np.ndarray], k: int = DEFAULT_K,
                     skip: int = DEFAULT_SKIP) -> np.ndarray:
    """`frame_background` of a video that is none of `reference`'s (a query): frames [T, d]
    (or its looks [L, T, d], each look on its own) -> float32 [T] (or [L, T]); reference:
    (frames [R, d], offsets [M + 1])."""
    f = np.asarray(frames, np.float32)
    # one look per call: a look gets the same values whatever looks come with it (one batched
    # product would differ in the last bits)
    out = [frame_background(look, np.array([0, len(look)]), k, skip, reference=reference)
           for look in (f[None] if f.ndim == 2 else f)]
    return (np.stack(out) if out else np.zeros(0, np.float32)).reshape(f.shape[:-1])


def _finite_mean(values: np.ndarray) -> np.ndarray:
    """Row means over the finite entries (a video's own, excluded, is -inf); 0 for none."""
    ok = np.isfinite(values)
    return (np.where(ok, values, 0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)).astype(np.float32)


def backgrounds(frames: np.ndarray, offsets: np.ndarray, videos: np.ndarray, k: int = DEFAULT_K,
                skip: int = DEFAULT_SKIP, text: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Both backgrounds of a collection stored back to back (the index's layout):
    (frame backgrounds float32 [F], video backgrounds float32 [N]); text: the frames' text
    sketches [F, k] (`frame_background`)."""
    return frame_background(frames, offsets, k, skip, text=text), video_background(videos, k)


def distinctiveness(background: np.ndarray) -> np.ndarray:
    """How much each frame says about its video rather than about the collection: shares
    [T] summing to 1, proportional to max(1 - background, 0) ** DISTINCTIVE_POWER (uniform
    when every frame is as common as the collection's most common). background [T]
    (`frame_background`), or [..., T] (each row on its own) -> float32, the same shape."""
    w = _weights(background)
    total = w.sum(axis=-1, keepdims=True)
    flat = total <= 1e-12
    uniform = np.float32(1.0 / max(w.shape[-1], 1))
    return np.where(flat, uniform, w / np.where(flat, 1.0, total)).astype(np.float32)


def _weights(background: np.ndarray) -> np.ndarray:
    """A frame's unnormalised weight, max(1 - background, 0) ** DISTINCTIVE_POWER: float32, background's shape."""
    return np.clip(1.0 - np.asarray(background, np.float32), 0.0, None) ** DISTINCTIVE_POWER


# A stored video's stretches are views too: a compilation or an insertion holds a query's
# content in a few seconds of a longer video, whose one vector mixes it with the rest.
# Windows of WINDOW_STRIDES strides of WINDOW_STRIDE_SECONDS (8 s every 4 s), in videos at
# least one window and one stride long. Chosen on the collection benchmark's train and
# validation splits of two draws (notebooks/RESULTS.md, round 30: 6-8 s windows level, 4 s
# and 10-16 s lower).
WINDOW_STRIDE_SECONDS = 4.0
WINDOW_STRIDES = 2
WINDOW_SECONDS = WINDOW_STRIDES * WINDOW_STRIDE_SECONDS


def window_starts(samples: int, fps: float) -> tuple[np.ndarray, int]:
    """The stretches of a video of `samples` frames sampled at `fps` (frames per second)
    that are views of it: (int64 [W] first frame of each window, frames per window); no
    windows (an empty array) in a video shorter than a window and a stride."""
    stride = max(int(round(WINDOW_STRIDE_SECONDS * fps)), 1)
    length = stride * WINDOW_STRIDES
    if samples < length + stride:
        return np.zeros(0, np.int64), length
    return np.arange(0, samples - length + 1, stride, dtype=np.int64), length


# The best of many windows matches anything a little (the largest of n draws grows like
# sqrt(2 ln n)), so in a video of more than WINDOW_FREE windows (about a minute) each window
# pays WINDOW_MARGIN_SCALE x (sqrt(2 ln n) - sqrt(2 ln WINDOW_FREE)): 0.08 at 3 minutes,
# 0.16 at 10, 0.27 at an hour. Chosen on the collection benchmark's train and validation
# splits of two draws with 12 added 8-minute videos of unrelated (test split) footage
# (notebooks/RESULTS.md, round 30): without it they took 53 and 76 places in the queries'
# top 10s, with 0.2 five each; 0.3-0.4 lose copies hidden inside such videos.
WINDOW_FREE = 16
WINDOW_MARGIN_SCALE = 0.2


def window_margin(windows: int) -> float:
    """What each of a video's `windows` windows pays on its cosine (see WINDOW_FREE)."""
    if windows <= WINDOW_FREE:
        return 0.0
    return WINDOW_MARGIN_SCALE * float(np.sqrt(2 * np.log(windows)) - np.sqrt(2 * np.log(WINDOW_FREE)))


def distinctive_views(rows: np.ndarray, background: np.ndarray, views: int, fps: float = 1.0,
                      layout_dim: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One stored video's vectors, each pooled by distinctiveness: rows [V * T, d] as the
    index stores them (whole frames, then each inner picture's), their backgrounds [V * T],
    V = views, sampled at `fps` -> (float32 [1 + W + V - 1, d]: the whole frames, each
    window of them (`window_starts`), each inner picture; float32 [same], what each pays
    on its cosine in `similarity.cosine_views`: 0 for the whole frames, `window_margin` for
    a window, PICTURE_MARGIN for an inner picture). layout_dim: see `distinctive_pooling`."""
    rows = np.asarray(rows, np.float32)
    v = max(int(views), 1)
    bg = np.asarray(background, np.float32).reshape(v, -1)
    frames = rows.reshape(v, -1, rows.shape[-1])
    starts, length = window_starts(frames.shape[1], fps)
    whole = distinctive_pooling(frames, bg)  # [V, d]
    vectors = _without_layout(np.concatenate([whole[:1], _window_pooling(frames[0], bg[0], len(starts), length),
                                              whole[1:]]), layout_dim)
    margins = np.concatenate([[0.0], np.full(len(starts), window_margin(len(starts))),
                              np.full(v - 1, PICTURE_MARGIN)]).astype(np.float32)
    return vectors.astype(np.float32), margins


def collection_views(frames: np.ndarray, offsets: np.ndarray, background: np.ndarray, views: np.ndarray,
                     fps: float = 1.0, layout_dim: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`distinctive_views` of many stored videos back to back: frames [F, d] with video n at
    frames[offsets[n]:offsets[n+1]] (offsets [N + 1]), their backgrounds [F], views [N] ->
    (vectors float32 [sum(counts), d], counts int64 [N], margins float32 [sum(counts)]), as
    `similarity.cosine_views` takes them."""
    offsets = np.asarray(offsets, np.int64)
    got = [distinctive_views(frames[a:b], background[a:b], max(int(v), 1), fps, layout_dim)
           for a, b, v in zip(offsets[:-1], offsets[1:], views)]
    if not got:
        return np.zeros((0, frames.shape[-1]), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (np.concatenate([g[0] for g in got]), np.array([len(g[0]) for g in got], np.int64),
            np.concatenate([g[1] for g in got]))


def _window_pooling(frames: np.ndarray, background: np.ndarray, windows: int, length: int) -> np.ndarray:
    """`distinctive_pooling` of the first `windows` windows of `window_starts` at once
    (frames[k * stride : k * stride + length], stride = length / WINDOW_STRIDES), each the
    sum of WINDOW_STRIDES consecutive blocks of a stride's frames: frames [T, d], background
    [T] -> float32 [windows, d]."""
    d = frames.shape[-1]
    if windows <= 0:
        return np.zeros((0, d), np.float32)
    stride = length // WINDOW_STRIDES
    blocks = windows + WINDOW_STRIDES - 1
    f = frames[: blocks * stride]
    w = _weights(background[: blocks * stride])
    weighted = (w[:, None] * f).reshape(blocks, stride, d).sum(axis=1)
    total = w.reshape(blocks, stride).sum(axis=1, dtype=np.float64)
    v = sum(weighted[j : j + windows] for j in range(WINDOW_STRIDES))
    flat = sum(total[j : j + windows] for j in range(WINDOW_STRIDES)) <= 1e-12
    if flat.any():  # every frame as common as the most common: the plain mean
        plain = f.reshape(blocks, stride, d).sum(axis=1)
        v[flat] = sum(plain[j : j + windows] for j in range(WINDOW_STRIDES))[flat]
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def distinctive_pooling(frames: np.ndarray, background: np.ndarray, layout_dim: int = 0) -> np.ndarray:
    """The video vector of a model without TCA in a collection: frames [T, d] (or looks
    [L, T, d]; L2-normalised) weighted by their `distinctiveness` (background [T] or
    [L, T]), L2-normalised -> float32 [d] (or [L, d]). layout_dim: the frames' last values
    that are their layout (`engine.layout`), which a video vector leaves at zero."""
    f = np.asarray(frames, np.float32)
    w = distinctiveness(background)
    v = np.matmul(w[..., None, :], f)[..., 0, :]
    return _without_layout(v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12), layout_dim)


def _without_layout(vectors: np.ndarray, layout_dim: int) -> np.ndarray:
    """Pooled unit vectors float32 [..., d] with their last `layout_dim` values zero, unit
    again. Layouts pooled over a video cancel out, or add up to its channel's template: a
    video vector that kept them lost 0.03 cosine mAP on the collection benchmark, one without
    them is level (round 32). Pooling is linear, so this is the pooling of the frames with
    their layouts zeroed, without copying every frame of every candidate on a search."""
    v = np.asarray(vectors, np.float32)
    if not layout_dim:
        return v
    v = v.copy()
    v[..., v.shape[-1] - layout_dim :] = 0.0
    return (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
