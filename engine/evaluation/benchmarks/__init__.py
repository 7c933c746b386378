"""Retrieval benchmarks: one module each, the same shape (the S2VS pattern).

Every benchmark has `queries` and `database` (lists of video ids) and
`evaluate(similarities) -> {metric: value}`, where `similarities[q][v]` is the score of
database video v for query q (higher = more similar). Scoring the videos is the job of
`engine.evaluation.score`; the benchmarks only hold annotations and compute metrics
(`engine.evaluation.metrics`).
"""
from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from ...errors import UserError
from ..metrics import average_precision, mean, micro_average_precision, ranking

__all__ = ["Benchmark", "BenchmarkError", "BenchmarkName", "Similarities", "average_precision", "load_benchmark",
           "mean", "micro_average_precision", "ranking", "read_json"]

Similarities = Mapping[str, Mapping[str, float]]


class BenchmarkError(UserError):
    """An annotation file that cannot be read; the message names it and says why."""


class Benchmark(Protocol):
    name: str
    queries: list[str]
    database: list[str]

    def evaluate(self, similarities: Similarities) -> dict[str, float]: ...


class BenchmarkName(str, enum.Enum):
    DEMO = "demo"
    GENERIC = "generic"
    FIVR_5K = "fivr-5k"
    FIVR_200K = "fivr-200k"
    CC_WEB = "cc_web"
    EVVE = "evve"
    COLLECTION = "collection"


def load_benchmark(name: BenchmarkName | str, annotations: str | Path, subset: str | Path | None = None) -> Benchmark:
    """The benchmark `name` read from its annotation file (see each module for the format)."""
    from . import ccweb, collection, demo, evve, fivr, generic

    name = BenchmarkName(name)
    path = Path(annotations)
    if not path.exists():
        raise BenchmarkError(f"{path}: annotation file not found")
    if name is BenchmarkName.DEMO:
        return demo.DemoBenchmark(path)
    if name is BenchmarkName.GENERIC:
        return generic.GenericBenchmark(path)
    if name in (BenchmarkName.FIVR_5K, BenchmarkName.FIVR_200K):
        return fivr.FIVR(path, subset, name.value)
    if name is BenchmarkName.COLLECTION:
        return collection.CollectionBenchmark(path)
    if name is BenchmarkName.CC_WEB:
        return ccweb.CCWeb(path)
    return evve.EVVE(path)


def read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise BenchmarkError(f"{path}: not a readable JSON annotation file ({err})") from err
