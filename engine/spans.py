"""Where two videos match: the aligned query and target spans, read off the frame
similarity matrix [Tq, Tt] that chamfer already computes. Times are seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Span:
    """Matched time spans in seconds: query [query_start, query_end) <-> target [start, end)."""

    query_start: float
    query_end: float
    start: float
    end: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in vars(self).items()}


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
