"""CC_WEB_VIDEO, in its four variants.

Annotations: a JSON {"queries": [24 ids], "ground_truth": [{video: label}, ...] (one dict
per query, in order), optional "ground_truth_cleaned": [...] (the cleaned labels)}.
Labels E, S, L, M, V are positives; X and -1 are not. Variants:
`cc_web` (rank the whole database), `cc_web*` (rank only the query's own set),
`cc_web_c` and `cc_web_c*` (the same with the cleaned labels).
"""
from __future__ import annotations

from pathlib import Path

from . import BenchmarkError, Similarities, average_precision, mean, ranking, read_json

POSITIVE = set("ESLMV")


class CCWeb:
    name = "cc_web"

    def __init__(self, path: Path):
        data = read_json(path)
        if not isinstance(data, dict) or "queries" not in data or "ground_truth" not in data:
            raise BenchmarkError(f"{path}: expected {{\"queries\": [...], \"ground_truth\": [...]}}")
        self.queries = [str(q) for q in data["queries"]]
        self.sets = {"": data["ground_truth"], "_c": data.get("ground_truth_cleaned")}
        if len(self.sets[""]) != len(self.queries):
            raise BenchmarkError(f"{path}: {len(self.queries)} queries but {len(self.sets[''])} ground-truth sets")
        self.database = sorted({str(v) for gt in self.sets[""] for v in gt})

    def evaluate(self, similarities: Similarities) -> dict[str, float]:
        out: dict[str, float] = {}
        for suffix, sets in self.sets.items():
            if sets is None:
                continue
            for own_set in (False, True):
                aps = []
                for q, gt in zip(self.queries, sets):
                    if q not in similarities:
                        continue
                    labels = {str(v): str(lab) for v, lab in gt.items()}
                    ranked = ranking(similarities[q], exclude=q, within=set(labels) if own_set else None)
                    pos = {v for v, lab in labels.items() if lab in POSITIVE and v != q} & set(ranked)
                    aps.append(average_precision(ranked, pos))
                out[f"cc_web{suffix}{'*' if own_set else ''}"] = mean(aps)
        return out
