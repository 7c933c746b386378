"""Video-to-video similarity (the paper's section 3.6) and the matched span.

- cosine (TCA_c): dot product of L2-normalised video embeddings.
- chamfer (TCA_f): mean over query frames of the best-matching target frame,
  sim(q, t) = mean_i max_j <q_i, t_j>. Asymmetric: a short query inside a long video
  scores high, which is what partial-copy search needs.
- symmetric chamfer (TCA_sym): (chamfer(q, t) + chamfer(t, q)) / 2.

Many targets are scored at once from one concatenated frame matrix with offsets (the
index's frame store layout): one matrix product, then segment max/mean with reduceat.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class Measure(str, enum.Enum):
    COSINE = "cosine"
    CHAMFER = "chamfer"
    SYMMETRIC_CHAMFER = "symmetric_chamfer"


@dataclass
class Span:
    """Matched time spans in seconds: query [query_start, query_end) <-> target [start, end)."""

    query_start: float
    query_end: float
    start: float
    end: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in vars(self).items()}


def cosine(query: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """query [d], videos [N, d] (all L2-normalised) -> [N]."""
    return np.asarray(videos, np.float32) @ np.asarray(query, np.float32)


def frame_similarity(query: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Frame-to-frame cosine matrix: query [Tq, d], target [Tt, d] -> [Tq, Tt]."""
    return np.asarray(query, np.float32) @ np.asarray(target, np.float32).T


def chamfer(query: np.ndarray, target: np.ndarray) -> float:
    """mean_i max_j <q_i, t_j> for one pair."""
    return float(frame_similarity(query, target).max(axis=1).mean())


def symmetric_chamfer(query: np.ndarray, target: np.ndarray) -> float:
    s = frame_similarity(query, target)
    return float((s.max(axis=1).mean() + s.max(axis=0).mean()) / 2)


def chamfer_many(
    query: np.ndarray,
    frames: np.ndarray,
    offsets: np.ndarray,
    symmetric: bool = False,
    chunk_frames: int = 262_144,
) -> np.ndarray:
    """Chamfer of one query against N videos stored back to back.

    query [Tq, d]; frames [F, d] (any float dtype, e.g. a float16 memmap); offsets [N + 1]
    with video n at frames[offsets[n]:offsets[n+1]] (every video non-empty) -> float32 [N].
    Works through the frames in chunks of whole videos so memory stays bounded.
    """
    q = np.asarray(query, np.float32)
    offsets = np.asarray(offsets, np.int64)
    n = len(offsets) - 1
    out = np.empty(n, np.float32)
    a = 0
    while a < n:
        b = a + 1
        while b < n and offsets[b + 1] - offsets[a] <= chunk_frames:
            b += 1
        lo, hi = offsets[a], offsets[b]
        s = q @ np.asarray(frames[lo:hi], np.float32).T  # [Tq, F_chunk]
        starts = offsets[a:b] - lo
        best_t = np.maximum.reduceat(s, starts, axis=1)  # [Tq, n_chunk]
        score = best_t.mean(axis=0)
        if symmetric:
            lengths = np.diff(offsets[a : b + 1])
            score = (score + np.add.reduceat(s.max(axis=0), starts) / lengths) / 2
        out[a:b] = score
        a = b
    return out


def matched_span(
    sim: np.ndarray,
    query_times: np.ndarray,
    target_times: np.ndarray,
    step: float = 1.0,
    query_duration: float | None = None,
    target_duration: float | None = None,
) -> Span:
    """The query span and target span that match, read off a frame similarity matrix.

    A local alignment (Smith-Waterman) over sim [Tq, Tt]: cells above an adaptive
    threshold (halfway between the mean similarity and the mean of the row maxima) score
    positive, others negative; a path moves one query frame at a time and 0-3 target
    frames, so speed changes up to 3x either way and dropped frames still align; moves
    other than the diagonal cost a small penalty. The best-scoring path gives the spans.
    Times are seconds; each frame covers `step` seconds (1/fps).
    """
    sim = np.asarray(sim, np.float32)
    tq, tt = sim.shape
    thr = (float(sim.mean()) + float(sim.max(axis=1).mean())) / 2
    score = sim - thr
    gap = 0.25 * max(float(score.max()), 1e-3)
    shifts = (1, 0, 2, 3)  # target advance per query frame; 1 is the diagonal
    penalties = np.array([0.0, gap, gap, gap], np.float32)
    h_prev = np.zeros(tt, np.float32)
    back = np.full((tq, tt), -1, np.int8)  # index into shifts, -1 = path starts here
    best, best_cell = -np.inf, (0, 0)
    for i in range(tq):
        cands = np.full((len(shifts), tt), -np.inf, np.float32)
        for k, s in enumerate(shifts):
            cands[k, s:] = h_prev[: tt - s] - penalties[k] if s else h_prev - penalties[k]
        arg = cands.argmax(axis=0)
        pred = cands[arg, np.arange(tt)]
        fresh = pred <= 0
        h = score[i] + np.where(fresh, 0.0, pred)
        back[i] = np.where(fresh, -1, arg)
        h = np.maximum(h, 0.0)
        j = int(h.argmax())
        if h[j] > best:
            best, best_cell = float(h[j]), (i, j)
        h_prev = h
    i1, j1 = best_cell
    i, j = best_cell
    while back[i, j] >= 0 and i > 0:
        j -= shifts[back[i, j]]
        i -= 1
    i0, j0 = i, j
    q_end = float(query_times[i1]) + step
    t_end = float(target_times[j1]) + step
    if query_duration:
        q_end = min(q_end, query_duration)
    if target_duration:
        t_end = min(t_end, target_duration)
    return Span(float(query_times[i0]), q_end, float(target_times[j0]), t_end)
