"""Command line: `python -m engine COMMAND ...`, a thin layer over library functions.

Each command is a pair of functions in one module, `arguments_<name>(parser)` and
`run_<name>(args) -> exit status`; the table below names the module. Only the command
being run is imported, so `--help` is instant and the run-time commands never load the lab
(`engine.training`, `engine.evaluation`), which declares its own commands the same way.
Errors a user can cause (`engine.errors.UserError`) print one `error:` line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from .errors import UserError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "index": ("engine.cli", "index every video under a folder (incremental)"),
    "search": ("engine.cli", "find the indexed videos that match a query clip"),
    "embed": ("engine.cli", "embed one video: frame times, attention, embeddings"),
    "info": ("engine.cli", "describe an index"),
    "tune-cnn": ("engine.training.cli", "tune the CNN's last stages for copies on a collection -> CNN file"),
    "pca": ("engine.training.cli", "fit PCA whitening on a folder of videos -> model bundle"),
    "train": ("engine.training.cli", "train TCA (+ PCA) on a folder of videos -> model bundle"),
    "evaluate": ("engine.evaluation.cli", "mAP of a model on a benchmark (demo, FIVR, CC_WEB, EVVE, generic)"),
}
BACKBONES = ("efficientnet-lite0", "resnet50")  # engine.backbone.Backbone's values (checked by a test)
MEASURES = ("cosine", "chamfer", "symmetric_chamfer")  # engine.similarity.Measure's values
PRECISIONS = ("auto", "float32", "bfloat16", "float16")  # engine.backbone.Precision's values


class UsageError(UserError):
    """A mistake in the arguments or the files they name: one `error:` line, exit status 2."""


def add_model_flags(p: argparse.ArgumentParser, model: bool = True, backbone: bool = True,
                    backbone_default: str | None = None) -> None:
    """The flags every model-loading command shares, declared once."""
    if model:
        p.add_argument("--model", metavar="WEIGHTS",
                       help="model bundle (.safetensors made by `engine train`/`engine pca`) or "
                            "hf://owner/repo; default: the index's own model, else "
                            "assets/model.safetensors, else the untrained baseline")
    if backbone:
        p.add_argument("--backbone", choices=BACKBONES, default=backbone_default,
                       help="frame CNN" + (" when no model is given" if model else "")
                            + f" (default {backbone_default or BACKBONES[0]})")
    p.add_argument("--backbone-weights", metavar="FILE_OR_HF",
                   help="ImageNet weights for the backbone: a local file or hf://owner/repo "
                        "(required for resnet50, e.g. hf://timm/resnet50.tv_in1k)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="number format of the CNN (default auto: bfloat16 on a CPU with AMX matrix "
                        "units, where it is twice as fast; float16 on CUDA; else float32)")


def read_list(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a text file (ids, one per line)."""
    try:
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as err:
        raise UsageError(f"{path}: cannot read the list ({err})") from err


# ---------------------------------------------------------------------- index
def arguments_index(p: argparse.ArgumentParser) -> None:
    from .video import DEFAULT_MAX_DURATION

    p.description = ("Index every video under VIDEO_DIR (recursively) into INDEX_DIR. Re-running only "
                     "processes new or changed files (by content: a copy with new file times is kept, a moved or renamed file is not embedded again) "
                     "and drops deleted ones. Unreadable files are reported and skipped.")
    p.add_argument("video_dir", metavar="VIDEO_DIR", type=Path)
    p.add_argument("index_dir", metavar="INDEX_DIR", type=Path)
    add_model_flags(p)
    p.add_argument("--fps", type=float, default=1.0, help="frames sampled per second (default 1)")
    p.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION,
                   help=f"seconds used per video; longer ones are cut and reported (default {DEFAULT_MAX_DURATION:g})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-tca", action="store_true",
                   help="the model with its TCA replaced by mean pooling (recorded in the index), "
                        "to compare with and without TCA on your own collection")
    p.add_argument("--no-inner-pictures", action="store_true",
                   help="store whole frames only: skip finding picture-in-picture boxes, side-by-side "
                        "halves and vertical bands (faster indexing; copies shown inside another "
                        "video's frame are then mostly missed)")
    p.add_argument("--no-text", action="store_true",
                   help="do not read the text on the frames (default: a new index keeps it, read with "
                        "Tesseract beside the CNN, so that searches tell a look-alike slide or terminal "
                        "with other words from a copy)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="embed on Ray Data actors (pip install -r requirements-ray.txt): alone, a local "
                        "Ray on this machine; with an address (auto, ray://HOST:10001), that cluster, "
                        "whose nodes must see VIDEO_DIR at the same path")
    p.add_argument("--actors", type=int, metavar="N",
                   help="with --ray: how many embedding actors (default: one per GPU, else one per CPU)")
    p.add_argument("--commit-seconds", type=float, default=0.0, metavar="S",
                   help="commit finished videos every S seconds (default 0: after each one; a large "
                        "cluster sending hundreds of videos a second wants e.g. 30)")


