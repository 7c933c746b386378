"""Procedural footage for the collection benchmark: slides, screencasts, webcam scenes,
fractal zooms and noise landscapes, drawn with numpy and Pillow (its bundled font), so
every machine draws the same frames from one seed.

A *style* (slide template, editor window, webcam set, palette) belongs to a channel and
is shared by its uploads: that is what makes a channel's series look alike. The content
drawn in that style (the words, the code, the chart, who sits at the desk, where the zoom
goes) is new for every shot: two shots never share content unless one is copied from the
other. Every function returns `seconds * fps` uint8 RGB frames [H, W, 3].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

_WORDS = ("data model search video frame index copy result train layer vector query cluster "
          "signal camera object scene motion colour light sound graph table method report "
          "review growth market energy water city river forest system network design plan "
          "budget sales users quality speed memory storage cloud server client update").split()
_CODE = ("def return import for while if else class self print yield with open lambda None True "
         "False np.array torch.zeros range len dict list map zip x y i j k value key item").split()


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(6, int(size)))


def _colour(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


def _words(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(_WORDS, size=n))


@dataclass(frozen=True)
class Style:
    """A channel's look: colours and layout numbers drawn once from the channel's seed."""

    seed: int

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


def figure(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A picture to put on a slide, a screen or a wall: a terrain, a fractal or a
    composition of shapes, new for every call. uint8 RGB [h, w, 3]."""
    w, h = size
    kind = int(rng.integers(3))
    if kind == 0:
        return landscape(Style(int(rng.integers(1 << 30))), rng, 1 / 8, (w, h), 8.0)[0]
    if kind == 1:
        return fractal(Style(int(rng.integers(1 << 30))), rng, 1 / 8, (w, h), 8.0)[0]
    pil = Image.new("RGB", size, _colour(rng))
    d = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(4, 12))):
        x, y = rng.uniform(-0.2, 1.0, 2) * (w, h)
        r = rng.uniform(0.1, 0.5) * h
        box = (x, y, x + r * rng.uniform(0.5, 2), y + r)
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=_colour(rng))
    return np.asarray(pil)


# ----------------------------------------------------------------------------- slides
def slides(style: Style, rng: np.random.Generator, seconds: float, size: tuple[int, int], fps: float) -> list[np.ndarray]:
    """A talk: slides of 2.5-5 s in the channel's template (background, title bar, accent,
    footer), each with a new title and bullet points or a new chart."""
    s = style.rng()
    bg, bar, accent, ink = _colour(s, 200, 256), _colour(s, 0, 120), _colour(s, 0, 256), _colour(s, 0, 70)
    footer = f"{_words(s, 2).upper()}  |  2026"
    w, h = size
    frames: list[np.ndarray] = []
    total = int(round(seconds * fps))
    while len(frames) < total:
        pil = Image.new("RGB", size, bg)
        d = ImageDraw.Draw(pil)
        d.rectangle((0, 0, w, int(h * 0.2)), fill=bar)
        d.text((int(w * 0.04), int(h * 0.05)), _words(rng, 3).title(), font=_font(h * 0.1), fill=(255, 255, 255))
        d.rectangle((0, int(h * 0.92), w, h), fill=accent)
        d.text((int(w * 0.04), int(h * 0.925)), footer, font=_font(h * 0.055), fill=(255, 255, 255))
        kind = rng.random()
        if kind < 0.4:  # a figure beside two lines of text
            fw, fh = int(w * 0.5), int(h * 0.62)
            pil.paste(Image.fromarray(figure(rng, (fw, fh))), (int(w * 0.46), int(h * 0.25)))
            for k in range(2):
                d.text((int(w * 0.05), int(h * (0.35 + 0.2 * k))), _words(rng, 2), font=_font(h * 0.07), fill=ink)
        elif kind < 0.7:
            for k in range(int(rng.integers(3, 6))):
                y = int(h * (0.27 + 0.12 * k))
                d.ellipse((int(w * 0.05), y + 4, int(w * 0.05) + 6, y + 10), fill=accent)
                d.text((int(w * 0.09), y), _words(rng, int(rng.integers(3, 6))), font=_font(h * 0.07), fill=ink)
        else:
            n = int(rng.integers(4, 10))
            vals = rng.uniform(0.15, 1.0, n)
            x0, x1, y0, y1 = int(w * 0.1), int(w * 0.9), int(h * 0.28), int(h * 0.86)
            d.line((x0, y1, x1, y1), fill=ink, width=2)
            d.line((x0, y0, x0, y1), fill=ink, width=2)
            bw = (x1 - x0) / n
            if rng.random() < 0.5:
                for k, v in enumerate(vals):
                    c = _colour(rng, 30, 230)
                    d.rectangle((int(x0 + k * bw + 3), int(y1 - v * (y1 - y0)), int(x0 + (k + 1) * bw - 3), y1), fill=c)
            else:
                pts = [(int(x0 + (k + 0.5) * bw), int(y1 - v * (y1 - y0))) for k, v in enumerate(vals)]
                d.line(pts, fill=accent, width=3)
                for p in pts:
                    d.ellipse((p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3), fill=ink)
        img = np.asarray(pil)
        frames += [img] * int(rng.uniform(2.5, 5.0) * fps)
    return frames[:total]


