"""The collection benchmark's corpus: channels, look-alike series, and copies with chains of edits.

    python -m engine.evaluation.collection build /tmp/collection            # ~470 videos, ~90 queries
    python -m engine evaluate collection /tmp/collection/labels.json --videos /tmp/collection

Real collections defeat a plain frame matcher in ways montage benchmarks do not: every
upload of a channel opens with the same 3-s bumper, closes with the same end card and
carries the same corner watermark; a channel's series look alike (one slide template,
one editor window, one webcam set); shots are cut with black gaps and fades. This
builder makes such a collection from procedural footage (`procedural.py`), reproducibly
from one seed:

- 12 channels, each with a bumper, an end card, a watermark and a style; ~24 uploads
  each: bumper, 2-4 shots of the channel's genre (cuts, black gaps, fades), end card.
- Query sources (from every split): their copies are uploaded by other channels (or the
  same one) with chains of edits: re-upload, partial copy, insertion into a longer
  video, compilation of several sources, picture-in-picture, reaction layout, vertical
  repost; then crops, flips, grayscale, colour, captions and heavy re-encodes.
- Queries of two kinds: a full upload (taken out of the database: its copies are the
  positives) and a clip a user cut out of a body (the upload and the copies that show the
  clip's content are the positives).
- Every copy records each copied segment: source upload, source interval and copy
  interval in seconds, so queries get their positives and segment ground truth.
- Footage is split train / val / test by upload (60/20/20): a shot belongs to one
  upload, so training on the train split never sees val or test content. Pick methods on
  val; read test last.

Media: 320x180 (vertical reposts 180x320), 8 fps, H.264.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..files import atomic_write
from ..training import augment
from ..video import write_video
from . import procedural
from .procedural import Style

SIZE = (320, 180)
FPS = 8.0
BUMPER_SECONDS = 3.0
SPLITS = (("train", 0.6), ("val", 0.2), ("test", 0.2))

# name, genres (first is the main one), uploads
CHANNELS = [
    ("lecture-hall", ("slides",)),
    ("data-talks", ("slides",)),
    ("quarterly", ("slides", "landscape")),
    ("terminal-tuesday", ("screencast",)),
    ("code-cafe", ("screencast", "slides")),
    ("desk-diaries", ("webcam",)),
    ("morning-show", ("webcam", "slides")),
    ("studio-cam", ("webcam",)),
    ("deep-zoom", ("fractal",)),
    ("sky-flights", ("landscape",)),
    ("mixed-bag", ("landscape", "fractal", "screencast")),
    ("fractal-nights", ("fractal", "landscape")),
]
REACTORS = ("desk-diaries", "studio-cam", "morning-show")  # webcam channels; in this order, as drawn
# `--rename`: channels of other names (a training collection whose bumpers and end cards
# spell no channel of the benchmark's)
WORDS = (("north", "quiet", "bright", "urban", "lucky", "silver", "rapid", "golden", "hidden", "open", "little", "wild"),
         ("signal", "notes", "garage", "orbit", "kitchen", "harbor", "pixel", "atlas", "canvas", "lab", "river", "studio"))
# The layout of a copy, cycled over query sources; spatial edits are drawn per copy.
LAYOUTS = ["reupload", "partial", "insertion", "pip", "reaction", "vertical", "compilation"]
EDITS = ["none", "crop", "flip", "grayscale", "colour", "reencode", "caption", "crop+flip", "grayscale+reencode"]


@dataclass
class Channel:
    name: str
    genres: tuple[str, ...]
    style: Style
    bumper: list[np.ndarray]
    end_card: list[np.ndarray]
    watermark: np.ndarray  # RGBA
    corner: int


@dataclass
class Upload:
    id: str
    channel: str
    split: str
    frames: list[np.ndarray]
    body: tuple[float, float]  # seconds: where the channel's own content is
    shots: list[dict] = field(default_factory=list)
    full_query: bool = False  # queried whole (so not in the database)


def _channel(name: str, genres: tuple[str, ...], seed: int) -> Channel:
    rng = np.random.default_rng(seed)
    w, h = SIZE
    colour = tuple(int(c) for c in rng.integers(30, 230, 3))
    accent = tuple(int(c) for c in rng.integers(0, 256, 3))
    shape = int(rng.integers(3))

    def mark(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill) -> None:
        box = (cx - r, cy - r, cx + r, cy + r)
        if shape == 0:
            d.ellipse(box, fill=fill)
        elif shape == 1:
            d.rectangle(box, fill=fill)
        else:
            d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)

    n = int(BUMPER_SECONDS * FPS)
    bumper = []
    for i in range(n):
        pil = Image.new("RGB", SIZE, colour)
        d = ImageDraw.Draw(pil)
        k = min(1.0, (i + 1) / (n * 0.6))
        mark(d, w / 2, h * 0.42, h * 0.25 * k, accent)
        d.text((w / 2, h * 0.8), name.replace("-", " ").upper(), font=procedural._font(h * 0.1),
               fill=(255, 255, 255), anchor="mm")
        bumper.append(np.asarray(pil))
    pil = Image.new("RGB", SIZE, tuple(c // 3 for c in colour))
    d = ImageDraw.Draw(pil)
    d.text((w / 2, h * 0.2), "thanks for watching", font=procedural._font(h * 0.09), fill=(255, 255, 255), anchor="mm")
    for k in range(2):
        d.rectangle((w * (0.1 + 0.45 * k), h * 0.35, w * (0.45 + 0.45 * k), h * 0.7), fill=accent)
    d.rounded_rectangle((w * 0.35, h * 0.78, w * 0.65, h * 0.92), radius=6, fill=(220, 30, 40))
    d.text((w / 2, h * 0.85), "SUBSCRIBE", font=procedural._font(h * 0.07), fill=(255, 255, 255), anchor="mm")
    end_card = [np.asarray(pil)] * n
    wm = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    mark(ImageDraw.Draw(wm), 20, 20, 16, accent + (170,))
    return Channel(name, genres, Style(seed * 7 + 1), bumper, end_card, np.asarray(wm), int(rng.integers(4)))


def _watermark(frames: list[np.ndarray], ch: Channel) -> list[np.ndarray]:
    mark = ch.watermark.astype(np.float32)
    mh, mw = mark.shape[:2]
    out = []
    for img in frames:
        h, w = img.shape[:2]
        y = 6 if ch.corner < 2 else h - mh - 6
        x = 6 if ch.corner % 2 == 0 else w - mw - 6
        f = img.astype(np.float32)
        a = mark[..., 3:4] / 255.0
        f[y : y + mh, x : x + mw] = f[y : y + mh, x : x + mw] * (1 - a) + mark[..., :3] * a
        out.append(f.astype(np.uint8))
    return out


def _shots(ch: Channel, rng: np.random.Generator, count: int) -> tuple[list[np.ndarray], list[dict]]:
    """A body: `count` new shots of the channel's genres joined by cuts, black gaps or fades."""
    frames: list[np.ndarray] = []
    shots = []
    black = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    for k in range(count):
        genre = ch.genres[0] if rng.random() < 0.7 else ch.genres[int(rng.integers(len(ch.genres)))]
        shot = procedural.GENRES[genre](ch.style, rng, float(rng.uniform(4.0, 8.0)), SIZE, FPS)
        if k:
            join = rng.choice(["cut", "gap", "fade"], p=[0.5, 0.25, 0.25])
            if join == "gap":
                frames += [black] * int(rng.uniform(0.5, 1.5) * FPS)
            elif join == "fade":
                n = int(0.5 * FPS)
                frames[-n:] = [(f * (1 - (i + 1) / n)).astype(np.uint8) for i, f in enumerate(frames[-n:])]
                shot[:n] = [(f * ((i + 1) / n)).astype(np.uint8) for i, f in enumerate(shot[:n])]
        shots.append({"genre": genre, "start": round(len(frames) / FPS, 3)})
        frames += shot
    return frames, shots


