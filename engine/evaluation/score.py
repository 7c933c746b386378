"""Scoring a benchmark: embeddings -> similarities of every query to the database -> metrics.

Videos are always compared whole (no random crops at evaluation, unlike the published
code), with the same similarity functions the index uses, corpus-aware by default: the
database's frame (and video) backgrounds are computed over the database, as the index
computes them over itself (`engine.background`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..background import backgrounds, collection_views, distinctive_pooling, query_background
from ..inner_pictures import stored_rows
from ..similarity import Measure, chamfer_many, cosine, cosine_views, frame_similarity
from ..spans import Localiser, matched_segments
from .benchmarks import Benchmark, ranking

if TYPE_CHECKING:
    from ..index import VideoIndex

# {id: (frames [T, d], video [d])}; a query may come as its looks, ([L, T, d], [L, d])
# (`features.with_variants`), each query frame then counting with its best look
Embeddings = Mapping[str, tuple[np.ndarray, np.ndarray]]


def _padded(sketches: np.ndarray, length: int) -> np.ndarray:
    """Text sketches [T, k] cut or NaN-padded to `length` rows (a video's samples)."""
    out = np.full((length, sketches.shape[1]), np.nan, np.float32)
    n = min(len(sketches), length)
    out[:n] = sketches[:n]
    return out


@dataclass
class Database:
    """The database's embeddings back to back, with their backgrounds (None: raw cosine)."""

    ids: list[str]
    frames: np.ndarray  # [F, d]
    offsets: np.ndarray  # [N + 1]
    videos: np.ndarray  # [N, d]
    frame_bg: np.ndarray | None  # [F]
    video_bg: np.ndarray | None  # [N]
    views: np.ndarray | None = None  # [N]: rows per time (whole frame + inner pictures), as the index stores them
    # [sum(pooled_counts), d]: each video's views (whole frames, their windows, inner
    # pictures) pooled by distinctiveness, which corpus-aware cosine compares (an index
    # without TCA); None: the embeddings' own video vectors
    pooled: np.ndarray | None = None
    pooled_counts: np.ndarray | None = None  # [N] vectors per video
    pooled_margins: np.ndarray | None = None  # [sum(pooled_counts)]: what each view pays
    layout_dim: int = 0  # each frame's last values that are its layout (`engine.layout`)
    # [F, k] each row's text sketch (`engine.text`; inner pictures' rows NaN), and every
    # video's and query's sketches by id; None: text is not compared
    text_rows: np.ndarray | None = None
    texts: Mapping[str, np.ndarray] | None = None

    @classmethod
    def of(cls, embeddings: Embeddings, database: Iterable[str], normalize: bool = True,
           pictures: Mapping[str, np.ndarray] | None = None, distinctive: bool = False,
           fps: float = 1.0, layout_dim: int = 0, texts: Mapping[str, np.ndarray] | None = None) -> "Database":
        """pictures: {id: float32 [V, T, d]} inner pictures' frame embeddings of database
        videos, stored after their whole frames as the index stores them. distinctive:
        corpus-aware cosine compares video vectors pooled by distinctiveness, one per view
        (whole frames, each window of them, each inner picture), as an index built without
        TCA does (`engine.background.distinctive_views`, `engine.similarity.cosine_views`);
        fps: the embeddings' frames per second; layout_dim: `ModelBundle.layout_dim`, the
        frame values that video vectors leave out. texts: {id: float32 [T, k]} text sketches of
        the videos' and the queries' frames (`engine.text`); cells of frames that disagree in
        text are then lowered in every frame comparison."""
        ids = [v for v in database if v in embeddings]
        dim = next(iter(embeddings.values()))[1].shape[-1] if embeddings else 1
        rows = [stored_rows(embeddings[v][0], (pictures or {}).get(v)) for v in ids]
        frames = np.concatenate(rows) if ids else np.zeros((0, dim), np.float32)
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        views = np.array([max(len(r) // max(len(embeddings[v][0]), 1), 1) for r, v in zip(rows, ids)], np.int64)
        videos = np.stack([embeddings[v][1] for v in ids]) if ids else np.zeros((0, dim), np.float32)
        text_rows = None
        if texts is not None:
            k = next(iter(texts.values())).shape[1] if texts else 1
            text_rows = np.full((len(frames), k), np.nan, np.float32)
            for v, lo in zip(ids, offsets[:-1]):
                n = len(embeddings[v][0])
                text_rows[lo : lo + n] = _padded(texts.get(v, np.zeros((0, k), np.float32)), n)
        fbg, vbg = backgrounds(frames, offsets, videos, text=text_rows) if normalize else (None, None)
        db = cls(ids, frames.astype(np.float32), offsets, videos.astype(np.float32), fbg, vbg, views,
                 layout_dim=layout_dim, text_rows=text_rows, texts=texts)
        if normalize and distinctive and ids:
            db.pooled, db.pooled_counts, db.pooled_margins = collection_views(db.frames, offsets, fbg, views, fps,
                                                                              layout_dim)
        return db

    def whole_rows(self, position: int) -> tuple[int, int]:
        """Rows [lo, hi) of a database video's whole frames (its inner pictures follow)."""
        lo, hi = int(self.offsets[position]), int(self.offsets[position + 1])
        views = int(self.views[position]) if self.views is not None else 1
        return lo, lo + (hi - lo) // views

    def video_text(self, video_id: str | None, length: int) -> np.ndarray | None:
        """float32 [length, k]: a video's or query's text sketches, cut or NaN-padded to its
        `length` samples; None when text is not compared or was not read for it."""
        if self.texts is None or video_id not in self.texts:
            return None
        return _padded(self.texts[video_id], length)

    def _text(self, query_id: str | None, length: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(the query's text sketches [length, k], every row's [F, k]) when text is compared."""
        q = self.video_text(query_id, length) if self.text_rows is not None else None
        return (q, self.text_rows) if q is not None else None

    def scores(self, query: tuple[np.ndarray, np.ndarray], measure: Measure,
               query_id: str | None = None) -> np.ndarray:
        if measure is Measure.COSINE:
            if self.pooled is not None:  # the query's frames pooled by their backgrounds here
                looks = query[0]
                s = cosine_views(distinctive_pooling(looks, query_background(looks, (self.frames, self.offsets)),
                                                     self.layout_dim),
                                 self.pooled, self.pooled_counts, self.pooled_margins)
            else:
                s = cosine(query[1], self.videos)
            return s - self.video_bg if self.video_bg is not None else s
        return chamfer_many(query[0], self.frames, self.offsets, measure is Measure.SYMMETRIC_CHAMFER,
                            background=self.frame_bg, views=self.views,
                            text=self._text(query_id, query[0].shape[-2]))

    def similarity(self, query: np.ndarray, position: int) -> np.ndarray:
        """The (normalised) frame similarity matrix [Tq, T] of a query and one database
        video: at each time, the best of its whole frame and inner pictures."""
        lo, hi = self.offsets[position], self.offsets[position + 1]
        bg = self.frame_bg[lo:hi] if self.frame_bg is not None else None
        views = int(self.views[position]) if self.views is not None else 1
        return frame_similarity(query, self.frames[lo:hi], bg, views)


def similarities(embeddings: Embeddings, queries: Iterable[str], database: Iterable[str] | Database,
                 measure: Measure | str, normalize: bool = True) -> dict[str, dict[str, float]]:
    """{query: {db id: score}} for every query and database video that has an embedding."""
    measure = Measure(measure)
    db = database if isinstance(database, Database) else Database.of(embeddings, database, normalize)
    out = {}
    for q in queries:
        if q not in embeddings or not db.ids:
            continue
        out[q] = dict(zip(db.ids, db.scores(embeddings[q], measure, q).tolist()))
    return out


def locate(embeddings: Embeddings, sims: Mapping[str, Mapping[str, float]], db: Database,
           top: int = 10, method: Localiser | str = Localiser.TEMPORAL_NETWORK, fps: float = 1.0,
           durations: Mapping[str, float] | None = None, cuts: Mapping[str, Sequence[float]] | None = None,
           profiles: Mapping[str, np.ndarray] | None = None
           ) -> dict[str, dict[str, list[tuple[float, float, float, float]]]]:
    """Every copied segment of each query and its `top` best videos, as boxes (query start,
    query end, video start, video end) in seconds; frames are 1/fps s apart from 0.
    `durations` (seconds, by video id), where the benchmark knows them, end the boxes as a
    search does (at most the video's length; a copy that runs to its last frame, to its end).
    `cuts` (seconds of each video's and query's hard cuts) and `profiles` (their brightness
    between samples, [T, P]; `engine.video.cuts_and_profile`) place the boxes as a search's
    (`spans.matched_segments`)."""
    durations, cuts, profiles = durations or {}, cuts or {}, profiles or {}
    position = {v: i for i, v in enumerate(db.ids)}
    out: dict = {}
    for q, scores in sims.items():
        qf = embeddings[q][0]  # [Tq, d], or a query's looks [L, Tq, d]
        qt = np.arange(qf.shape[-2]) / fps
        for v in ranking(scores, exclude=q)[:top]:
            p = position[v]
            # without text: lowering cells inside a copy whose words an edit changed (a crop,
            # a caption) splits its segment (round 36: val span F1 0.864 lowered, 0.871 not)
            sim = db.similarity(qf, p)
            vt = np.arange(sim.shape[1]) / fps
            segs = matched_segments(sim, qt, vt, 1.0 / fps, durations.get(q), durations.get(v), method=method,
                                    target_cuts=cuts.get(v), query_cuts=cuts.get(q),
                                    query_profile=profiles.get(q), target_profile=profiles.get(v))
            out.setdefault(q, {})[v] = [(s.query_start, s.query_end, s.start, s.end) for s in segs]
    return out


def evaluate(benchmark: Benchmark, embeddings: Embeddings, measures: Iterable[Measure | str] = tuple(Measure),
             normalize: bool = True, localiser: Localiser | str = Localiser.TEMPORAL_NETWORK,
             fps: float = 1.0, db: Database | None = None, index: "VideoIndex | None" = None,
             candidates: int = 100, cuts: Mapping[str, Sequence[float]] | None = None,
             profiles: Mapping[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """{measure: metrics} for one set of embeddings. The database is the benchmark's
    list, or (when it has none) every embedded video; pass `db` (`Database.of`) to reuse
    its backgrounds. With `index` (`through_index.build_index` of that database) each query
    is ranked as its search returns it (top `candidates`) instead of against every video.
    Benchmarks with segment labels (`evaluate_segments`) also get span metrics of each
    measure's top 10 (located on the float rows, placed by `cuts` and `profiles` as in `locate`)."""
    db = db or Database.of(embeddings, benchmark.database or sorted(embeddings), normalize)
    out = {}
    for m in measures:
        if index is not None:
            from .through_index import index_similarities

            sims = index_similarities(index, embeddings, benchmark.queries, m, candidates, normalize, db)
        else:
            sims = similarities(embeddings, benchmark.queries, db, m)
        out[Measure(m).value] = metrics = benchmark.evaluate(sims)
        if hasattr(benchmark, "evaluate_segments"):
            durations = getattr(benchmark, "durations", None)
            found = locate(embeddings, sims, db, 10, localiser, fps, durations, cuts, profiles)
            metrics.update(benchmark.evaluate_segments(found))
    return out
