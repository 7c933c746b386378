"""EVVE (event retrieval): 13 events, 620 queries.

Annotations: EVVE's `annots/` folder, one `<event>.dat` per event with lines
`<video id> <label> <query|database>`; a label > 0 marks a positive of the event.
AP is the trapezoidal AP of EVVE's own evaluation script; reports the mean over all
queries (as ViSiL and TCA report it) and the mean of the per-event mAPs.
"""
from __future__ import annotations

from pathlib import Path

from . import BenchmarkError, Similarities, mean, ranking


def trapezoid_ap(ranked: list[str], positives: set[str]) -> float:
    """EVVE's AP: area under the precision-recall curve by trapezoids."""
    if not positives:
        return 0.0
    ap, hits = 0.0, 0
    for rank, vid in enumerate(ranked):
        if vid in positives:
            p0 = 1.0 if rank == 0 else hits / rank
            hits += 1
            ap += (p0 + hits / (rank + 1)) / (2 * len(positives))
    return ap


class EVVE:
    name = "evve"

    def __init__(self, path: Path):
        files = sorted(Path(path).glob("*.dat")) if Path(path).is_dir() else [Path(path)]
        if not files:
            raise BenchmarkError(f"{path}: no <event>.dat annotation files in this folder")
        self.events: dict[str, tuple[list[str], set[str]]] = {}
        db: set[str] = set()
        for f in files:
            queries, positives = [], set()
            for n, line in enumerate(f.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 3 or parts[2] not in ("query", "database"):
                    raise BenchmarkError(f"{f}:{n}: expected '<video> <label> <query|database>'")
                vid, label, split = parts[0], int(parts[1]), parts[2]
                if split == "query":
                    queries.append(vid)
                else:
                    db.add(vid)
                    if label > 0:
                        positives.add(vid)
            self.events[f.stem] = (queries, positives)
        self.queries = sorted(q for qs, _ in self.events.values() for q in qs)
        self.database = sorted(db)

    def evaluate(self, similarities: Similarities) -> dict[str, float]:
        per_event, all_aps = {}, []
        db = set(self.database)
        for event, (queries, positives) in self.events.items():
            aps = [trapezoid_ap(ranking(similarities[q], exclude=q, within=db), positives)
                   for q in queries if q in similarities]
            per_event[event] = mean(aps)
            all_aps += aps
        return {"mAP": mean(all_aps), "mAP_events": mean(per_event.values()), "queries": len(all_aps)}
