"""Scoring through a real index: what a user's search returns, not an exhaustive score.

The benchmark's own scoring (`score.similarities`) compares each query with every database
video, in float32. A search does less: the index stores codes (`engine.codec`), takes its
re-rank candidates from its frame indexes and returns the best `candidates` videos, so a
copy it misses there is missing from the ranking (research record, round 19: before the
candidates came from the frames, this cost 0.09 of test mAP that the exhaustive score did
not show). `evaluate --through-index` builds a `VideoIndex` of the database's rows (whole
frames and inner pictures, with the index's own codec and backgrounds) and ranks each query
by `VideoIndex.search`; the videos a search does not return rank last.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..embedding import VideoEmbedding
from ..index import VideoIndex, VideoRecord
from ..similarity import Measure

if TYPE_CHECKING:  # score.evaluate calls in here
    from .score import Database, Embeddings

NOT_RETURNED = -1e9  # the score of a video the search did not return: below every returned one


def build_index(db: "Database", where: str | Path, fps: float = 1.0, tca: bool = False,
                distinctive: bool | None = None) -> VideoIndex:
    """Write the database's videos to a new index at `where` (an empty or missing folder)
    and open it: each video's rows as `Database.of` laid them out (its whole frames, then
    each inner picture's), frames 1/fps s apart, its video vector; the index computes its
    own backgrounds and trains its own codecs, as `python -m engine index` would: one video
    committed at a time, in the same fixed shuffled order. distinctive: whether its cosine
    pools by distinctiveness (default: without TCA). With the database's text sketches
    (`Database.texts`) the index keeps them, as one built with text does."""
    dim = db.frames.shape[1]
    records, embeddings = [], []
    for i, vid in enumerate(db.ids):
        lo, mid = db.whole_rows(i)
        t, views = mid - lo, int(db.views[i]) if db.views is not None else 1
        rows = np.asarray(db.frames[lo : lo + views * t], np.float32)
        embeddings.append(VideoEmbedding(
            times=np.arange(t, dtype=np.float32) / fps, frames=rows[:t], video=db.videos[i],
            attention=np.full(t, 1.0 / t, np.float32), duration=t / fps, step=1.0 / fps,
            pictures=rows[t:].reshape(views - 1, t, dim) if views > 1 else None,
            text=db.video_text(vid, t)))
        records.append(VideoRecord(id=vid, path=vid, size=0, mtime_ns=0, duration=t / fps, fps=fps,
                                   width=0, height=0, num_frames=t, views=views))
    order = list(range(len(records)))
    random.Random(0).shuffle(order)  # as engine.indexing.build_index while the codec is untrained
    new = VideoIndex.new("evaluation", "-", "-", dim, fps, tca=tca, distinctive=distinctive, layout_dim=db.layout_dim)
    new.manifest["text_model"] = "evaluation" if db.texts is not None else None
    with VideoIndex.writing(where, new) as index:
        for i in order:
            index.append([records[i]], [embeddings[i]])
        index.refresh_derived()
    return VideoIndex.open(where)


def index_similarities(index: VideoIndex, embeddings: "Embeddings", queries: Iterable[str],
                       measure: Measure | str, candidates: int = 100, normalize: bool = True,
                       db: "Database | None" = None) -> dict[str, dict[str, float]]:
    """{query: {indexed id: score}} as `VideoIndex.search` ranks them (top `candidates`
    returned, the rest NOT_RETURNED), for every query with an embedding; each query with
    its text sketches when the database has them (`Database.video_text`)."""
    ids = [r.id for r in index.records]
    out = {}
    for q in queries:
        if q not in embeddings:
            continue
        frames, video = embeddings[q]
        text = db.video_text(q, frames.shape[-2]) if db is not None else None
        hits = index.search(frames, video, k=candidates, measure=measure, candidates=candidates,
                            normalize=normalize, query_text=text)
        scores = dict.fromkeys(ids, NOT_RETURNED)
        scores.update({index.records[h.position].id: float(h.score) for h in hits})
        out[q] = scores
    return out