def _wrap(ch: Channel, body: list[np.ndarray]) -> tuple[list[np.ndarray], tuple[float, float]]:
    """bumper + watermarked body + end card; returns the frames and the body's interval (s)."""
    start = len(ch.bumper) / FPS
    return ch.bumper + _watermark(body, ch) + ch.end_card, (start, start + len(body) / FPS)


# ----------------------------------------------------------------------------- edits
def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((max(w, 2), max(h, 2)), Image.BILINEAR))


def spatial_edit(name: str, rng: np.random.Generator):
    """A frame transform for one edit name of `EDITS` (joined by '+'); 'reencode' is the
    encoder's job (see `_crf`) plus a loss of detail."""
    parts = []
    for part in name.split("+"):
        if part == "grayscale":
            parts.append(augment.greyscale)
        elif part == "reencode":
            parts.append(augment.downscale(rng))
        elif part == "caption":
            parts.append(augment.text(rng))
        elif part in ("crop", "flip", "colour"):
            parts.append(augment.make(part, rng))
    return augment.compose(parts)


def _crf(edit: str) -> int:
    return 44 if "reencode" in edit else 30


def _pip(src: list[np.ndarray], background: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    frac, pos = rng.uniform(0.35, 0.5), rng.random(2)
    w, h = SIZE
    pw, ph = int(w * frac), int(h * frac)
    x, y = int((w - pw) * pos[0]), int((h - ph) * pos[1])
    out = []
    for i, img in enumerate(src):
        f = background[i % len(background)].copy()
        f[y : y + ph, x : x + pw] = _resize(img, pw, ph)
        out.append(f)
    return out


def _reaction(src: list[np.ndarray], cam: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Side by side (the source on 55-65% of the width) or the reactor in a big corner box."""
    w, h = SIZE
    side = rng.random() < 0.5
    frac = rng.uniform(0.55, 0.65)
    out = []
    for i, img in enumerate(src):
        c = cam[i % len(cam)]
        if side:
            f = np.zeros_like(img)
            sw = int(w * frac)
            sh = int(sw * h / w)
            f[(h - sh) // 2 : (h - sh) // 2 + sh, :sw] = _resize(img, sw, sh)
            cw = w - sw
            f[:, sw:] = _resize(c, int(cw * 1.8), h)[:, int(cw * 0.4) : int(cw * 0.4) + cw]
        else:
            f = _resize(img, w, h).copy()
            bw, bh = int(w * 0.4), int(h * 0.4)
            f[h - bh :, w - bw :] = _resize(c, bw, bh)
        out.append(f)
    return out


def _vertical(src: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """A 9:16 repost: the source across the middle over a blurred, zoomed copy of itself, a caption on top."""
    vw, vh = SIZE[1], SIZE[0]
    caption = augment.text(rng)
    out = []
    for i, img in enumerate(src):
        bg = Image.fromarray(_resize(img, int(vh * SIZE[0] / SIZE[1]), vh)).filter(ImageFilter.GaussianBlur(8))
        bg = np.asarray(bg)
        x0 = (bg.shape[1] - vw) // 2
        f = bg[:, x0 : x0 + vw].copy()
        sh = int(vw * SIZE[1] / SIZE[0])
        f[(vh - sh) // 2 : (vh - sh) // 2 + sh] = _resize(img, vw, sh)
        top = caption(np.zeros((vh // 4, vw, 3), np.uint8), i)
        f[: vh // 4] = np.maximum(f[: vh // 4] // 2, top)
        out.append(f)
    return out


# ----------------------------------------------------------------------------- building
def _split(rng: np.random.Generator) -> str:
    return str(rng.choice([s for s, _ in SPLITS], p=[p for _, p in SPLITS]))


def _piece(rng: np.random.Generator, body: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
    """A random interval of the body, lo-hi of its length (seconds, on frame boundaries)."""
    a, b = body
    length = (b - a) * rng.uniform(lo, hi)
    start = a + rng.uniform(0, (b - a) - length)
    return round(start * FPS) / FPS, round((start + length) * FPS) / FPS


def _frames(up: Upload, span: tuple[float, float]) -> list[np.ndarray]:
    return up.frames[int(round(span[0] * FPS)) : int(round(span[1] * FPS))]


def channel_names(seed: int, rename: bool, count: int = len(CHANNELS)) -> list[tuple[str, tuple[str, ...]]]:
    """(name, genres) of each channel: `CHANNELS`, or with `rename` `count` channels with
    the genres of `CHANNELS` in turn, under names drawn from `WORDS` with the seed."""
    if not rename:
        if count != len(CHANNELS):
            raise ValueError(f"{count} channels need --rename (there are {len(CHANNELS)} named ones)")
        return list(CHANNELS)
    if not 2 <= count <= len(WORDS[0]) * len(WORDS[1]):
        raise ValueError(f"--channels: 2 to {len(WORDS[0]) * len(WORDS[1])}, not {count}")
    rng = np.random.default_rng([seed, 7])
    picks = rng.permutation(len(WORDS[0]) * len(WORDS[1]))[:count]
    return [(f"{WORDS[0][p // len(WORDS[1])]}-{WORDS[1][p % len(WORDS[1])]}", CHANNELS[k % len(CHANNELS)][1])
            for k, p in enumerate(picks)]


def build(out: str | Path, seed: int = 0, uploads_per_channel: int = 24,
          query_sources: dict[str, int] | None = None, progress: bool = True, rename: bool = False,
          channels: int = len(CHANNELS)) -> dict:
    """Write videos/ (the database), queries/ and labels.json under `out`; return the labels.

    query_sources: how many query sources to draw per split (default train 18, val 36,
    test 36); their copies go in the database. rename, channels: channels of other names,
    and how many (`channel_names`), for training collections."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    quota = dict(query_sources or {"train": 18, "val": 36, "test": 36})
    say = print if progress else (lambda *a, **k: None)
    named = channel_names(seed, rename, channels)
    channels = {name: _channel(name, genres, seed * 1000 + k) for k, (name, genres) in enumerate(named)}
    reactors = list(REACTORS) if not rename else [n for n, ch in channels.items() if ch.genres[0] == "webcam"]
    labels: dict = {"seed": seed, "fps": FPS, "channels": sorted(channels), "videos": {}, "queries": {}}

    def save(vid: str, frames: list[np.ndarray], crf: int = 30, **label) -> None:
        write_video(out / vid, frames, FPS, crf=crf, preset="veryfast")
        labels["videos" if vid.startswith("videos/") else "queries"][vid] = {
            "duration": round(len(frames) / FPS, 3), **label}

    # 1. Uploads. Query sources are kept in memory for their copies.
    kept: dict[str, Upload] = {}
    plan = [(name, i) for i in range(uploads_per_channel) for name in channels]
    order = rng.permutation(len(plan))
    wanted = dict(quota)
    for n, j in enumerate(order):
        name, i = plan[j]
        ch = channels[name]
        split = _split(rng)
        body, shots = _shots(ch, rng, int(rng.integers(2, 5)))
        frames, span = _wrap(ch, body)
        up = Upload(f"videos/{name}/{name}-{i:02d}.mp4", name, split, frames, span, shots)
        if wanted.get(split, 0) > 0:
            # every other query source of a split is queried with the full upload, which is
            # then not in the database
            up.full_query = (quota[split] - wanted[split]) % 2 == 0
            wanted[split] -= 1
            kept[up.id] = up
        if not up.full_query:
            save(up.id, frames, channel=name, split=split, kind="upload", body=[round(x, 3) for x in span],
                 shots=shots, segments=[])
        if progress and n % 50 == 0:
            say(f"uploads: {n}/{len(plan)}")

    # 2. Copies, and the queries.
    names = sorted(channels)
    by_split: dict[str, list[str]] = {}
    for uid, up in kept.items():
        by_split.setdefault(up.split, []).append(uid)
    layout_i, edit_i = 0, 0
    for split, ids in sorted(by_split.items()):
        for uid in ids:
            up = kept[uid]
            for c in range(int(rng.integers(2, 4))):
                layout = LAYOUTS[layout_i % len(LAYOUTS)]
                layout_i += 1
                edit = EDITS[edit_i % len(EDITS)]
                edit_i += 1
                if layout == "compilation" and len(ids) < 3:
                    layout = "partial"
                same = layout == "vertical" and rng.random() < 0.5
                by = up.channel if same else str(rng.choice([n for n in names if n != up.channel]))
                if layout == "reaction":
                    by = str(rng.choice([n for n in reactors if n != up.channel]))
                host = channels[by]
                t = spatial_edit(edit, rng)
                segments: list[dict] = []
                if layout == "compilation":
                    others = [o for o in ids if o != uid]
                    parts = [uid] + list(rng.choice(others, size=2, replace=False))
                    body: list[np.ndarray] = []
                    b0 = len(host.bumper) / FPS
                    for p in parts:
                        span = _piece(rng, kept[p].body, 0.25, 0.45)
                        piece = _frames(kept[p], span)
                        segments.append({"source": p, "source_span": list(span),
                                         "span": [b0 + len(body) / FPS, b0 + (len(body) + len(piece)) / FPS]})
                        body += piece
                    frames, _ = _wrap(host, [t(f, i) for i, f in enumerate(body)])
                else:
                    lo, hi = {"reupload": (1.0, 1.0), "partial": (0.4, 0.7), "insertion": (0.4, 0.8)}.get(layout, (0.6, 1.0))
                    span = up.body if hi == 1.0 and lo == 1.0 else _piece(rng, up.body, lo, hi)
                    src = [t(f, i) for i, f in enumerate(_frames(up, span))]
                    if layout == "pip":
                        bg, _ = _shots(host, rng, 2)
                        src = _pip(src, bg, rng)
                    elif layout == "reaction":
                        cam = procedural.webcam(host.style, rng, len(src) / FPS + 1, SIZE, FPS)
                        src = _reaction(src, cam, rng)
                    elif layout == "vertical":
                        src = _vertical(src, rng)
                    pre: list[np.ndarray] = []
                    post: list[np.ndarray] = []
                    if layout == "insertion":
                        pre, _ = _shots(host, rng, int(rng.integers(1, 3)))
                        post, _ = _shots(host, rng, 1)
                    if layout == "vertical":
                        frames, b0 = src, 0.0
                    else:
                        frames, (b0, _) = _wrap(host, pre + src + post)
                    start = b0 + len(pre) / FPS
                    segments.append({"source": uid, "source_span": list(span),
                                     "span": [start, start + len(src) / FPS]})
                for s in segments:
                    s["span"] = [round(x, 3) for x in s["span"]]
                    s["source_span"] = [round(x, 3) for x in s["source_span"]]
                cid = f"videos/copies/{Path(uid).stem}-{c}-{layout}-{edit}.mp4"
                save(cid, frames, crf=_crf(edit), channel=by, split=up.split, kind="copy", layout=layout,
                     edit=edit, segments=segments)
            # The query: the full upload (then not in the database) or a clip cut out of it.
            if up.full_query:
                qid = f"queries/{Path(uid).stem}-full.mp4"
                save(qid, up.frames, source=uid, kind="full", span=[0.0, round(len(up.frames) / FPS, 3)],
                     split=up.split, channel=up.channel)
            else:
                span = _piece(rng, up.body, 0.3, 0.5)
                edit = str(rng.choice(["none", "crop", "caption", "colour"]))
                clip = [spatial_edit(edit, rng)(f, i) for i, f in enumerate(_frames(up, span))]
                qid = f"queries/{Path(uid).stem}-clip.mp4"
                save(qid, clip, crf=32, source=uid, kind="clip", span=list(span), edit=edit,
                     split=up.split, channel=up.channel)
        say(f"{split}: {len(ids)} query sources and their copies")
    with atomic_write(out / "labels.json") as tmp:
        tmp.write_text(json.dumps(labels, indent=1))
    return labels


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.evaluation.collection", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the collection (videos/, queries/, labels.json)")
    b.add_argument("out", type=Path)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--uploads", type=int, default=24, help="uploads per channel")
    b.add_argument("--channels", type=int, default=len(CHANNELS),
                   help=f"how many channels (default {len(CHANNELS)}; another number needs --rename)")
    b.add_argument("--queries", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=[18, 36, 36],
                   help="query sources per split")
    b.add_argument("--rename", action="store_true",
                   help="give the channels other names (for a training collection: its bumpers and end cards "
                        "then spell no channel of the benchmark's)")
    args = p.parse_args(argv)
    try:
        channel_names(args.seed, args.rename, args.channels)
    except ValueError as err:
        p.error(str(err))
    labels = build(args.out, args.seed, args.uploads, dict(zip(("train", "val", "test"), args.queries)),
                   rename=args.rename, channels=args.channels)
    total = sum(f.stat().st_size for f in args.out.rglob("*.mp4"))
    print(f"{len(labels['videos'])} videos, {len(labels['queries'])} queries; {total / 2**20:.1f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
