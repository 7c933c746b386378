"""Training: the losses by hand, determinism, and `engine train` / `engine evaluate` end to end."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from engine import DEFAULT_MODEL
from engine.model import load_model
from engine.pca import fit_pca
from engine.tca import TCA
from engine.training.config import Loss, TrainConfig
from engine.training.loop import train_tca
from engine.training.losses import circle, info_nce, match_loss, quadlinear, quadlinear_ap
from engine.training.sampling import ID_STRIDE, Instance, Sampler, overlaps, segment_array

from conftest import run_cli
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
        x, ids = sampler.view(inst, positive=True)
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


@pytest.mark.parametrize("part, pooling, trained", [
    ("attention_only", "attention", "layer.self_attn.in_proj"),  # what attends to what
    ("context_only", "distinctive", "layer.self_attn."),  # the attention; the feed-forward stays the identity
])
def test_partial_training_moves_only_its_part(part, pooling, trained):
    views = _toy_views()
    pca = fit_pca(np.concatenate([v.reshape(-1, 48) for v in views]).astype(np.float32), 16, 0.5)
    cfg = TrainConfig(dim=16, heads=2, ff_dim=32, steps=5, batch=6, bank=16, clip_frames=6, lr=1e-2,
                      input_scale=4.0, pooling=pooling, frame_weight=0.0, **{part: True})
    model, losses = train_tca(views, pca, cfg, progress=False)
    assert all(math.isfinite(x) for x in losses)
    torch.manual_seed(cfg.seed)
    start = TCA(16, 2, 32, cfg.dropout).start_at_identity()  # the same initial weights as training's
    for name, value in model.state_dict().items():
        moved = not torch.equal(value, start.state_dict()[name])
        assert moved == name.startswith(trained), name
    assert (model.pooling, model.input_scale) == (pooling, 4.0)


def test_distinctive_pooling_weighs_frames_by_their_background():
    """A TCA trained to be pooled by distinctiveness: a frame as common as the collection's
    commonest (background 1) leaves the video vector; without backgrounds it is the mean."""
    torch.manual_seed(0)
    tca = TCA(8, 2, 16, 0.0, pooling="distinctive").start_at_identity().eval()
    x = torch.nn.functional.normalize(torch.randn(1, 4, 8), dim=-1)
    bg = torch.tensor([[0.2, 0.2, 0.2, 1.0]])
    out = tca(x, background=bg)
    expected = torch.nn.functional.normalize(out.frames[:, :3].sum(1), dim=-1)
    assert torch.allclose(out.video, expected, atol=1e-6)
    assert torch.allclose(tca(x).video, torch.nn.functional.normalize(out.frames.sum(1), dim=-1), atol=1e-6)
    # every frame common: the mean again, not a zero vector
    assert torch.allclose(tca(x, background=torch.ones(1, 4)).video, tca(x).video, atol=1e-6)


def test_backgrounds_travel_with_their_frames():
    from engine.background import frame_background
    from engine.training.loop import with_backgrounds

    rng = np.random.default_rng(0)
    whitened = [torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(2, t, 6)).astype(np.float32)), dim=-1)
                for t in (5, 3, 4)]
    out = with_backgrounds(whitened)
    clean = np.concatenate([w[0].numpy() for w in whitened])
    expected = frame_background(clean, np.array([0, 5, 8, 12]))
    got = np.concatenate([o[0, :, -1].numpy() for o in out])
    assert np.allclose(got, expected)
    for w, o in zip(whitened, out):  # every view of a moment carries that moment's background
        assert torch.equal(o[..., :-1], w) and torch.equal(o[0, :, -1], o[1, :, -1])


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_videos")
    for i in range(4):
        write_video(d / f"v{i}.mp4", scene_frames(100 + i, 6.0, fps=4))
    write_video(d / "copy_of_v0.mp4", scene_frames(100, 6.0, fps=4), options={"crf": "35"})  # a re-encode
    return d


def test_train_and_evaluate_cli(tiny_folder, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    code, _, err = run_cli(capsys, "train", tiny_folder, "--out", out, "--steps", "4", "--views", "2", "--dim", "24",
                           "--batch", "4", "--bank", "8", "--clip-frames", "6", "--views-cache", tmp_path / "views.npz")
    assert code == 0, err
    bundle = load_model(out)
    assert bundle.tca is not None and bundle.pca.dim == 24
    assert bundle.info["config"]["steps"] == 4 and bundle.info["trained_by"] == "python -m engine train"
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"v0.mp4": ["copy_of_v0.mp4"], "copy_of_v0.mp4": ["v0.mp4"]}))
    results_file = tmp_path / "results.json"
    code, stdout, err = run_cli(capsys, "evaluate", "generic", gt, "--videos", tiny_folder, "--model", out,
                                "--cache", tmp_path / "f.npz", "--json", "--results", results_file)
    assert code == 0, err
    res = json.loads(stdout)
    assert set(res["results"]) == {"cosine", "chamfer", "symmetric_chamfer"}
    # a re-encode of the query is found first among five videos, by every measure
    assert all(r["mAP"] == 1.0 for r in res["results"].values()), res["results"]
    # the cached features give the same numbers, with the no-TCA baseline alongside
    code, stdout, _ = run_cli(capsys, "evaluate", "generic", gt, "--features", tmp_path / "f.npz", "--model", out,
                              "--json")
    assert json.loads(stdout)["results"] == res["results"]
    code, stdout, _ = run_cli(capsys, "evaluate", "generic", gt, "--features", tmp_path / "f.npz", "--model", out,
                              "--no-tca", "--json", "--results", results_file)
    assert "without TCA" in json.loads(stdout)["model"]
    recorded = json.loads(results_file.read_text())["quality"]["generic"]["models"]
    assert set(recorded) == {"TCA", "no TCA"} and recorded["TCA"]["metrics"] == res["results"]
    assert recorded["no TCA"]["command"].startswith("python -m engine evaluate generic")


def test_supervised_pairs(tiny_folder, tmp_path, capsys):
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"pairs": [["v0.mp4", "v1.mp4"]], "distractors": ["v2.mp4", "v3.mp4"]}))
    out = tmp_path / "p.safetensors"
    code, _, err = run_cli(capsys, "train", tiny_folder, "--pairs", pairs, "--out", out, "--steps", "3",
                           "--dim", "16", "--batch", "2", "--bank", "8")
    assert code == 0, err
    assert load_model(out).tca is not None
    pairs.write_text(json.dumps({"pairs": [["v0.mp4", "nope.mp4"]], "distractors": ["v2.mp4"]}))
    code, _, err = run_cli(capsys, "train", tiny_folder, "--pairs", pairs, "--out", out, "--steps", "3")
    assert code == 2 and "not found" in err


def test_train_a_context_tca_on_a_models_whitening(tiny_folder, tmp_path, capsys):
    """`--whitening MODEL --context-only --pooling distinctive`: the model's whitening kept
    as it is, a TCA in front of it, and an index of it pools by distinctiveness."""
    from engine.index import VideoIndex

    pca_model = tmp_path / "pca.safetensors"
    code, _, err = run_cli(capsys, "pca", tiny_folder, pca_model, "--dim", "16")
    assert code == 0, err
    out = tmp_path / "ctx.safetensors"
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"pairs": [["v0.mp4", "copy_of_v0.mp4"]], "distractors": ["v2.mp4", "v3.mp4"]}))
    code, _, err = run_cli(capsys, "train", tiny_folder, "--pairs", pairs, "--whitening", pca_model, "--context-only",
                           "--pooling", "distinctive", "--out", out, "--steps", "3", "--batch", "2", "--bank", "8",
                           "--input-scale", "4", "--frame-weight", "0")
    assert code == 0, err
    bundle, base = load_model(out), load_model(pca_model)
    assert bundle.tca.pooling == "distinctive" and bundle.distinctive and bundle.tca.dim == 16
    assert np.array_equal(bundle.pca.projection, base.pca.projection) and np.array_equal(bundle.pca.mean, base.pca.mean)
    assert bundle.info["config"]["whitening"] == str(pca_model) and bundle.info["config"]["context_only"]
    code, _, err = run_cli(capsys, "index", tiny_folder, tmp_path / "idx", "--model", out, "--no-inner-pictures")
    assert code == 0, err
    idx = VideoIndex.open(tmp_path / "idx")
    assert idx.manifest["tca"] is True and idx.distinctive
    code, _, err = run_cli(capsys, "train", tiny_folder, "--whitening", pca_model, "--context-only", "--attention-only",
                           "--pooling", "attention", "--out", out, "--steps", "1")
    assert code == 2 and "give one" in err
    odd = tmp_path / "pca12.safetensors"
    assert run_cli(capsys, "pca", tiny_folder, odd, "--dim", "12")[0] == 0
    code, _, err = run_cli(capsys, "train", tiny_folder, "--whitening", odd, "--out", out, "--steps", "1")
    assert code == 2 and "multiple of 8" in err


def test_views_cache_is_reused_and_invalidated(tiny_folder, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from engine.backbone import Backbone, Pooling
    from engine.training import loop

    calls = []

    def fake_describe(encoder, paths, views, fps, seed, logo_rgba=None, progress=True):
        calls.append(len(paths))
        return [np.full((views, 3, 4), len(calls), np.float16) for _ in paths]

    monkeypatch.setattr(loop, "describe_views", fake_describe)
    enc = SimpleNamespace(name=Backbone.EFFICIENTNET_LITE0, pooling=Pooling.L3_IRMAC, tuned_id="")
    paths = sorted(tiny_folder.glob("v*.mp4"))
    cache = tmp_path / "views.npz"
    cfg = TrainConfig(views=2)
    first = loop.training_views(paths, enc, None, cfg, cache, progress=False)
    again = loop.training_views(paths, enc, None, cfg, cache, progress=False)
    assert calls == [4] and np.array_equal(first[0], again[0])  # reused
    for change in ("settings", "weights", "tuned", "pooling", "file"):
        if change == "settings":
            loop.training_views(paths, enc, None, TrainConfig(views=3), cache, progress=False)
        elif change == "weights":
            loop.training_views(paths, enc, "other-weights.safetensors", cfg, cache, progress=False)
        elif change == "tuned":  # a CNN whose last stages were tuned (tune-cnn)
            loop.training_views(paths, SimpleNamespace(name=enc.name, pooling=enc.pooling, tuned_id="abc"), None,
                                cfg, cache, progress=False)
        elif change == "pooling":
            loop.training_views(paths, SimpleNamespace(name=enc.name, pooling=Pooling.IMAC, tuned_id=""), None, cfg,
                                cache, progress=False)
        else:
            os.utime(paths[0], ns=(paths[0].stat().st_atime_ns, paths[0].stat().st_mtime_ns + 10**9))
            loop.training_views(paths, enc, None, cfg, cache, progress=False)
    assert len(calls) == 6  # each change recomputed the views


def test_the_logo_is_drawn_the_same_everywhere():
    from engine.training.augment import drawn_logo

    a, b = drawn_logo(), drawn_logo()
    assert a.shape == (96, 96, 4) and np.array_equal(a, b)
    assert 0.2 < (a[..., 3] > 0).mean() < 0.6  # a visible mark, with transparent parts


def test_a_feature_cache_says_what_made_it(tiny_folder, tmp_path, capsys):
    """A cache made by one CNN setting is not extended by another: features of two number
    formats (or backbones, or rates) would be compared as if they were one."""
    from engine.evaluation.features import cache_made_by, load_features

    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"v0.mp4": ["copy_of_v0.mp4"]}))
    cache = tmp_path / "f.npz"
    args = ("evaluate", "generic", gt, "--videos", tiny_folder, "--cache", cache, "--measure", "cosine", "--json")
    code, _, err = run_cli(capsys, *args, "--precision", "float32")
    assert code == 0, err
    # the default model's CNN is tuned (tune-cnn) and it reads each frame's 8x8 thumbnail
    # (engine.layout): both are part of the cache's maker
    from engine.backbone import tuned_id

    cnn = f"efficientnet-lite0 l3-irmac (packaged weights, tuned {tuned_id(load_model(DEFAULT_MODEL).cnn)})"
    assert cache_made_by(cache) == f"{cnn}, float32, 1 fps, 8x8 layout"
    assert "__made_by__" not in load_features(cache)  # never read as a video
    code, _, err = run_cli(capsys, *args, "--precision", "float32")
    assert code == 0, err
    code, _, err = run_cli(capsys, *args, "--precision", "bfloat16")
    assert code == 2 and f"{cache}: its features were made by efficientnet-lite0" in err, err
    assert f"not by {cnn}, bfloat16, 1 fps" in err


def test_evaluate_reads_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    from engine.evaluation.features import load_features

    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["a"] = np.ones((3, 8), np.float32)
        f["b"] = np.zeros((2, 8), np.float32)
    feats = load_features(tmp_path / "f.h5", ["a"])
    assert list(feats) == ["a"] and feats["a"].shape == (3, 8)


@pytest.mark.parametrize("flags, message", [
    (["--input-scale", "0"], "--input-scale must be positive"),
    (["--hard-fraction", "1.5"], "--hard-fraction is a share"),
    (["--attention-only"], "--attention-only needs --pooling attention"),
])
def test_bad_attention_flags_are_clear_errors(tiny_folder, tmp_path, capsys, flags, message):
    code, _, err = run_cli(capsys, "train", tiny_folder, "--out", tmp_path / "m.safetensors", *flags)
    assert code == 2 and message in err and not (tmp_path / "m.safetensors").exists()
