"""Inner pictures: the rectangles of a frame that show another video.

A copy is often not the whole frame: picture-in-picture puts the source in a box over
other footage, a reaction layout beside a webcam, a vertical repost in a band across a
9:16 frame. The frame's descriptor then describes mostly the other footage and the copy
is not found (collection benchmark, val: 1 of 13 picture-in-picture copies in the top 10).
Such a box has edges that stay put while the content inside it changes; this module
finds them, and the index stores each box's crop, described like a whole frame, as
extra rows of the video (`Embedder.embed(..., inner_pictures=True)`).

Detection is plain image arithmetic on small grey frames: per pixel, the share of
frames with a strong vertical (horizontal) gradient; rows (columns) where that share
stays high over a long run, and far higher than a few pixels away, are persistent thin
lines (a static textured shot has edges in every row); two parallel lines of the same
extent make a box, and so do two that share one end when a perpendicular line closes the
other (a reaction layout's source against the frame's edge), and four lines that each cover
most of one side of a rectangle (footage behind a picture-in-picture that matches its edge
in places breaks the lines); a box must hold moving content and cover 6-80% of the frame.

A portrait video also gets its middle band (a 16:9 picture fitted to its width) as a
box, found or not: that is where a vertical repost shows a landscape video, and the
repost's blurred or black bars often make the band's edges too faint to find (collection
benchmark: 8 of 31 vertical reposts had no box, most others a box reaching into the bars).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the frame's width/height

EDGE = 6.0  # grey levels (0-255) between neighbouring pixels that make an edge
SHARE = 0.3  # share of the frames that must have the edge (bumpers and end cards have none)
MIN_SIDE = 0.2  # a line spans at least this share of the frame; a box's sides too
MIN_AREA, MAX_AREA = 0.06, 0.8  # a box's area as a share of the frame
MOTION = 1.0  # mean absolute grey change between samples inside a box (static art has none)
GAP = 6  # pixels of a line that may be missing (the content on both sides matches there)
MAX_BOXES = 3
# pixels (of a frame 180 high) a box's closing side may lie inside the shorter of its two
# parallel sides: those run on where the footage beside the box has an edge in the same row
CLOSE = 10
# share of its side each of four lines must cover to make a box when none is whole
COVER = 0.7
BAND_ASPECT = 16 / 9  # of the landscape picture a vertical repost shows across its middle
PORTRAIT = 1.2  # height / width from which a video is portrait
AROUND, THIN = 4, 2.0  # a side's edge share is >= THIN x the median of the AROUND rows beyond its neighbours


def _runs(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """[start, end) of the True runs of a 1-d bool array at least min_len long."""
    d = np.flatnonzero(np.diff(np.r_[False, mask, False].astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(d[::2], d[1::2]) if b - a >= min_len]


def _close(mask: np.ndarray, gap: int) -> np.ndarray:
    """The mask with False gaps of at most `gap` between True values filled."""
    out = mask.copy()
    idx = np.flatnonzero(mask)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= gap + 1:
            out[a:b] = True
    return out


def _lines(share: np.ndarray, min_len: int) -> list[tuple[int, int, int]]:
    """(row, start, end) of persistent lines in share [H, W] (a line may wobble by a row).

    A box's side is a thin line: the rows a few pixels away have far fewer edges there. A
    static textured shot (a wall, a city from the air) has edges in every row, so its rows
    do not count as lines."""
    h = share.shape[0]
    pad = np.pad(share, ((AROUND + 1, AROUND + 1), (0, 0)), mode="edge")
    out = []
    for y in range(h):
        row = np.maximum(share[y], share[y - 1]) if y else share[y]
        c = y + AROUND + 1
        near = np.concatenate([pad[c - AROUND - 1 : c - 1], pad[c + 2 : c + AROUND + 2]])
        thin = row >= THIN * np.median(near, axis=0)
        out.extend((y, a, b) for a, b in _runs(_close((row >= SHARE) & thin, GAP), min_len))
    return out


def _pairs(lines: list[tuple[int, int, int]], cross: list[tuple[int, int, int]], min_gap: int,
           tol: int = 4) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
    """Boxes (start, lo, end, hi) from two parallel lines at least min_gap apart: (those of
    the same extent, those that share one end and whose other end a line of `cross` (the
    perpendicular lines, same layout) closes, spanning the gap between them within CLOSE of
    the shorter line's end).

    The second kind is a reaction layout's source against the frame's edge (no line there)
    beside the reactor, whose own edges often continue one of the source's sides: three
    sides are lines and the parallel two differ in extent."""
    four, three = [], []
    for i, (ya, a0, a1) in enumerate(lines):
        for yb, b0, b1 in lines[i + 1:]:
            same_start, same_end = abs(a0 - b0) <= tol, abs(a1 - b1) <= tol
            if yb - ya < min_gap or not (same_start or same_end):
                continue
            start, end = max(a0, b0), min(a1, b1)
            if same_start and same_end:
                four.append((start, ya + 1, end, yb + 1))
                continue
            closing = [x for x, c0, c1 in cross if c0 <= ya + tol and c1 >= yb + 1 - tol]
            if same_start:
                ends = [x for x in closing if end - CLOSE <= x <= end + tol and x > start]
                if ends:
                    three.append((start, ya + 1, max(ends) + 1, yb + 1))
            else:
                starts = [x for x in closing if start - tol <= x <= start + CLOSE and x < end]
                if starts:
                    three.append((min(starts) + 1, ya + 1, end, yb + 1))
    return four, three


def _sides_in_part(rows: list[tuple[int, int, int]], cols: list[tuple[int, int, int]], min_h: int,
                   min_w: int) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) whose four sides are lines that need not be whole: two rows
    (lines along the width) and two columns at least min_h / min_w apart, each covering
    at least COVER of its side of the rectangle they make.

    Where the footage behind a picture-in-picture has the inset's brightness at its edge,
    the edge is lost there: the two rows then differ in extent (no pair of `_pairs`) while
    every side is mostly there (collection benchmark, `terminal-tuesday-10-0-pip-flip`)."""
    def covered(a0: int, a1: int, b0: int, b1: int) -> float:
        return max(0, min(a1, b1) - max(a0, b0)) / max(b1 - b0, 1)

    out = []
    for i, (ya, a0, a1) in enumerate(rows):
        for yb, b0, b1 in rows[i + 1:]:
            if yb - ya < min_h:
                continue
            sides = [x for x, c0, c1 in cols if covered(c0, c1, ya, yb) >= COVER]
            for j, xa in enumerate(sides):
                for xb in sides[j + 1:]:
                    lo, hi = min(xa, xb), max(xa, xb)
                    if hi - lo >= min_w and covered(a0, a1, lo, hi) >= COVER and covered(b0, b1, lo, hi) >= COVER:
                        out.append((lo + 1, ya + 1, hi + 1, yb + 1))
    return out


def _transposed(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Boxes found along columns, (y0, x0, y1, x1), as (x0, y0, x1, y1)."""
    return [(x0, y0, x1, y1) for y0, x0, y1, x1 in boxes]


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def middle_band(height: int, width: int) -> Box | None:
    """The band across the middle of a portrait frame where a vertical repost shows a
    landscape (16:9) picture fitted to the width; None for a frame that is not portrait."""
    if height < PORTRAIT * width:
        return None
    half = width / BAND_ASPECT / height / 2
    return (0.0, 0.5 - half, 1.0, 0.5 + half)


def inner_boxes(gray: np.ndarray, top: int = MAX_BOXES, fps: float = 1.0) -> list[Box]:
    """Boxes that frame moving content across a video.

    gray: float32 [T, H, W] grey frames (0-255) sampled over the video at `fps` per
    second, any small size (180 px high is plenty) -> up to `top` boxes (x0, y0, x1, y1)
    as fractions of the width and height: a portrait video's `middle_band` first, then the
    boxes found, largest first, none overlapping another by more than 60% IoU. Fewer than
    3 frames (a second apart) give none. The boxes are found on samples about 1 s apart
    whatever the rate, as at 1 fps, where the thresholds were chosen."""
    gray = np.asarray(gray, np.float32)[:: max(int(round(fps)), 1)]
    if gray.ndim != 3 or len(gray) < 3:
        return []
    _, h, w = gray.shape
    horizontal = (np.abs(np.diff(gray, axis=1)) > EDGE).mean(0)  # [H-1, W]
    vertical = (np.abs(np.diff(gray, axis=2)) > EDGE).mean(0)  # [H, W-1]
    rows, cols = _lines(horizontal, int(MIN_SIDE * w)), _lines(vertical.T, int(MIN_SIDE * h))
    motion = np.abs(np.diff(gray, axis=0)).mean(0)  # [H, W]
    scored = []
    across, down = _pairs(rows, cols, int(MIN_SIDE * h)), _pairs(cols, rows, int(MIN_SIDE * w))
    # boxes with four whole sides first, then those closed on three, then four partial
    # sides; largest first in each (a box found by an earlier rule never moves)
    sides = [a + _transposed(b) for a, b in zip(across, down)]
    sides.append(_sides_in_part(rows, cols, int(MIN_SIDE * h), int(MIN_SIDE * w)))
    for rank, found in enumerate(sides):
        for x0, y0, x1, y1 in found:
            area = (x1 - x0) * (y1 - y0) / (h * w)
            if MIN_AREA <= area <= MAX_AREA and motion[y0:y1, x0:x1].mean() >= MOTION:
                scored.append((-rank, area, (x0 / w, y0 / h, x1 / w, y1 / h)))
    band = middle_band(h, w)
    out: list[Box] = [band] if band else []
    for _, _, box in sorted(scored, reverse=True):
        if len(out) >= top:
            break
        if all(_iou(box, b) < 0.6 for b in out):
            out.append(box)
    return out[:top]


def stored_rows(frames: np.ndarray, pictures: np.ndarray | None) -> np.ndarray:
    """A video's rows as the index stores them: its whole frames [T, d], then each inner
    picture's (pictures [V, T, d] or None) -> float32 [(1 + V) * T, d]."""
    frames = np.asarray(frames, np.float32)
    if pictures is None or len(pictures) == 0:
        return frames
    return np.concatenate([frames, *np.asarray(pictures, np.float32)])


def grey(images: np.ndarray) -> np.ndarray:
    """uint8 RGB [T, H, W, 3] -> float32 grey [T, H, W] (ITU-R 601 luma)."""
    return np.asarray(images, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def crop(image: np.ndarray, box: Box, short_side: int = 256, size: int = 224) -> np.ndarray:
    """The box of one uint8 RGB frame [H, W, 3], prepared as the decoder prepares a whole
    frame (short side resized to `short_side`, centre square of `size`) -> uint8 [size, size, 3]."""
    h, w = image.shape[:2]
    y0, y1 = int(box[1] * h), max(int(box[3] * h), int(box[1] * h) + 1)
    x0, x1 = int(box[0] * w), max(int(box[2] * w), int(box[0] * w) + 1)
    part = np.ascontiguousarray(image[y0:y1, x0:x1])
    s = short_side / min(part.shape[:2])
    nw, nh = max(size, round(part.shape[1] * s)), max(size, round(part.shape[0] * s))
    big = np.asarray(Image.fromarray(part).resize((nw, nh), Image.BILINEAR))
    y, x = (nh - size) // 2, (nw - size) // 2
    return big[y : y + size, x : x + size]
