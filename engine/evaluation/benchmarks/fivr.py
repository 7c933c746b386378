"""FIVR-200K and FIVR-5K: DSVR, CSVR and ISVR mAP.

Annotations: FIVR's `annotation.json`, {query: {"ND": [...], "DS": [...], "CS": [...],
"IS": [...]}}. FIVR-5K (or any subset) also needs a JSON {"queries": [...],
"database": [...]}; without it, the queries are the annotation's keys and the database
is every video that has features. Protocol: the query is excluded from its ranking, and
only positives present in the database count.
"""
from __future__ import annotations

from pathlib import Path

from . import BenchmarkError, Similarities, average_precision, mean, ranking, read_json

TASKS = {"DSVR": ("ND", "DS"), "CSVR": ("ND", "DS", "CS"), "ISVR": ("ND", "DS", "CS", "IS")}


class FIVR:
    def __init__(self, path: Path, subset: str | Path | None, name: str):
        self.name = name
        data = read_json(path)
        if not isinstance(data, dict):
            raise BenchmarkError(f"{path}: expected FIVR's annotation.json, {{query: {{label: [ids]}}}}")
        self.annotation = {str(q): {k: set(map(str, v)) for k, v in labels.items()} for q, labels in data.items()}
        self.queries, self.database = sorted(self.annotation), []
        if subset is not None:
            sub = read_json(Path(subset))
            if not isinstance(sub, dict) or "queries" not in sub or "database" not in sub:
                raise BenchmarkError(f"{subset}: expected {{\"queries\": [...], \"database\": [...]}}")
            self.queries = sorted(set(map(str, sub["queries"])) & set(self.annotation))
            self.database = sorted(map(str, sub["database"]))
        elif name == "fivr-5k":
            raise BenchmarkError("fivr-5k needs --subset FILE with its 50 queries and 5,000 database videos")

    def evaluate(self, similarities: Similarities) -> dict[str, float]:
        out: dict[str, float] = {}
        within = set(self.database) if self.database else None
        for task, labels in TASKS.items():
            aps = []
            for q in self.queries:
                if q not in similarities:
                    continue
                ranked = ranking(similarities[q], exclude=q, within=within)
                present = set(ranked)
                pos = set().union(*(self.annotation[q].get(lab, set()) for lab in labels)) & present
                aps.append(average_precision(ranked, pos))
            out[task] = mean(aps)
        out["queries"] = sum(q in similarities for q in self.queries)
        return out