def run_index(args: argparse.Namespace) -> int:
    from .api import Engine

    if args.fps <= 0:
        raise UsageError(f"--fps {args.fps:g}: frames sampled per second must be above 0 (default 1)")
    if args.max_duration is not None and args.max_duration <= 0:
        raise UsageError(f"--max-duration {args.max_duration:g}: seconds used per video must be above 0")
    eng = Engine(model=args.model, backbone=args.backbone, backbone_weights=args.backbone_weights,
                 device=args.device, fps=args.fps, max_duration=args.max_duration, use_tca=not args.no_tca,
                 precision=args.precision, text=not args.no_text)
    print(f"model: {eng.model.name}", file=sys.stderr)
    if args.actors is not None and (args.ray is None or args.actors < 1):
        raise UsageError("--actors needs --ray and a count of at least 1")
    if args.commit_seconds < 0:
        raise UsageError("--commit-seconds cannot be negative")
    report = eng.build_index(args.video_dir, args.index_dir, progress=not args.quiet,
                             commit_seconds=args.commit_seconds, ray=args.ray, actors=args.actors,
                             inner_pictures=not args.no_inner_pictures)
    print(report.summary())
    print(f"index: {args.index_dir} ({len(eng.index)} videos, {eng.index.num_frames} frames)")
    return 0


# ---------------------------------------------------------------------- search
def arguments_search(p: argparse.ArgumentParser) -> None:
    p.description = ("Rank the videos of INDEX_DIR against QUERY_VIDEO, with the matching time spans. "
                     "Several queries (files, or folders of videos) are searched with the model loaded once; "
                     "with --json each gives one line (JSON Lines). A query that cannot be read is reported "
                     "and the others are still searched (exit status 2 at the end).")
    p.add_argument("index_dir", metavar="INDEX_DIR", help="index folder or hf://owner/repo")
    p.add_argument("query", metavar="QUERY_VIDEO", type=Path, nargs="+",
                   help="a video file, or a folder: every video under it")
    p.add_argument("--top-k", type=int, default=10,
                   help="how many results (default 10; more than the index holds ranks the whole index)")
    p.add_argument("--measure", choices=MEASURES, default="chamfer",
                   help="cosine: video vectors (TCA_c, fastest); chamfer: frame-level re-rank "
                        "(TCA_f, default, finds partial copies); symmetric_chamfer: both directions")
    p.add_argument("--no-normalize", action="store_true",
                   help="rank by raw cosine similarities (default: corpus-aware, each indexed frame's "
                        "background subtracted, so intros, end cards and watermarks do not decide)")
    p.add_argument("--variants", metavar="NAMES", default=None,
                   help="query variants also described, each query frame counting with its best look "
                        "(comma-separated: grey, low-detail, grey-low-detail, flip, zoom; 'none' for "
                        "none; default grey,low-detail,grey-low-detail,flip, so greyscale, heavily "
                        "re-encoded and mirrored copies rank)")
    p.add_argument("--no-text", action="store_true",
                   help="do not read the query's text (default: against an index that keeps its frames' "
                        "text, frames whose words disagree are no evidence of a copy)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per query (one line each) instead of a table")
    add_model_flags(p, backbone=False)


def query_files(queries: list[Path]) -> list[Path]:
    """The query videos named on the command line: files as given, folders expanded to the
    videos under them (`scan_folder`). A path that does not exist is an error before any
    search; a folder without videos is one too."""
    from .indexing import scan_folder

    out = []
    for q in queries:
        if q.is_dir():
            found = scan_folder(q)
            if not found:
                raise UsageError(f"{q}: no video files in this folder")
            out += found
        elif q.exists():
            out.append(q)
        else:
            raise UsageError(f"{q}: query video not found")
    return out


