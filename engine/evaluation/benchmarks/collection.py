"""The collection benchmark (`python -m engine.evaluation.collection build`): its labels.json.

Queries are full uploads and clips cut out of uploads; the database is every video of
`videos/`. A database video is a positive of a query when it shows at least
`MIN_OVERLAP` seconds of the query's content (the query's source upload itself, for a
clip; copies through their segments). Reported per split (pick methods on `val`, read
`test` last) and per query kind (`full`, `clip`):

- mAP over the whole database;
- intrusion: the share of queries where a video of the query's own channel that shares
  no content with it ranks in the top 5 above a true positive;
- span P / R / F1 (VCSL style, see `evaluate_segments`) over the true positives in each
  query's top 10;
- a per-edit table (`edit_table`): of the (query, copy) pairs of each layout and edit,
  how many reach the top 10;
- where the model has attention (`attention_share`): the attention that the uploads'
  intro bumpers, end cards and black frames receive, as a multiple of their share of the
  frames (1.0: uniform attention; the goal is below 0.5).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from . import BenchmarkError, Similarities, average_precision, mean, ranking, read_json

MIN_OVERLAP = 1.0  # seconds of shared content that make a positive
SPLITS = ("all", "train", "val", "test")
Box = tuple[float, float, float, float]  # query start, query end, video start, video end (s)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


class CollectionBenchmark:
    name = "collection"

    def __init__(self, path: Path):
        data = read_json(path)
        if not isinstance(data, dict) or "queries" not in data or "channels" not in data:
            raise BenchmarkError(f"{path}: not a collection labels.json (make one with "
                                 "python -m engine.evaluation.collection build)")
        self.videos: dict[str, dict] = data["videos"]
        self.query_labels: dict[str, dict] = data["queries"]
        self.queries = sorted(self.query_labels)
        self.database = sorted(self.videos)
        self.truth: dict[str, dict[str, list[Box]]] = {q: self._truth(lab) for q, lab in self.query_labels.items()}
        self.durations: dict[str, float] = {v: float(lab["duration"]) for v, lab in
                                            (*self.videos.items(), *self.query_labels.items())}

    def _truth(self, query: dict) -> dict[str, list[Box]]:
        """{database video: the boxes it shares with the query} (query time is the clip's own)."""
        src, (qa, qb) = query["source"], query["span"]
        shift = 0.0 if query["kind"] == "full" else qa
        out: dict[str, list[Box]] = {}
        if src in self.videos and _overlap((qa, qb), (0.0, self.videos[src]["duration"])) >= MIN_OVERLAP:
            out[src] = [(0.0, qb - qa, qa, qb)]
        for vid, lab in self.videos.items():
            for seg in lab.get("segments", []):
                if seg["source"] != src:
                    continue
                (a, b), (c, d) = seg["source_span"], seg["span"]
                lo, hi = max(a, qa), min(b, qb)
                if hi - lo < MIN_OVERLAP:
                    continue
                rate = (d - c) / (b - a)
                out.setdefault(vid, []).append((lo - shift, hi - shift, c + (lo - a) * rate, c + (hi - a) * rate))
        return out

    def positives(self, query: str) -> set[str]:
        return set(self.truth[query])

    def _groups(self, query: str) -> list[str]:
        lab = self.query_labels[query]
        return [g for split in ("all", lab["split"]) for g in (split, f"{split}_{lab['kind']}")]

    def evaluate(self, similarities: Similarities) -> dict[str, float]:
        aps: dict[str, list[float]] = {}
        intruded: dict[str, list[float]] = {}
        for q in self.queries:
            if q not in similarities:
                continue
            ranked = ranking(similarities[q], exclude=q)
            pos = self.positives(q)
            ap = average_precision(ranked, pos)
            channel = self.query_labels[q]["channel"]
            last = max((r for r, v in enumerate(ranked) if v in pos), default=len(ranked))
            bad = any(self.videos[v]["channel"] == channel and v not in pos and r < last
                      for r, v in enumerate(ranked[:5]))
            for g in self._groups(q):
                aps.setdefault(g, []).append(ap)
                intruded.setdefault(g, []).append(float(bad))
        out: dict[str, float] = {}
        for g in sorted(aps):
            out[f"mAP_{g}"] = mean(aps[g])
            if "_" not in g:
                out[f"intrusion_{g}"] = mean(intruded[g])
                out[f"queries_{g}"] = len(aps[g])
        return out

    def evaluate_segments(self, found: Mapping[str, Mapping[str, Sequence[Box]]]) -> dict[str, float]:
        """Span P / R / F1 per split: `found[q][v]` are the boxes predicted for a pair (give
        them for each query's top 10); pairs that are not true positives are ignored.

        Per pair (VCSL): precision = (predicted length inside the true intervals / predicted
        length) on the query axis x the same on the video axis; recall the same from the
        true side; both averaged over pairs; F1 = 2PR / (P + R). A true positive in the top
        10 with no predicted box counts P = R = 0."""
        per: dict[str, list[tuple[float, float]]] = {}
        for q, videos in found.items():
            for v, boxes in videos.items():
                true = self.truth.get(q, {}).get(v)
                if not true:
                    continue
                p, r = _box_pr(list(boxes), true)
                for g in self._groups(q):
                    if "_" not in g:
                        per.setdefault(g, []).append((p, r))
        out = {}
        for g, pr in sorted(per.items()):
            p, r = mean(x for x, _ in pr), mean(y for _, y in pr)
            out[f"span_P_{g}"], out[f"span_R_{g}"] = p, r
            out[f"span_F1_{g}"] = 2 * p * r / (p + r) if p + r else 0.0
            out[f"span_pairs_{g}"] = len(pr)
        return out

    def edit_table(self, similarities: Similarities, split: str = "all", top: int = 10) -> dict[str, list[int]]:
        """{layout or edit: [pairs reaching the top `top`, pairs]} over (query, positive copy)
        pairs; 'original' is a clip query's own upload."""
        table: dict[str, list[int]] = {}
        for q in self.queries:
            if q not in similarities or split not in ("all", self.query_labels[q]["split"]):
                continue
            ranked = ranking(similarities[q], exclude=q)[:top]
            for v in self.positives(q):
                lab = self.videos[v]
                keys = ["original"] if lab["kind"] == "upload" else [f"layout: {lab['layout']}"] + [
                    f"edit: {e}" for e in lab["edit"].split("+") if e != "none"]
                for key in keys:
                    row = table.setdefault(key, [0, 0])
                    row[0] += v in ranked
                    row[1] += 1
        return dict(sorted(table.items()))

    def attention_share(self, attention: Mapping[str, Sequence[float]], black: Mapping[str, Sequence[bool]],
                        fps: float = 1.0, split: str = "all") -> dict[str, float]:
        """Over the database's uploads of `split`: attention [T] per video (sums to 1),
        black [T] True where a frame is black. Returns the attention that the wrapper frames
        (intro and end card, from the labels' `body`) and the black frames receive, each
        summed over videos and divided by the same sum of their frame shares."""
        got = {"wrapper": [0.0, 0.0], "black": [0.0, 0.0]}
        for vid, lab in self.videos.items():
            if lab["kind"] != "upload" or vid not in attention or split not in ("all", lab["split"]):
                continue
            a = list(attention[vid])
            t = [i / fps for i in range(len(a))]
            body = lab["body"]
            masks = {"wrapper": [x < body[0] or x >= body[1] for x in t], "black": list(black.get(vid, []))}
            for key, m in masks.items():
                if len(m) == len(a) and any(m):
                    got[key][0] += sum(x for x, w in zip(a, m) if w)
                    got[key][1] += sum(m) / len(m)
        return {f"attention_{k}": (float(x / share) if share else float("nan")) for k, (x, share) in got.items()}


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _covered(pred: list[tuple[float, float]], true: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(length of pred inside true, length of pred, length of true), each a union of intervals."""
    p, t = _union(pred), _union(true)
    inter = sum(_overlap(a, b) for a in p for b in t)
    return inter, sum(b - a for a, b in p), sum(b - a for a, b in t)


def _box_pr(pred: list[Box], true: list[Box]) -> tuple[float, float]:
    if not pred:
        return 0.0, 0.0
    iq, pq, tq = _covered([(b[0], b[1]) for b in pred], [(b[0], b[1]) for b in true])
    iv, pv, tv = _covered([(b[2], b[3]) for b in pred], [(b[2], b[3]) for b in true])
    precision = (iq / pq if pq else 0.0) * (iv / pv if pv else 0.0)
    recall = (iq / tq if tq else 0.0) * (iv / tv if tv else 0.0)
    return precision, recall
