"""The demo corpus (`python -m engine.evaluation.demo_corpus build`): its labels.json as a benchmark.

A family is a source and its copies. Every family member is a query; its positives are
the other members; the database is every video of the corpus (distractors included),
the query excluded. Reported for all families and for each split: `test` families come
from footage that training never saw.

Copies made by insertion or picture-in-picture also show footage of a distractor (their
label's "filler"). Two videos that share such footage without being one family are
neither positive nor negative: that pair is left out of the query's ranking (FIVR's
"excluded" convention), as is the distractor itself for a query that shows it.
"""
from __future__ import annotations

from pathlib import Path

from . import BenchmarkError, Similarities, average_precision, mean, micro_average_precision, ranking, read_json


class DemoBenchmark:
    name = "demo"

    def __init__(self, path: Path):
        data = read_json(path)
        if not isinstance(data, dict) or "sources" not in data:
            raise BenchmarkError(f"{path}: not a demo labels.json (make one with python -m engine.evaluation.demo_corpus build)")
        self.family: dict[str, str] = {s: s for s in data["sources"]}
        self.family.update({c: lab["source"] for c, lab in data["copies"].items()})
        self.split = {s: lab["split"] for s, lab in data["sources"].items()}
        self.queries = sorted(self.family)
        self.database = sorted(list(self.family) + list(data["distractors"]))
        # Footage of distractors each video shows (a distractor shows its own).
        self.filler: dict[str, set[str]] = {d: {d} for d in data["distractors"]}
        self.filler.update({c: set(lab.get("filler", [])) for c, lab in data["copies"].items()})

    def excluded(self, query: str) -> set[str]:
        """Videos outside the query's family that show footage the query also shows."""
        shown = self.filler.get(query, set())
        if not shown:
            return set()
        fam = self.family.get(query)
        return {v for v in self.database if self.filler.get(v, set()) & shown and self.family.get(v) != fam}

    def evaluate(self, similarities: Similarities) -> dict[str, float]:
        out: dict[str, float] = {}
        db = set(self.database)
        for split in ("all", "train", "test"):
            aps, pairs, npos = [], [], 0
            for q in self.queries:
                fam = self.family[q]
                if q not in similarities or (split != "all" and self.split[fam] != split):
                    continue
                ranked = ranking(similarities[q], exclude=q, within=db - self.excluded(q))
                pos = {v for v in ranked if self.family.get(v) == fam}
                aps.append(average_precision(ranked, pos))
                pairs += [(similarities[q][v], v in pos) for v in ranked]
                npos += len(pos)
            out[f"mAP_{split}"] = mean(aps)
            out[f"uAP_{split}"] = micro_average_precision(pairs, npos)
        return out
