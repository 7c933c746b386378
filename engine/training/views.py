"""Precomputed training views: each video seen through several spatial augmentations,
described once by the CNN, so training itself never touches pixels.

The views of a set of videos can be cached (`--views-cache F.npz`); the cache is keyed on
everything that changes a view (each file's path, size and mtime; the backbone, its
pooling and weights; the number of views, their frame rate, the seed and the logo), so a
stale cache is recomputed, never reused.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..backbone import FrameEncoder
from ..files import atomic_write
from ..pca import PCA, fit_pca
from ..video import VideoError, _centre_crop, _resize_dims, iter_frames
from . import augment


def describe_views(encoder: FrameEncoder, paths: list[Path], views: int, fps: float, seed: int,
                   logo_rgba: np.ndarray | None = None, progress: bool = True) -> list[np.ndarray]:
    """For each video: float16 [views, T, D] backbone descriptors of `views` spatially
    augmented versions (view 0 untouched), sampled at `fps`. Unreadable videos give an
    empty [views, 0, D] entry and a note on stderr. logo_rgba: the logo overlay's image
    (default `augment.drawn_logo()`)."""
    if views == 1:  # clean views only: no video needs the others' frames, so none are kept
        return [_describe_clean(encoder, p, fps) for p in tqdm(paths, desc="describing", unit="video",
                                                              disable=not progress)]
    logo_rgba = augment.drawn_logo() if logo_rgba is None else logo_rgba
    rng = np.random.default_rng(seed)
    decoded = [decode_uncropped(p, fps) for p in tqdm(paths, desc="decoding", unit="video", disable=not progress)]
    out = []
    for k, frames in enumerate(tqdm(decoded, desc="augmented views", unit="video", disable=not progress)):
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
            imgs = np.stack([cnn_input(t(img, i)) for i, img in enumerate(frames)])
            per_view.append(encoder.describe(imgs))
        out.append(np.stack(per_view).astype(np.float16))
    return out


def decode_uncropped(path: Path, fps: float) -> list[np.ndarray]:
    """The frames of `path` at `fps` (short side 256, uncropped); none, with a note on
    stderr, when it cannot be read."""
    try:
        return [img for _, img in iter_frames(path, fps, short_side=256, crop=None)]
    except VideoError as err:
        print(f"skipped {err}", file=sys.stderr)
        return []


def _describe_clean(encoder: FrameEncoder, path: Path, fps: float) -> np.ndarray:
    """float16 [1, T, D]: view 0 of `describe_views` for one video (empty when unreadable)."""
    frames = decode_uncropped(path, fps)
    if not frames:
        return np.zeros((1, 0, encoder.dim), np.float16)
    return encoder.describe(np.stack([cnn_input(img) for img in frames]))[None].astype(np.float16)


def cnn_input(img: np.ndarray, short_side: int = 256, crop: int = 224) -> np.ndarray:
    """What `iter_frames` gives the CNN, for a frame augmented after decoding: short side
    resized to `short_side`, then the centre `crop` square."""
    from PIL import Image

    w, h = _resize_dims(img.shape[1], img.shape[0], short_side)
    if (w, h) != (img.shape[1], img.shape[0]):
        img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
    return np.ascontiguousarray(_centre_crop(img, crop))


def views_key(paths: list[Path], encoder: FrameEncoder, weights: str | Path | None, views: int, fps: float,
              seed: int, logo_rgba: np.ndarray | None = None) -> str:
    """Everything that changes the views of `paths`, as one string."""
    def stat(p: Path) -> list:
        try:
            st = Path(p).stat()
            return [str(p), st.st_size, st.st_mtime_ns]
        except OSError:
            return [str(p), -1, -1]

    logo = augment.drawn_logo() if logo_rgba is None else logo_rgba
    return json.dumps({
        "files": [stat(p) for p in paths],
        "backbone": encoder.name.value, "pooling": encoder.pooling.value, "tuned": encoder.tuned_id,
        "weights": stat(Path(weights)) if weights and Path(weights).exists() else str(weights),
        "views": views, "fps": fps, "seed": seed,
        "logo": hashlib.sha256(np.ascontiguousarray(logo).tobytes()).hexdigest()[:16],
    })


def save_views(path: Path, key: str, views: list[np.ndarray]) -> None:
    with atomic_write(path) as tmp:
        np.savez(tmp, key=np.array(key), **{f"v{i}": v for i, v in enumerate(views)})


def load_views(path: Path, key: str) -> list[np.ndarray] | None:
    """The cached views if the cache was made with exactly this key, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            n = sum(1 for f in data.files if f.startswith("v"))
            return [data[f"v{i}"] for i in range(n)]
    except (OSError, ValueError, KeyError):
        return None  # an unreadable cache is recomputed


def fit_training_pca(views: list[np.ndarray], dim: int, shrinkage: float) -> PCA:
    """Whitening fitted on every view's frames (the clean and the augmented ones)."""
    x = np.concatenate([v.reshape(-1, v.shape[-1]) for v in views if v.shape[1]]).astype(np.float32)
    return fit_pca(x, dim, shrinkage)


def whiten(views: list[np.ndarray], pca: PCA) -> list[torch.Tensor]:
    """Per video [V, T, D] descriptors -> [V, T, d] whitened, L2-normalised tensors."""
    return [torch.from_numpy(pca.apply(v.reshape(-1, v.shape[-1])).reshape(v.shape[0], v.shape[1], -1))
            if v.shape[1] else torch.zeros(v.shape[0], 0, pca.dim) for v in views]
