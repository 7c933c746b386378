"""Where two videos match: every copied segment, read off the frame similarity matrix
[Tq, Tt] that chamfer already computes. Times are seconds.

Two localisers (compared on the collection benchmark's validation split, see
notebooks/RESULTS.md):
- Smith-Waterman (`matched_span`, and `matched_segments(method="sw")`: the best local
  alignment, then the next one outside the boxes already found, and so on);
- the Temporal Network of VCSL/VSC (`method="tn"`): a graph over each query frame's best
  target frames, where edges join matches that move forward in both videos by at most
  `MAX_STEP` seconds; the heaviest paths are the segments.

The localiser's reaches (`MAX_STEP`, `MERGE_GAP`, `RUN_MIN`) are seconds, so an index
sampled at 2 fps looks as far as one at 1 fps.
"""
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .cuts import profile_times


@dataclass
class Span:
    """Matched time spans in seconds: query [query_start, query_end) <-> target [start, end)."""

    query_start: float
    query_end: float
    start: float
    end: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in vars(self).items()}


@dataclass
class Segment(Span):
    """One copied segment: its spans (seconds) and a score (mean similarity along it)."""

    score: float = 0.0


class Localiser(str, enum.Enum):
    SMITH_WATERMAN = "sw"
    TEMPORAL_NETWORK = "tn"


MAX_SEGMENTS = 8
THRESHOLD = 0.6
MERGE_GAP = 6.0  # seconds
# How far a TN path may step in either video between two matches (a few weak or dropped
# samples; a still shot's frames on the other axis). Chosen at 1 fps as 3 frames; in frames
# at 2 fps the same reach lost 0.03 span F1 on the train / val splits of one draw
# (notebooks/RESULTS.md, round 34).
MAX_STEP = 3.0  # seconds
ONE_TO_ONE = 0.7  # share of the diagonal that must match to cut a box to 1:1 time (a 2x-speed path covers about half)
# A box at least this much longer on one axis than the other whose median diagonal does not
# match is cut to its longest run of matching samples on any one diagonal, when that run is
# at least ONE_TO_ONE of the box's shorter side and RUN_MIN seconds long: a copy that the
# path reached through a block of look-alike frames (a template shared by the neighbouring
# footage of a compilation) or a still shot. A real 2x speed change crosses each diagonal
# in a sample or two. Train/val span F1 of three draws 0.8728 -> 0.8753; 1.5 or a run of 2
# level, no aspect condition lower (0.8727; notebooks/RESULTS.md, round 33)
RUN_ASPECT = 1.2
RUN_MIN = 4.0  # seconds
# A segment other than the best must be nearly as strong, frame for frame: its score at
# least this share of the best's above the threshold. The extra TN paths of a pair are
# mostly a neighbouring diagonal of the same copy or look-alike footage beside it, which
# cost precision on both axes; a clip used twice matches as well the second time. Train/val
# span F1 of three draws 0.8680 -> 0.8728 (0.6-0.85 within 0.002; round 33)
SECOND_SEGMENT = 0.8
# A segment's first sample is often weaker than the rest (a fade in, half a second of the
# other source, the temporal support's neighbour outside the copy), so a TN box takes the
# sample before it on its diagonal when that cell is at least this share of the way from the
# matrix mean to the threshold. Train/val span F1 of two draws 0.825 -> 0.838, every split
# up; two samples back, or the end too, lost (notebooks/RESULTS.md, round 21)
START_GROWTH = 0.5
# Samples are instants 1 step apart, so a copy ends somewhere between its last matching
# sample and the next. A box ends END_BASE steps after its last sample, plus the share of a
# step that the next sample on its diagonal matches (0 at the matrix mean, 1 at the box's
# median row maximum; a fade out, a partly matching second). Ending a full step after it
# over-ran: train/val span F1 of two draws 0.837 -> 0.852, every split up (+0.013 to
# +0.020), a third draw +0.014; the start is best left as it is (notebooks/RESULTS.md, round 26)
END_BASE = 0.6
REFIT_REACH = 2.0  # seconds a piece between two cuts may move on the query axis (`_refit_offset`)
# `_align_on_profile`: segments at least PROFILE_MIN s long, offsets tried every PROFILE_GRID
# s; to move, a correlation of at least PROFILE_R and PROFILE_MARGIN above the segment's own
# offset's. r >= 0.5 alone gained more on the collection's train / val (0.9090 against 0.9073)
# but moved real footage's crops and overlays off (the demo corpus's training families:
# 0.8086 -> 0.8055 span F1; this rule 0.8081; notebooks/RESULTS.md, round 35)
PROFILE_MIN, PROFILE_GRID, PROFILE_R, PROFILE_MARGIN = 2.0, 0.05, 0.8, 0.02


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
    thr = (float(sim.mean()) + float(sim.max(axis=1).mean())) / 2
    best = matched_segments(sim, query_times, target_times, step, query_duration, target_duration,
                            Localiser.SMITH_WATERMAN, thr)[0]
    return Span(best.query_start, best.query_end, best.start, best.end)


