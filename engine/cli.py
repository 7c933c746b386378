"""Command line: `python -m engine {index,search,pca,train,evaluate,info} ...` (see --help of each)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .backbone import Backbone
from .benchmarks import BenchmarkName
from .similarity import Measure
from .train import Loss, TrainConfig
from .video import DEFAULT_MAX_DURATION



class UsageError(Exception):
    """A mistake in the arguments or the files they name: one `error:` line, exit status 2."""


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

    p = sub.add_parser("train", help="train TCA (+ PCA) on a folder of videos -> model bundle",
                       description="Train the PCA whitening and a TCA on the videos under VIDEO_DIR "
                                   "and write a model bundle to --out. Self-supervised by default "
                                   "(no labels); --pairs trains on labelled positive pairs.")
    p.add_argument("video_dir", metavar="VIDEO_DIR", type=Path)
    p.add_argument("--out", type=Path, required=True, help="model bundle to write (.safetensors)")
    p.add_argument("--list", type=Path, help="train only on these videos: a text file of ids "
                                             "(paths relative to VIDEO_DIR), one per line")
    p.add_argument("--pairs", type=Path, help='supervised: JSON {"pairs": [[id, id], ...], '
                                              '"distractors": [id, ...]}')
    p.add_argument("--loss", choices=[x.value for x in Loss], default=TrainConfig.loss.value)
    for name, help_ in [("dim", "PCA output / TCA width"), ("bank", "memory bank size (0: in-batch negatives only)"),
                        ("steps", "optimiser steps"), ("batch", "instances per step"), ("lr", "Adam learning rate"),
                        ("temperature", "InfoNCE temperature"), ("frame_weight", "weight of the frame-level chamfer loss"),
                        ("match_weight", "weight of the frame-to-frame loss on matching moments (self-supervised)"),
                        ("views", "spatial views per video"), ("clip_frames", "longest training window (frames)"),
                        ("dropout", "TCA dropout"),
                        ("pca_shrinkage", "PCA whitening shrinkage, a fraction of the mean eigenvalue (0 = full)"),
                        ("seed", "random seed (runs are deterministic)")]:
        default = getattr(TrainConfig, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default,
                       help=f"{help_} (default {default})")
    p.add_argument("--identity-init", action="store_true",
                   help="start the transformer at the identity (zeroed residual outputs), so training "
                        "only adds context where it helps")
    p.add_argument("--views-cache", type=Path, help="keep the CNN descriptors of the views here (.npz) "
                                                     "and reuse them when the videos and settings match")
    p.add_argument("--backbone", choices=[b.value for b in Backbone], default=Backbone.EFFICIENTNET_LITE0.value)
    p.add_argument("--backbone-weights", metavar="FILE_OR_REPO")
    p.add_argument("--device", default="cpu")

    p = sub.add_parser("evaluate", help="mAP of a model on a benchmark (demo, FIVR, CC_WEB, EVVE, generic)",
                       description="Score every query of a benchmark against its database with each "
                                   "similarity measure and print the benchmark's metrics.")
    p.add_argument("benchmark", choices=[b.value for b in BenchmarkName])
    p.add_argument("annotations", type=Path, help="the benchmark's annotation file (folder for EVVE)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", type=Path, help="folder of the videos (ids are paths relative to it)")
    src.add_argument("--features", type=Path, help="frame features by video id (.npz or HDF5)")
    p.add_argument("--cache", type=Path, help="with --videos: keep computed features here (.npz) and reuse them")
    p.add_argument("--subset", type=Path, help='FIVR-5K (or any subset): JSON {"queries": [...], "database": [...]}')
    p.add_argument("--no-tca", action="store_true", help="evaluate the model without its TCA (mean pooling)")
    p.add_argument("--measure", action="append", choices=[m.value for m in Measure],
                   help="repeatable; default: all three")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_model_args(p, backbone=False)

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
        raise UsageError("--top-k must be at least 1")
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

    from .embedding import Embedder
    from .evaluate import extract_features
    from .index import scan_folder
    from .model import ModelBundle, builtin_model, save_model
    from .pca import fit_pca

    embedder = Embedder(builtin_model(args.backbone), args.backbone_weights, args.device)
    ids = [str(p.relative_to(args.video_dir)) for p in scan_folder(args.video_dir)]
    descs = list(extract_features(args.video_dir, ids, lambda p: embedder.descriptors(p)[1]).values())
    if not descs:
        raise UsageError(f"{args.video_dir}: no readable video found")
    x = np.concatenate(descs)
    pca = fit_pca(x, args.dim, args.shrinkage)
    bundle = ModelBundle(embedder.bundle.backbone, embedder.bundle.pooling, pca, None,
                         {"pca_frames": len(x), "pca_videos": len(descs), "shrinkage": args.shrinkage})
    sha = save_model(bundle, args.out)
    print(f"wrote {args.out}: PCA {pca.dim_in} -> {pca.dim} on {len(x)} frames of {len(descs)} videos (sha256 {sha[:12]})")
    return 0


def _read_list(path: Path) -> list[str]:
    try:
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as err:
        raise UsageError(f"{path}: cannot read the list ({err})") from err


def cmd_train(args: argparse.Namespace) -> int:
    from .backbone import load_backbone
    from .demo import OPENCV_DATA, LOGO
    from .index import scan_folder
    from .model import builtin_model
    from .train import train, train_pairs

    cfg = TrainConfig(**{k: getattr(args, k) for k in vars(TrainConfig()) if hasattr(args, k) and k != "loss"},
                      loss=Loss(args.loss))
    base = builtin_model(args.backbone)
    encoder = load_backbone(base.backbone, args.backbone_weights, base.pooling, args.device)
    if args.pairs:
        try:
            bundle = train_pairs(args.video_dir, args.pairs, args.out, encoder, base, cfg)
        except ValueError as err:  # a pairs file that names missing videos, or no pairs
            raise UsageError(str(err)) from err
    else:
        if args.list:
            paths = [args.video_dir / i for i in _read_list(args.list)]
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise UsageError(f"{args.list}: {len(missing)} listed videos not found, e.g. {missing[0]}")
        else:
            paths = scan_folder(args.video_dir)
        if len(paths) < 2:
            raise UsageError(f"{args.video_dir}: training needs at least 2 videos, found {len(paths)}")
        logo = None
        if (OPENCV_DATA / LOGO).is_file():  # the logo-overlay augmentation, when the image is there
            from PIL import Image
            import numpy as np
            logo = np.asarray(Image.open(OPENCV_DATA / LOGO).convert("RGBA"))
        bundle = train(paths, args.out, encoder, base, cfg, args.views_cache, logo)
    print(f"wrote {args.out}: {bundle.name}, {bundle.info.get('videos')} videos, "
          f"{cfg.steps} steps in {bundle.info.get('seconds')} s, final loss {bundle.info.get('final_loss', 0):.3f}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import resolve_model
    from .benchmarks import load_benchmark
    from .embedding import Embedder
    from .evaluate import embed_features, evaluate, extract_features, load_features

    bench = load_benchmark(args.benchmark, args.annotations, args.subset)
    # A benchmark without its own database list ranks every video there is.
    wanted = sorted(set(bench.queries) | set(bench.database)) if bench.database else []
    bundle, _ = resolve_model(args.model)
    if args.features:
        feats = load_features(args.features, wanted or None)
    else:
        embedder = Embedder(bundle, args.backbone_weights, args.device)
        if not wanted:
            from .index import scan_folder
            wanted = [str(p.relative_to(args.videos)) for p in scan_folder(args.videos)]
        feats = extract_features(args.videos, wanted, lambda p: embedder.descriptors(p)[1], args.cache)
    missing = len(set(wanted) - set(feats))
    embs = embed_features(bundle, feats, args.device, use_tca=not args.no_tca)
    results = evaluate(bench, embs, args.measure or [m.value for m in Measure])
    model_name = bundle.name + (" without TCA" if args.no_tca else "")
    if args.json:
        print(json.dumps({"benchmark": bench.name, "model": model_name, "missing": missing, "results": results}))
        return 0
    print(f"{bench.name}: {len(feats)} videos with features ({missing} missing), model {model_name}")
    metrics = sorted({k for r in results.values() for k in r})
    print(f"{'measure':<18}" + "".join(f"{k:>10}" for k in metrics))
    for measure, r in results.items():
        print(f"{measure:<18}" + "".join(f"{r.get(k, float('nan')):>10.4f}" if k != "queries"
                                         else f"{int(r[k]):>10d}" for k in metrics))
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
    from .benchmarks import BenchmarkError
    from .evaluate import FeatureError

    args = build_parser().parse_args(argv)
    handler = {"index": cmd_index, "search": cmd_search, "pca": cmd_pca, "train": cmd_train,
               "evaluate": cmd_evaluate, "info": cmd_info}[args.command]
    try:
        return handler(args)
    except (VideoError, ModelError, BackboneError, IndexFileError, BenchmarkError, FeatureError, UsageError,
            KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
