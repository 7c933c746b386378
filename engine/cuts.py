"""Hard cuts: the instants where a video's picture changes at once (its edit points).

A copied segment in a compilation or an insertion begins and ends at an edit of the video
that holds it. Samples 1 s apart only say that the copy starts somewhere in the second
before its first matching sample, and a segment of 2-5 s loses much of its precision to that
second (notebooks/RESULTS.md, round 35). The decoder sees many more frames than it samples
(every I and P frame; encoders also put an I frame at a cut), so the cuts are found on all
of them while the video is decoded: the mean absolute difference of consecutive frames'
16 x 16 luma thumbnails. `spans.matched_segments` moves a segment's boundary on the
indexed video's axis to a cut within a sample of it, and a cut that the query and the
indexed video both show inside a segment gives the segment's offset to a decoded frame.
The same thumbnails give each decoded frame's mean brightness, kept a few times a sample
(`brightness_profile`): a copy's brightness rises and falls as its source's does, whatever
its crop, flip, colours or encoding, which places a segment within a sample.
"""
from __future__ import annotations

import numpy as np

# Mean absolute difference (0-255) of two consecutive decoded frames' 16 x 16 luma
# thumbnails at a cut. On the collection benchmark 95% of the copies' edit points are above
# 30, while 95% of other consecutive decoded frames (moving footage 0.1-0.5 s apart
# included) are below it; span F1 was level for 20-45 (notebooks/RESULTS.md, round 35).
CUT_DIFF = 30.0
GRID = 16  # thumbnail side
# brightness values kept per sample (a sample 1 s apart: one every 0.25 s); 4 keep nearly
# all that every decoded frame gives (train/val span F1 0.9093 against 0.9106; 8: 0.9105)
PROFILE = 4
_POINTS = 4  # luma points averaged per thumbnail cell and axis
_LUMA_FORMATS = frozenset(
    "yuv420p yuvj420p yuv422p yuvj422p yuv444p yuvj444p yuv440p yuvj440p nv12 nv21 gray".split())


def luma_thumbnail(frame) -> np.ndarray:
    """A decoded frame's (an av.VideoFrame) grey thumbnail, float32 [GRID, GRID] in 0-255.

    Read from the luma plane at a grid of points, GRID * 4 per axis, averaged in 4 x 4 cells:
    a few thousand bytes touched whatever the resolution (a swscale of the whole frame costs
    about 1 ms a frame at 720p). Other pixel formats go through swscale."""
    h, w = frame.height, frame.width
    if frame.format.name not in _LUMA_FORMATS or h < GRID or w < GRID:
        return frame.to_ndarray(width=GRID, height=GRID, format="gray").astype(np.float32)
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    n = GRID * _POINTS
    rows = ((np.arange(n) + 0.5) * h / n).astype(np.int64)
    cols = ((np.arange(n) + 0.5) * w / n).astype(np.int64)
    points = luma[np.ix_(rows, cols)].astype(np.float32)
    return points.reshape(GRID, _POINTS, GRID, _POINTS).mean(axis=(1, 3))


class CutDetector:
    """Feed it every decoded frame in order (`add`); `cuts` are the times (s) of the first
    frame after each hard cut; `times` and `brightness` each decoded frame's time (s) and
    mean luma (0-255), for `brightness_profile`."""

    def __init__(self, threshold: float = CUT_DIFF):
        self.threshold = threshold
        self.cuts: list[float] = []
        self.times: list[float] = []
        self.brightness: list[float] = []
        self._previous: np.ndarray | None = None

    def add(self, t: float, thumbnail: np.ndarray) -> None:
        """One decoded frame at time t (s), its `luma_thumbnail`."""
        if self._previous is not None and float(np.abs(thumbnail - self._previous).mean()) > self.threshold:
            self.cuts.append(round(float(t), 3))
        self._previous = thumbnail
        self.times.append(float(t))
        self.brightness.append(float(thumbnail.mean()))


def brightness_profile(times: np.ndarray, brightness: np.ndarray, sample_times: np.ndarray,
                       step: float) -> np.ndarray:
    """A video's mean brightness between its samples: float32 [T, PROFILE] for samples at
    sample_times [T] s, 1/step a second, the value at tick + k * step / PROFILE for k <
    PROFILE, where tick is the sample's tick (`profile_times`), interpolated between the
    decoded frames (times [F] s, brightness [F], 0-255; the decoder's `CutDetector`). A
    sample's values say where in its second a copy lies (`spans.matched_segments`); NaN
    where no frame was decoded."""
    out = np.full((len(sample_times), PROFILE), np.nan, np.float32)
    if len(times) == 0:
        return out
    at = profile_times(sample_times, step, PROFILE)
    values = np.interp(at.ravel(), np.asarray(times, np.float64), np.asarray(brightness, np.float64))
    out[:] = values.reshape(at.shape)
    return out


def sample_ticks(times: np.ndarray, step: float) -> np.ndarray:
    """int64 [T]: the number of the 1/fps tick (step = 1/fps s) at or before each of times
    [T] (s), the tick a sample taken then stands for (`engine.video.sample_tick`, one time)."""
    return np.floor(np.asarray(times, np.float64) / step + 1e-6).astype(np.int64)


def profile_times(sample_times: np.ndarray, step: float, values: int) -> np.ndarray:
    """The times (s) of a brightness profile's values, float64 [T, values]: each sample's tick
    (the 1/fps tick at or before it, as the sampler numbers samples; a sample a skipped
    B-frame late still stands for its tick) plus k * step / values."""
    ticks = sample_ticks(sample_times, step) * step
    return ticks[:, None] + np.arange(values) * (step / values)
