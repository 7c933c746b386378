"""Near-duplicate transformations of video frames (the S2VS / HAP-VR augmentation family).

Used twice: the demo builder makes its copies with them, and self-supervised training
makes its views with them (with other random parameters, on other videos). A transform
is drawn once per video (`rng` fixes its parameters) and applied to every frame, as a
real edited copy would be: `t(frame, i)` takes a uint8 RGB frame [H, W, 3] and its index
(noise and picture-in-picture change per frame) and returns a uint8 RGB frame.
Temporal transformations (speed, crop, insertion) act on frame sequences, see
`engine.evaluation.demo_corpus` and `engine.training.sampling`. The logo overlay uses
`drawn_logo()`, drawn here, so that every machine makes the same views from one seed.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Transform = Callable[[np.ndarray, int], np.ndarray]

_WORDS = "BREAKING LIVE replay exclusive 2026 HD watch now news sport clip #1 official viral".split()


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((max(w, 2), max(h, 2)), Image.BILINEAR))


def greyscale(img: np.ndarray, i: int = 0) -> np.ndarray:
    """The frame in ITU-R 601 luma, kept as three equal channels (a transform: `i` is unused)."""
    g = (img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def crop_scale(rng: np.random.Generator) -> Transform:
    """Keep a random 45-80% of the area (aspect kept within 0.8-1.25x), scaled back up."""
    area, aspect = rng.uniform(0.45, 0.8), np.exp(rng.uniform(-0.22, 0.22))
    fx, fy = min(np.sqrt(area * aspect), 1.0), min(np.sqrt(area / aspect), 1.0)
    ox, oy = rng.random(), rng.random()

    def t(img: np.ndarray, i: int) -> np.ndarray:
        h, w = img.shape[:2]
        cw, ch = int(w * fx), int(h * fy)
        x, y = int((w - cw) * ox), int((h - ch) * oy)
        return _resize(img[y : y + ch, x : x + cw], w, h)

    return t


def flip(rng: np.random.Generator) -> Transform:
    return lambda img, i: np.ascontiguousarray(img[:, ::-1])


def colour(rng: np.random.Generator) -> Transform:
    """Gamma 0.55-1.8, saturation 0-1.8 (0 = greyscale), brightness and contrast shifts."""
    gamma, sat = np.exp(rng.uniform(-0.6, 0.6)), rng.choice([0.0, rng.uniform(0.3, 1.8)])
    gain, bias = rng.uniform(0.75, 1.3), rng.uniform(-25, 25)
    lut = np.clip(((np.arange(256) / 255.0) ** gamma) * 255 * gain + bias, 0, 255)

    def t(img: np.ndarray, i: int) -> np.ndarray:
        x = lut[img]
        grey = x.mean(axis=2, keepdims=True)
        return np.clip(grey + (x - grey) * sat, 0, 255).astype(np.uint8)

    return t


def blur(rng: np.random.Generator) -> Transform:
    radius = rng.uniform(1.5, 3.5)
    return lambda img, i: np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius)))


def noise(rng: np.random.Generator) -> Transform:
    sigma, seed = rng.uniform(8, 22), int(rng.integers(1 << 31))

    def t(img: np.ndarray, i: int) -> np.ndarray:
        n = np.random.default_rng(seed + i).normal(0, sigma, img.shape)
        return np.clip(img + n, 0, 255).astype(np.uint8)

    return t


def text(rng: np.random.Generator) -> Transform:
    """A caption (random words) in a random colour, size and place, on a box or not."""
    words = " ".join(rng.choice(_WORDS, size=rng.integers(1, 4)))
    size_frac, pos = rng.uniform(0.07, 0.14), rng.random(2)
    fill = tuple(int(c) for c in rng.integers(0, 256, 3))
    boxed = rng.random() < 0.5

    def t(img: np.ndarray, i: int) -> np.ndarray:
        h, w = img.shape[:2]
        pil = Image.fromarray(img)
        draw = ImageDraw.Draw(pil)
        font = ImageFont.load_default(size=max(8, int(h * size_frac)))
        x0, y0, x1, y1 = draw.textbbox((0, 0), words, font=font)
        x, y = int((w - (x1 - x0)) * pos[0]), int((h - (y1 - y0)) * pos[1])
        if boxed:
            draw.rectangle((x - 4, y - 2, x + x1 - x0 + 4, y + y1 - y0 + 6), fill=(0, 0, 0))
        draw.text((x - x0, y - y0), words, font=font, fill=fill)
        return np.asarray(pil)

    return t


def drawn_logo(size: int = 96) -> np.ndarray:
    """A channel-style logo, uint8 RGBA [size, size, 4], drawn with numpy alone (no font,
    no file), so it is the same on every machine: a ring with a play triangle and a bar."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5  # centred unit square
    r = np.hypot(xx, yy)
    ring = (r > 0.36) & (r < 0.48)
    tri = (xx > -0.14) & (np.abs(yy) < 0.22 * (1 - (xx + 0.14) / 0.38)) & (xx < 0.24)
    bar = (np.abs(yy - 0.3) < 0.035) & (np.abs(xx) < 0.2)
    img = np.zeros((size, size, 4), np.uint8)
    img[ring] = (240, 196, 32, 255)
    img[tri] = (250, 250, 250, 255)
    img[bar] = (220, 40, 60, 255)
    return img


