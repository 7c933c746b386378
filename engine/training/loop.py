"""Training TCA: contrastive learning on frame-descriptor sequences (`python -m engine train`).

Self-supervised (default, no labels): a training instance is a random window of a video
(sometimes the windows of two or three videos joined). Its two views are the window seen
through two different spatial augmentations (precomputed once through the CNN, `views.py`)
and temporal augmentations of the descriptor sequence (`sampling.Sampler`). Negatives are
the other instances of the batch and a memory bank of recent ones (bank entries that share
a video with the anchor are masked out, never counted as negatives).

Supervised (`--pairs`): the paper's recipe, `sampling.PairSampler`: labelled positive
pairs, distractor videos as extra negatives, same losses and bank.

Losses (`losses.py`) on video-level cosine (TCA_c): InfoNCE, Circle or QuadLinear-AP; plus
an in-batch InfoNCE on frame-level chamfer (TCA_f, `--frame-weight`) and, where the two
views show the same moments, a frame-to-frame InfoNCE (`--match-weight`).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from ..background import frame_background
from ..backbone import FrameEncoder
from ..model import ModelBundle, save_model
from ..pca import PCA
from ..tca import TCA, TCAOutput
from .config import TrainConfig
from .losses import chamfer_matrix, contrastive, info_nce, match_loss
from .pairs import read_pairs
from .sampling import MAX_SEGMENTS, PairSampler, Sampler, overlaps, pad
from .views import describe_views, fit_training_pca, load_views, save_views, views_key, whiten

SamplerFactory = Callable[[list[torch.Tensor], TrainConfig, np.random.Generator], Sampler]


class Bank:
    """FIFO memory bank of detached video embeddings and the content they hold."""

    def __init__(self, size: int, dim: int, width: int = MAX_SEGMENTS):
        self.size = size
        self.vectors = torch.zeros(0, dim)
        self.segments = np.zeros((0, width, 3), np.int64)

    def push(self, vectors: torch.Tensor, segments: np.ndarray) -> None:
        if self.size <= 0:
            return
        self.vectors = torch.cat([vectors.detach(), self.vectors])[: self.size]
        self.segments = np.concatenate([segments, self.segments])[: self.size]

    def __len__(self) -> int:
        return len(self.vectors)


@dataclass
class Trainer:
    """One model, its optimiser, schedule and bank, and the sampler that feeds them."""

    model: torch.nn.Module  # a TCA (or one that feeds it backgrounds)
    sampler: Sampler
    cfg: TrainConfig

    def __post_init__(self) -> None:
        self.opt = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, self.cfg.steps)
        self.bank = Bank(self.cfg.bank, self.cfg.dim, self.sampler.width)
        self.tolerance = max(1, round(self.cfg.match_tolerance * self.cfg.view_fps))

    def step(self) -> float:
        """One optimiser step on a fresh batch; returns the loss."""
        cfg, model, sampler = self.cfg, self.model, self.sampler
        insts = [sampler.instance() for _ in range(cfg.batch)]
        va, vp = ([sampler.view(i, positive) for i in insts] for positive in (False, True))
        (a, am), (p, pm) = pad([x for x, _ in va]), pad([x for x, _ in vp])
        out_a, out_p = model(a, am), model(p, pm)
        sim = out_a.video @ out_p.video.T  # [B, B]; the diagonal are the positives
        segs = sampler.content(insts)
        same = torch.from_numpy(overlaps(segs, segs))
        neg = sim.masked_fill(same, -math.inf)
        extra = sampler.extra_negatives(insts)
        if extra:
            d, dm = pad([x for _, x in extra])
            out_d = model(d, dm)
            extra_segs = sampler.content([i for i, _ in extra])
            shared = torch.from_numpy(overlaps(segs, extra_segs))
            neg = torch.cat([neg, (out_a.video @ out_d.video.T).masked_fill(shared, -math.inf)], dim=1)
        if len(self.bank):
            shared = torch.from_numpy(overlaps(segs, self.bank.segments))
            neg = torch.cat([neg, (out_a.video @ self.bank.vectors.T).masked_fill(shared, -math.inf)], dim=1)
        loss = contrastive(cfg.loss, sim.diagonal(), neg, cfg.temperature, cfg.gamma, cfg.margin, cfg.sigma)
        if cfg.frame_weight > 0:
            fsim = chamfer_matrix(out_a.frames, am, out_p.frames, pm)
            loss = loss + cfg.frame_weight * info_nce(fsim.diagonal(), fsim.masked_fill(same, -math.inf),
                                                      cfg.temperature)
        if cfg.match_weight > 0 and sampler.matching_frames:
            ids_a, ids_p = (pad_sequence([i for _, i in v], batch_first=True, padding_value=-1) for v in (va, vp))
            loss = loss + cfg.match_weight * match_loss(out_a.frames, ids_a, out_p.frames, ids_p, self.tolerance,
                                                        cfg.temperature)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()
        if extra:
            self.bank.push(out_d.video, extra_segs)
        else:
            self.bank.push(out_p.video, segs)
        return loss.item()


class _WithBackground(torch.nn.Module):
    """A TCA fed frames whose last channel is each frame's background in the training
    collection (the sampler crops and joins views without looking inside a frame, so the
    background travels with its frame), for "distinctive" pooling."""

    def __init__(self, tca: TCA):
        super().__init__()
        self.tca = tca

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> TCAOutput:
        return self.tca(x[..., :-1], mask, x[..., -1])


def with_backgrounds(whitened: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per video [V, T, d] whitened views -> [V, T, d + 1]: each frame's background
    (`engine.background.frame_background`) measured on the clean views (view 0) of the
    whole training set, as an index measures its own, and shared by the other views of the
    same moment."""
    clean = [w[0].numpy() for w in whitened]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in clean])]).astype(np.int64)
    flat = np.concatenate(clean) if clean else np.zeros((0, 1), np.float32)
    bg = torch.from_numpy(frame_background(flat, offsets))
    return [torch.cat([w, bg[a:b].expand(w.shape[0], -1)[..., None]], dim=-1)
            for w, a, b in zip(whitened, offsets[:-1], offsets[1:])]


