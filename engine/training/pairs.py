"""Supervised training pairs (`python -m engine train DIR --pairs FILE`): what is positive,
what must not be a negative, and which negatives are hard.

Two kinds of FILE:
- a pairs file, `{"pairs": [[id, id], ...], "distractors": [id, ...]}` (the paper's
  recipe: labelled pairs, distractor videos as negatives);
- a collection's `labels.json` (`python -m engine.evaluation.collection build DIR --rename`):
  the pairs are every two videos that show at least `MIN_OVERLAP` s of the same upload's
  content (an upload and its copies, the copies among themselves, clips cut out of it);
  the hard negatives of a video are the uploads of the channel it was published by that
  share none of its content: same bumper, end card, watermark and series template, other
  content. That is what teaches a model that wrappers do not make a copy.
Ids are paths relative to DIR.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

MIN_OVERLAP = 1.0  # seconds of one upload's content that two videos must share to be a pair


@dataclass
class PairPlan:
    """pairs: (anchor, positive) ids; distractors: negatives only; content: the content keys
    of each id (two ids that share a key are never each other's negative); hard: the hard
    negatives of each id."""

    pairs: list[tuple[str, str]]
    distractors: list[str]
    content: dict[str, set[str]] = field(default_factory=dict)
    hard: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return sorted({i for p in self.pairs for i in p} | set(self.distractors) | set(self.hard)
                      | {h for hs in self.hard.values() for h in hs})


def read_pairs(path: str | Path) -> PairPlan:
    """A pairs file or a collection labels.json -> PairPlan. Raises ValueError naming the file."""
    try:
        data = json.loads(Path(path).read_text())
        if isinstance(data, dict) and "channels" in data and "videos" in data:
            return collection_pairs(data)
        pairs = [(str(a), str(b)) for a, b in data["pairs"]]
        distractors = [str(d) for d in data.get("distractors", [])]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: expected JSON {{\"pairs\": [[id, id], ...], \"distractors\": [id, ...]}} "
                         f"or a collection's labels.json ({err})") from err
    return PairPlan(pairs, distractors, {i: {i} for p in pairs for i in p} | {d: {d} for d in distractors})


def collection_pairs(labels: dict, min_overlap: float = MIN_OVERLAP) -> PairPlan:
    """Pairs, content and hard negatives of a collection (see the module docstring)."""
    # Each video's content: {source upload: [(start, end) in the source's seconds]}, and its channel.
    shows: dict[str, dict[str, list[tuple[float, float]]]] = {}
    channel: dict[str, str] = {}
    for vid, lab in labels["videos"].items():
        channel[vid] = lab["channel"]
        if lab["kind"] == "upload":
            shows[vid] = {vid: [tuple(lab["body"])]}
        else:
            for seg in lab.get("segments", []):
                shows.setdefault(vid, {}).setdefault(seg["source"], []).append(tuple(seg["source_span"]))
    for qid, lab in labels["queries"].items():
        channel[qid] = lab["channel"]
        shows[qid] = {lab["source"]: [tuple(lab["span"])]}
    by_source: dict[str, list[str]] = {}
    for vid, sources in shows.items():
        for src in sources:
            by_source.setdefault(src, []).append(vid)

    def shared(a: str, b: str, src: str) -> float:
        return sum(max(0.0, min(x[1], y[1]) - max(x[0], y[0])) for x in shows[a][src] for y in shows[b][src])

    pairs = sorted({(a, b) for src, members in by_source.items() for a, b in combinations(sorted(members), 2)
                    if shared(a, b, src) >= min_overlap})
    paired = {i for p in pairs for i in p}
    content = {vid: set(sources) for vid, sources in shows.items()}
    uploads_of: dict[str, list[str]] = {}
    for vid, lab in labels["videos"].items():
        if lab["kind"] == "upload":
            uploads_of.setdefault(lab["channel"], []).append(vid)
    hard = {vid: [u for u in uploads_of.get(channel[vid], []) if not content[u] & content[vid]]
            for vid in sorted(paired)}
    distractors = sorted(v for v in labels["videos"] if v not in paired)
    return PairPlan(pairs, distractors, content, hard)
