"""Retrieval benchmarks: one module each, the same shape (the S2VS pattern).

Every benchmark has `queries` and `database` (lists of video ids) and
`evaluate(similarities) -> {metric: value}`, where `similarities[q][v]` is the score of
database video v for query q (higher = more similar). Scoring the videos is the job of
`engine.evaluate`; the benchmarks only hold annotations and compute metrics.
"""
from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

Similarities = Mapping[str, Mapping[str, float]]


class BenchmarkError(Exception):
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


def load_benchmark(name: BenchmarkName | str, annotations: str | Path, subset: str | Path | None = None) -> Benchmark:
    """The benchmark `name` read from its annotation file (see each module for the format)."""
    from . import ccweb, demo, evve, fivr, generic

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
    if name is BenchmarkName.CC_WEB:
        return ccweb.CCWeb(path)
    return evve.EVVE(path)


def ranking(scores: Mapping[str, float], exclude: str | None = None, within: set[str] | None = None) -> list[str]:
    """Ids by decreasing score (ties broken by id, so results are deterministic)."""
    ids = [v for v in scores if v != exclude and (within is None or v in within)]
    return sorted(ids, key=lambda v: (-scores[v], v))


def average_precision(ranked: Iterable[str], positives: set[str]) -> float:
    """Non-interpolated AP: mean over the positives of the precision at their rank.

    Positives that never appear in `ranked` count as found at infinity (precision 0).
    Returns nan when there is no positive."""
    if not positives:
        return math.nan
    hits, total = 0, 0.0
    for rank, vid in enumerate(ranked, 1):
        if vid in positives:
            hits += 1
            total += hits / rank
    return total / len(positives)


def micro_average_precision(pairs: Iterable[tuple[float, bool]], num_positives: int) -> float:
    """Detection AP over (score, is_positive) pairs pooled from all queries (uAP)."""
    ordered = sorted(pairs, key=lambda p: -p[0])
    hits, total = 0, 0.0
    for rank, (_, pos) in enumerate(ordered, 1):
        if pos:
            hits += 1
            total += hits / rank
    return total / num_positives if num_positives else math.nan


def mean(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise BenchmarkError(f"{path}: not a readable JSON annotation file ({err})") from err