# ----------------------------------------------------------------------------- screencast
def screencast(style: Style, rng: np.random.Generator, seconds: float, size: tuple[int, int], fps: float) -> list[np.ndarray]:
    """A terminal or editor window in the channel's theme with code being typed and
    scrolled; a mouse pointer wanders."""
    s = style.rng()
    dark = s.random() < 0.5
    bg = _colour(s, 10, 50) if dark else _colour(s, 225, 256)
    chrome, fg = _colour(s, 60, 160), (_colour(s, 170, 256) if dark else _colour(s, 0, 90))
    keyword = _colour(s, 80, 256)
    w, h = size
    fs = int(h * 0.06)
    line_h = fs + 3
    lines = []
    for _ in range(80):
        indent = int(rng.integers(0, 4)) * 2
        toks = rng.choice(_CODE, size=int(rng.integers(2, 7)))
        lines.append((" " * indent + " ".join(toks), bool(rng.random() < 0.3)))
    chars_per_frame = rng.uniform(6, 14) / fps * 10
    visible = int((h * 0.85) // line_h)
    total = int(round(seconds * fps))
    pointer = rng.uniform(0.2, 0.8, 2) * (w, h)
    font = _font(fs)
    pane = figure(rng, (int(w * 0.42), int(h * 0.6))) if rng.random() < 0.6 else None
    frames = []
    typed = 0.0
    for i in range(total):
        typed += chars_per_frame
        pil = Image.new("RGB", size, bg)
        d = ImageDraw.Draw(pil)
        d.rectangle((0, 0, w, int(h * 0.09)), fill=chrome)
        for k, c in enumerate(((230, 80, 80), (230, 190, 60), (90, 200, 90))):
            d.ellipse((6 + 12 * k, 4, 14 + 12 * k, 12), fill=c)
        left = int(typed)
        shown = []
        for text, kw in lines:
            if left <= 0:
                break
            shown.append((text[:left], kw))
            left -= len(text) + 1
        for k, (text, kw) in enumerate(shown[-visible:]):
            y = int(h * 0.11) + k * line_h
            d.text((4, y), f"{len(shown) - len(shown[-visible:]) + k + 1:>3}", font=font, fill=chrome)
            d.text((30, y), text, font=font, fill=keyword if kw else fg)
        if pane is not None:  # the program's output window
            pil.paste(Image.fromarray(pane), (int(w * 0.55), int(h * 0.2)))
        pointer = np.clip(pointer + rng.normal(0, 4, 2), 0, (w - 1, h - 1))
        px, py = int(pointer[0]), int(pointer[1])
        d.polygon([(px, py), (px, py + 10), (px + 6, py + 7)], fill=(255, 255, 255), outline=(0, 0, 0))
        frames.append(np.asarray(pil))
    return frames


# ----------------------------------------------------------------------------- webcam
def webcam(style: Style, rng: np.random.Generator, seconds: float, size: tuple[int, int], fps: float) -> list[np.ndarray]:
    """A fixed camera on the channel's set (wall, shelf, window, lamp); a presenter with
    their own face, hair and clothes moves and gestures; a different object on the desk."""
    s = style.rng()
    w, h = size
    wall, floor, shelf = _colour(s, 90, 230), _colour(s, 40, 140), _colour(s, 60, 160)
    set_img = Image.new("RGB", size, wall)
    d = ImageDraw.Draw(set_img)
    d.rectangle((0, int(h * 0.75), w, h), fill=floor)
    wx = int(s.uniform(0.05, 0.6) * w)
    d.rectangle((wx, int(h * 0.1), wx + int(w * 0.25), int(h * 0.5)), fill=(170, 210, 240), outline=shelf, width=4)
    d.rectangle((int(w * 0.7), int(h * 0.35), int(w * 0.98), int(h * 0.4)), fill=shelf)
    for k in range(5):
        d.rectangle((int(w * (0.72 + 0.05 * k)), int(h * 0.22), int(w * (0.75 + 0.05 * k)), int(h * 0.35)),
                    fill=_colour(s, 40, 250))
    set_img = set_img.filter(ImageFilter.GaussianBlur(1.2))
    skin = _colour(rng, 120, 240)
    hair, shirt, prop = _colour(rng, 0, 120), _colour(rng, 0, 256), _colour(rng, 0, 256)
    head_r = rng.uniform(0.1, 0.14) * h
    cx0 = rng.uniform(0.35, 0.65) * w
    prop_kind = int(rng.integers(3))
    poster = Image.fromarray(figure(rng, (int(w * 0.3), int(h * 0.36))))
    poster_x = int(rng.uniform(0.02, 0.68) * w)
    frames = []
    phase = rng.uniform(0, 6.28, 3)
    speed = rng.uniform(0.4, 1.2, 3)
    for i in range(int(round(seconds * fps))):
        t = i / fps
        pil = set_img.copy()
        d = ImageDraw.Draw(pil)
        pil.paste(poster, (poster_x, int(h * 0.08)))
        cx = cx0 + 0.06 * w * np.sin(speed[0] * t + phase[0])
        cy = 0.42 * h + 0.02 * h * np.sin(speed[1] * t + phase[1])
        d.ellipse((cx - 2.2 * head_r, cy + 0.9 * head_r, cx + 2.2 * head_r, cy + 5 * head_r), fill=shirt)
        d.ellipse((cx - head_r, cy - 1.2 * head_r, cx + head_r, cy + 1.0 * head_r), fill=skin)
        d.chord((cx - head_r, cy - 1.3 * head_r, cx + head_r, cy + 0.2 * head_r), 180, 360, fill=hair)
        arm = 0.5 + 0.5 * np.sin(speed[2] * t * 2 + phase[2])
        d.line((cx + 1.8 * head_r, cy + 2.5 * head_r, cx + (2.4 + arm) * head_r, cy + (1.2 - arm) * head_r),
               fill=shirt, width=int(head_r * 0.5))
        px = int(w * 0.12)
        if prop_kind == 0:
            d.rectangle((px, int(h * 0.78), px + 30, int(h * 0.92)), fill=prop)
        elif prop_kind == 1:
            d.ellipse((px, int(h * 0.76), px + 36, int(h * 0.94)), fill=prop)
        else:
            d.polygon([(px, int(h * 0.94)), (px + 20, int(h * 0.72)), (px + 40, int(h * 0.94))], fill=prop)
        frames.append(np.asarray(pil))
    return frames


# ----------------------------------------------------------------------------- fractal zoom
def _palette(rng: np.random.Generator, n: int = 256) -> np.ndarray:
    k = np.linspace(0, 1, n)[:, None]
    a, b, c = rng.uniform(0.3, 0.7, 3), rng.uniform(0.2, 0.5, 3), rng.uniform(0, 1, 3)
    freq = rng.uniform(1.0, 3.0)
    return (255 * np.clip(a + b * np.cos(6.283 * (freq * k + c)), 0, 1)).astype(np.uint8)


def _boundary_point(rng: np.random.Generator) -> tuple[float, float]:
    """A random point near the Mandelbrot set's boundary (escapes, but slowly)."""
    c = rng.uniform(-2.0, 0.5, 512) + 1j * rng.uniform(-1.2, 1.2, 512)
    z = np.zeros_like(c)
    count = np.zeros(len(c), int)
    for _ in range(80):
        inside = np.abs(z) <= 2
        z[inside] = z[inside] ** 2 + c[inside]
        count += inside
    good = np.flatnonzero((count > 25) & (count < 80))
    pick = c[good[int(rng.integers(len(good)))]] if len(good) else c[0]
    return float(pick.real), float(pick.imag)


def fractal(style: Style, rng: np.random.Generator, seconds: float, size: tuple[int, int], fps: float) -> list[np.ndarray]:
    """A Mandelbrot zoom towards a random boundary point, coloured with the channel's
    palette family (each shot shifts it)."""
    s = style.rng()
    base = _palette(s)
    pal = np.roll(base, int(rng.integers(256)), axis=0)
    w, h = size
    sw, sh = w // 2, h // 2  # drawn at half size, scaled up: the zoom is smooth anyway
    tx, ty = _boundary_point(rng)
    z0 = rng.uniform(0.02, 0.4)
    rate = rng.uniform(0.25, 0.5)
    frames = []
    for i in range(int(round(seconds * fps))):
        scale = z0 * np.exp(-rate * i / fps)
        xs = tx + (np.arange(sw) - sw / 2) / sh * scale
        ys = ty + (np.arange(sh) - sh / 2) / sh * scale
        c = xs[None, :] + 1j * ys[:, None]
        z = np.zeros_like(c)
        count = np.zeros(c.shape, np.float32)
        alive = np.ones(c.shape, bool)
        for _ in range(48):
            z[alive] = z[alive] ** 2 + c[alive]
            esc = alive & (np.abs(z) > 2)
            alive &= ~esc
            count[alive] += 1
        img = pal[(count * 5).astype(int) % 256]
        img[alive] = 0
        frames.append(np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR)))
    return frames


