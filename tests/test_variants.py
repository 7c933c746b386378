"""Query variants: a query is also described greyscale and low-detail, so a greyscale,
heavily degraded copy ranks above look-alikes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import media
from conftest import ROOT
from engine import TCA_MODEL, Engine
from engine.similarity import VARIANT_MARGIN, chamfer_many, cosine, frame_similarity
from engine.variants import DEFAULT_VARIANTS, Variant, VariantError, apply_variant, parse_variants

SIZE = (320, 180)


def degrade(frames: list[np.ndarray]) -> list[np.ndarray]:
    """A greyscale re-upload at a quarter of the size (scaled back up): what variants are for."""
    from PIL import Image

    out = []
    for f in frames:
        g = np.repeat((f.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)[..., None], 3, 2)
        small = Image.fromarray(g).resize((SIZE[0] // 4, SIZE[1] // 4), Image.BILINEAR)
        out.append(np.asarray(small.resize(SIZE, Image.BILINEAR)))
    return out


def test_variants_change_what_they_say_and_nothing_else():
    rng = np.random.default_rng(0)
    img = np.repeat(np.repeat(rng.integers(0, 256, (2, 24, 32, 3), dtype=np.uint8), 2, axis=1), 2, axis=2)
    grey = apply_variant(Variant.GREY, img)
    assert grey.dtype == np.uint8 and grey.shape == img.shape
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    low = apply_variant(Variant.LOW_DETAIL, img).astype(np.float32)
    detail = lambda x: np.abs(np.diff(x, axis=2)).mean()  # noqa: E731
    assert detail(low) < 0.5 * detail(img.astype(np.float32))
    assert abs(low.mean() - img.mean()) < 2  # the same picture, less sharp
    both = apply_variant(Variant.GREY_LOW_DETAIL, img)
    assert (both[..., 0] == both[..., 2]).all()
    assert (apply_variant(Variant.FLIP, img) == img[:, :, ::-1]).all()
    assert apply_variant(Variant.ZOOM, img).shape == img.shape
    assert parse_variants("grey, low-detail,grey") == (Variant.GREY, Variant.LOW_DETAIL)
    assert parse_variants("none") == parse_variants("") == parse_variants(None) == ()
    with pytest.raises(VariantError, match="query variants are: grey"):
        parse_variants("sepia")


def test_each_query_frame_counts_with_its_best_look_less_the_margin():
    rng = np.random.default_rng(0)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    target = unit(rng.normal(size=(5, 16))).astype(np.float32)
    query = unit(rng.normal(size=(3, 16))).astype(np.float32)
    looks = np.stack([query, target[[0, 1, 2]]])  # the variant look is the target itself
    sim = frame_similarity(looks, target)
    assert np.allclose(np.diag(sim[:, :3]), 1 - VARIANT_MARGIN, atol=1e-6)
    assert np.allclose(frame_similarity(looks[:1], target), frame_similarity(query, target))
    offsets = np.array([0, 2, 5])
    got = chamfer_many(looks, target, offsets)
    want = [sim[:, a:b].max(axis=1).mean() for a, b in zip(offsets[:-1], offsets[1:])]
    assert np.allclose(got, want, atol=1e-6)
    vids = unit(rng.normal(size=(4, 16))).astype(np.float32)
    assert np.allclose(cosine(np.stack([vids[0], vids[1]]), vids)[1], 1 - VARIANT_MARGIN, atol=1e-6)


@pytest.fixture(scope="module")
def grey_corpus(tmp_path_factory):
    """A greyscale, degraded copy of the query among degraded look-alikes and colour videos."""
    root = tmp_path_factory.mktemp("variants")
    src = media.scene_frames(31, 8, fps=4, size=SIZE)
    media.write_video(root / "videos" / "copy.mp4", degrade(src), fps=4)
    for i in range(6):
        media.write_video(root / "videos" / f"lookalike{i}.mp4", degrade(media.scene_frames(40 + i, 6, fps=4, size=SIZE)), fps=4)
    media.write_video(root / "videos" / "bikes.mp4", degrade(media.real_frames("bikes", SIZE)), fps=25)
    media.write_video(root / "videos" / "carphone.mp4", media.real_frames("carphone_pristine", SIZE), fps=30)
    return root, media.write_video(root / "query.mp4", src, fps=4)


def test_a_greyscale_degraded_copy_ranks_first_only_with_variants(grey_corpus, tmp_path):
    root, query = grey_corpus
    # the demo-trained TCA moves a greyscale copy's frames furthest (written with it); with
    # the default model (no TCA) this tiny case ranks the copy first even without variants
    eng = Engine(model=TCA_MODEL)
    assert eng.variants == DEFAULT_VARIANTS
    eng.build_index(root / "videos", tmp_path / "idx", progress=False)
    q = eng.embed(query)
    assert q.variants == DEFAULT_VARIANTS and q.variant_frames.shape == (len(DEFAULT_VARIANTS), *q.frames.shape)
    with_variants = eng.search(q, k=9)
    plain = eng.search(eng.embed(query, variants="none"), k=9)
    assert with_variants.matches[0].id == "copy.mp4", [(m.id, m.score) for m in with_variants.matches]
    # without them a degraded look-alike or another video is above it (rank 5 of 9 when written)
    assert [m.id for m in plain.matches].index("copy.mp4") >= 1, [(m.id, m.score) for m in plain.matches]
    top = with_variants.matches[0]
    assert top.comparison.similarity.shape == (q.num_frames, len(top.video.times))
    assert abs(top.comparison.chamfer - top.score) < 1e-4  # the matrix shown is what ranked it


def test_search_and_evaluate_flags(grey_corpus, tmp_path):
    root, query = grey_corpus
    assert subprocess.run([sys.executable, "-m", "engine", "index", str(root / "videos"), str(tmp_path / "idx"),
                           "--quiet"], cwd=ROOT, capture_output=True).returncode == 0
    search = [sys.executable, "-m", "engine", "search", str(tmp_path / "idx"), str(query), "--json"]
    res = subprocess.run(search, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["results"][0]["id"] == "copy.mp4" and out["variants"] == [v.value for v in DEFAULT_VARIANTS]
    bad = subprocess.run(search + ["--variants", "sepia"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "query variants are" in bad.stderr
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"copy.mp4": ["lookalike0.mp4"]}))
    cmd = [sys.executable, "-m", "engine", "evaluate", "generic", str(gt), "--videos", str(root / "videos"),
           "--cache", str(tmp_path / "f.npz"), "--measure", "chamfer", "--query-variants", "grey", "--json"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["model"].endswith("queries with variants grey")
    from engine.evaluation.features import MADE_BY

    with np.load(tmp_path / "f.variants.grey.npz") as cached:
        assert sorted(cached.files) == sorted(["copy.mp4", MADE_BY]) and cached["copy.mp4"].shape[0] == 1




def test_a_mirrored_copy_is_found_by_the_mirrored_look(tmp_path):
    src = media.scene_frames(7, 6, fps=4, size=SIZE)
    media.write_video(tmp_path / "videos" / "mirrored.mp4", media.flip(src), fps=4)
    for i in range(3):
        media.write_video(tmp_path / "videos" / f"other{i}.mp4", media.scene_frames(60 + i, 6, fps=4, size=SIZE), fps=4)
    query = media.write_video(tmp_path / "query.mp4", src, fps=4)
    eng = Engine()
    assert Variant.FLIP in eng.variants
    eng.build_index(tmp_path / "videos", tmp_path / "idx", progress=False)
    mirrored = eng.search(eng.embed(query), k=4)
    without = eng.search(eng.embed(query, variants="grey,low-detail,grey-low-detail"), k=4)
    score = lambda result: next(m.score for m in result.matches if m.id == "mirrored.mp4")  # noqa: E731
    assert mirrored.matches[0].id == "mirrored.mp4", [(m.id, m.score) for m in mirrored.matches]
    # the mirrored look matches the copy frame for frame (less the variants' margin), the
    # others only where the scene is symmetric
    assert score(mirrored) > score(without) + 0.05, (score(mirrored), score(without))  # 0.52 vs 0.44 when written
