"""Scoring a benchmark: embeddings -> similarities of every query to the database -> metrics.

Videos are always compared whole (no random crops at evaluation, unlike the published
code), with the same similarity functions the index uses, corpus-aware by default: the
database's frame (and video) backgrounds are computed over the database, as the index
computes them over itself (`engine.background`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..background import backgrounds, frame_background, video_background
from ..inner_pictures import stored_rows
from ..similarity import Measure, chamfer_many, cosine, frame_similarity
from ..spans import Localiser, matched_segments
from .benchmarks import Benchmark, ranking

# {id: (frames [T, d], video [d])}; a query may come as its looks, ([L, T, d], [L, d])
# (`features.with_variants`), each query frame then counting with its best look
Embeddings = Mapping[str, tuple[np.ndarray, np.ndarray]]


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

    @classmethod
    def of(cls, embeddings: Embeddings, database: Iterable[str], normalize: bool = True,
           pictures: Mapping[str, np.ndarray] | None = None) -> "Database":
        """pictures: {id: float32 [V, T, d]} inner pictures' frame embeddings of database
        videos, stored after their whole frames as the index stores them."""
        ids = [v for v in database if v in embeddings]
        dim = next(iter(embeddings.values()))[1].shape[-1] if embeddings else 1
        rows = [stored_rows(embeddings[v][0], (pictures or {}).get(v)) for v in ids]
        frames = np.concatenate(rows) if ids else np.zeros((0, dim), np.float32)
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        views = np.array([len(r) // max(len(embeddings[v][0]), 1) for r, v in zip(rows, ids)], np.int64)
        videos = np.stack([embeddings[v][1] for v in ids]) if ids else np.zeros((0, dim), np.float32)
        fbg, vbg = backgrounds(frames, offsets, videos) if normalize else (None, None)
        return cls(ids, frames.astype(np.float32), offsets, videos.astype(np.float32), fbg, vbg, views)

    def _whole(self, position: int) -> tuple[int, int]:
        """Rows [lo, hi) of a database video's whole frames (its inner pictures follow)."""
        lo, hi = int(self.offsets[position]), int(self.offsets[position + 1])
        views = int(self.views[position]) if self.views is not None else 1
        return lo, lo + (hi - lo) // views

    def distinctive(self, embeddings: Embeddings) -> tuple["Database", dict[str, tuple[np.ndarray, np.ndarray]]]:
        """The parameter-free context baseline: every video vector re-pooled from its frames
        weighted by how distinctive each is in this database (`distinctive_pooling`), the
        database's and the queries' alike. Returns (this database with those video vectors
        and their backgrounds, the embeddings with them)."""
        position = {v: i for i, v in enumerate(self.ids)}
        fbg = self.frame_bg if self.frame_bg is not None else frame_background(self.frames, self.offsets)
        out = dict(embeddings)
        for vid, (frames, _) in embeddings.items():
            if vid in position:
                lo, hi = self._whole(position[vid])
                bg = fbg[lo:hi]
            else:
                bg = frame_background(frames, np.array([0, len(frames)]), reference=(self.frames, self.offsets))
            out[vid] = (frames, distinctive_pooling(frames, bg))
        videos = np.stack([out[v][1] for v in self.ids]) if self.ids else self.videos
        vbg = video_background(videos) if self.video_bg is not None else None
        return Database(self.ids, self.frames, self.offsets, videos, self.frame_bg, vbg, self.views), out

    def scores(self, query: tuple[np.ndarray, np.ndarray], measure: Measure) -> np.ndarray:
        if measure is Measure.COSINE:
            s = cosine(query[1], self.videos)
            return s - self.video_bg if self.video_bg is not None else s
        return chamfer_many(query[0], self.frames, self.offsets, measure is Measure.SYMMETRIC_CHAMFER,
                            background=self.frame_bg)

    def similarity(self, query: np.ndarray, position: int) -> np.ndarray:
        """The (normalised) frame similarity matrix [Tq, T] of a query and one database
        video: at each time, the best of its whole frame and inner pictures."""
        lo, hi = self.offsets[position], self.offsets[position + 1]
        bg = self.frame_bg[lo:hi] if self.frame_bg is not None else None
        views = int(self.views[position]) if self.views is not None else 1
        return frame_similarity(query, self.frames[lo:hi], bg, views)


def distinctive_pooling(frames: np.ndarray, background: np.ndarray) -> np.ndarray:
    """frames [T, d] (L2-normalised), background [T] (`engine.background.frame_background`)
    -> the video vector [d]: frames weighted by 1 - background (a frame that matches the
    collection as well as itself weighs nothing), L2-normalised; the plain mean when every
    weight is 0."""
    w = np.clip(1.0 - np.asarray(background, np.float32), 0.0, None)
    v = (w[:, None] * frames).sum(0) if w.sum() > 0 else frames.mean(0)
    return (v / max(np.linalg.norm(v), 1e-12)).astype(np.float32)


def similarities(embeddings: Embeddings, queries: Iterable[str], database: Iterable[str] | Database,
                 measure: Measure | str, normalize: bool = True) -> dict[str, dict[str, float]]:
    """{query: {db id: score}} for every query and database video that has an embedding."""
    measure = Measure(measure)
    db = database if isinstance(database, Database) else Database.of(embeddings, database, normalize)
    out = {}
    for q in queries:
        if q not in embeddings or not db.ids:
            continue
        out[q] = dict(zip(db.ids, db.scores(embeddings[q], measure).tolist()))
    return out


def locate(embeddings: Embeddings, sims: Mapping[str, Mapping[str, float]], db: Database,
           top: int = 10, method: Localiser | str = Localiser.TEMPORAL_NETWORK, fps: float = 1.0
           ) -> dict[str, dict[str, list[tuple[float, float, float, float]]]]:
    """Every copied segment of each query and its `top` best videos, as boxes (query start,
    query end, video start, video end) in seconds; frames are 1/fps s apart from 0."""
    position = {v: i for i, v in enumerate(db.ids)}
    out: dict = {}
    for q, scores in sims.items():
        qf = embeddings[q][0]  # [Tq, d], or a query's looks [L, Tq, d]
        qt = np.arange(qf.shape[-2]) / fps
        for v in ranking(scores, exclude=q)[:top]:
            p = position[v]
            sim = db.similarity(qf, p)
            vt = np.arange(sim.shape[1]) / fps
            segs = matched_segments(sim, qt, vt, 1.0 / fps, method=method)
            out.setdefault(q, {})[v] = [(s.query_start, s.query_end, s.start, s.end) for s in segs]
    return out


def evaluate(benchmark: Benchmark, embeddings: Embeddings, measures: Iterable[Measure | str] = tuple(Measure),
             normalize: bool = True, localiser: Localiser | str = Localiser.TEMPORAL_NETWORK,
             fps: float = 1.0, db: Database | None = None) -> dict[str, dict[str, float]]:
    """{measure: metrics} for one set of embeddings. The database is the benchmark's
    list, or (when it has none) every embedded video; pass `db` (`Database.of`) to reuse
    its backgrounds. Benchmarks with segment labels (`evaluate_segments`) also get span
    metrics of each measure's top 10."""
    db = db or Database.of(embeddings, benchmark.database or sorted(embeddings), normalize)
    out = {}
    for m in measures:
        sims = similarities(embeddings, benchmark.queries, db, m)
        out[Measure(m).value] = metrics = benchmark.evaluate(sims)
        if hasattr(benchmark, "evaluate_segments"):
            metrics.update(benchmark.evaluate_segments(locate(embeddings, sims, db, 10, localiser, fps)))
    return out
