"""What a training step sees: instances (windows of videos) and their augmented views.

A view is a sequence of whitened frame descriptors [T, d] cut from precomputed spatial
views (`views.py`), with temporal augmentations applied to the sequence, and for each of
its frames the moment it shows (video * ID_STRIDE + frame index at view fps), so two views
can be matched frame by frame. Two samplers share one interface:

- `Sampler` (self-supervised): an instance is a random window of one to three videos;
  its two views are two augmentations of it.
- `PairSampler` (supervised, the paper's recipe): an instance is a labelled pair of
  videos; distractor videos, and hard negatives of the anchors where the labels name
  them (`pairs.py`), are extra negatives each step.

What an instance shows (`Sampler.content`) decides what may not be its negative.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import TrainConfig

MAX_SEGMENTS = 3
ID_STRIDE = 1 << 32  # frame ids: video * ID_STRIDE + frame index


@dataclass
class Instance:
    """Content of one training instance: segments (video, start, end) in view-fps frames."""

    segments: list[tuple[int, int, int]]


def segment_array(instances: list[Instance]) -> np.ndarray:
    """[N, MAX_SEGMENTS, 3] (video, start, end); unused rows have video -1."""
    arr = np.full((len(instances), MAX_SEGMENTS, 3), -1, np.int64)
    for i, inst in enumerate(instances):
        arr[i, : len(inst.segments)] = inst.segments
    return arr


def overlaps(a: np.ndarray, b: np.ndarray, any_time: bool = True) -> np.ndarray:
    """Which instances share a video: a [N, S, 3], b [M, S, 3] segment arrays -> bool [N, M].

    any_time=True (the default for negatives): two windows of the same video count as
    shared even when they do not overlap in time, because other moments of one video
    (the same scene, the same people) are not negatives a user would want pushed away.
    any_time=False: only windows that overlap in time."""
    va, sa, ea = (a[:, :, k][:, :, None, None] for k in range(3))
    vb, sb, eb = (b[:, :, k].T[None, None] for k in range(3))
    hit = (va == vb) & (va >= 0)
    if not any_time:
        hit &= (sa < eb) & (sb < ea)
    return hit.any(axis=(1, 2))  # [N, S, S, M] -> [N, M]


def pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T_max, d] zero-padded batch and its bool mask [B, T_max]."""
    t = max(len(s) for s in seqs)
    x = torch.zeros(len(seqs), t, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), t, dtype=torch.bool)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
        mask[i, : len(s)] = True
    return x, mask


