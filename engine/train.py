"""Training TCA: contrastive learning on frame-descriptor sequences (`python -m engine train`).

Self-supervised (default, no labels): a training instance is a random window of a video
(sometimes the windows of two or three videos joined, which multiplies the instances a
small collection gives). Its two views are the window seen through two different
spatial augmentations (`engine.augment`, drawn per video and precomputed once through the
CNN, so training itself never touches pixels) and through temporal augmentations applied
to the descriptor sequence: another frame phase, speed change, dropped frames, temporal
crop and insertion into other content. Negatives are the other instances of the batch
and a memory bank of recent ones (bank entries that overlap the anchor's content are
masked out, never counted as negatives).

Supervised (`--pairs`): the paper's recipe. Positive pairs of labelled videos and
distractor videos as negatives (VCDB-style), same losses and bank.

Losses, on video-level cosine similarity (TCA_c, as in the paper): InfoNCE, Circle
(gamma 256, margin 0.25; the positive is column 0 of every row, unlike the published
code) or QuadLinear-AP (HAP-VR). An in-batch InfoNCE on frame-level chamfer similarity
(TCA_f) is added by default (`--frame-weight`), so the frame embeddings that chamfer
search uses are trained directly too.
"""
from __future__ import annotations

import enum
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from . import augment
from .backbone import FrameEncoder
from .model import ModelBundle, save_model
from .pca import PCA, fit_pca
from .tca import TCA
from .video import VideoError, _centre_crop, _resize_dims, iter_frames


class Loss(str, enum.Enum):
    INFONCE = "infonce"
    CIRCLE = "circle"
    QUADLINEAR_AP = "ap"


@dataclass
class TrainConfig:
    dim: int = 512            # PCA output = TCA width
    heads: int = 8
    ff_dim: int = 2048
    dropout: float = 0.2
    loss: Loss = Loss.INFONCE
    temperature: float = 0.05  # InfoNCE
    gamma: float = 256.0       # Circle scale
    margin: float = 0.25       # Circle relaxation
    sigma: float = 0.05        # QuadLinear-AP smoothing
    frame_weight: float = 1.0  # weight of the in-batch chamfer InfoNCE (0 = video level only)
    match_weight: float = 0.0  # weight of the frame-to-frame InfoNCE on matching moments (self-supervised)
    identity_init: bool = False  # start the transformer at the identity (zeroed residual outputs)
    match_tolerance: float = 1.0  # seconds apart two frames of one video may be and still match
    bank: int = 4096
    batch: int = 32
    steps: int = 1500
    lr: float = 3e-4
    weight_decay: float = 0.0
    clip_frames: int = 32      # longest training window, in 1-fps frames (paper: 64)
    views: int = 6             # spatial views per video (view 0 is the clean video)
    view_fps: float = 2.0      # descriptors per second kept for training (phase jitter)
    pca_shrinkage: float = 0.5
    seed: int = 0

    def as_info(self) -> dict:
        d = asdict(self)
        d["loss"] = self.loss.value
        return d


# ----------------------------------------------------------------- precomputed views
def describe_views(encoder: FrameEncoder, paths: list[Path], views: int, fps: float, seed: int,
                   logo_rgba: np.ndarray | None = None) -> list[np.ndarray]:
    """For each video: float16 [views, T, D] backbone descriptors of `views` spatially
    augmented versions (view 0 untouched), sampled at `fps`. Unreadable videos give an
    empty [views, 0, D] entry and a note on stderr."""
    rng = np.random.default_rng(seed)
    decoded: list[list[np.ndarray]] = []
    for p in tqdm(paths, desc="decoding", unit="video"):
        try:
            decoded.append([img for _, img in iter_frames(p, fps, short_side=256, crop=None)])
        except VideoError as err:
            print(f"skipped {err}", file=sys.stderr)
            decoded.append([])
    out = []
    for k, frames in enumerate(tqdm(decoded, desc="augmented views", unit="video")):
        if not frames:
            out.append(np.zeros((views, 0, encoder.dim), np.float16))
            continue
        others = [f for j, fr in enumerate(decoded) if j != k for f in fr] or frames
        per_view = []
        for v in range(views):
            if v == 0:
                t = (lambda img, i: img)
            else:
                start = int(rng.integers(len(others)))
                background = (others[start:] + others[:start])[: len(frames)]
                _, t = augment.random_view(rng, background, logo_rgba)
            imgs = np.stack([_centre(t(img, i)) for i, img in enumerate(frames)])
            per_view.append(encoder.describe(imgs))
        out.append(np.stack(per_view).astype(np.float16))
    return out