def logo(rng: np.random.Generator, logo_rgba: np.ndarray) -> Transform:
    """Paste an RGBA logo (alpha-blended, 12-25% of the height) into a corner."""
    frac, corner, opacity = rng.uniform(0.12, 0.25), rng.integers(4), rng.uniform(0.6, 1.0)

    def t(img: np.ndarray, i: int) -> np.ndarray:
        h, w = img.shape[:2]
        lh = max(4, int(h * frac))
        lw = max(4, int(logo_rgba.shape[1] * lh / logo_rgba.shape[0]))
        mark = _resize(logo_rgba, lw, lh).astype(np.float32)
        m = 6
        y = m if corner < 2 else h - lh - m
        x = m if corner % 2 == 0 else w - lw - m
        out = img.astype(np.float32)
        a = mark[..., 3:4] / 255.0 * opacity
        out[y : y + lh, x : x + lw] = out[y : y + lh, x : x + lw] * (1 - a) + mark[..., :3] * a
        return out.astype(np.uint8)

    return t


def letterbox(rng: np.random.Generator) -> Transform:
    """Shrink one axis to 60-85% and pad with black bars (letterbox or pillarbox)."""
    frac, horizontal = rng.uniform(0.6, 0.85), rng.random() < 0.5

    def t(img: np.ndarray, i: int) -> np.ndarray:
        h, w = img.shape[:2]
        out = np.zeros_like(img)
        if horizontal:
            nh = int(h * frac)
            out[(h - nh) // 2 : (h - nh) // 2 + nh] = _resize(img, w, nh)
        else:
            nw = int(w * frac)
            out[:, (w - nw) // 2 : (w - nw) // 2 + nw] = _resize(img, nw, h)
        return out

    return t


def picture_in_picture(rng: np.random.Generator, background: Sequence[np.ndarray]) -> Transform:
    """The video shrunk to 40-65% of the frame, pasted over another video (`background`)."""
    frac, pos = rng.uniform(0.4, 0.65), rng.random(2)

    def t(img: np.ndarray, i: int) -> np.ndarray:
        h, w = img.shape[:2]
        bg = background[i % len(background)]
        out = _resize(bg, w, h).copy()
        pw, ph = int(w * frac), int(h * frac)
        x, y = int((w - pw) * pos[0]), int((h - ph) * pos[1])
        out[y : y + ph, x : x + pw] = _resize(img, pw, ph)
        return out

    return t


def downscale(rng: np.random.Generator) -> Transform:
    """Lose detail: down to 25-50% of the size and back up (a low-quality re-upload)."""
    frac = rng.uniform(0.25, 0.5)

    def t(img: np.ndarray, i: int) -> np.ndarray:
        h, w = img.shape[:2]
        return _resize(_resize(img, int(w * frac), int(h * frac)), w, h)

    return t


SPATIAL: dict[str, Callable[..., Transform]] = {
    "crop": crop_scale,
    "flip": flip,
    "colour": colour,
    "blur": blur,
    "noise": noise,
    "text": text,
    "logo": logo,
    "letterbox": letterbox,
    "pip": picture_in_picture,
    "downscale": downscale,
}


def make(name: str, rng: np.random.Generator, background: Sequence[np.ndarray] = (),
         logo_rgba: np.ndarray | None = None) -> Transform:
    """One named spatial transform with random parameters (`pip` needs `background`,
    `logo` needs `logo_rgba`)."""
    if name == "pip":
        return picture_in_picture(rng, background)
    if name == "logo":
        return logo(rng, logo_rgba)
    return SPATIAL[name](rng)


def compose(transforms: Sequence[Transform]) -> Transform:
    def t(img: np.ndarray, i: int) -> np.ndarray:
        for f in transforms:
            img = f(img, i)
        return img

    return t


def random_view(rng: np.random.Generator, background: Sequence[np.ndarray] = (),
                logo_rgba: np.ndarray | None = None, count: tuple[int, int] = (1, 3)) -> tuple[list[str], Transform]:
    """A random chain of 1-3 distinct transforms (the names, and the composed transform).

    `pip` is drawn only when a background is given, `logo` only with a logo."""
    names = [n for n in SPATIAL if (n != "pip" or len(background)) and (n != "logo" or logo_rgba is not None)]
    chosen = list(rng.choice(names, size=int(rng.integers(count[0], count[1] + 1)), replace=False))
    # Geometry first, then pixels, then what is drawn over the picture, as an editor would.
    order = ["crop", "flip", "letterbox", "pip", "colour", "blur", "downscale", "noise", "text", "logo"]
    chosen.sort(key=order.index)
    return chosen, compose([make(n, rng, background, logo_rgba) for n in chosen])
