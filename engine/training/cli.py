"""`python -m engine pca ...` and `python -m engine train ...` (see engine/cli.py for the dispatch)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from ..cli import UsageError, add_model_flags, read_list
from ..layout import Layout
from .config import Loss, TrainConfig

FLAG_HELP = {
    "dim": "PCA output / TCA width", "bank": "memory bank size (0: in-batch negatives only)",
    "steps": "optimiser steps", "batch": "instances per step", "lr": "Adam learning rate",
    "temperature": "InfoNCE temperature", "frame_weight": "weight of the frame-level chamfer loss",
    "match_weight": "weight of the frame-to-frame loss on matching moments (self-supervised)",
    "views": "spatial views per video", "clip_frames": "longest training window (frames)",
    "dropout": "TCA dropout",
    "input_scale": "TCA input multiplier; sqrt(dim) lets attention move off uniform (tca.py)",
    "hard_fraction": "--pairs: share of extra negatives that are the anchor's hard negatives",
    "pca_shrinkage": "PCA whitening shrinkage, a fraction of the mean eigenvalue (0 = full)",
    "seed": "random seed (runs are deterministic)",
}


def arguments_tune_cnn(p: argparse.ArgumentParser) -> None:
    p.description = ("Tune the last stages of the frame CNN (efficientnet-lite0) for copies on the uploads "
                     "of a collection (python -m engine.evaluation.collection build), SSCD-style, and write "
                     "the tuned layers to OUT (.safetensors). Then fit the whitening on them: "
                     "python -m engine pca ... --cnn OUT (the model bundle carries them).")
    p.add_argument("labels", metavar="LABELS", type=Path, help="the collection's labels.json")
    p.add_argument("out", metavar="OUT", type=Path)
    p.add_argument("--steps", type=int, default=600, help="optimiser steps (default 600: ~30 min on 2 CPU cores)")
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4)")
    p.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature (default 0.05)")
    p.add_argument("--channels", type=int, default=8, help="channels in a batch (default 8)")
    p.add_argument("--per-channel", type=int, default=6, help="uploads of each channel in a batch (default 6)")
    p.add_argument("--seed", type=int, default=0, help="random seed (runs are deterministic)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def run_tune_cnn(args: argparse.Namespace) -> int:
    from safetensors.numpy import save_file

    from ..backbone import load_backbone
    from ..files import atomic_write
    from .cnn import tune_collection

    if args.steps < 1 or args.lr <= 0 or args.temperature <= 0 or args.channels < 1 or args.per_channel < 1:
        raise UsageError("--steps, --lr, --temperature, --channels and --per-channel must be positive")
    videos = read_collection_labels(args.labels)
    # float32 whatever the CPU: the optimiser's small steps would vanish in bfloat16
    encoder = load_backbone("efficientnet-lite0", None, device=args.device, precision="float32")
    try:
        tensors, info = tune_collection(encoder, videos, args.labels.parent, steps=args.steps, lr=args.lr,
                                        temperature=args.temperature, channels=args.channels,
                                        per_channel=args.per_channel, seed=args.seed)
    except ValueError as err:
        raise UsageError(f"{args.labels}: {err}") from err
    made_by = (f"python -m engine tune-cnn {args.labels} OUT --steps {args.steps} --lr {args.lr:g} "
               f"--temperature {args.temperature:g} --channels {args.channels} --per-channel {args.per_channel} "
               f"--seed {args.seed}")
    with atomic_write(args.out) as tmp:
        save_file(tensors, str(tmp), metadata={"made_by": made_by, "info": json.dumps(info)})
    print(f"wrote {args.out}: {len(tensors)} tensors of efficientnet-lite0's last stages, tuned on "
          f"{info['frames']} frames of {info['uploads']} uploads in {info['seconds']} s "
          f"(final loss {info['final_loss']:.3f})")
    return 0


def read_collection_labels(path: Path) -> dict[str, dict]:
    """The "videos" of a collection's labels.json (`python -m engine.evaluation.collection
    build`), checked before minutes of decoding: every copy's segments name a source and two
    [start, end] spans. A file that is not one is a UsageError naming it."""
    try:
        videos = json.loads(path.read_text())["videos"]
        for lab in videos.values():
            for seg in lab.get("segments", ()) if lab.get("kind") == "copy" else ():
                str(seg["source"]), [float(t) for t in (*seg["source_span"], *seg["span"])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(f"{path}: not a collection's labels.json ({type(err).__name__}: {err}); "
                         "make one with python -m engine.evaluation.collection build") from None
    return videos


def read_tuned_cnn(path: Path) -> tuple[dict, str]:
    """The tensors and the made_by line of a `tune-cnn` file."""
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), framework="numpy") as f:
            made_by = (f.metadata() or {}).get("made_by", "")
        return load_file(str(path)), made_by
    except (SafetensorError, OSError, ValueError) as err:
        raise UsageError(f"{path}: not a tuned CNN file ({err}); make one with python -m engine tune-cnn") from None


def arguments_pca(p: argparse.ArgumentParser) -> None:
    p.description = ("Fit the PCA whitening of frame descriptors on the videos under VIDEO_DIR (one "
                     "folder or several) and write a model bundle (no TCA) to OUT.")
    p.add_argument("video_dirs", metavar="VIDEO_DIR", type=Path, nargs="+")
    p.add_argument("out", metavar="OUT", type=Path)
    p.add_argument("--dim", type=int, default=1024, help="output dimensions (default 1024)")
    p.add_argument("--shrinkage", type=float, default=0.1,
                   help="eigenvalue shrinkage, fraction of the mean eigenvalue (default 0.1)")
    p.add_argument("--copies", type=Path, metavar="LABELS",
                   help="a collection's labels.json (engine.evaluation.collection build) whose videos lie "
                        "under one VIDEO_DIR: learn the whitening from its copies and their sources "
                        "(engine.training.whitening)")
    p.add_argument("--copy-shrinkage", type=float, default=0.1,
                   help="--copies/--augment: shrinkage of the differences' covariance (default 0.1)")
    p.add_argument("--data-shrinkage", type=float, default=1.0,
                   help="--copies/--augment: shrinkage of the frames' covariance after it (default 1)")
    p.add_argument("--augment", type=int, default=0, metavar="VIEWS",
                   help="learn the whitening also from VIEWS spatially edited versions (crop, flip, colour, "
                        "blur, noise, overlays...) of every video that is not a --copies copy; needs no labels "
                        "(default 0: none)")
    p.add_argument("--augment-fps", type=float, default=0.5,
                   help="--augment: frames per second of the edited versions (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="--augment: random seed of the edits (default 0)")
    p.add_argument("--fps", type=float, default=1.0,
                   help="frames sampled per second for the fit (default 1, the engine's rate)")
    p.add_argument("--layout", type=int, default=Layout.side, metavar="SIDE",
                   help=f"each frame embedding also holds the frame's grey SIDE x SIDE thumbnail (engine.layout; "
                        f"default {Layout.side}, 0: the CNN's embedding alone)")
    p.add_argument("--layout-weight", type=float, default=Layout.weight, metavar="W",
                   help=f"--layout: the thumbnail's share of two frames' similarity, 0 to 1 (default {Layout.weight})")
    p.add_argument("--cnn", type=Path, metavar="TUNED",
                   help="describe the frames with the CNN layers tuned by python -m engine tune-cnn; "
                        "the model bundle carries them")
    add_model_flags(p, model=False, backbone_default="efficientnet-lite0")


def run_pca(args: argparse.Namespace) -> int:
    import numpy as np

    from ..embedding import Embedder
    from ..indexing import scan_folder
    from ..model import ModelBundle, builtin_model, save_model
    from ..pca import fit_pca
    from ..video import VideoError

    if args.fps <= 0 or args.augment_fps <= 0 or args.augment < 0:
        raise UsageError(f"--fps ({args.fps:g}) and --augment-fps ({args.augment_fps:g}) must be positive and "
                         f"--augment ({args.augment}) 0 or more")
    if not 0 <= args.layout <= 32 or not 0 < args.layout_weight < 1:
        raise UsageError(f"--layout {args.layout} must be 0 (none) to 32 and --layout-weight "
                         f"{args.layout_weight:g} between 0 and 1")
    paths = []
    for folder in args.video_dirs:  # every folder checked before minutes of decoding
        found = scan_folder(folder) if folder.is_dir() else []
        if not found:
            raise UsageError(f"{folder}: no video found (is it a folder of videos?)")
        paths += found
    folders = " ".join(map(str, args.video_dirs))
    videos = {}
    if args.copies:
        videos = read_collection_labels(args.copies)
    base, tuned_by = builtin_model(args.backbone), ""
    if args.cnn:
        if base.backbone.value != "efficientnet-lite0":
            raise UsageError(f"--cnn: tune-cnn tunes efficientnet-lite0, not {base.backbone.value}")
        tuned, tuned_by = read_tuned_cnn(args.cnn)
        base = replace(base, cnn=tuned)
    embedder = Embedder(base, args.backbone_weights, args.device, fps=args.fps, precision=args.precision)
    descs = {}
    for path in paths:
        try:
            descs[path] = embedder.descriptors(path)[1]
        except VideoError as err:
            print(f"skipped {err}", file=sys.stderr)
    if not descs:
        raise UsageError(f"{folders}: no readable video found")
    x = np.concatenate(list(descs.values()))
    pca = fit_pca(x, args.dim, args.shrinkage)
    made_by = f"python -m engine pca {folders} OUT --dim {args.dim} --shrinkage {args.shrinkage}"
    info = {"pca_frames": len(x), "pca_videos": len(descs), "shrinkage": args.shrinkage}
    if args.cnn:
        made_by += f" --cnn {args.cnn}"
        info["cnn_made_by"] = tuned_by
    if args.fps != 1.0:
        made_by += f" --fps {args.fps}"
    pairs = []
    # each file's id in the labels: its path under the labels' folder
    root = args.copies.resolve().parent if args.copies else None
    label_ids = {p: str(p.resolve().relative_to(root)) for p in descs if root and p.resolve().is_relative_to(root)}
    if args.copies:
        from .whitening import copy_pairs

        copies, sources = copy_pairs(videos, {label_ids[p]: d for p, d in descs.items() if p in label_ids}, args.fps)
        if len(copies) < 2:
            raise UsageError(f"{args.copies}: no copy with its source among the videos found under {folders} "
                             "(the labels' videos must lie under one VIDEO_DIR)")
        pairs.append((copies, sources))
        made_by += f" --copies {args.copies}"
        info["copy_pairs"] = len(copies)
    if args.augment > 0:
        from .whitening import augmented_pairs

        originals = [p for p in descs if videos.get(label_ids.get(p), {}).get("kind") != "copy"]
        edited, clean = augmented_pairs(embedder.encoder, originals, args.augment, args.augment_fps, args.seed)
        if len(edited) < 2:
            raise UsageError(f"{folders}: --augment found no frames to edit at {args.augment_fps} fps "
                             "(videos too short? raise --augment-fps)")
        pairs.append((edited, clean))
        made_by += f" --augment {args.augment} --augment-fps {args.augment_fps} --seed {args.seed}"
        info.update({"augmented_pairs": len(edited), "augment_views": args.augment,
                     "augment_fps": args.augment_fps, "seed": args.seed})
    if pairs:
        from .whitening import fit_learned_whitening

        pca = fit_learned_whitening(pca, x, pairs, args.copy_shrinkage, args.data_shrinkage)
        made_by += f" --copy-shrinkage {args.copy_shrinkage} --data-shrinkage {args.data_shrinkage}"
        info.update({"copy_shrinkage": args.copy_shrinkage, "data_shrinkage": args.data_shrinkage})
    layout = Layout(args.layout, args.layout_weight) if args.layout else None
    if layout is not None:
        made_by += f" --layout {layout.side} --layout-weight {layout.weight:g}"
    else:
        made_by += " --layout 0"
    bundle = ModelBundle(embedder.bundle.backbone, embedder.bundle.pooling, pca, None, {"made_by": made_by, **info},
                         layout=layout, cnn=base.cnn)
    sha = save_model(bundle, args.out)
    learned = " and ".join(f"{info[k]} {k.replace('_', ' ')}" for k in ("copy_pairs", "augmented_pairs") if k in info)
    print(f"wrote {args.out}: PCA {pca.dim_in} -> {pca.dim}{f' and a {layout.side}x{layout.side} layout' if layout else ''} "
          f"on {len(x)} frames of {len(descs)} videos"
          f"{', learned from ' + learned if learned else ''} "
          f"(sha256 {sha[:12]})")
    return 0


def arguments_train(p: argparse.ArgumentParser) -> None:
    p.description = ("Train the PCA whitening and a TCA on the videos under VIDEO_DIR and write a model "
                     "bundle to --out. Self-supervised by default (no labels); --pairs trains on "
                     "labelled positive pairs.")
    p.add_argument("video_dir", metavar="VIDEO_DIR", type=Path)
    p.add_argument("--out", type=Path, required=True, help="model bundle to write (.safetensors)")
    p.add_argument("--list", type=Path, help="train only on these videos: a text file of ids "
                                             "(paths relative to VIDEO_DIR), one per line")
    p.add_argument("--pairs", type=Path, help='supervised: JSON {"pairs": [[id, id], ...], '
                                              '"distractors": [id, ...]}, or a collection\'s labels.json '
                                              '(python -m engine.evaluation.collection build DIR --rename)')
    p.add_argument("--loss", choices=[x.value for x in Loss], default=TrainConfig.loss.value)
    p.add_argument("--pooling", choices=["mean", "attention", "distinctive"], default=TrainConfig.pooling,
                   help="TCA video vector: mean of the refined frames, weighted by the attention each "
                        "receives, or by how distinctive each is in the collection (as an index without TCA "
                        "pools; measured within the training videos here, within the index when searching) "
                        f"(default {TrainConfig.pooling})")
    p.add_argument("--whitening", type=Path, metavar="MODEL",
                   help="keep this model bundle's whitening (e.g. assets/model.safetensors, learned from "
                        "copies) and its backbone instead of fitting a PCA on the training videos; --dim "
                        "and --backbone are then the model's")
    for name, help_ in FLAG_HELP.items():
        default = getattr(TrainConfig, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default,
                       help=f"{help_} (default {default})")
    p.add_argument("--identity-init", action="store_true",
                   help="start the transformer at the identity (zeroed residual outputs), so training "
                        "only adds context where it helps")
    p.add_argument("--attention-only", action="store_true",
                   help="start at the identity and train only the attention's query and key projections: the "
                        "frames stay as they came, the video vector is what the attention makes of them "
                        "(with --pooling attention)")
    p.add_argument("--context-only", action="store_true",
                   help="start at the identity and train only the attention (query, key, value and output "
                        "projections): each frame gains what the rest of its video adds, the feed-forward "
                        "stays the identity, so the frame space is not learned anew")
    p.add_argument("--views-cache", type=Path, help="keep the CNN descriptors of the views here (.npz) "
                                                     "and reuse them while the videos and settings match")
    add_model_flags(p, model=False, backbone_default="efficientnet-lite0")


def _train_paths(args: argparse.Namespace) -> list[Path]:
    from ..indexing import scan_folder

    if args.list:
        paths = [args.video_dir / i for i in read_list(args.list)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise UsageError(f"{args.list}: {len(missing)} listed videos not found, e.g. {missing[0]}")
    elif args.video_dir.is_dir():
        paths = scan_folder(args.video_dir)
    else:
        raise UsageError(f"{args.video_dir}: not a folder; give the folder that holds your videos")
    if len(paths) < 2:
        raise UsageError(f"{args.video_dir}: training needs at least 2 videos, found {len(paths)}")
    return paths


def run_train(args: argparse.Namespace) -> int:
    from ..backbone import load_backbone
    from ..model import builtin_model, load_model
    from .loop import train, train_pairs

    cfg = TrainConfig(**{k: getattr(args, k) for k in FLAG_HELP}, identity_init=args.identity_init,
                      attention_only=args.attention_only, context_only=args.context_only, loss=Loss(args.loss),
                      pooling=args.pooling)
    if cfg.input_scale <= 0:
        raise UsageError(f"--input-scale must be positive, not {cfg.input_scale}")
    if not 0 <= cfg.hard_fraction <= 1:
        raise UsageError(f"--hard-fraction is a share of the negatives, 0 to 1, not {cfg.hard_fraction}")
    if cfg.attention_only and cfg.pooling != "attention":
        raise UsageError("--attention-only needs --pooling attention (with mean pooling the attention "
                         "changes nothing a loss can see, so nothing would be trained)")
    if cfg.attention_only and cfg.context_only:
        raise UsageError("--attention-only and --context-only choose different parts to train: give one")
    base = builtin_model(args.backbone)
    if args.whitening:
        base = load_model(args.whitening).without_tca()
        if base.pca is None:
            raise UsageError(f"{args.whitening}: this model has no whitening to keep (the builtin baseline?); "
                             "make one with python -m engine pca")
        cfg = TrainConfig(**{**asdict(cfg), "dim": base.pca.dim, "whitening": str(args.whitening)})
    if cfg.dim % cfg.heads:
        raise UsageError(f"{'the whitening of ' + str(args.whitening) if args.whitening else '--dim'} gives "
                         f"{cfg.dim} dimensions, which {cfg.heads} attention heads cannot share: use a multiple "
                         f"of {cfg.heads}")
    encoder = load_backbone(base.backbone, args.backbone_weights, base.pooling, args.device, args.precision,
                            tuned=base.cnn)
    try:
        if args.pairs:
            bundle = train_pairs(args.video_dir, args.pairs, args.out, encoder, base, cfg,
                                 backbone_weights=args.backbone_weights, views_cache=args.views_cache, pca=base.pca)
        else:
            bundle = train(_train_paths(args), args.out, encoder, base, cfg, args.views_cache,
                           backbone_weights=args.backbone_weights, pca=base.pca)
    except ValueError as err:  # a pairs file that names missing videos; too little readable footage
        raise UsageError(str(err)) from err
    print(f"wrote {args.out}: {bundle.name}, {bundle.info.get('videos')} videos, "
          f"{cfg.steps} steps in {bundle.info.get('seconds')} s, final loss {bundle.info.get('final_loss', 0):.3f}")
    return 0