def _centre(img: np.ndarray, short_side: int = 256, crop: int = 224) -> np.ndarray:
    """What `iter_frames` gives the CNN, for a frame augmented after decoding: short side
    resized to `short_side`, then the centre `crop` square."""
    from PIL import Image

    w, h = _resize_dims(img.shape[1], img.shape[0], short_side)
    if (w, h) != (img.shape[1], img.shape[0]):
        img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
    return np.ascontiguousarray(_centre_crop(img, crop))


# ----------------------------------------------------------------- temporal sampling
@dataclass
class Instance:
    """Content of one training instance: segments (video, start, end) in view-fps frames."""

    segments: list[tuple[int, int, int]]


MAX_SEGMENTS = 3
ID_STRIDE = 1 << 32  # frame ids: video * ID_STRIDE + frame index


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


class Sampler:
    """Draws instances and their augmented views as [T, d] tensors of whitened descriptors."""

    def __init__(self, views: list[torch.Tensor], cfg: TrainConfig, rng: np.random.Generator):
        self.views = views  # per video: [V, T, d]
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

    def view(self, inst: Instance, positive: bool) -> torch.Tensor:
        """One augmented view: a spatial view per segment, frame phase, speed, drops,
        and (for the positive) temporal crop or insertion into other content."""
        return self.view_with_ids(inst, positive)[0]

    def view_with_ids(self, inst: Instance, positive: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """`view`, and for each of its frames the moment it shows: video * ID_STRIDE +
        frame index (at view fps), so two views can be matched frame by frame."""
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
            other = self.instance()
            filler, filler_ids = self.view_with_ids(other, positive=False)
            cut = int(rng.integers(0, len(filler) + 1))
            x = torch.cat([filler[:cut], x, filler[cut:]])
            ids = torch.cat([filler_ids[:cut], ids, filler_ids[cut:]])
        n = self.cfg.clip_frames * 2
        return x[:n], ids[:n]


def pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T_max, d] zero-padded batch and its bool mask."""
    t = max(len(s) for s in seqs)
    x = torch.zeros(len(seqs), t, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), t, dtype=torch.bool)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
        mask[i, : len(s)] = True
    return x, mask


# ----------------------------------------------------------------- losses
def info_nce(pos: torch.Tensor, neg: torch.Tensor, temperature: float) -> torch.Tensor:
    """pos [B], neg [B, N] (-inf where masked) -> mean loss."""
    logits = torch.cat([pos[:, None], neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))


def circle(pos: torch.Tensor, neg: torch.Tensor, gamma: float, margin: float) -> torch.Tensor:
    """Circle loss with one positive (column 0) per row. The weights alpha are computed
    from the similarities but not differentiated through, as in the Circle paper."""
    masked = ~torch.isfinite(neg)
    neg = neg.masked_fill(masked, -1.0)  # finite stand-in, so no inf * 0 reaches the gradient
    alpha_p = (1 + margin - pos.detach()).clamp_min(0)
    alpha_n = (neg.detach() + margin).clamp_min(0)
    logit_p = gamma * alpha_p * (pos - (1 - margin))
    logit_n = gamma * alpha_n * (neg - margin)
    logit_n = logit_n.masked_fill(masked, -math.inf)
    logits = torch.cat([logit_p[:, None], logit_n], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))


def quadlinear(d: torch.Tensor, sigma: float) -> torch.Tensor:
    """HAP-VR's surrogate of the step function H(d): 0 below -sigma, quadratic up to 0,
    linear above."""
    return torch.where(d > 0, 2 * d / sigma + 1,
                       torch.where(d >= -sigma, (d / sigma) ** 2 + 2 * d / sigma + 1, torch.zeros_like(d)))


def quadlinear_ap(pos: torch.Tensor, neg: torch.Tensor, sigma: float) -> torch.Tensor:
    """1 - AP with one positive per row: AP = 1 / (1 + sum_n f(s_n - s_p))."""
    masked = ~torch.isfinite(neg)
    f = quadlinear(neg.masked_fill(masked, -2.0) - pos[:, None], sigma).masked_fill(masked, 0.0)
    return (1 - 1 / (1 + f.sum(1))).mean()


def match_loss(a: torch.Tensor, a_ids: torch.Tensor, p: torch.Tensor, p_ids: torch.Tensor,
               tolerance: int, temperature: float) -> torch.Tensor:
    """Frame-level InfoNCE between two batches of views: a [B, Ta, d], p [B, Tp, d] frame
    embeddings with their moment ids (-1 at padding). A frame of `a` is positive with the
    frames of `p` that show the same video within `tolerance` view-frames of it, negative
    with every frame of other videos; other moments of the same video are left out
    (a scene a second later is not a negative). Anchors with no positive are skipped."""
    keep_a, keep_p = a_ids >= 0, p_ids >= 0
    fa, fp = a[keep_a], p[keep_p]
    ia, ip = a_ids[keep_a], p_ids[keep_p]
    same_video = (ia // ID_STRIDE)[:, None] == (ip // ID_STRIDE)[None, :]
    pos = same_video & ((ia % ID_STRIDE)[:, None] - (ip % ID_STRIDE)[None, :]).abs().le(tolerance)
    logits = fa @ fp.T / temperature
    has = pos.any(1)
    if not has.any():
        return logits.sum() * 0.0
    everything = torch.logsumexp(logits.masked_fill(same_video & ~pos, -math.inf), dim=1)
    positives = torch.logsumexp(logits.masked_fill(~pos, -math.inf), dim=1)
    return (everything - positives)[has].mean()


def chamfer_matrix(a: torch.Tensor, am: torch.Tensor, b: torch.Tensor, bm: torch.Tensor) -> torch.Tensor:
    """Frame-level chamfer between every a_i and b_j, the better of the two directions
    (a view may be a part of the other, or contain it): [B, B]."""
    s = torch.einsum("itd,jud->ijtu", a, b)
    s = s.masked_fill(~bm[None, :, None, :], -2.0)
    a_to_b = (s.max(3).values * am[:, None, :]).sum(2) / am.sum(1)[:, None]
    s = s.masked_fill(~am[:, None, :, None], -2.0)
    b_to_a = (s.max(2).values * bm[None, :, :]).sum(2) / bm.sum(1)[None, :]
    return torch.maximum(a_to_b, b_to_a)


# ----------------------------------------------------------------- training loop
class Bank:
    """FIFO memory bank of detached video embeddings and the content they hold."""

    def __init__(self, size: int, dim: int):
        self.size = size
        self.vectors = torch.zeros(0, dim)
        self.segments = np.zeros((0, MAX_SEGMENTS, 3), np.int64)

    def push(self, vectors: torch.Tensor, segments: np.ndarray) -> None:
        if self.size <= 0:
            return
        self.vectors = torch.cat([vectors.detach(), self.vectors])[: self.size]
        self.segments = np.concatenate([segments, self.segments])[: self.size]

    def __len__(self) -> int:
        return len(self.vectors)


def contrastive_loss(cfg: TrainConfig, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    if cfg.loss is Loss.CIRCLE:
        return circle(pos, neg, cfg.gamma, cfg.margin)
    if cfg.loss is Loss.QUADLINEAR_AP:
        return quadlinear_ap(pos, neg, cfg.sigma)
    return info_nce(pos, neg, cfg.temperature)


def train_tca(views: list[np.ndarray], pca: PCA, cfg: TrainConfig, progress: bool = True, checkpoint=None,
              sampler_factory=None, distractors_per_step: int = 0) -> tuple[TCA, list[float]]:
    """Train a TCA on precomputed views (per video: [V, T, D] backbone descriptors).

    Returns the model (eval mode) and the loss of every step. `checkpoint(tca, step)` is
    called every 500 steps when given. `sampler_factory(whitened, cfg, rng)` replaces the
    self-supervised sampler (the pairs mode); with `distractors_per_step`, that many
    distractor windows are embedded each step as extra negatives and pushed to the bank."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    whitened = [torch.from_numpy(pca.apply(v.reshape(-1, v.shape[-1])).reshape(v.shape[0], v.shape[1], -1))
                if v.shape[1] else torch.zeros(v.shape[0], 0, pca.dim) for v in views]
    sampler = (sampler_factory or Sampler)(whitened, cfg, rng)
    # Frame matching needs views cut from one video (the self-supervised sampler), not pairs.
    matching = cfg.match_weight > 0 and sampler_factory is None
    tolerance = max(1, round(cfg.match_tolerance * cfg.view_fps))
    take = sampler.view_with_ids if matching else (lambda inst, positive: (sampler.view(inst, positive), None))
    if len(sampler.usable) < 2:
        raise ValueError("training needs at least 2 readable videos of a few seconds or more")
    model = TCA(cfg.dim, cfg.heads, cfg.ff_dim, cfg.dropout)
    if cfg.identity_init:
        model.start_at_identity()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    bank = Bank(cfg.bank, cfg.dim)
    losses = []
    model.train()
    bar = tqdm(range(cfg.steps), desc="training", unit="step", disable=not progress)
    for step in bar:
        insts = [sampler.instance() for _ in range(cfg.batch)]
        va, vp = ([take(i, positive) for i in insts] for positive in (False, True))
        (a, am), (p, pm) = pad([x for x, _ in va]), pad([x for x, _ in vp])
        out_a, out_p = model(a, am), model(p, pm)
        sim = out_a.video @ out_p.video.T  # [B, B]; the diagonal are the positives
        segs = segment_array(insts)
        same = torch.from_numpy(overlaps(segs, segs))
        neg = sim.masked_fill(same, -math.inf)
        if distractors_per_step:
            extra = [sampler.distractor() for _ in range(distractors_per_step)]
            d, dm = pad([x for _, x in extra])
            out_d = model(d, dm)
            neg = torch.cat([neg, out_a.video @ out_d.video.T], dim=1)
        if len(bank):
            shared = torch.from_numpy(overlaps(segs, bank.segments))
            neg = torch.cat([neg, (out_a.video @ bank.vectors.T).masked_fill(shared, -math.inf)], dim=1)
        loss = contrastive_loss(cfg, sim.diagonal(), neg)
        if cfg.frame_weight > 0:
            fsim = chamfer_matrix(out_a.frames, am, out_p.frames, pm)
            loss = loss + cfg.frame_weight * info_nce(fsim.diagonal(), fsim.masked_fill(same, -math.inf),
                                                      cfg.temperature)
        if matching:
            ids_a, ids_p = (pad_sequence([i for _, i in v], batch_first=True, padding_value=-1) for v in (va, vp))
            loss = loss + cfg.match_weight * match_loss(out_a.frames, ids_a, out_p.frames, ids_p, tolerance,
                                                        cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if distractors_per_step:
            bank.push(out_d.video, segment_array([i for i, _ in extra]))
        else:
            bank.push(out_p.video, segs)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if checkpoint is not None and (step + 1) % 500 == 0 and step + 1 < cfg.steps:
            model.eval()
            checkpoint(model, step + 1)
            model.train()
    model.eval()
    return model, losses


def fit_training_pca(views: list[np.ndarray], dim: int, shrinkage: float) -> PCA:
    """Whitening fitted on every view's frames (the clean and the augmented ones)."""
    x = np.concatenate([v.reshape(-1, v.shape[-1]) for v in views if v.shape[1]]).astype(np.float32)
    return fit_pca(x, dim, shrinkage)


def train(paths: list[Path], out: Path, encoder: FrameEncoder, bundle_base: ModelBundle, cfg: TrainConfig,
          views_cache: Path | None = None, logo_rgba: np.ndarray | None = None, progress: bool = True,
          sampler_factory=None, distractors_per_step: int = 0) -> ModelBundle:
    """The whole recipe: views (cached), PCA, TCA; saves the bundle to `out`.
    Self-supervised unless a `sampler_factory` is given (see `train_pairs`)."""
    started = time.time()
    views = load_views(views_cache, paths, cfg) if views_cache else None
    if views is None:
        views = describe_views(encoder, paths, cfg.views, cfg.view_fps, cfg.seed, logo_rgba)
        if views_cache:
            save_views(views_cache, paths, cfg, views)
    pca = fit_training_pca(views, cfg.dim, cfg.pca_shrinkage)

    def save(tca: TCA, step: int | None = None, final_loss: float | None = None) -> ModelBundle:
        info = {"trained_by": "python -m engine train", "config": cfg.as_info(),
                "videos": len(paths), "steps_done": step or cfg.steps,
                "frames": int(sum(v.shape[1] for v in views)), "seconds": round(time.time() - started, 1)}
        if final_loss is not None:
            info["final_loss"] = final_loss
        bundle = ModelBundle(bundle_base.backbone, bundle_base.pooling, pca, tca, info)
        save_model(bundle, out)
        return bundle

    tca, losses = train_tca(views, pca, cfg, progress, save, sampler_factory, distractors_per_step)
    return save(tca, final_loss=float(np.mean(losses[-50:])))


def _views_key(paths: list[Path], cfg: TrainConfig) -> str:
    stats = [(str(p), p.stat().st_size) if p.exists() else (str(p), -1) for p in paths]
    return json.dumps({"paths": stats, "views": cfg.views, "fps": cfg.view_fps, "seed": cfg.seed})


def save_views(path: Path, paths: list[Path], cfg: TrainConfig, views: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, key=np.array(_views_key(paths, cfg)), **{f"v{i}": v for i, v in enumerate(views)})
    tmp.replace(path)


def load_views(path: Path, paths: list[Path], cfg: TrainConfig) -> list[np.ndarray] | None:
    """Cached views if the cache was made from the same files with the same settings."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if str(data["key"]) != _views_key(paths, cfg):
            return None
        return [data[f"v{i}"] for i in range(len(paths))]


# ----------------------------------------------------------------- supervised pairs
class PairSampler(Sampler):
    """The paper's recipe: an instance is a labelled positive pair (anchor video, positive
    video), each seen through a random window; distractor videos are extra negatives."""

    def __init__(self, views: list[torch.Tensor], pairs: list[tuple[int, int]], distractors: list[int],
                 cfg: TrainConfig, rng: np.random.Generator):
        super().__init__(views, cfg, rng)
        self.pairs, self.distractors = pairs, distractors

    def _window(self, v: int) -> tuple[int, int, int]:
        t = self.views[v].shape[1]
        n = min(t, self.cfg.clip_frames * self.step)
        a = int(self.rng.integers(0, t - n + 1))
        return (v, a, a + n)

    def instance(self) -> Instance:
        a, b = self.pairs[int(self.rng.integers(len(self.pairs)))]
        return Instance([self._window(a), self._window(b)])

    def view(self, inst: Instance, positive: bool) -> torch.Tensor:
        v, a, b = inst.segments[1 if positive else 0]
        x = self.views[v][0, a:b]
        return x[int(self.rng.integers(self.step)) :: self.step]

    def distractor(self) -> tuple[Instance, torch.Tensor]:
        v = self.distractors[int(self.rng.integers(len(self.distractors)))]
        inst = Instance([self._window(v)])
        return inst, self.view(Instance([inst.segments[0], inst.segments[0]]), False)


def read_pairs(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    try:
        data = json.loads(Path(path).read_text())
        pairs = [(str(a), str(b)) for a, b in data["pairs"]]
        return pairs, [str(d) for d in data.get("distractors", [])]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: expected JSON {{\"pairs\": [[id, id], ...], \"distractors\": [id, ...]}} ({err})") from err


def train_pairs(video_dir: Path, pairs_file: Path, out: Path, encoder: FrameEncoder, bundle_base: ModelBundle,
                cfg: TrainConfig, progress: bool = True) -> ModelBundle:
    """Supervised training from labelled pairs (ids relative to `video_dir`): clean views
    only (the labels supply the variation), distractors as negatives."""
    pairs, distractors = read_pairs(pairs_file)
    ids = sorted({i for p in pairs for i in p} | set(distractors))
    missing = [i for i in ids if not (Path(video_dir) / i).is_file()]
    if missing:
        raise ValueError(f"{pairs_file}: {len(missing)} videos not found under {video_dir}, e.g. {missing[0]}")
    if not pairs or not distractors:
        raise ValueError(f"{pairs_file}: needs at least one pair and one distractor")
    pos = {v: k for k, v in enumerate(ids)}
    cfg = TrainConfig(**{**asdict(cfg), "views": 1, "bank": cfg.bank})

    def factory(whitened, c, rng):
        return PairSampler(whitened, [(pos[a], pos[b]) for a, b in pairs], [pos[d] for d in distractors], c, rng)

    return train([Path(video_dir) / i for i in ids], out, encoder, bundle_base, cfg, progress=progress,
                 sampler_factory=factory, distractors_per_step=cfg.batch)
