"""The CNN's last stages tuned for copies (`python -m engine tune-cnn`), SSCD-style.

An ImageNet CNN keeps what tells a dog from a cat; a copy detector needs what tells one
upload of a channel from another after a CRF-44 re-encode, a picture-in-picture or a crop.
This tunes the last stages of EfficientNet-Lite0 (blocks 11-15 and the head: the parts that
make 1,792 of the descriptor's 2,048 dimensions; the first eleven blocks stay as published)
with InfoNCE between two views of one frame of a training collection's uploads: a light
edit and a heavy chain that mimics what the engine compares (`copy_view`). A batch holds
several uploads of each of several channels, so a channel's other uploads (its set, its
template, its watermark) are the negatives that matter. The tuned layers are returned in
the network's own key names (each BatchNorm the identity, its conv holding the folded
scale), so `load_backbone(tuned=...)` and a model bundle's `cnn.*` tensors take them.

Frames come from the uploads' bodies only (not their shared intro bumper and end card, which
would be false negatives).
"""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ..backbone import EfficientNetLite0Trunk, FrameEncoder
from ..video import VideoError, iter_frames
from . import augment
from .augment import _resize
from .views import cnn_input

FIRST_TUNED = 11  # blocks before this one stay as published (their maps are large: tuning them is slow)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def copy_view(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A frame as the engine meets it in a heavily edited copy, once inner pictures are cut
    out: a small picture scaled back up (PiP, side by side; its box a little off), a
    vertical repost's middle band, a reaction box over a corner (`other` fills it); then
    crop, flip, grey or colour, a caption, and lost detail with blocky compression.
    uint8 [H, W, 3] -> uint8 [H, W, 3]."""
    h, w = img.shape[:2]
    x = img
    r = rng.random()
    if r < 0.25:
        f = rng.uniform(0.35, 0.65)
        x = _resize(_resize(x, int(w * f), int(h * f)), w, h)
        dx, dy = int(w * rng.uniform(0, 0.04)), int(h * rng.uniform(0, 0.04))
        if dx or dy:
            x = _resize(x[dy:, dx:] if rng.random() < 0.5 else x[: h - dy or h, : w - dx or w], w, h)
    elif r < 0.4:
        x = _resize(_resize(x, h, max(2, h * h // w)), w, h)
    elif r < 0.55:
        x = x.copy()
        bw, bh = int(w * 0.4), int(h * 0.4)
        x[h - bh:, w - bw:] = _resize(other, bw, bh)
    if rng.random() < 0.3:
        x = augment.crop_scale(rng)(x, 0)
    if rng.random() < 0.3:
        x = augment.flip(rng)(x, 0)
    if rng.random() < 0.3:
        x = augment.greyscale(x)
    elif rng.random() < 0.3:
        x = augment.colour(rng)(x, 0)
    if rng.random() < 0.2:
        x = augment.text(rng)(x, 0)
    if rng.random() < 0.5:
        x = _jpeg(augment.downscale(rng)(x, 0) if rng.random() < 0.5 else x, rng.integers(5, 25))
    return x


def light_view(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The frame as a query shows it: as it is half the time, else a colour shift and a crop
    at ordinary compression."""
    if rng.random() < 0.5:
        return img
    x = img
    if rng.random() < 0.5:
        x = augment.colour(rng)(x, 0)
    if rng.random() < 0.5:
        x = augment.crop_scale(rng)(x, 0)
    return _jpeg(x, rng.integers(30, 90))


def upload_frames(videos: dict[str, dict], folder: Path, fps: float = 1.0,
                  progress: bool = True) -> list[tuple[str, list[np.ndarray]]]:
    """(channel, frames) of every upload of a collection (the "videos" of a `labels.json` of
    `python -m engine.evaluation.collection build`, ids relative to `folder`): the body's
    frames at `fps`, uint8 [180, W, 3]. Unreadable videos are skipped with a note on stderr."""
    out = []
    for vid, v in tqdm(list(videos.items()), desc="decoding uploads", unit="video", disable=not progress):
        if v.get("kind") != "upload":
            continue
        b0, b1 = v.get("body", (0.0, v.get("duration", 1e9)))
        try:
            frames = [img for t, img in iter_frames(Path(folder) / vid, fps, short_side=180, crop=None)
                      if b0 + 0.5 <= t <= b1 - 0.5]
        except VideoError as err:
            print(f"skipped {err}", file=sys.stderr)
            continue
        if frames:
            out.append((str(v.get("channel", vid)), frames))
    return out


def _unfreeze_last_stages(encoder: FrameEncoder) -> list[torch.nn.Parameter]:
    """Let only blocks FIRST_TUNED.. and the head learn; returns their parameters. With the
    rest frozen, the encoder's own forward builds no graph before block FIRST_TUNED."""
    if not isinstance(encoder.trunk, EfficientNetLite0Trunk):
        raise ValueError(f"tuning is written for efficientnet-lite0, not {encoder.name.value}")
    if encoder.dtype != torch.float32 or encoder.layout_side:
        raise ValueError("tuning needs the CNN alone in float32 (no layout; small steps vanish in bfloat16)")
    tuned = []
    for name, p in encoder.trunk.named_parameters():
        p.requires_grad = name.startswith("head.") or (
            name.startswith("blocks.") and int(name.split(".")[1]) >= FIRST_TUNED)
        if p.requires_grad:
            tuned.append(p)
    return tuned


