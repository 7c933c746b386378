"""`python -m engine evaluate ...` (see engine/cli.py for the dispatch)."""
from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import tempfile
from pathlib import Path

from ..cli import MEASURES, add_model_flags
from .benchmarks import BenchmarkName


def arguments_evaluate(p: argparse.ArgumentParser) -> None:
    p.description = ("Score every query of a benchmark against its database with each similarity "
                     "measure and print the benchmark's metrics.")
    p.add_argument("benchmark", choices=[b.value for b in BenchmarkName])
    p.add_argument("annotations", type=Path, help="the benchmark's annotation file (folder for EVVE)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", type=Path, help="folder of the videos (ids are paths relative to it)")
    src.add_argument("--features", type=Path, help="frame features by video id (.npz or HDF5)")
    p.add_argument("--cache", type=Path, help="with --videos: keep computed features here (.npz) and reuse them")
    p.add_argument("--fps", type=float,
                   help="with --videos: frames sampled per second, as `index --fps` (default 1)")
    p.add_argument("--subset", type=Path, help='FIVR-5K (or any subset): JSON {"queries": [...], "database": [...]}')
    p.add_argument("--no-tca", action="store_true", help="evaluate the model without its TCA (mean pooling)")
    p.add_argument("--measure", action="append", choices=MEASURES, help="repeatable; default: all three")
    p.add_argument("--no-normalize", action="store_true",
                   help="compare raw cosines (no corpus-aware background subtraction)")
    p.add_argument("--pooling", choices=["engine", "model", "distinctive"], default="engine",
                   help="video vectors (corpus-aware cosine): as an index searches ('engine': a model without "
                        "TCA pools its frames by how distinctive each is in the database, (1 - its "
                        "background)^3, as does a TCA trained with --pooling distinctive; another TCA model uses its own), "
                        "the model's own (mean pooling without "
                        "TCA), or distinctive pooling of any model's frames")
    p.add_argument("--inner-pictures", action="store_true",
                   help="with --videos: database videos also get their inner pictures (picture-in-picture "
                        "boxes, side-by-side halves, vertical bands), as `index` stores them by default; "
                        "their descriptors are cached beside --cache as CACHE.pictures.npz")
    p.add_argument("--query-variants", nargs="?", const="default", metavar="NAMES",
                   help="with --videos: queries also described as `search` describes them, greyscale and "
                        "low-detail (engine.variants; or the comma-separated NAMES), each query frame "
                        "counting with its best look; cached beside --cache as CACHE.variants.NAMES.npz")
    p.add_argument("--no-cuts", action="store_true",
                   help="with --videos: segments end on samples instead of being placed by the videos' "
                        "hard cuts and brightness, as a search's are (found by a decode of the database "
                        "videos and queries, cached beside --cache as CACHE.cuts.json)")
    p.add_argument("--no-text", action="store_true",
                   help="do not read the words on the frames (default with --videos, as search does where "
                        "Tesseract is installed: the frame matches of two frames whose texts disagree, a "
                        "look-alike slide with other words, are lowered; engine.text; cached beside --cache "
                        "as CACHE.text.npz)")
    p.add_argument("--localiser", choices=["tn", "sw"], default="tn",
                   help="segment localiser for span metrics: Temporal Network (default) or Smith-Waterman")
    p.add_argument("--codec", metavar="SPEC",
                   help="store the database frames as an index would: a codec of this FAISS spec (e.g. "
                        "PCAR1088,SQ4, the index default for the default model) trained on the first 4096 frames; "
                        "queries stay float32")
    p.add_argument("--through-index", nargs="?", type=int, const=100, metavar="CANDIDATES",
                   help="rank each query as a search does: build a real index of the database (its codec, "
                        "backgrounds and frame indexes) in a temporary folder and keep what its search "
                        "returns (top CANDIDATES, default 100); the rest rank last")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--results", type=Path, metavar="FILE",
                   help="also record the numbers in this results file (e.g. assets/results.json, "
                        "which the demo's About panel shows)")
    p.add_argument("--label", help="the row's name in --results (default: 'TCA' or 'no TCA')")
    add_model_flags(p, backbone=False)