# ----------------------------------------------------------------------------- landscape
def _value_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 5) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        gh, gw = 3 * 2**o + 1, int(3 * 2**o * w / h) + 1
        grid = rng.random((gh, gw)).astype(np.float32)
        layer = np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC))
        out += amp * layer
        total += amp
        amp *= 0.5
    return out / total


def landscape(style: Style, rng: np.random.Generator, seconds: float, size: tuple[int, int], fps: float) -> list[np.ndarray]:
    """A flight over a noise terrain (water, sand, grass, rock, snow in the channel's
    tints) with a drifting sky band; the terrain is new for every shot."""
    s = style.rng()
    tint = s.uniform(0.7, 1.3, 3)
    w, h = size
    big_w, big_h = 3 * w, 2 * h
    height = _value_noise(rng, big_h, big_w)
    height = (height - height.min()) / (np.ptp(height) + 1e-6)
    water = rng.uniform(0.2, 0.5)
    levels = np.array([water, water + 0.06, water + rng.uniform(0.15, 0.3), rng.uniform(0.7, 0.85), 2.0])
    colours = np.array([[40, 80, 170], [210, 200, 140], [70, 150, 60], [120, 110, 100], [245, 245, 250]], np.float32)
    idx = np.searchsorted(levels, height)
    shade = 0.75 + 0.5 * (height - 0.5)
    terrain = np.clip(colours[idx] * shade[..., None] * tint, 0, 255).astype(np.uint8)
    sky_h = int(h * rng.uniform(0.0, 0.2)) or 1
    sky = np.linspace(rng.uniform(120, 200), 250, sky_h)[:, None, None] * rng.uniform(0.5, 1.0, 3)
    sky = np.broadcast_to(sky, (sky_h, w, 3)).astype(np.uint8)
    p0, p1 = rng.random(2), rng.random(2)
    n = int(round(seconds * fps))
    frames = []
    for i in range(n):
        k = i / max(n - 1, 1)
        x = int((big_w - w) * (p0[0] + (p1[0] - p0[0]) * k))
        y = int((big_h - h) * (p0[1] + (p1[1] - p0[1]) * k))
        view = terrain[y : y + h, x : x + w].copy()
        view[: sky.shape[0]] = sky
        frames.append(view)
    return frames


GENRES = {"slides": slides, "screencast": screencast, "webcam": webcam, "fractal": fractal, "landscape": landscape}
