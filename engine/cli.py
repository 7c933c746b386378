"""Command line: `python -m engine {index,search,pca,info} ...` (see --help of each)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .backbone import Backbone
from .similarity import Measure
from .video import DEFAULT_MAX_DURATION



def _clock(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60)
    return f"{int(m)}:{s:04.1f}"


def _add_model_args(p: argparse.ArgumentParser, backbone: bool = True) -> None:
    p.add_argument("--model", metavar="WEIGHTS",
                   help="model bundle (.safetensors made by `engine train`/`engine pca`) or a "
                        "Hugging Face Hub repo id; default: the index's own model, else "
                        "assets/model.safetensors, else the untrained baseline")
    if backbone:
        p.add_argument("--backbone", choices=[b.value for b in Backbone],
                       help="frame CNN when no model is given (default efficientnet-lite0)")
    p.add_argument("--backbone-weights", metavar="FILE_OR_REPO",
                   help="ImageNet weights for the backbone: a local file or Hub repo id "
                        "(required for resnet50, e.g. timm/resnet50.tv_in1k)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Near-duplicate video search with Temporal Context Aggregation (TCA). "
                    "Index a folder of videos once, then search it with a clip.",
        epilog="Example: python -m engine index ~/Videos my_index && "
               "python -m engine search my_index clip.mp4 --top-k 5",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", help="index every video under a folder (incremental)",
                       description="Index every video under VIDEO_DIR (recursively) into INDEX_DIR. "
                                   "Re-running only processes new or changed files and drops "
                                   "deleted ones. Unreadable files are reported and skipped.")
    p.add_argument("video_dir", metavar="VIDEO_DIR", type=Path)
    p.add_argument("index_dir", metavar="INDEX_DIR", type=Path)
    _add_model_args(p)
    p.add_argument("--fps", type=float, default=1.0, help="frames sampled per second (default 1)")
    p.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION,
                   help=f"seconds used per video; longer ones are cut and reported (default {DEFAULT_MAX_DURATION:g})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("search", help="find the indexed videos that match a query clip",
                       description="Rank the videos of INDEX_DIR against QUERY_VIDEO, with the "
                                   "matching time spans.")
    p.add_argument("index_dir", metavar="INDEX_DIR")
    p.add_argument("query", metavar="QUERY_VIDEO", type=Path)
    p.add_argument("--top-k", type=int, default=10, help="how many results (default 10; more than "
                                                         "the index holds ranks the whole index)")
    p.add_argument("--measure", choices=[m.value for m in Measure], default=Measure.CHAMFER.value,
                   help="cosine: video vectors (TCA_c, fastest); chamfer: frame-level re-rank "
                        "(TCA_f, default, finds partial copies); symmetric_chamfer: both directions")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    _add_model_args(p, backbone=False)

    p = sub.add_parser("pca", help="fit PCA whitening on a folder of videos -> model bundle",
                       description="Fit the PCA whitening of frame descriptors on the videos under "
                                   "VIDEO_DIR and write a model bundle (no TCA) to OUT.")
    p.add_argument("video_dir", metavar="VIDEO_DIR", type=Path)
    p.add_argument("out", metavar="OUT", type=Path)
    p.add_argument("--dim", type=int, default=512, help="output dimensions (default 512)")
    p.add_argument("--shrinkage", type=float, default=0.1,
                   help="eigenvalue shrinkage, fraction of the mean eigenvalue (default 0.1)")
    p.add_argument("--backbone", choices=[b.value for b in Backbone], default=Backbone.EFFICIENTNET_LITE0.value)
    p.add_argument("--backbone-weights", metavar="FILE_OR_REPO")
    p.add_argument("--device", default="cpu")

    p = sub.add_parser("info", help="describe an index")
    p.add_argument("index_dir", metavar="INDEX_DIR", type=Path)
    return parser


def cmd_index(args: argparse.Namespace) -> int:
    from . import Engine

    eng = Engine(model=args.model, backbone=args.backbone, backbone_weights=args.backbone_weights,
                 device=args.device, fps=args.fps, max_duration=args.max_duration)
    print(f"model: {eng.model.name}", file=sys.stderr)
    report = eng.build_index(args.video_dir, args.index_dir, progress=not args.quiet)
    print(report.summary())
    print(f"index: {args.index_dir} ({len(eng.index)} videos, {eng.index.num_frames} frames)")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from . import Engine

    if args.top_k < 1:
        raise SystemExit("error: --top-k must be at least 1")
    eng = Engine(model=args.model, index=args.index_dir, backbone_weights=args.backbone_weights, device=args.device)
    result = eng.search(args.query, k=args.top_k, measure=args.measure)
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    for w in result.query.warnings:
        print(f"note: {w}", file=sys.stderr)
    print(f"{'rank':>4}  {'score':>7}  {'match (query <-> video)':<29}  id")
    for m in result.matches:
        s = m.span
        span = f"{_clock(s.query_start)}-{_clock(s.query_end)} <-> {_clock(s.start)}-{_clock(s.end)}"
        print(f"{m.rank:>4}  {m.score:7.4f}  {span:<29}  {m.id}")
    return 0


def cmd_pca(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from .embedding import Embedder
    from .index import scan_folder
    from .model import ModelBundle, builtin_model, save_model
    from .pca import fit_pca
    from .video import VideoError

    embedder = Embedder(builtin_model(args.backbone), args.backbone_weights, args.device)
    descs = []
    for p in tqdm(scan_folder(args.video_dir), desc="describing", unit="video"):
        try:
            descs.append(embedder.descriptors(p)[1])
        except VideoError as err:
            print(f"skipped {err}", file=sys.stderr)
    if not descs:
        raise SystemExit(f"error: {args.video_dir}: no readable video found")
    x = np.concatenate(descs)
    pca = fit_pca(x, args.dim, args.shrinkage)
    bundle = ModelBundle(embedder.bundle.backbone, embedder.bundle.pooling, pca, None,
                         {"pca_frames": len(x), "pca_videos": len(descs), "shrinkage": args.shrinkage})
    sha = save_model(bundle, args.out)
    print(f"wrote {args.out}: PCA {pca.dim_in} -> {pca.dim} on {len(x)} frames of {len(descs)} videos (sha256 {sha[:12]})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .index import VideoIndex

    idx = VideoIndex.open(args.index_dir)
    m = idx.manifest
    total = sum(r.duration for r in idx.records)
    print(f"{args.index_dir}: {len(idx)} videos, {idx.num_frames} frames, {total / 60:.1f} min of video")
    print(f"backbone {m['backbone']} ({m['pooling']}), model {m['model_id'][:16]} "
          f"({m.get('model_path') or 'builtin'}), dim {m['dim']}, {m['sample_fps']:g} fps, FAISS {m.get('faiss')}")
    if total:
        print(f"{m.get('bytes_per_video', 0) * len(idx) / (total / 60) / 1024:.1f} KiB per indexed minute")
    return 0


def main(argv: list[str] | None = None) -> int:
    from . import BackboneError, IndexFileError, ModelError, VideoError

    args = build_parser().parse_args(argv)
    handler = {"index": cmd_index, "search": cmd_search, "pca": cmd_pca, "info": cmd_info}[args.command]
    try:
        return handler(args)
    except (VideoError, ModelError, BackboneError, IndexFileError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