def train_tca(views: list[np.ndarray], pca: PCA, cfg: TrainConfig, progress: bool = True,
              checkpoint: Callable[[TCA, int], object] | None = None,
              make_sampler: SamplerFactory = Sampler) -> tuple[TCA, list[float]]:
    """Train a TCA on precomputed views (per video: [V, T, D] backbone descriptors).

    Returns the model (eval mode) and the loss of every step. `checkpoint(tca, step)` is
    called every 500 steps when given. `make_sampler(whitened, cfg, rng)` builds what
    feeds the steps (default: self-supervised)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    whitened = whiten(views, pca)
    distinctive = cfg.pooling == "distinctive"
    sampler = make_sampler(with_backgrounds(whitened) if distinctive else whitened, cfg, rng)
    if len(sampler.usable) < 2:
        raise ValueError("training needs at least 2 readable videos of a few seconds or more")
    model = TCA(cfg.dim, cfg.heads, cfg.ff_dim, cfg.dropout, cfg.input_scale, cfg.pooling)
    if cfg.identity_init or cfg.attention_only or cfg.context_only:
        model.start_at_identity()
    if cfg.attention_only:  # frames stay the input (normalised); only what attends to what is learned
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith("layer.self_attn.in_proj"))
    if cfg.context_only:  # each frame gains what the others add; the frame space itself is not relearned
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith("layer.self_attn."))
    trainer = Trainer(_WithBackground(model) if distinctive else model, sampler, cfg)
    losses: list[float] = []
    model.train()
    bar = tqdm(range(cfg.steps), desc="training", unit="step", disable=not progress)
    for step in bar:
        losses.append(trainer.step())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if checkpoint is not None and (step + 1) % 500 == 0 and step + 1 < cfg.steps:
            model.eval()
            checkpoint(model, step + 1)
            model.train()
    model.eval()
    return model, losses


def training_views(paths: list[Path], encoder: FrameEncoder, weights: str | Path | None, cfg: TrainConfig,
                   cache: Path | None = None, progress: bool = True) -> list[np.ndarray]:
    """The views of `paths` (see views.py), from `cache` when it was made with the same
    files and settings, else computed (and cached)."""
    # clean views alone do not depend on the seed: one cache serves every seed
    key = views_key(paths, encoder, weights, cfg.views, cfg.view_fps, cfg.seed if cfg.views > 1 else 0)
    views = load_views(cache, key) if cache else None
    if views is None:
        views = describe_views(encoder, paths, cfg.views, cfg.view_fps, cfg.seed, progress=progress)
        if cache:
            save_views(cache, key, views)
    return views


def train(paths: list[Path], out: Path, encoder: FrameEncoder, bundle_base: ModelBundle, cfg: TrainConfig,
          views_cache: Path | None = None, progress: bool = True, backbone_weights: str | Path | None = None,
          make_sampler: SamplerFactory = Sampler, pca: PCA | None = None) -> ModelBundle:
    """The whole recipe: views (cached), PCA, TCA; saves the bundle to `out`. pca: a
    whitening to keep (e.g. a model's learned one, `engine pca --copies`) instead of
    fitting one on the views; cfg.dim must be its output size."""
    started = time.time()
    views = training_views(paths, encoder, backbone_weights, cfg, views_cache, progress)
    if pca is None:
        pca = fit_training_pca(views, cfg.dim, cfg.pca_shrinkage)

    def save(tca: TCA, step: int | None = None, final_loss: float | None = None) -> ModelBundle:
        info = {"trained_by": "python -m engine train", "config": cfg.as_info(),
                "videos": len(paths), "steps_done": step or cfg.steps,
                "frames": int(sum(v.shape[1] for v in views)), "seconds": round(time.time() - started, 1)}
        if final_loss is not None:
            info["final_loss"] = final_loss
        bundle = ModelBundle(bundle_base.backbone, bundle_base.pooling, pca, tca, info, layout=bundle_base.layout,
                             cnn=bundle_base.cnn)
        save_model(bundle, out)
        return bundle

    tca, losses = train_tca(views, pca, cfg, progress, save, make_sampler)
    return save(tca, final_loss=float(np.mean(losses[-50:])))


def train_pairs(video_dir: Path, pairs_file: Path, out: Path, encoder: FrameEncoder, bundle_base: ModelBundle,
                cfg: TrainConfig, progress: bool = True, backbone_weights: str | Path | None = None,
                views_cache: Path | None = None, pca: PCA | None = None) -> ModelBundle:
    """Supervised training from labelled pairs (`pairs.read_pairs`: a pairs file or a
    collection's labels.json; ids relative to `video_dir`): clean views only (the labels
    supply the variation), distractors and hard negatives as negatives."""
    plan = read_pairs(pairs_file)
    ids = plan.ids
    missing = [i for i in ids if not (Path(video_dir) / i).is_file()]
    if missing:
        raise ValueError(f"{pairs_file}: {len(missing)} videos not found under {video_dir}, e.g. {missing[0]}")
    if not plan.pairs or not plan.distractors:
        raise ValueError(f"{pairs_file}: needs at least one pair and one distractor")
    pos = {v: k for k, v in enumerate(ids)}
    keys: dict[str, int] = {}
    content = [{keys.setdefault(c, len(keys)) for c in plan.content.get(v, {v})} for v in ids]
    hard = [[pos[h] for h in plan.hard.get(v, [])] for v in ids]
    cfg = TrainConfig(**{**asdict(cfg), "views": 1})

    def make_sampler(whitened: list[torch.Tensor], c: TrainConfig, rng: np.random.Generator) -> Sampler:
        return PairSampler(whitened, [(pos[a], pos[b]) for a, b in plan.pairs], [pos[d] for d in plan.distractors],
                           c, rng, content, hard)

    return train([Path(video_dir) / i for i in ids], out, encoder, bundle_base, cfg, views_cache, progress=progress,
                 backbone_weights=backbone_weights, make_sampler=make_sampler, pca=pca)