def _end_extents(box: tuple[int, int, int, int], sim: np.ndarray, mean: float, query_times: np.ndarray,
                 target_times: np.ndarray, step: float, query_duration: float | None,
                 target_duration: float | None) -> tuple[float, float]:
    """How far past its last sample a box's copy runs on the query and target axes, in
    steps: END_BASE plus the share of a step that the next diagonal sample matches (from
    the matrix's `mean` to the box's median row maximum). A box
    whose last sample is a video's last runs to that video's end when its duration is
    known, and the other axis as far (a 1:1 copy)."""
    i0, i1, j0, j1 = box
    q_edge, t_edge = i1 + 1 >= sim.shape[0], j1 + 1 >= sim.shape[1]
    if not (q_edge or t_edge):
        high = float(np.median(sim[i0 : i1 + 1, j0 : j1 + 1].max(axis=1)))
        share = (float(sim[i1 + 1, j1 + 1]) - mean) / max(high - mean, 1e-6)
        extent = END_BASE + float(np.clip(share, 0.0, 1.0))
        return extent, extent
    q_rest = (query_duration - float(query_times[i1])) / step if q_edge and query_duration else None
    t_rest = (target_duration - float(target_times[j1])) / step if t_edge and target_duration else None
    q_ext = q_rest if q_rest is not None else t_rest if t_rest is not None else END_BASE
    t_ext = t_rest if t_rest is not None else q_ext
    return max(0.0, q_ext), max(0.0, t_ext)


def _box_span(cls, box, query_times, target_times, step, query_duration, target_duration, extents, **extra):
    i0, i1, j0, j1 = box
    q_end = float(query_times[i1]) + extents[0] * step
    t_end = float(target_times[j1]) + extents[1] * step
    if query_duration:
        q_end = min(q_end, query_duration)
    if target_duration:
        t_end = min(t_end, target_duration)
    return cls(float(query_times[i0]), q_end, float(target_times[j0]), t_end, **extra)


def _align(score: np.ndarray) -> tuple[int, int, int, int, float]:
    """Best local alignment of a score matrix [Tq, Tt] (positive = match): its box
    (first/last query row, first/last target column) and total score."""
    tq, tt = score.shape
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
    return i, i1, j, j1, best


