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

Corpus-aware frame similarity (a background given, see `engine.background`) is also
smoothed in time (`temporal_support`): a copied stretch matches at its neighbouring
frames too, a look-alike frame of another video mostly alone.
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


# How much of a corpus-aware cell is its temporal support: the mean of the cell and of its
# best neighbours one sample before and after along the video, at any pace from a still to
# double speed (a 3x3 window's diagonal band). Chosen on the collection benchmark's train
# and validation splits of two draws, where it also holds the demo benchmark level
# (notebooks/RESULTS.md, round 18): 0.3 to 0.7 and windows of 1 or 2 samples gave the same.
TEMPORAL_SUPPORT = 0.5


# In an index without TCA a video has one vector per view (its whole frames, each window of
# a few seconds of them, each inner picture: a picture-in-picture box, a side-by-side half, a
# vertical band), and corpus-aware cosine takes the best. A picture's vector must beat the
# whole frames' by this much: boxes found on uploads (a logo panel, a slide's inset) match
# other videos' content too; a window pays nothing, unless its video has very many
# (`background.window_margin`; round 30: any fixed margin lost). Chosen on the
# collection benchmark's train and validation splits of two draws (notebooks/RESULTS.md,
# round 29: 0.05 to 0.15 gave the same; no margin lost 0.02).
PICTURE_MARGIN = 0.1


class Measure(str, enum.Enum):
    COSINE = "cosine"
    CHAMFER = "chamfer"
    SYMMETRIC_CHAMFER = "symmetric_chamfer"