def coded_database(embs: dict, database: list[str], queries: set[str], spec: str) -> dict:
    """The embeddings with every database video's frames and video vector passed through
    a codec trained, as an index trains it, on the first TRAIN_FRAMES database frames."""
    import numpy as np

    from ..codec import TRAIN_FRAMES, Codec

    ids = [v for v in database if v in embs and v not in queries]
    # trained on the first frames of the database, then of the queries (an index holding
    # both would see them), so that a small benchmark has enough frames for the PCA
    order = ids + sorted(v for v in embs if v not in set(ids))
    codec = Codec.train(spec, np.concatenate([embs[v][0] for v in order])[:TRAIN_FRAMES])
    out = dict(embs)
    for v in ids:
        frames, video = embs[v]
        out[v] = (codec.decode(codec.encode(frames)), codec.decode(codec.encode(video.reshape(1, -1)))[0])
    return out


def described_by(embedder, weights) -> str:
    """What makes an evaluation's cached features: the CNN, its weights, its number format
    and the sampling rate (a cache extended by another would mix two kinds of descriptor)."""
    enc = embedder.encoder
    return (f"{enc.name.value} {enc.pooling.value} ({weights or 'packaged weights'}"
            + (f", tuned {enc.tuned_id}" if enc.tuned_id else "") + "), "
            f"{enc.precision_name}, {embedder.fps:g} fps"
            + (f", {enc.layout_side}x{enc.layout_side} layout" if enc.layout_side else ""))


def attention_share(bench, bundle, feats: dict, device: str, fps: float, encoder=None,
                    weights=None, shares: dict | None = None) -> dict[str, float]:
    """The benchmark's `attention_share` for the bundle's TCA (or for `shares`, {id: [T]}
    summing to 1 per video), black frames found by the backbone's descriptor of a black
    image (`encoder`: the backbone already loaded, if any)."""
    import numpy as np

    from ..backbone import load_backbone
    from .features import attention_of, black_frames

    encoder = encoder or load_backbone(bundle.backbone, weights, bundle.pooling, device, tuned=bundle.cnn)
    black = encoder.describe(np.zeros((1, 224, 224, 3), np.uint8))[0]
    black = black[: len(black) - encoder.layout_side ** 2]  # the CNN's part: layouts are not compared here
    uploads = [v for v, lab in bench.videos.items() if lab["kind"] == "upload"]
    cnn = {v: feats[v][:, : feats[v].shape[1] - bundle.layout_dim] for v in uploads if v in feats}
    return bench.attention_share(shares if shares is not None else attention_of(bundle, feats, uploads, device),
                                 black_frames(cnn, black), fps)


def read_texts(args: argparse.Namespace, ids: list[str], fps: float, max_duration: float | None) -> dict:
    """{id: float32 [T, k]} text sketches of each video's samples (`engine.text`), cached
    beside --cache as CACHE.text.npz."""
    import numpy as np

    from ..text import CONFIDENCE, READ_SIDE, SKETCH, TextReader, model_identity
    from ..video import iter_frames
    from .features import extract_features

    reader = TextReader()
    try:
        cache = args.cache.with_suffix(".text.npz") if args.cache else None
        made_by = (f"text at {fps:g} fps, {READ_SIDE} px, {SKETCH} bigram hashes at {CONFIDENCE:g}% a frame, "
                   f"model {model_identity()}")
        return extract_features(args.videos, ids, lambda p: reader.sketches(
            img for _, img in iter_frames(p, fps, short_side=READ_SIDE, crop=None, max_duration=max_duration)),
            cache, made_by, np.float32)  # 24-bit hashes: float16 would lose them
    finally:
        reader.close()