class Sampler:
    """Self-supervised: instances are windows of 1-3 videos, views are augmentations of them."""

    matching_frames = True  # an instance's two views show the same moments (frame matching applies)
    width = MAX_SEGMENTS  # rows of a `content` array

    def __init__(self, views: list[torch.Tensor], cfg: TrainConfig, rng: np.random.Generator):
        self.views = views  # per video: [V, T, d] whitened descriptors
        self.cfg = cfg
        self.rng = rng
        self.step = max(1, round(cfg.view_fps))  # descriptors per 1-fps frame
        self.usable = [i for i, v in enumerate(views) if v.shape[1] >= 2 * self.step]

    def instance(self) -> Instance:
        rng, cfg = self.rng, self.cfg
        parts = 1 if rng.random() < 0.5 else int(rng.integers(2, MAX_SEGMENTS + 1))
        vids = rng.choice(self.usable, size=parts, replace=len(self.usable) < parts)
        budget = cfg.clip_frames * self.step
        segments = []
        for v in vids:
            t = self.views[v].shape[1]
            hi = max(2 * self.step, min(t, budget // parts))
            length = int(rng.integers(min(hi, 4 * self.step), hi + 1))
            a = int(rng.integers(0, t - length + 1))
            segments.append((int(v), a, a + length))
        return Instance(segments)

    def view(self, inst: Instance, positive: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One augmented view [T, d] and the moment id of each frame [T]: a spatial view
        per segment, frame phase, speed, drops, and (for the positive) temporal crop or
        insertion into other content."""
        rng = self.rng
        chunks = [self.views[v][int(rng.integers(self.views[v].shape[0])), a:b] for v, a, b in inst.segments]
        x = torch.cat(chunks)
        ids = torch.cat([v * ID_STRIDE + torch.arange(a, b) for v, a, b in inst.segments])
        speed = float(rng.choice([0.5, 1.0, 1.0, 1.0, 1.5, 2.0]))
        idx = np.arange(rng.integers(self.step), len(x), self.step * speed).astype(int)
        keep = rng.random(len(idx)) > rng.uniform(0, 0.2)
        idx = idx[keep] if keep.sum() >= 2 else idx
        x, ids = x[torch.from_numpy(idx)], ids[torch.from_numpy(idx)]
        if positive and len(x) >= 4 and rng.random() < 0.3:  # temporal crop: a part of it
            n = int(rng.integers(max(2, len(x) // 2), len(x) + 1))
            a = int(rng.integers(0, len(x) - n + 1))
            x, ids = x[a : a + n], ids[a : a + n]
        elif positive and rng.random() < 0.3:  # inserted into something else
            filler, filler_ids = self.view(self.instance(), positive=False)
            cut = int(rng.integers(0, len(filler) + 1))
            x = torch.cat([filler[:cut], x, filler[cut:]])
            ids = torch.cat([filler_ids[:cut], ids, filler_ids[cut:]])
        n = self.cfg.clip_frames * 2
        return x[:n], ids[:n]

    def content(self, instances: list[Instance]) -> np.ndarray:
        """What each instance shows, as a segment array (see `overlaps`): instances that
        overlap are never each other's negatives."""
        return segment_array(instances)

    def extra_negatives(self, instances: list[Instance]) -> list[tuple[Instance, torch.Tensor]]:
        """Negatives beyond the batch for this step (none: the batch and the bank suffice)."""
        return []


class PairSampler(Sampler):
    """The paper's recipe: an instance is a labelled positive pair (anchor video, positive
    video), each seen through a random clean window; one extra negative window per
    instance each step: a hard negative of its anchor (`hard[v]`, with probability
    `cfg.hard_fraction`) or a random distractor.

    content[v]: content keys (ints) of video v; videos that share one are never each
    other's negatives (default: each video its own key)."""

    matching_frames = False  # a pair's two videos show the same content at unknown moments

    def __init__(self, views: list[torch.Tensor], pairs: list[tuple[int, int]], distractors: list[int],
                 cfg: TrainConfig, rng: np.random.Generator, content: list[set[int]] | None = None,
                 hard: list[list[int]] | None = None):
        super().__init__(views, cfg, rng)
        self.pairs, self.distractors = pairs, distractors
        self.keys = content or [{v} for v in range(len(views))]
        self.hard = hard or [[] for _ in views]
        self.width = 2 * max(len(k) for k in self.keys)

    def content(self, instances: list[Instance]) -> np.ndarray:
        arr = np.full((len(instances), self.width, 3), -1, np.int64)
        for i, inst in enumerate(instances):
            keys = sorted(set().union(*(self.keys[v] for v, _, _ in inst.segments)))
            arr[i, : len(keys), 0] = keys
        return arr

    def _window(self, v: int) -> tuple[int, int, int]:
        t = self.views[v].shape[1]
        n = min(t, self.cfg.clip_frames * self.step)
        a = int(self.rng.integers(0, t - n + 1))
        return (v, a, a + n)

    def instance(self) -> Instance:
        a, b = self.pairs[int(self.rng.integers(len(self.pairs)))]
        return Instance([self._window(a), self._window(b)])

    def view(self, inst: Instance, positive: bool) -> tuple[torch.Tensor, torch.Tensor]:
        v, a, b = inst.segments[1 if positive else 0]
        idx = torch.arange(a, b)[int(self.rng.integers(self.step)) :: self.step]
        return self.views[v][0, idx], v * ID_STRIDE + idx

    def extra_negatives(self, instances: list[Instance]) -> list[tuple[Instance, torch.Tensor]]:
        out = []
        for anchor in instances:
            hard = self.hard[anchor.segments[0][0]]
            if hard and self.rng.random() < self.cfg.hard_fraction:
                v = hard[int(self.rng.integers(len(hard)))]
            else:
                v = self.distractors[int(self.rng.integers(len(self.distractors)))]
            inst = Instance([self._window(v)])
            out.append((inst, self.view(Instance([inst.segments[0], inst.segments[0]]), False)[0]))
        return out