def tuned_tensors(trunk: EfficientNetLite0Trunk) -> dict[str, np.ndarray]:
    """The tuned layers in efficientnet_lite_pytorch's key names: each conv holds its folded
    weights, its BatchNorm is the identity and carries the bias (folding gives them back)."""
    from efficientnet_lite_pytorch.utils import get_model_params

    eps = get_model_params("efficientnet-lite0", None)[1].batch_norm_epsilon
    out: dict[str, np.ndarray] = {}

    def put(conv: str, bn: str, layer) -> None:
        n = layer.conv.bias.shape[0]
        out[f"{conv}.weight"] = layer.conv.weight.detach().float().contiguous().numpy().copy()
        out[f"{bn}.weight"] = np.ones(n, np.float32)
        out[f"{bn}.bias"] = layer.conv.bias.detach().float().numpy().copy()
        out[f"{bn}.running_mean"] = np.zeros(n, np.float32)
        out[f"{bn}.running_var"] = np.full(n, 1.0 - eps, np.float32)  # scale 1 / sqrt(var + eps) = 1

    for i in range(FIRST_TUNED, len(trunk.blocks)):
        b = trunk.blocks[i]
        if b.expand is not None:
            put(f"_blocks.{i}._expand_conv", f"_blocks.{i}._bn0", b.expand)
        put(f"_blocks.{i}._depthwise_conv", f"_blocks.{i}._bn1", b.depthwise)
        put(f"_blocks.{i}._project_conv", f"_blocks.{i}._bn2", b.project)
    put("_conv_head", "_bn1", trunk.head)
    return out


def tune(encoder: FrameEncoder, uploads: list[tuple[str, list[np.ndarray]]], steps: int = 600,
         lr: float = 1e-4, temperature: float = 0.05, channels: int = 8, per_channel: int = 6,
         seed: int = 0, progress: bool = True) -> tuple[dict[str, np.ndarray], list[float]]:
    """Tune `encoder`'s last stages (in place) on `uploads` ((channel, frames) pairs); returns
    the tuned tensors (`tuned_tensors`) and the loss of every step. Each step: `channels`
    channels x `per_channel` of their uploads, one frame each, two views each (2 x 48
    pictures by default: ~2.5 s a step on a 2-core CPU). AdamW, 50 warm-up steps, cosine decay."""
    if len(uploads) < 2:
        raise ValueError(f"tuning needs at least 2 uploads with frames, found {len(uploads)}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = _unfreeze_last_stages(encoder)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + np.cos(np.pi * s / steps)))
    by_channel: dict[str, list[int]] = {}
    for k, (ch, _) in enumerate(uploads):
        by_channel.setdefault(ch, []).append(k)
    names = sorted(by_channel)
    every_frame = [(k, j) for k, (_, frames) in enumerate(uploads) for j in range(len(frames))]
    losses = []
    bar = tqdm(range(steps), desc="tuning the CNN", unit="step", disable=not progress)
    for _ in bar:
        picked = [int(k) for ch in rng.choice(names, size=min(channels, len(names)), replace=False)
                  for k in rng.choice(by_channel[ch], size=min(per_channel, len(by_channel[ch])), replace=False)]
        if len(picked) < 2:  # one channel of one upload: take any two
            picked = [int(k) for k in rng.choice(len(uploads), size=2, replace=False)]
        light, heavy = [], []
        for k in picked:
            frames = uploads[k][1]
            img = frames[int(rng.integers(len(frames)))]
            ok, oj = every_frame[int(rng.integers(len(every_frame)))]  # what covers a reaction's corner
            light.append(cnn_input(light_view(img, rng)))
            heavy.append(cnn_input(copy_view(img, uploads[ok][1][oj], rng)))
        z = F.normalize(encoder(torch.from_numpy(np.stack(light + heavy))), dim=1)
        n = len(picked)
        sim = (z @ z.T / temperature).fill_diagonal_(-1e4)
        loss = F.cross_entropy(sim, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    encoder.trunk.eval()
    for p in encoder.trunk.parameters():
        p.requires_grad = False
    return tuned_tensors(encoder.trunk), losses


def tune_collection(encoder: FrameEncoder, videos: dict[str, dict], folder: Path,
                    **kwargs) -> tuple[dict[str, np.ndarray], dict]:
    """`tune` on a collection's uploads (`videos` and `folder` as `upload_frames` takes them);
    returns the tensors and what to record of the run."""
    t0 = time.time()
    uploads = upload_frames(videos, folder, progress=kwargs.get("progress", True))
    tensors, losses = tune(encoder, uploads, **kwargs)
    return tensors, {"uploads": len(uploads), "frames": sum(len(f) for _, f in uploads),
                     "seconds": round(time.time() - t0), "final_loss": float(np.mean(losses[-20:]))}