def run_search(args: argparse.Namespace) -> int:
    from .api import Engine
    from .timefmt import span_text

    if args.top_k < 1:
        raise UsageError("--top-k must be at least 1")
    queries = query_files(args.query)
    eng = Engine(model=args.model, index=args.index_dir, backbone_weights=args.backbone_weights, device=args.device,
                 precision=args.precision, text=not args.no_text,
                 **({"variants": args.variants} if args.variants is not None else {}))
    failed = 0
    for n, query in enumerate(queries):
        try:
            result = eng.search(query, k=args.top_k, measure=args.measure, normalize=not args.no_normalize)
        except UserError as err:
            if len(queries) == 1:
                raise
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps(result.as_dict()), flush=True)
            continue
        for w in result.query.warnings:
            print(f"note: {query}: {w}" if len(queries) > 1 else f"note: {w}", file=sys.stderr)
        if len(queries) > 1:
            print(f"{'' if n == 0 else chr(10)}query: {query}")
        print(f"{'rank':>4}  {'score':>7}  {'match':<36}  id")
        for m in result.matches:
            s = m.span
            more = f"  (+{len(m.segments) - 1} more segments)" if len(m.segments) > 1 else ""
            print(f"{m.rank:>4}  {m.score:7.4f}  {span_text(s.query_start, s.query_end, s.start, s.end, 1):<36}  {m.id}{more}")
    if failed:
        print(f"error: {failed} of {len(queries)} queries could not be searched (above)", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------------- embed
def arguments_embed(p: argparse.ArgumentParser) -> None:
    p.description = ("Embed one video with a model and print its sampled frame times (s) and the "
                     "attention each frame receives.")
    p.add_argument("video", metavar="VIDEO", type=Path)
    p.add_argument("--json", action="store_true",
                   help='print {"times", "attention", "step", "duration", "warnings"} as JSON')
    p.add_argument("--out", type=Path, help="also write the embeddings to this .npz "
                                            "(times, frames [T, d], video [d], attention)")
    add_model_flags(p)


def run_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from .api import Engine
    from .files import atomic_write

    eng = Engine(model=args.model, backbone=args.backbone, backbone_weights=args.backbone_weights,
                 device=args.device, precision=args.precision)
    e = eng.embed(args.video, variants=())
    if args.out:
        with atomic_write(args.out) as tmp:
            np.savez(tmp, times=e.times, frames=e.frames, video=e.video, attention=e.attention)
    if args.json:
        print(json.dumps({"times": [round(float(t), 3) for t in e.times],
                          "attention": [round(float(a), 6) for a in e.attention],
                          "step": e.step, "duration": round(e.duration, 3), "warnings": e.warnings}))
        return 0
    for w in e.warnings:
        print(f"note: {w}", file=sys.stderr)
    print(f"{args.video}: {e.num_frames} frames over {e.duration:.1f} s, {e.frames.shape[1]}-d, model {eng.model.name}")
    share = e.attention * e.num_frames
    print(f"attention received, relative to uniform: min {share.min():.3f}, max {share.max():.3f}")
    return 0


# ---------------------------------------------------------------------- info
def arguments_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("index_dir", metavar="INDEX_DIR", type=Path)


def run_info(args: argparse.Namespace) -> int:
    from .api import open_index
    from .codec import FLOAT16

    idx = open_index(args.index_dir)
    m = idx.manifest
    total = sum(r.duration for r in idx.records)
    print(f"{args.index_dir}: {len(idx)} videos, {idx.num_frames} frames, {total / 60:.1f} min of video")
    print(f"backbone {m['backbone']} ({m['pooling']}), model {m['model_id'][:16]} "
          f"({m.get('model_path') or 'builtin'}), dim {m['dim']}, {m['sample_fps']:g} fps, FAISS {m.get('faiss')}")
    others = m.get("codecs", {})
    also = f" (+ {len(others)} more codec(s) for footage unlike its sample)" if others else ""
    apart = sum(s.f for s in idx.segments if s.entry.get("codec") == FLOAT16)
    also += f"; {apart} frames of such footage in float16 until a codec is trained on them" if apart else ""
    print(f"format {m['format_version']}, {len(idx.segments)} segment(s), frames stored as {idx.codec.spec}{also}")
    print(f"text on the frames: read with model {idx.text_model}" if idx.text_model
          else "text on the frames: not read (built --no-text, without Tesseract or before text was kept)")
    if total:
        print(f"{idx.bytes_on_disk / (total / 60) / 1024:.1f} KiB per indexed minute (all index files)")
    return 0


# ---------------------------------------------------------------------- dispatch
def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s arguments are declared (none when None: the list of
    commands is all `--help` needs)."""
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Near-duplicate video search with Temporal Context Aggregation (TCA). "
                    "Index a folder of videos once, then search it with a clip.",
        epilog="Example: python -m engine index ~/Videos my_index && "
               "python -m engine search my_index clip.mp4 --top-k 5",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            getattr(importlib.import_module(module), f"arguments_{name.replace('-', '_')}")(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    run = getattr(importlib.import_module(COMMANDS[args.command][0]), f"run_{args.command.replace('-', '_')}")
    try:
        return run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