def matched_segments(
    sim: np.ndarray,
    query_times: np.ndarray,
    target_times: np.ndarray,
    step: float = 1.0,
    query_duration: float | None = None,
    target_duration: float | None = None,
    method: Localiser | str = Localiser.TEMPORAL_NETWORK,
    min_similarity: float | None = None,
    target_cuts: Sequence[float] | None = None,
    query_cuts: Sequence[float] | None = None,
    query_profile: np.ndarray | None = None,
    target_profile: np.ndarray | None = None,
) -> list[Segment]:
    """Every copied segment of a pair, best first (at most MAX_SEGMENTS).

    sim [Tq, Tt] (raw or background-normalised similarities); times in seconds, each frame
    covering `step` s. min_similarity: the similarity a frame pair needs to count as a
    match (default: the matrix mean plus THRESHOLD of the way to the mean row maximum;
    relative, so it suits raw and background-normalised matrices alike). Segments other
    than the best must score at least a third of it (the TN path's weight) and, frame for
    frame, nearly as much (SECOND_SEGMENT). A TN box much longer on one axis is
    cut to 1:1 time where a diagonal matches (`_one_to_one`), and may take the sample
    before it (`_grow_start`). A segment ends between its last matching sample and the next
    (`_end_extents`). target_cuts: the target's hard cuts (s, increasing; `engine.cuts`), to
    which a boundary within a sample moves (`_snap_to_cuts`); with query_cuts too, a cut
    that both videos show inside a 1:1 segment fixes its offset (`_align_on_shared_cut`);
    query_profile [Tq, P] and target_profile [Tt, P], the videos' brightness between their
    samples (`engine.cuts.brightness_profile`), place a 1:1 segment within a sample
    (`_align_on_profile`). The method, THRESHOLD, ONE_TO_ONE, START_GROWTH and END_BASE were
    chosen by span F1 on the collection benchmark's train and validation splits
    (notebooks/RESULTS.md, rounds 6, 13, 21, 26 and 35).
    """
    sim = np.asarray(sim, np.float32)
    if sim.size == 0:
        return []
    mean = float(sim.mean())
    thr = min_similarity if min_similarity is not None else mean + THRESHOLD * (float(sim.max(axis=1).mean()) - mean)
    if Localiser(method) is Localiser.SMITH_WATERMAN:
        found = _sw_boxes(sim, thr)
    else:
        found = _tn_boxes(sim, thr, max_step=_samples(MAX_STEP, step), run_min=_samples(RUN_MIN, step))
    boxes = _merge(found, _samples(MERGE_GAP, step))
    if not boxes:
        # nothing above the threshold: the most similar frame pair says where it looks most alike
        i, j = np.unravel_index(int(sim.argmax()), sim.shape)
        boxes = [((int(i), int(i), int(j), int(j)), 0.0)]
    cuts = np.asarray(target_cuts if target_cuts is not None else [], np.float64)
    q_cuts = np.asarray(query_cuts if query_cuts is not None else [], np.float64)
    segs = []
    for box, _ in boxes:
        i0, i1, j0, j1 = box
        score = float(sim[i0 : i1 + 1, j0 : j1 + 1].max(axis=1).mean())
        if segs and score - thr < SECOND_SEGMENT * (segs[0].score - thr):
            continue
        seg = _box_span(Segment, box, query_times, target_times, step, query_duration, target_duration,
                        _end_extents(box, sim, mean, query_times, target_times, step, query_duration,
                                     target_duration),
                        score=score)
        first, last = i0 == 0, i1 + 1 >= sim.shape[0]  # the box holds the query's first / last sample
        snapped = (False, False)
        if len(cuts):
            seg, snapped = _snap_to_cuts(seg, cuts, step, not first, not last, query_duration,
                                         target_duration)
        one_to_one = abs((seg.query_end - seg.query_start) - (seg.end - seg.start)) <= step
        # which ends are bounded on the target (a cut, or footage beyond it that the query holds)
        keep = (snapped[0] or not first, snapped[1] or not last)
        if all(snapped) and one_to_one:
            seg = _refit_offset(seg, sim, query_times, target_times, step, query_duration)
        if len(cuts) and len(q_cuts) and one_to_one:
            seg = _align_on_shared_cut(seg, q_cuts, cuts, step, keep, query_duration, target_duration)
        if query_profile is not None and target_profile is not None and one_to_one:
            seg = _align_on_profile(seg, (query_times, query_profile), (target_times, target_profile), step,
                                    keep, query_duration, target_duration)
        segs.append(seg)
    return _distinct(segs)


def _distinct(segs: list[Segment]) -> list[Segment]:
    """`segs` with each box once, in their order. Two paths through one copy (a still's
    repeated samples side by side) can end on the same box once their ends are placed; the
    later is dropped and the first keeps the better score (3 of 177 train pairs of a
    collection draw listed a segment twice; notebooks/RESULTS.md, round 36)."""
    out: list[Segment] = []
    for seg in segs:
        same = next((i for i, o in enumerate(out) if np.allclose(
            (o.query_start, o.query_end, o.start, o.end), (seg.query_start, seg.query_end, seg.start, seg.end),
            rtol=0.0, atol=1e-6)), None)
        if same is None:
            out.append(seg)
        elif seg.score > out[same].score:
            out[same] = replace(out[same], score=seg.score)
    return out


