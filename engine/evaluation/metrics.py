"""Retrieval metrics: rankings, average precision (per query and pooled)."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


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
