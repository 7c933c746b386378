"""Any ground truth: a JSON object {query_id: [positive ids]}.

Optionally {"ground_truth": {...}, "database": [...]}; without a database list every id
that has features is in the database. Reports mAP and micro-AP (uAP).
"""
from __future__ import annotations

from pathlib import Path

from . import BenchmarkError, Similarities, average_precision, mean, micro_average_precision, ranking, read_json


class GenericBenchmark:
    name = "generic"

    def __init__(self, path: Path):
        data = read_json(path)
        if not isinstance(data, dict):
            raise BenchmarkError(f"{path}: expected a JSON object {{query: [positives]}}")
        gt = data.get("ground_truth", data) if "ground_truth" in data else data
        self.ground_truth = {str(q): set(map(str, v)) for q, v in gt.items() if q != "database"}
        self.queries = sorted(self.ground_truth)
        self.database = sorted(map(str, data.get("database", [])))

    def evaluate(self, similarities: Similarities) -> dict[str, float]:
        aps, pairs, npos = [], [], 0
        for q in self.queries:
            if q not in similarities:
                continue
            scores = similarities[q]
            within = set(self.database) if self.database else None
            ranked = ranking(scores, exclude=q, within=within)
            pos = self.ground_truth[q] & set(ranked)
            aps.append(average_precision(ranked, pos))
            pairs += [(scores[v], v in pos) for v in ranked]
            npos += len(pos)
        return {"mAP": mean(aps), "uAP": micro_average_precision(pairs, npos), "queries": len(aps)}