def _snap_to_cuts(seg: Segment, cuts: np.ndarray, step: float, start: bool, end: bool,
                  query_duration: float | None, target_duration: float | None
                  ) -> tuple[Segment, tuple[bool, bool]]:
    """A segment whose target start lies within a sample after a cut of the target starts at
    that cut, and one whose end lies within a sample of a cut ends there (the nearest cut);
    the query axis moves with it (1:1 time). Only where the query box does not reach the
    query's first (`start` False) or last (`end` False) sample: there the query's own edge,
    not an edit of the target, is what bounds the copy (a clip of an upload). Returns the
    segment and whether its start and its end are now cuts (both: a piece edited into the
    target).

    A copy inside a compilation or between other footage starts and ends at an edit, while
    samples 1 s apart put its first sample up to a second late. Train/val span F1 of three
    draws 0.8753 -> 0.8907, every split up; the query's own cuts lost (a full upload's
    shots are cut inside a copy; notebooks/RESULTS.md, round 35)."""
    q0, q1, t0, t1 = seg.query_start, seg.query_end, seg.start, seg.end
    at_start = at_end = False
    if start:
        near = cuts[(cuts > t0 - step - 1e-6) & (cuts <= t0 + 1e-6)]
        if len(near):
            cut = float(near[np.argmin(np.abs(near - t0))])
            q0, t0, at_start = q0 + cut - t0, cut, True
    if end:
        near = cuts[(cuts >= t1 - step - 1e-6) & (cuts <= t1 + step + 1e-6)]
        if len(near):
            cut = float(near[np.argmin(np.abs(near - t1))])
            q1, t1, at_end = q1 + cut - t1, cut, True
    moved = _within(seg, q0, q1, t0, t1, query_duration, target_duration)
    return moved, ((at_start, at_end) if moved is not seg else (False, False))


def _within(seg: Segment, q0: float, q1: float, t0: float, t1: float, query_duration: float | None,
            target_duration: float | None) -> Segment:
    """`seg` moved to these spans (s), cut to the videos (0 to their durations, where known);
    `seg` itself when a span would be empty."""
    q0, t0 = max(q0, 0.0), max(t0, 0.0)
    q1 = min(q1, query_duration) if query_duration else q1
    t1 = min(t1, target_duration) if target_duration else t1
    return Segment(q0, q1, t0, t1, score=seg.score) if q1 > q0 and t1 > t0 else seg


def _align_on_shared_cut(seg: Segment, query_cuts: np.ndarray, target_cuts: np.ndarray, step: float,
                         keep_target: tuple[bool, bool], query_duration: float | None,
                         target_duration: float | None) -> Segment:
    """A 1:1 segment inside which the query and the target show the same cut (a shot change
    of the copied footage, seen by both decoders), within a sample of the segment's offset:
    the two cuts give the offset to a decoded frame, where samples 1 s apart give it to a
    second. The ends move to it: the target's where `keep_target` (start, end) says it is
    bounded (a cut of the target, or footage beyond it that the query holds), the query's
    otherwise (where the query's own first or last sample bounds the copy).

    Train/val span F1 of three draws 0.8972 -> 0.9023, every split up; in boxes that are not
    1:1 a cut pairing moved a look-alike's box, and moving the query alone lost on clips
    against their upload (notebooks/RESULTS.md, round 35)."""
    q0, q1, t0, t1 = seg.query_start, seg.query_end, seg.start, seg.end
    inside_q = query_cuts[(query_cuts > q0) & (query_cuts < q1)]
    inside_t = target_cuts[(target_cuts > t0) & (target_cuts < t1)]
    if not len(inside_q) or not len(inside_t):
        return seg
    # [Q, T]: the offset each pair of cuts implies, less the segment's
    error = (inside_t[None, :] - inside_q[:, None]) - (t0 - q0)
    shift = float(error.flat[int(np.argmin(np.abs(error)))])
    if abs(shift) > step + 1e-6 or abs(shift) < 1e-3:
        return seg
    return _with_offset(seg, t0 - q0 + shift, keep_target, query_duration, target_duration)