def run_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import text as frame_text
    from ..api import resolve_model
    from ..cli import UsageError
    from ..embedding import Embedder
    from ..indexing import scan_folder
    from ..results import record_results
    from .benchmarks import load_benchmark
    from ..variants import DEFAULT_VARIANTS, parse_variants
    from .features import (embed_features, extract_cuts_and_profiles, extract_features, load_features,
                           with_variants)
    from .score import Database, evaluate, similarities

    if args.through_index is not None and args.through_index < 1:
        raise UsageError(f"--through-index {args.through_index}: a search returns at least 1 video (default 100)")
    if args.fps is not None and not args.fps > 0:
        raise UsageError(f"--fps {args.fps:g}: frames sampled per second must be above 0 (default 1)")
    if args.fps is not None and args.features:
        raise UsageError("--fps needs --videos (feature files are read as they were sampled, 1 per second)")
    if args.through_index and args.codec:
        raise UsageError("--through-index stores the database with the index's own codec; drop --codec")
    bench = load_benchmark(args.benchmark, args.annotations, args.subset)
    # A benchmark without its own database list ranks every video there is.
    wanted = sorted(set(bench.queries) | set(bench.database)) if bench.database else []
    bundle, _ = resolve_model(args.model)
    fps = 1.0  # feature files: one frame per second, as the paper's released features
    embedder = None
    if args.features:
        feats = load_features(args.features, wanted or None)
    else:
        embedder = Embedder(bundle, args.backbone_weights, args.device, args.fps or 1.0, precision=args.precision)
        fps = float(embedder.fps)
        made_by = described_by(embedder, args.backbone_weights)
        if not wanted:
            wanted = [str(p.relative_to(args.videos)) for p in scan_folder(args.videos)]
        feats = extract_features(args.videos, wanted, lambda p: embedder.descriptors(p)[1], args.cache, made_by)
    missing = len(set(wanted) - set(feats))
    embs = embed_features(bundle, feats, args.device, use_tca=not args.no_tca)
    # every video that is ranked (a benchmark without a database list ranks all, queries too),
    # and the queries that are not among them
    ranked = [v for v in (bench.database or sorted(embs)) if v in embs]
    ranked_set = set(ranked)
    unranked_queries = [q for q in bench.queries if q in embs and q not in ranked_set]
    pictures = None
    if args.inner_pictures:
        if embedder is None:
            raise UsageError("--inner-pictures needs --videos (the pictures are found in the frames)")
        from ..embedding import embed_pictures

        cache = args.cache.with_suffix(".pictures.npz") if args.cache else None
        step = 1.0 / fps
        pic_feats = extract_features(args.videos, ranked, lambda p: embedder.picture_descriptors(
            p, np.arange(len(feats[str(p.relative_to(args.videos))])) * step), cache, made_by)
        pictures = {v: embed_pictures(bundle, x, args.device, not args.no_tca) for v, x in pic_feats.items()}
    cuts = profiles = None
    if embedder is not None and not args.no_cuts and hasattr(bench, "evaluate_segments"):
        from ..cuts import PROFILE
        from ..video import cuts_and_profile

        cache = args.cache.with_suffix(".cuts.json") if args.cache else None
        cuts, profiles = extract_cuts_and_profiles(
            args.videos, ranked + unranked_queries, lambda p: cuts_and_profile(p, fps, embedder.max_duration),
            cache, f"at {fps:g} fps, {PROFILE} brightness values a sample")
    texts = None
    read_text = embedder is not None and not args.no_text
    if read_text and not frame_text.available():
        print(f"note: the text on the frames is not read ({frame_text.unavailable_reason()}), as a search on "
              "this machine would not read it", file=sys.stderr)
        read_text = False
    if read_text:
        texts = read_texts(args, ranked + unranked_queries, fps, embedder.max_duration)
    if args.codec:
        embs = coded_database(embs, bench.database or sorted(embs), set(bench.queries), args.codec)
    # backgrounds once; a model without TCA pools by distinctiveness, as its index does
    distinctive = args.pooling == "distinctive" or (args.pooling == "engine" and (bundle.distinctive or args.no_tca))
    db = Database.of(embs, bench.database or sorted(embs), not args.no_normalize, pictures, distinctive, fps,
                     bundle.layout_dim, texts)
    variants = ()
    if args.query_variants:
        if embedder is None:
            raise UsageError("--query-variants needs --videos (the variants are made from the frames)")
        variants = DEFAULT_VARIANTS if args.query_variants == "default" else parse_variants(args.query_variants)
        cache = args.cache.with_suffix(".variants." + "-".join(v.value for v in variants) + ".npz") if args.cache else None
        var_feats = extract_features(args.videos, [q for q in bench.queries if q in embs],
                                     lambda p: embedder.variant_descriptors(p, variants)[2], cache, made_by)
        embs = with_variants(embs, var_feats, bundle, args.device, not args.no_tca)
    with contextlib.ExitStack() as stack:
        index = None
        if args.through_index:
            from .through_index import build_index

            where = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="evaluate-index-")))
            index = build_index(db, where / "index", fps, tca=bundle.tca is not None and not args.no_tca,
                                distinctive=distinctive)
        results = evaluate(bench, embs, args.measure or list(MEASURES), not args.no_normalize, args.localiser,
                           fps, db, index, args.through_index or 100, cuts, profiles)
    model_name = bundle.name + (" without TCA" if args.no_tca else "")
    if args.no_normalize:
        model_name += ", raw cosine"
    if args.codec:
        model_name += f", database stored as {args.codec}"
    if args.through_index:
        model_name += f", ranked through a real index (top {args.through_index})"
    if distinctive and not args.no_normalize:
        model_name += ", video vectors pooled by distinctiveness"
    elif args.pooling == "model":
        model_name += ", the model's own video vectors"
    if args.no_cuts:
        model_name += ", segments ending on samples (no cuts)"
    if texts is not None:
        model_name += ", frames whose texts disagree lowered"
    if args.inner_pictures:
        model_name += ", with inner pictures"
    if variants:
        model_name += ", queries with variants " + ",".join(v.value for v in variants)
    edits = {}
    if hasattr(bench, "attention_share") and bundle.tca is not None and not args.no_tca:
        attention = attention_share(bench, bundle, feats, args.device, fps,
                                    embedder.encoder if embedder else None, args.backbone_weights)
        for r in results.values():
            r.update(attention)
    elif hasattr(bench, "attention_share") and db.pooled is not None and not args.features:
        from ..background import distinctiveness

        # what the heat strips show without TCA: each upload's frame weights in its video vector
        shares = {v: distinctiveness(db.frame_bg[slice(*db.whole_rows(i))]) for i, v in enumerate(db.ids)}
        got = attention_share(bench, bundle, feats, args.device, fps, embedder.encoder, args.backbone_weights, shares)
        for r in results.values():
            r.update({k.replace("attention", "distinctiveness"): x for k, x in got.items()})
    if hasattr(bench, "edit_table"):
        measure = "chamfer" if "chamfer" in (args.measure or list(MEASURES)) else args.measure[0]
        edits = bench.edit_table(similarities(embs, bench.queries, db, measure), "test")
    if args.results:
        label = args.label or ("TCA" if bundle.tca is not None and not args.no_tca else "no TCA")
        record_results(args.results, ["quality", bench.name, "models", label],
                       {"model": model_name, "metrics": results,
                        "command": "python -m engine " + shlex.join(sys.argv[1:] if sys.argv[1:2] == ["evaluate"]
                                                                    else ["evaluate", args.benchmark])})
    if args.json:
        print(json.dumps({"benchmark": bench.name, "model": model_name, "missing": missing, "results": results,
                          **({"edits_test": edits} if edits else {})}))
        return 0
    print(f"{bench.name}: {len(feats)} videos with features ({missing} missing), model {model_name}")
    metrics = sorted({k for r in results.values() for k in r})
    if len(metrics) <= 8:
        print(f"{'measure':<18}" + "".join(f"{k:>10}" for k in metrics))
        for measure, r in results.items():
            print(f"{measure:<18}" + "".join(f"{r.get(k, float('nan')):>10.4f}" if k != "queries"
                                             else f"{int(r[k]):>10d}" for k in metrics))
    else:  # many metrics: one row each, a column per measure
        print(f"{'metric':<22}" + "".join(f"{m:>19}" for m in results))
        for k in metrics:
            print(f"{k:<22}" + "".join(f"{r.get(k, float('nan')):>19.4f}" for r in results.values()))
    if edits:
        print(f"test pairs in the top 10 by {measure}:")
        for key, (hit, total) in edits.items():
            print(f"  {key:<22}{hit:>4} of {total}")
    return 0
