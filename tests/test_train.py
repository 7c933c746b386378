"""Training: the losses by hand, determinism, and `engine train` / `engine evaluate` end to end."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine.model import load_model
from engine.pca import fit_pca
from engine.tca import TCA
from engine.train import (ID_STRIDE, Instance, Loss, Sampler, TrainConfig, circle, info_nce, match_loss, overlaps,
                          quadlinear, quadlinear_ap, segment_array, train_tca)

from media import scene_frames, write_video


def test_circle_loss_uses_the_positive_column():
    pos, neg = torch.tensor([0.6]), torch.tensor([[0.3, 0.5]])
    m, g = 0.25, 256.0
    # by hand: alpha_p = 1 + m - s_p, alpha_n = s_n + m; logits scaled by gamma around the margins
    lp = g * (1 + m - 0.6) * (0.6 - (1 - m))
    ln = [g * (s + m) * (s - m) for s in (0.3, 0.5)]
    expected = -lp + math.log(math.exp(lp) + sum(math.exp(x) for x in ln))
    assert circle(pos, neg, g, m).item() == pytest.approx(expected, rel=1e-4)
    # a better positive must lower the loss (the published code scored row 0 instead)
    assert circle(torch.tensor([0.95]), neg, g, m) < circle(torch.tensor([0.5]), neg, g, m)


def test_info_nce_and_masked_negatives():
    pos, neg = torch.tensor([0.5]), torch.tensor([[0.2, -math.inf]])
    expected = -0.5 / 0.1 + math.log(math.exp(5.0) + math.exp(2.0))
    assert info_nce(pos, neg, 0.1).item() == pytest.approx(expected, rel=1e-5)


def test_quadlinear_ap_by_hand():
    s = 0.05
    d = torch.tensor([-0.1, -0.025, 0.0, 0.05])
    assert quadlinear(d, s).tolist() == pytest.approx([0.0, 0.25, 1.0, 3.0])
    # one positive at 0.5, negatives at 0.475 (f = 0.25) and 0.1 (f = 0): AP = 1 / 1.25
    loss = quadlinear_ap(torch.tensor([0.5]), torch.tensor([[0.475, 0.1, -math.inf]]), s)
    assert loss.item() == pytest.approx(1 - 1 / 1.25)


def test_negatives_never_share_a_video():
    a = segment_array([Instance([(0, 0, 10)]), Instance([(1, 0, 5), (2, 3, 8)])])
    b = segment_array([Instance([(0, 20, 30)]), Instance([(3, 0, 5)]), Instance([(2, 9, 12)])])
    assert overlaps(a, b).tolist() == [[True, False, False], [False, False, True]]
    assert overlaps(a, b, any_time=False).tolist() == [[False, False, False], [False, False, False]]


def test_views_know_which_moment_each_frame_shows():
    views = [torch.randn(3, 40, 8) for _ in range(4)]
    sampler = Sampler(views, TrainConfig(), np.random.default_rng(0))
    for _ in range(20):
        inst = sampler.instance()
        x, ids = sampler.view_with_ids(inst, positive=True)
        assert len(x) == len(ids)
        for frame, i in zip(x, ids.tolist()):
            v, t = divmod(i, ID_STRIDE)
            assert any(torch.equal(frame, views[v][k, t]) for k in range(3))


def test_match_loss_by_hand():
    a = torch.nn.functional.normalize(torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [0.0, 0.0]]]), dim=-1)
    ids = torch.tensor([[0, 5], [ID_STRIDE + 0, -1]])  # video 0 at frames 0 and 5, video 1 at frame 0
    t = 0.5
    # Anchor (video 0, frame 0): positive itself (sim 1); its own video's frame 5 is left
    # out at tolerance 1; video 1's frame (sim 0.6) is the negative. Same for the others.
    l00 = -1 / t + math.log(math.exp(1 / t) + math.exp(0.6 / t))
    l05 = -1 / t + math.log(math.exp(1 / t) + math.exp(0.8 / t))
    l10 = -1 / t + math.log(math.exp(1 / t) + math.exp(0.6 / t) + math.exp(0.8 / t))
    assert match_loss(a, ids, a, ids, 1, t).item() == pytest.approx((l00 + l05 + l10) / 3, rel=1e-5)
    # at tolerance 5 frames 0 and 5 of video 0 are both positives of each other
    l00 = -math.log(math.exp(1 / t) + 1) + math.log(math.exp(1 / t) + 1 + math.exp(0.6 / t))
    l05 = -math.log(math.exp(1 / t) + 1) + math.log(math.exp(1 / t) + 1 + math.exp(0.8 / t))
    assert match_loss(a, ids, a, ids, 5, t).item() == pytest.approx((l00 + l05 + l10) / 3, rel=1e-5)


def test_identity_start():
    x = torch.nn.functional.normalize(torch.randn(2, 6, 32), dim=-1)
    x = x - x.mean(-1, keepdim=True)  # layer norm keeps zero-mean vectors' direction
    out = TCA(32, 4, 64, 0.0).start_at_identity().eval()(x)
    assert torch.allclose(out.frames, torch.nn.functional.normalize(x, dim=-1), atol=1e-4)


def _toy_views(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = [rng.normal(size=(1, 12, 48)) for _ in range(5)]
    return [np.concatenate([b, b + 0.3 * rng.normal(size=b.shape)]).astype(np.float16) for b in base]


@pytest.mark.parametrize("loss", list(Loss))
def test_training_is_deterministic_and_finite(loss):
    views = _toy_views()
    pca = fit_pca(np.concatenate([v.reshape(-1, 48) for v in views]).astype(np.float32), 16, 0.5)
    cfg = TrainConfig(dim=16, heads=2, ff_dim=32, steps=8, batch=6, bank=16, clip_frames=6, lr=3e-3, loss=loss,
                      match_weight=1.0 if loss is Loss.INFONCE else 0.0, identity_init=loss is Loss.INFONCE)
    m1, _ = train_tca(views, pca, cfg, progress=False)
    m2, _ = train_tca(views, pca, cfg, progress=False)
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(v1, v2), k
    assert all(torch.isfinite(v).all() for v in m1.state_dict().values())


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_videos")
    for i in range(4):
        write_video(d / f"v{i}.mp4", scene_frames(100 + i, 6.0, fps=4))
    return d


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=600)


def test_train_and_evaluate_cli(tiny_folder, tmp_path):
    out = tmp_path / "m.safetensors"
    r = run_cli("train", str(tiny_folder), "--out", str(out), "--steps", "4", "--views", "2", "--dim", "24",
                "--batch", "4", "--bank", "8", "--clip-frames", "6", "--views-cache", str(tmp_path / "views.npz"))
    assert r.returncode == 0, r.stderr
    bundle = load_model(out)
    assert bundle.tca is not None and bundle.pca.dim == 24
    assert bundle.info["config"]["steps"] == 4 and bundle.info["trained_by"] == "python -m engine train"
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"v0.mp4": ["v0.mp4"], "v1.mp4": ["v2.mp4"]}))
    r = run_cli("evaluate", "generic", str(gt), "--videos", str(tiny_folder), "--model", str(out),
                "--cache", str(tmp_path / "f.npz"), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert set(res["results"]) == {"cosine", "chamfer", "symmetric_chamfer"}
    assert 0 <= res["results"]["chamfer"]["mAP"] <= 1
    # the cached features give the same numbers, with the no-TCA baseline alongside
    r2 = run_cli("evaluate", "generic", str(gt), "--features", str(tmp_path / "f.npz"), "--model", str(out), "--json")
    assert json.loads(r2.stdout)["results"] == res["results"]
    r3 = run_cli("evaluate", "generic", str(gt), "--features", str(tmp_path / "f.npz"), "--model", str(out),
                 "--no-tca", "--json")
    assert "without TCA" in json.loads(r3.stdout)["model"]


def test_supervised_pairs(tiny_folder, tmp_path):
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"pairs": [["v0.mp4", "v1.mp4"]], "distractors": ["v2.mp4", "v3.mp4"]}))
    out = tmp_path / "p.safetensors"
    r = run_cli("train", str(tiny_folder), "--pairs", str(pairs), "--out", str(out), "--steps", "3",
                "--dim", "16", "--batch", "2", "--bank", "8")
    assert r.returncode == 0, r.stderr
    assert load_model(out).tca is not None
    pairs.write_text(json.dumps({"pairs": [["v0.mp4", "nope.mp4"]], "distractors": ["v2.mp4"]}))
    r = run_cli("train", str(tiny_folder), "--pairs", str(pairs), "--out", str(out), "--steps", "3")
    assert r.returncode == 2 and "not found" in r.stderr


def test_evaluate_reads_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    from engine.evaluate import load_features

    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["a"] = np.ones((3, 8), np.float32)
        f["b"] = np.zeros((2, 8), np.float32)
    feats = load_features(tmp_path / "f.h5", ["a"])
    assert list(feats) == ["a"] and feats["a"].shape == (3, 8)