def _with_offset(seg: Segment, offset: float, keep_target: tuple[bool, bool], query_duration: float | None,
                 target_duration: float | None) -> Segment:
    """The segment at another offset (target time - query time, s): each end keeps its
    target time where `keep_target` (start, end) says so and its query time otherwise."""
    q0, q1, t0, t1 = seg.query_start, seg.query_end, seg.start, seg.end
    q0, t0 = (t0 - offset, t0) if keep_target[0] else (q0, q0 + offset)
    q1, t1 = (t1 - offset, t1) if keep_target[1] else (q1, q1 + offset)
    return _within(seg, q0, q1, t0, t1, query_duration, target_duration)


def _align_on_profile(seg: Segment, query: tuple[np.ndarray, np.ndarray],
                      target: tuple[np.ndarray, np.ndarray], step: float, keep_target: tuple[bool, bool],
                      query_duration: float | None, target_duration: float | None) -> Segment:
    """A 1:1 segment of at least PROFILE_MIN s moves, within half a sample, to the offset at
    which the query's brightness over it correlates best with the target's (Pearson r of the
    profiles on a PROFILE_GRID-s grid, at least PROFILE_R and PROFILE_MARGIN above the r at
    the segment's own offset); its ends move as `_align_on_shared_cut` moves them. query /
    target: (sample times [T] s, profile [T, P]).

    Samples 1 s apart give a copy's offset to a second; brightness rises and falls with the
    copied footage whatever its flip, colours or encoding. A still picture (the query's
    profile flat over the segment) says nothing, and a crop or an overlay of moving footage
    can shift it a little (an object reaches the frame's edge before the crop's), hence the
    margin. Train/val span F1 of three draws 0.9022 -> 0.9073, every split up
    (notebooks/RESULTS.md, round 35)."""
    q0, q1, t0 = seg.query_start, seg.query_end, seg.start
    if q1 - q0 < PROFILE_MIN:
        return seg
    (qt, qv), (tt, tv) = _profile_points(*query, step), _profile_points(*target, step)
    if len(qt) < 2 or len(tt) < 2:
        return seg
    grid = np.arange(q0, q1, PROFILE_GRID)
    qs = np.interp(grid, qt, qv)
    if qs.std() < 1.0:
        return seg

    def r_at(d: float) -> float:
        ts = np.interp(grid + (t0 - q0) + d, tt, tv)
        return float(np.corrcoef(qs, ts)[0, 1]) if ts.std() >= 1e-6 else -np.inf

    best, shift = -np.inf, 0.0
    for d in np.arange(-step / 2, step / 2 + 1e-9, PROFILE_GRID):
        r = r_at(float(d))
        if r > best + 1e-9:
            best, shift = r, float(d)
    if best < PROFILE_R or abs(shift) < PROFILE_GRID / 2 or best - r_at(0.0) < PROFILE_MARGIN:
        return seg
    return _with_offset(seg, t0 - q0 + shift, keep_target, query_duration, target_duration)


