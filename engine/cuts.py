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
"""
from __future__ import annotations

import numpy as np

# Mean absolute difference (0-255) of two consecutive decoded frames' 16 x 16 luma
# thumbnails at a cut. On the collection benchmark 95% of the copies' edit points are above
# 30, while 95% of other consecutive decoded frames (moving footage 0.1-0.5 s apart
# included) are below it; span F1 was level for 20-45 (notebooks/RESULTS.md, round 35).
CUT_DIFF = 30.0
GRID = 16  # thumbnail side
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
    frame after each hard cut."""

    def __init__(self, threshold: float = CUT_DIFF):
        self.threshold = threshold
        self.cuts: list[float] = []
        self._previous: np.ndarray | None = None

    def add(self, t: float, thumbnail: np.ndarray) -> None:
        """One decoded frame at time t (s), its `luma_thumbnail`."""
        if self._previous is not None and float(np.abs(thumbnail - self._previous).mean()) > self.threshold:
            self.cuts.append(round(float(t), 3))
        self._previous = thumbnail
