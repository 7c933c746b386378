"""Scoring a benchmark: embeddings -> similarities of every query to the database -> metrics.

Videos are always compared whole (no random crops at evaluation, unlike the published
code), with the same similarity functions the index uses.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ..similarity import Measure, chamfer_many
from .benchmarks import Benchmark


def similarities(embeddings: Mapping[str, tuple[np.ndarray, np.ndarray]], queries: Iterable[str],
                 database: Iterable[str], measure: Measure | str) -> dict[str, dict[str, float]]:
    """{query: {db id: score}} for every query and database video that has an embedding."""
    measure = Measure(measure)
    db = [v for v in database if v in embeddings]
    videos = np.stack([embeddings[v][1] for v in db]) if db else np.zeros((0, 1), np.float32)
    if measure is not Measure.COSINE and db:
        lengths = [len(embeddings[v][0]) for v in db]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        frames = np.concatenate([embeddings[v][0] for v in db])
    out = {}
    for q in queries:
        if q not in embeddings or not db:
            continue
        if measure is Measure.COSINE:
            s = videos @ embeddings[q][1]
        else:
            s = chamfer_many(embeddings[q][0], frames, offsets, measure is Measure.SYMMETRIC_CHAMFER)
        out[q] = dict(zip(db, s.tolist()))
    return out


def evaluate(benchmark: Benchmark, embeddings: Mapping[str, tuple[np.ndarray, np.ndarray]],
             measures: Iterable[Measure | str] = tuple(Measure)) -> dict[str, dict[str, float]]:
    """{measure: metrics} for one set of embeddings. The database is the benchmark's
    list, or (when it has none) every embedded video."""
    database = benchmark.database or sorted(embeddings)
    return {Measure(m).value: benchmark.evaluate(similarities(embeddings, benchmark.queries, database, m))
            for m in measures}