def cosine(query: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """query [d] (or its looks [L, d]), videos [N, d] (all L2-normalised) -> [N] (the best
    look's, variants less VARIANT_MARGIN)."""
    return _looks_similarity(np.asarray(query, np.float32)[..., None, :], videos)[0]


def cosine_views(query: np.ndarray, vectors: np.ndarray, counts: np.ndarray, margins: np.ndarray) -> np.ndarray:
    """Each video's best view: query [d] (or its looks [L, d]); vectors [sum(counts), d], each
    video's views back to back (all L2-normalised; `background.distinctive_views`); counts
    [N] (>= 1) views per video; margins [sum(counts)] what each view pays (an inner
    picture PICTURE_MARGIN) -> [N], the best view's `cosine` less its margin."""
    counts = np.asarray(counts, np.int64)
    s = cosine(query, vectors)
    if not len(counts):
        return s[:0]
    s -= np.asarray(margins, np.float32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return np.maximum.reduceat(s, starts)


def _looks_similarity(query: np.ndarray, target: np.ndarray) -> np.ndarray:
    """query [Tq, d] or its looks [L, Tq, d], target [F, d] -> [Tq, F], the best look per
    cell (variants less VARIANT_MARGIN)."""
    q = np.asarray(query, np.float32)
    t = np.asarray(target, np.float32)
    if q.ndim == 2:
        return q @ t.T
    s = (q.reshape(-1, q.shape[-1]) @ t.T).reshape(q.shape[0], q.shape[1], -1)
    s -= look_margins(len(q))[:, None, None]
    return s.max(axis=0)


def look_margins(n_looks: int) -> np.ndarray:
    """float32 [n_looks]: what each of a query's looks pays on every similarity, the query
    itself (look 0) nothing and each variant VARIANT_MARGIN."""
    margins = np.full(n_looks, VARIANT_MARGIN, np.float32)
    margins[:1] = 0.0
    return margins


def temporal_support(s: np.ndarray, streams: np.ndarray, weight: float | None = None) -> np.ndarray:
    """s [Tq, F]: similarities of consecutive query frames (rows) to target frames (columns)
    that lie in streams: streams [F] names each column's stream (one video, or one inner
    picture of it), a stream's frames consecutive and in time order. -> float32 [Tq, F]:
    (1 - weight) * s + weight * the mean of s[i, j], the best of s[i + 1, j .. j + 2] and
    the best of s[i - 1, j - 2 .. j] (those inside the query and the stream; a still shot
    and up to double speed both keep their support). weight None: TEMPORAL_SUPPORT."""
    weight = TEMPORAL_SUPPORT if weight is None else weight
    s = np.asarray(s, np.float32)
    if weight == 0 or len(s) < 2:
        return s.copy()
    streams = np.asarray(streams)
    ahead, behind = s.copy(), s.copy()  # the best of each column and the next / previous two
    for k in (1, 2):
        same = streams[k:] == streams[:-k]
        np.maximum(ahead[:, :-k], np.where(same, s[:, k:], -np.inf), out=ahead[:, :-k])
        np.maximum(behind[:, k:], np.where(same, s[:, :-k], -np.inf), out=behind[:, k:])
    total = s.copy()
    total[:-1] += ahead[1:]
    total[1:] += behind[:-1]
    count = np.full((len(s), 1), 3.0, np.float32)
    count[[0, -1]] = 2.0
    return (1 - weight) * s + weight * total / count


def stream_ids(lengths: np.ndarray, views: np.ndarray | None = None) -> np.ndarray:
    """int64 [sum(lengths)]: the stream of each stored row of videos stored back to back
    (lengths [N] rows each), video n being views[n] streams of equal length (its whole
    frames, then each inner picture's; None: one each)."""
    lengths = np.asarray(lengths, np.int64)
    views = np.ones_like(lengths) if views is None else np.maximum(np.asarray(views, np.int64), 1)
    per_stream = np.repeat(lengths // views, views)
    return np.repeat(np.arange(len(per_stream)), per_stream)


def frame_similarity(query: np.ndarray, target: np.ndarray, background: np.ndarray | None = None,
                     views: int = 1, text: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Frame-to-frame cosine matrix: query [Tq, d] (or its looks [L, Tq, d], each cell then the
    best look's), target [views * Tt, d] -> [Tq, Tt]. With a background [views * Tt] (see
    `engine.background`) each target row's is subtracted and the cells get their
    `temporal_support`: the corpus-aware similarity the ranking uses. With
    views > 1 the target rows are the index's layout, the whole frames then each inner
    picture's (`engine.inner_pictures.stored_rows`), and each cell is the best of them at that time.
    text: the query's text sketches [Tq, k] and the target rows' [views * Tt, k]: cells whose
    frames disagree in text are lowered (`lower_disagreeing`), as `chamfer_many` lowers them."""
    s = _looks_similarity(query, target)
    if background is not None:
        s -= np.asarray(background, np.float32)[None, :]
        s = temporal_support(s, stream_ids(np.array([len(target)]), np.array([views])))
    if text is not None:
        lower_disagreeing(s, *text)
    return s.reshape(len(s), views, -1).max(axis=1) if views > 1 else s


def lower_disagreeing(sim: np.ndarray, query_text: np.ndarray, target_text: np.ndarray) -> np.ndarray:
    """Lower in place (by `engine.text.PENALTY`) the cells of sim [Tq, T] whose frames both
    have text and disagree in it (`engine.text.disagreement`; sketches [Tq, k], [T, k]): a
    slide of the same template with other words is no evidence of a copy. Returns sim."""
    from .text import PENALTY, disagreement

    sim[disagreement(query_text, target_text)] -= PENALTY
    return sim


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


def _chunks(q: np.ndarray, frames: np.ndarray, offsets: np.ndarray, chunk_frames: int,
            background: np.ndarray | None, views: np.ndarray | None):
    """(a, b, s): videos a..b-1 and their cells s float32 [Tq, rows] (looks merged, less the
    backgrounds and with temporal support when a background is given), chunks of whole
    videos of at most `chunk_frames` rows (more when one video is longer) per look."""
    chunk_frames = max(chunk_frames // (len(q) if q.ndim == 3 else 1), 1)  # the same memory whatever the looks
    n = len(offsets) - 1
    streams = stream_ids(np.diff(offsets), views) if background is not None else None
    a = 0
    while a < n:
        b = a + 1
        while b < n and offsets[b + 1] - offsets[a] <= chunk_frames:
            b += 1
        lo, hi = offsets[a], offsets[b]
        s = _looks_similarity(q, frames[lo:hi])  # [Tq, F_chunk]
        if background is not None:
            s -= np.asarray(background[lo:hi], np.float32)[None, :]
            s = temporal_support(s, streams[lo:hi])
        yield a, b, s
        a = b


def chamfer_many(
    query: np.ndarray,
    frames: np.ndarray,
    offsets: np.ndarray,
    symmetric: bool = False,
    chunk_frames: int = 262_144,
    background: np.ndarray | None = None,
    views: np.ndarray | None = None,
    text: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Chamfer of one query against N videos stored back to back.

    query [Tq, d], or its looks [L, Tq, d] (each query frame's best match over them counts,
    a variant's less VARIANT_MARGIN); frames [F, d] (any float dtype, e.g. a float16
    memmap); offsets [N + 1] with video n at frames[offsets[n]:offsets[n+1]] (every video
    non-empty) -> float32 [N]. text: the query's text sketches [Tq, k] and the frames' [F, k]
    (`engine.text`; NaN rows: no text): cells that disagree in text are lowered.
    background [F]: each frame's background, subtracted from its similarities (corpus-aware
    similarity, `engine.background`) and the cells given their `temporal_support`, each
    frame's best match then counting only as far as it is above 0 (`evidence`); None
    compares raw cosines. views [N]: video n's rows are views[n] equal streams (its whole
    frames, then each inner picture's; None: one). Works through the frames in chunks of
    whole videos so memory stays bounded.
    """
    q = np.asarray(query, np.float32)
    offsets = np.asarray(offsets, np.int64)
    out = np.empty(len(offsets) - 1, np.float32)
    for a, b, s in _chunks(q, frames, offsets, chunk_frames, background, views):
        lo = offsets[a]
        if text is not None:
            lower_disagreeing(s, text[0], text[1][lo : offsets[b]])
        starts = offsets[a:b] - lo
        score = evidence(np.maximum.reduceat(s, starts, axis=1), background is not None).mean(axis=0)
        if symmetric:
            lengths = np.diff(offsets[a : b + 1])
            col = evidence(s.max(axis=0), background is not None)
            score = (score + np.add.reduceat(col, starts) / lengths) / 2
        out[a:b] = score
    return out


def text_deciding_frames(query: np.ndarray, frames: np.ndarray, offsets: np.ndarray, has_text: np.ndarray,
                         chunk_frames: int = 262_144, background: np.ndarray | None = None,
                         views: np.ndarray | None = None) -> np.ndarray:
    """bool [Tq]: the query frames whose text can change `chamfer_many`'s scores of these
    videos (arguments as there; has_text bool [F]: which rows have text): those whose best
    cell in some video is a row with text, above every row without text (and above 0 when
    normalised: evidence below 0 counts 0 either way). Lowering can only take cells down,
    so a frame whose best cell in every video is a row without text (or no evidence) keeps
    its scores unread: a search reads only the frames this returns."""
    q = np.asarray(query, np.float32)
    offsets = np.asarray(offsets, np.int64)
    has_text = np.asarray(has_text, bool)
    need = np.zeros(q.shape[-2], bool)
    for a, b, s in _chunks(q, frames, offsets, chunk_frames, background, views):
        lo = offsets[a]
        rows = has_text[lo : offsets[b]]
        if not rows.any():
            continue
        starts = offsets[a:b] - lo
        best_text = np.maximum.reduceat(np.where(rows, s, -np.inf), starts, axis=1)
        best_other = np.maximum.reduceat(np.where(rows, -np.inf, s), starts, axis=1)
        if background is not None:
            best_other = np.maximum(best_other, 0.0)
        need |= (best_text > best_other).any(axis=1)
    return need
