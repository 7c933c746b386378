"""A frame's layout thumbnail beside its CNN embedding (engine.layout): real backbone, model
files, the CLI and an index."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.background import distinctive_pooling
from engine.backbone import load_backbone
from engine.cli import main
from engine.layout import Layout, layout_rows, thumbnails, with_layout
from engine.model import ModelError, load_model, save_model


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_thumbnail_is_the_grey_mean_of_each_cell():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    got = thumbnails(torch.from_numpy(images).permute(0, 3, 1, 2), 4).numpy()
    grey = images @ np.array([0.299, 0.587, 0.114], np.float32)
    want = grey.reshape(2, 4, 8, 4, 8).mean(axis=(2, 4)).reshape(2, 16) / 255
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_layout_ignores_brightness_and_contrast_and_a_flat_frame_has_none():
    rng = np.random.default_rng(1)
    t = rng.random((3, 64)).astype(np.float32)
    rows = layout_rows(np.stack([t[0], 0.5 * t[0] + 0.2, np.full(64, 0.4, np.float32)]))
    np.testing.assert_allclose(rows[0], rows[1], atol=1e-5)
    assert abs(float(rows[0].sum())) < 1e-4 and np.isclose(np.linalg.norm(rows[0]), 1.0)
    assert not rows[2].any()


def test_with_layout_mixes_the_two_cosines_by_the_weight():
    rng = np.random.default_rng(2)
    cnn = _unit(rng.standard_normal((3, 16)))
    thumbs = rng.random((3, 64)).astype(np.float32)
    thumbs[2] = 0.5  # flat: its embedding stays the CNN's, whole
    layout = Layout(8, 0.3)
    frames, video = with_layout(cnn, cnn[0], thumbs, layout)
    assert frames.shape == (3, 16 + 64) and video.shape == (16 + 64,)
    np.testing.assert_allclose(np.linalg.norm(frames, axis=1), 1.0, atol=1e-5)
    rows = layout_rows(thumbs)
    want = 0.7 * float(cnn[0] @ cnn[1]) + 0.3 * float(rows[0] @ rows[1])
    assert np.isclose(float(frames[0] @ frames[1]), want, atol=1e-5)
    np.testing.assert_allclose(frames[2], np.concatenate([cnn[2], np.zeros(64)]), atol=1e-6)
    assert not video[16:].any()  # the video vector is the CNN's


def test_encoder_appends_thumbnails_and_keeps_the_cnn_descriptor():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    plain = load_backbone("efficientnet-lite0", precision="float32")
    with_thumbs = load_backbone("efficientnet-lite0", precision="float32", layout_side=8)
    a, b = plain.describe(images), with_thumbs.describe(images)
    assert with_thumbs.dim == plain.dim + 64 and b.shape == (3, plain.dim + 64)
    np.testing.assert_allclose(b[:, : plain.dim], a, atol=1e-5)
    want = thumbnails(torch.from_numpy(images).permute(0, 3, 1, 2).float(), 8).numpy()
    np.testing.assert_allclose(b[:, plain.dim :], want, atol=1e-6)


def test_video_vectors_leave_the_layout_out():
    rng = np.random.default_rng(4)
    frames = _unit(rng.standard_normal((5, 24)))
    bg = rng.random(5).astype(np.float32) * 0.5
    pooled = distinctive_pooling(frames, bg, layout_dim=8)
    assert not pooled[16:].any() and np.isclose(np.linalg.norm(pooled), 1.0)
    cut = frames.copy()
    cut[:, 16:] = 0
    np.testing.assert_allclose(pooled, distinctive_pooling(cut, bg), atol=1e-6)


def test_pca_cli_writes_a_layout_and_the_model_file_keeps_it(corpus, pca_model, tmp_path, capsys):
    bundle = load_model(pca_model)  # the shared fixture: `engine pca ... --dim 64`, default layout
    assert bundle.layout == Layout() and bundle.dim == 64 + 64 and bundle.layout_dim == 64
    assert "--layout 8 --layout-weight 0.2" in bundle.info["made_by"] and "8x8 layout" in bundle.name
    plain = tmp_path / "plain.safetensors"
    assert main(["pca", str(corpus["videos"]), str(plain), "--dim", "32", "--layout", "0"]) == 0
    assert load_model(plain).layout is None and load_model(plain).dim == 32
    # a model file keeps its layout (side and weight) through save and load
    copy = load_model(plain)
    copy.layout = Layout(4, 0.35)
    save_model(copy, tmp_path / "four.safetensors")
    back = load_model(tmp_path / "four.safetensors")
    assert back.layout == Layout(4, 0.35) and back.dim == 32 + 16
    capsys.readouterr()
    for bad in (["--layout", "-1"], ["--layout", "40"], ["--layout-weight", "1"], ["--layout-weight", "0"]):
        assert main(["pca", str(corpus["videos"]), str(tmp_path / "x.safetensors"), *bad]) == 2
        assert "--layout" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_a_layout_without_a_whitening_is_refused(tmp_path):
    from engine.model import builtin_model

    bare = builtin_model()
    bare.layout = Layout()
    save_model(bare, tmp_path / "bare.safetensors")
    with pytest.raises(ModelError, match="layout needs the model's PCA"):
        load_model(tmp_path / "bare.safetensors")


def test_a_model_file_with_impossible_layout_settings_is_refused(pca_model, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(pca_model), framework="numpy") as f:
        meta = f.metadata()
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(pca_model)), str(bad), metadata={**meta, "layout": json.dumps({"side": 8, "weight": 1.5})})
    with pytest.raises(ModelError, match="unreadable layout settings"):
        load_model(bad)


def test_an_index_of_a_layout_model_records_it_and_searches(engine_and_index, corpus):
    eng, index_dir, _ = engine_and_index
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert manifest["layout_dim"] == 64 and manifest["dim"] == 128
    assert eng.index.layout_dim == 64
    vectors, counts, _ = eng.index.distinctive_vectors(np.arange(len(eng.index)))
    assert vectors.shape[1] == 128 and not vectors[:, 64:].any() and counts.min() >= 1
    assert eng.search(corpus["queries"]["scene2_flip"], k=3).matches[0].id == "scene2.webm"