def _profile_points(times: np.ndarray, profile: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """A brightness profile [T, P] of samples at times [T] s as (times [n], values [n]) in time
    order, NaN left out."""
    profile = np.asarray(profile, np.float64)
    if profile.ndim != 2 or len(profile) != len(times):
        return np.zeros(0), np.zeros(0)
    at = profile_times(times, step, profile.shape[1]).ravel()
    values = profile.ravel()
    ok = np.isfinite(values)
    return at[ok], values[ok]


def _refit_offset(seg: Segment, sim: np.ndarray, query_times: np.ndarray, target_times: np.ndarray,
                  step: float, query_duration: float | None) -> Segment:
    """A 1:1 segment whose target span is a piece between two cuts: its query span moves (up
    to REFIT_REACH s either way) to the diagonal whose cells over the piece's target samples
    match best on average (the nearer on a tie).

    The path's first and last matches set the query span, and beside a compilation's piece
    they are often look-alike frames a sample or two off the copy's diagonal; once the
    piece's own ends are known, its samples together say where in the query it lies.
    Train/val span F1 of three draws 0.8907 -> 0.8972, every split up (notebooks/RESULTS.md,
    round 35)."""
    cols = np.flatnonzero((target_times >= seg.start - 1e-6) & (target_times < seg.end))
    if not len(cols):
        return seg
    first = float(query_times[0]) if len(query_times) else 0.0
    reach = _samples(REFIT_REACH, step)
    best, shift = -np.inf, 0
    for k in sorted(range(-reach, reach + 1), key=abs):
        at = target_times[cols] + seg.query_start - seg.start + k * step  # query times on that diagonal
        rows = np.rint((at - first) / step).astype(np.int64)
        if rows.min() < 0 or rows.max() >= sim.shape[0]:
            continue
        value = float(sim[rows, cols].mean())
        if value > best + 1e-9:
            best, shift = value, k
    return _within(seg, seg.query_start + shift * step, seg.query_end + shift * step, seg.start, seg.end,
                   query_duration, None)


def _samples(seconds: float, step: float) -> int:
    """A reach of `seconds` in samples `step` s apart (at least one)."""
    return max(int(round(seconds / max(float(step), 1e-6))), 1)


def _merge(boxes: list[tuple[tuple[int, int, int, int], float]], gap: int = int(MERGE_GAP)
           ) -> list[tuple[tuple[int, int, int, int], float]]:
    """Join segments that continue one another: the second starts at most `gap` frames
    after the first ends on both axes, with the same offset give or take 2 frames (a
    few weak frames, a fade or a dropped second split one copy in two)."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for a in range(len(boxes)):
            for b in range(len(boxes)):
                (i0, i1, j0, j1), sa = boxes[a]
                (k0, k1, l0, l1), sb = boxes[b]
                dq, dt = k0 - i1, l0 - j1
                if a != b and 0 < dq <= gap and 0 < dt <= gap and abs(dq - dt) <= 2:
                    boxes[a] = ((i0, k1, j0, l1), sa + sb)
                    del boxes[b]
                    merged = True
                    break
            if merged:
                break
    return sorted(boxes, key=lambda x: -x[1])


def _sw_boxes(sim: np.ndarray, thr: float) -> list[tuple[tuple[int, int, int, int], float]]:
    score = sim - thr
    out = []
    while len(out) < MAX_SEGMENTS:
        i0, i1, j0, j1, total = _align(score)
        if total <= 0 or (out and total < out[0][1] / 3):
            break
        out.append(((i0, i1, j0, j1), total))
        score[i0 : i1 + 1, j0 : j1 + 1] = -1.0  # found: the next alignment lies elsewhere
    return out


def _tn_boxes(sim: np.ndarray, thr: float, top_k: int = 3, max_step: int = int(MAX_STEP),
              run_min: int = int(RUN_MIN)) -> list[tuple[tuple[int, int, int, int], float]]:
    """Temporal Network (Tan et al. 2009, as VCSL runs it): nodes are each query frame's
    top_k target frames above thr; an edge joins (i, j) -> (i', j') when 0 < i' - i <=
    max_step and 0 < j' - j <= max_step (0 <= j' - j for a still frame); a path's weight
    is the sum of its similarities. Heaviest path first, its nodes removed, repeat. Each box
    is cut to 1:1 time where that fits (`_one_to_one`, runs of at least run_min samples)
    and may take the sample before it (`_grow_start`). max_step and run_min are samples."""
    tq, tt = sim.shape
    mean = float(sim.mean())
    low = mean + START_GROWTH * (thr - mean)
    k = min(top_k, tt)
    cand = np.argsort(-sim, axis=1)[:, :k]
    nodes = [(i, int(j)) for i in range(tq) for j in cand[i] if sim[i, j] > thr]
    out: list[tuple[tuple[int, int, int, int], float]] = []
    alive = set(nodes)
    while alive and len(out) < MAX_SEGMENTS:
        order = sorted(alive)
        best: dict[tuple[int, int], float] = {}
        prev: dict[tuple[int, int], tuple[int, int] | None] = {}
        by_row: dict[int, list[tuple[int, int]]] = {}
        for n in order:
            by_row.setdefault(n[0], []).append(n)
        for i, j in order:
            w = float(sim[i, j] - thr)
            b, p = w, None
            for di in range(1, max_step + 1):
                for m in by_row.get(i - di, ()):
                    dj = j - m[1]
                    if 0 <= dj <= max_step and best[m] + w > b:
                        b, p = best[m] + w, m
            best[(i, j)], prev[(i, j)] = b, p
        end = max(best, key=best.get)
        total = best[end]
        if out and total < out[0][1] / 3:
            break
        path = [end]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        i0, i1 = path[-1][0], path[0][0]
        j0, j1 = min(n[1] for n in path), max(n[1] for n in path)
        alive -= {n for n in alive if i0 <= n[0] <= i1 and j0 <= n[1] <= j1}
        out.append((_grow_start(_one_to_one((i0, i1, j0, j1), path, sim, thr, run_min), sim, low), total))
    return out


def _grow_start(box: tuple[int, int, int, int], sim: np.ndarray, low: float) -> tuple[int, int, int, int]:
    """The box with the sample before it on both axes, when that cell is above `low`."""
    i0, i1, j0, j1 = box
    if i0 > 0 and j0 > 0 and sim[i0 - 1, j0 - 1] > low:
        return i0 - 1, i1, j0 - 1, j1
    return box


def _one_to_one(box: tuple[int, int, int, int], path: list[tuple[int, int]], sim: np.ndarray, thr: float,
                run_min: int = int(RUN_MIN)) -> tuple[int, int, int, int]:
    """A path longer on one axis than the other is usually a still shot that every frame
    of the other video's shot matches (slides, a webcam set), or look-alike frames beside
    the copy, not a speed change: cut the box to the diagonal at the path's median offset
    when most of that diagonal is a match (above thr), else to the longest run of matches
    on any one diagonal when it spans most of the box's shorter side (`RUN_ASPECT`); a real
    speed change leaves every diagonal mostly below thr."""
    i0, i1, j0, j1 = box
    if i1 - i0 == j1 - j0:
        return box
    off = int(np.round(np.median([j - i for i, j in path])))
    a, b = max(i0, j0 - off), min(i1, j1 - off)
    if a <= b:
        rows = np.arange(a, b + 1)
        if np.mean(sim[rows, rows + off] > thr) >= ONE_TO_ONE:
            return a, b, a + off, b + off
    rows_n, cols_n = i1 - i0 + 1, j1 - j0 + 1
    if max(rows_n, cols_n) < RUN_ASPECT * min(rows_n, cols_n):
        return box
    run = _longest_diagonal_run(sim[i0 : i1 + 1, j0 : j1 + 1] > thr)
    if run is None or run[1] - run[0] + 1 < max(run_min, ONE_TO_ONE * min(rows_n, cols_n)):
        return box
    a, b, off = run
    return i0 + a, i0 + b, j0 + a + off, j0 + b + off


def _longest_diagonal_run(match: np.ndarray) -> tuple[int, int, int] | None:
    """The longest run of True on one diagonal of match [R, C]: (first row, last row,
    column offset), or None when nothing matches. One pass over the rows, each cell's run
    the one that ends at it (a long pair's box costs R vector steps, not R x C)."""
    best, out = 0, None
    run = np.zeros(match.shape[1], np.int64)
    for r, row in enumerate(match):
        run = np.where(row, np.concatenate([[0], run[:-1]]) + 1, 0)
        j = int(run.argmax())  # the leftmost of the row's longest: the smallest offset
        n = int(run[j])
        # of equally long runs, the one on the smallest offset (the earliest on a diagonal)
        if n > best or (n == best and out is not None and j - r < out[2]):
            best, out = n, (r - n + 1, r, j - r)
    return out
