"""Backbones, PCA, TCA, similarity and spans, on tiny inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import media

from engine import backbone as backbone_module
from engine.backbone import BackboneError, Precision, load_backbone, resolve_precision
from engine.model import ModelBundle, ModelError, builtin_model, load_model, save_model
from engine.pca import fit_pca
from engine.resnet import ResNet50
from engine.similarity import PICTURE_MARGIN, chamfer, chamfer_many, cosine, cosine_views, evidence, frame_similarity, symmetric_chamfer, temporal_support
from engine.spans import matched_span
from engine.tca import TCA


def _resnet_state_dict() -> dict[str, torch.Tensor]:
    """A torchvision-format ResNet-50 state dict with random weights (no network here)."""
    torch.manual_seed(0)
    sd = {k: v.clone() for k, v in ResNet50().state_dict().items()}
    for k, v in sd.items():
        if k.endswith("running_var"):
            v.uniform_(0.5, 1.5)
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    return sd


def test_resnet50_loads_safetensors_and_pth(tmp_path):
    sd = _resnet_state_dict()
    save_file(sd, str(tmp_path / "r50.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "r50.pth")
    frames = np.random.default_rng(0).integers(0, 255, (3, 224, 224, 3), dtype=np.uint8)
    outs = []
    for name in ("r50.safetensors", "r50.pth"):
        enc = load_backbone("resnet50", tmp_path / name, "l3-irmac")
        assert enc.dim == 3840
        outs.append(enc.describe(frames))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)
    # Four L2-normalised layer parts: total norm is 2.
    np.testing.assert_allclose(np.linalg.norm(outs[0], axis=1), 2.0, atol=1e-4)


def test_resnet50_folded_bn_matches_unfolded(tmp_path):
    sd = _resnet_state_dict()
    save_file(sd, str(tmp_path / "r50.safetensors"))
    ref = ResNet50()
    ref.load_state_dict({k: v for k, v in sd.items() if not k.startswith("fc.")})
    ref.eval()
    enc = load_backbone("resnet50", tmp_path / "r50.safetensors", precision="float32")
    x = torch.rand(2, 3, 96, 96)
    with torch.inference_mode():
        for a, b in zip(ref(x), enc.trunk(x)):
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_resnet50_from_hub_repo_id(tmp_path, monkeypatch):
    save_file(_resnet_state_dict(), str(tmp_path / "model.safetensors"))
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        return str(tmp_path / filename)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    enc = load_backbone("resnet50", "hf://timm/resnet50.tv_in1k")
    assert calls == [("timm/resnet50.tv_in1k", "model.safetensors")] and enc.dim == 3840
    # a bare owner/name is a local path: missing, it says so at once, no Hub call
    with pytest.raises(BackboneError, match="not found.*hf://timm/resnet50"):
        load_backbone("resnet50", "timm/resnet50")
    assert len(calls) == 1


def test_resnet50_bad_weights_are_clear_errors(tmp_path):
    with pytest.raises(BackboneError, match="needs ImageNet weights"):
        load_backbone("resnet50")
    save_file({"conv1.weight": torch.zeros(8, 3, 3, 3)}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(BackboneError, match="does not fit"):
        load_backbone("resnet50", tmp_path / "wrong.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(BackboneError, match="not a readable weights file"):
        load_backbone("resnet50", tmp_path / "junk.pth")
    with pytest.raises(BackboneError, match="unknown backbone"):
        load_backbone("vgg16")


def test_efficientnet_descriptor_shape_and_imac():
    frames = np.random.default_rng(0).integers(0, 255, (2, 224, 224, 3), dtype=np.uint8)
    for pooling in ("l3-irmac", "imac"):
        enc = load_backbone("efficientnet-lite0", pooling=pooling)
        d = enc.describe(frames)
        assert d.shape == (2, 2048) and np.isfinite(d).all()
        np.testing.assert_allclose(np.linalg.norm(d, axis=1), np.sqrt(7), atol=1e-4)


def test_precision_auto_is_bfloat16_only_where_the_cpu_has_units_for_it(monkeypatch):
    monkeypatch.setattr(backbone_module, "cpu_has_bfloat16_units", lambda: False)
    assert resolve_precision("auto", "cpu") == torch.float32
    monkeypatch.setattr(backbone_module, "cpu_has_bfloat16_units", lambda: True)
    assert resolve_precision(Precision.AUTO, "cpu") == torch.bfloat16
    assert resolve_precision("auto", "cuda") == torch.float16
    assert resolve_precision("float32", "cpu") == torch.float32 and resolve_precision("bfloat16", "cuda") == torch.bfloat16
    with pytest.raises(BackboneError, match="float16 runs on CUDA only"):
        resolve_precision("float16", "cpu")
    with pytest.raises(BackboneError, match="unknown precision 'half'"):
        load_backbone("efficientnet-lite0", precision="half")


def test_bfloat16_descriptors_keep_the_float32_ones(tmp_path):
    """bfloat16 (the default on a CPU with AMX) runs the CNN after its stem and first block
    in bfloat16: on real frames the descriptors stay within 1% of float32's, for both
    backbones, and a flat frame too (the pictures' rounding is kept out of bfloat16)."""
    frames = np.stack(media.real_frames("bikes", size=(224, 224), step=40)[:4] + [np.full((224, 224, 3), 16, np.uint8)])
    f32 = load_backbone("efficientnet-lite0", precision="float32")
    b16 = load_backbone("efficientnet-lite0", precision="bfloat16")
    assert f32.dtype == torch.float32 and b16.dtype == torch.bfloat16
    assert b16.trunk.stem.conv.weight.dtype == torch.float32 and b16.trunk.head.conv.weight.dtype == torch.bfloat16
    a, b = f32.describe(frames), b16.describe(frames)
    assert b.dtype == np.float32 and b.shape == a.shape
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99, cos
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), np.sqrt(7), atol=1e-4)  # parts still unit length
    save_file(_resnet_state_dict(), str(tmp_path / "r50.safetensors"))
    r32, r16 = (load_backbone("resnet50", tmp_path / "r50.safetensors", precision=p) for p in ("float32", "bfloat16"))
    assert r16.trunk.conv1.weight.dtype == torch.float32 and r16.trunk.layer4[0].conv1.weight.dtype == torch.bfloat16
    a, b = r32.describe(frames), r16.describe(frames)
    assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() > 0.99


def test_pca_whitens():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 32)) @ rng.normal(size=(32, 32)) + 5
    pca = fit_pca(x, dim=8, shrinkage=0.0)
    y = (x - pca.mean) @ pca.projection
    np.testing.assert_allclose(np.cov(y.T), np.eye(8), atol=0.05)
    assert np.allclose(np.linalg.norm(pca.apply(x[:5]), axis=1), 1)


def test_pca_shrinkage_is_a_fraction_of_the_mean_eigenvalue():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 12)) * np.linspace(0.2, 3, 12)
    cov = np.cov(x, rowvar=False)
    eig = np.linalg.eigvalsh(cov)[::-1][:4]
    reg = 0.5 * np.linalg.eigvalsh(cov).mean()
    pca = fit_pca(x, 4, 0.5)
    # each output component is scaled by 1 / sqrt(eigenvalue + shrinkage * mean eigenvalue)
    np.testing.assert_allclose(np.linalg.norm(pca.projection, axis=0), 1 / np.sqrt(eig + reg), rtol=1e-4)


def test_tca_mask_and_attention():
    torch.manual_seed(0)
    tca = TCA(dim=32, heads=4, ff_dim=64).eval()
    x = torch.randn(1, 7, 32)
    padded = torch.cat([x, torch.randn(1, 5, 32) * 10], dim=1)
    mask = torch.tensor([[True] * 7 + [False] * 5])
    with torch.inference_mode():
        a, b = tca(x), tca(padded, mask)
    torch.testing.assert_close(a.video, b.video, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.frames, b.frames[:, :7], atol=1e-5, rtol=1e-5)
    assert torch.all(b.frames[:, 7:] == 0) and torch.all(b.attention[:, 7:] == 0)
    torch.testing.assert_close(b.attention.sum(1), torch.ones(1))
    assert torch.allclose(b.frames[:, :7].norm(dim=-1), torch.ones(1, 7), atol=1e-5)


def test_tca_input_scale_moves_attention_and_attention_pooling_uses_it():
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(1, 9, 64), dim=-1)  # what the PCA hands TCA
    plain = TCA(dim=64, heads=4, ff_dim=64, dropout=0.0).eval()
    scaled = TCA(dim=64, heads=4, ff_dim=64, dropout=0.0, input_scale=8.0, pooling="attention").eval()
    scaled.load_state_dict(plain.state_dict())
    with torch.inference_mode():
        a, b = plain(x), scaled(x)
    spread = lambda out: (out.attention.max() / out.attention.min()).item()  # noqa: E731
    assert spread(a) < 1.02 < 1.2 < spread(b)  # unit-norm input: uniform; sqrt(d) scale: not
    pooled = torch.nn.functional.normalize((b.frames * b.attention[..., None]).sum(1), dim=-1)
    torch.testing.assert_close(b.video, pooled)
    with pytest.raises(ValueError, match="pooling"):
        TCA(dim=64, heads=4, ff_dim=64, pooling="max")


def test_model_bundle_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tca = TCA(dim=16, heads=2, ff_dim=32).eval()
    bundle = ModelBundle(builtin_model().backbone, builtin_model().pooling,
                         fit_pca(rng.random((100, 2048)), 16), tca, {"note": "test"})
    sha = save_model(bundle, tmp_path / "m.safetensors")
    back = load_model(tmp_path / "m.safetensors")
    assert back.sha256 == sha and back.info == {"note": "test"} and back.dim == 16
    x = torch.randn(1, 5, 16)
    with torch.inference_mode():
        torch.testing.assert_close(tca(x).frames, back.tca(x).frames)
    assert back.tca.config() == {"dim": 16, "heads": 2, "ff_dim": 32, "input_scale": 1.0, "pooling": "mean"}
    tca2 = TCA(dim=16, heads=2, ff_dim=32, input_scale=4.0, pooling="attention").eval()
    save_model(ModelBundle(bundle.backbone, bundle.pooling, bundle.pca, tca2), tmp_path / "m2.safetensors")
    back2 = load_model(tmp_path / "m2.safetensors").tca
    assert (back2.input_scale, back2.pooling) == (4.0, "attention")
    with torch.inference_mode():
        torch.testing.assert_close(tca2(x).video, back2(x).video)
    # the same model saved again is the same file (an index names its model by the file's hash)
    assert {save_model(back, tmp_path / f"again{i}.safetensors") for i in range(5)} == {sha}
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="bad.safetensors"):
        load_model(tmp_path / "bad.safetensors")


def test_a_bundle_carries_its_tuned_cnn_layers(tmp_path):
    """The layers `tune-cnn` writes (folded convs, identity BatchNorms) give the packaged
    CNN's descriptors back when untouched, travel in the bundle, and change the CNN when
    they differ; tensors of another shape are refused with a clear message."""
    from engine.embedding import Embedder
    from engine.training.cnn import tuned_tensors

    images = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    packaged = load_backbone(precision="float32")
    untouched = tuned_tensors(packaged.trunk)
    assert untouched and all(k.startswith(("_blocks.1", "_conv_head", "_bn1")) for k in untouched)
    np.testing.assert_allclose(load_backbone(precision="float32", tuned=untouched).describe(images),
                               packaged.describe(images), atol=1e-5)
    changed = {k: v * 1.5 if k == "_conv_head.weight" else v for k, v in untouched.items()}
    rng = np.random.default_rng(1)
    bundle = ModelBundle(packaged.name, packaged.pooling, fit_pca(rng.random((100, 2048)), 16), None, cnn=changed)
    save_model(bundle, tmp_path / "tuned.safetensors")
    back = load_model(tmp_path / "tuned.safetensors")
    assert set(back.cnn) == set(changed) and "tuned" in back.name
    tuned = Embedder(back, precision="float32").encoder
    assert tuned.tuned_id and tuned.tuned_id != load_backbone(tuned=untouched).tuned_id
    got = tuned.describe(images)
    np.testing.assert_allclose(got[:, :-1280], packaged.describe(images)[:, :-1280], atol=1e-5)  # earlier stages
    assert not np.allclose(got[:, -1280:], packaged.describe(images)[:, -1280:], atol=1e-3)  # the head's part
    with pytest.raises(BackboneError, match="do not fit"):
        load_backbone(tuned={"_conv_head.weight": np.zeros((3, 3), np.float32)})


def test_chamfer_many_matches_pairwise():
    rng = np.random.default_rng(0)

    def unit(*shape):
        v = rng.normal(size=shape).astype(np.float32)
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    q = unit(6, 16)
    videos = [unit(n, 16) for n in (3, 9, 1, 4)]
    frames = np.concatenate(videos).astype(np.float16)
    offsets = np.cumsum([0] + [len(v) for v in videos])
    for symmetric, fn in ((False, chamfer), (True, symmetric_chamfer)):
        expected = [fn(q, v.astype(np.float16).astype(np.float32)) for v in videos]
        for chunk in (1, 5, 1000):  # chunking must not change the result
            got = chamfer_many(q, frames, offsets, symmetric, chunk_frames=chunk)
            np.testing.assert_allclose(got, expected, atol=1e-5)
    # corpus-aware, with inner pictures: each video's rows are `views` streams, as frame_similarity sees them
    views = np.array([1, 3, 1, 2])
    videos = [unit(n * v, 16) for n, v in zip((3, 3, 1, 2), views)]
    frames = np.concatenate(videos)
    offsets = np.cumsum([0] + [len(v) for v in videos])
    bg = rng.uniform(0, 0.3, len(frames)).astype(np.float32)
    expected = [evidence(frame_similarity(q, v, bg[a:b], int(w)).max(axis=1), True).mean()
                for v, w, a, b in zip(videos, views, offsets[:-1], offsets[1:])]
    for chunk in (1, 5, 1000):
        got = chamfer_many(q, frames, offsets, chunk_frames=chunk, background=bg, views=views)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_cosine_views_takes_each_videos_best_view_and_charges_inner_pictures():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(7, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    counts = np.array([1, 4, 2])  # video 0: one view; video 1: whole, a window, 2 pictures; video 2: whole + 1 picture
    picture = np.array([0, 0, 0, 1, 1, 0, 1], bool)
    margins = PICTURE_MARGIN * picture
    q = v[3]  # video 1's first inner picture
    s = cosine_views(q, v, counts, margins)
    plain = cosine(q, v)
    assert s.shape == (3,)
    assert s[0] == pytest.approx(plain[0])
    assert s[1] == pytest.approx(max(plain[1], plain[2], plain[3] - PICTURE_MARGIN, plain[4] - PICTURE_MARGIN))
    assert s[1] == pytest.approx(1 - PICTURE_MARGIN)  # found through its picture, which pays the margin
    assert cosine_views(v[2], v, counts, margins)[1] == pytest.approx(1.0)  # a window pays nothing here
    assert s[2] == pytest.approx(max(plain[5], plain[6] - PICTURE_MARGIN))
    looks = np.stack([v[0], v[5]])  # a query's looks: the best look of the best view
    np.testing.assert_allclose(cosine_views(looks, v, counts, margins)[[0, 2]], [1.0, 1.0 - 0.02], atol=1e-6)
    assert cosine_views(q, v[:0], np.zeros(0, np.int64), np.zeros(0, np.float32)).shape == (0,)


def test_temporal_support_keeps_copied_stretches_and_lowers_lone_matches():
    rng = np.random.default_rng(0)
    s = rng.uniform(-0.2, 0.6, size=(7, 12)).astype(np.float32)
    streams = np.array([0] * 5 + [1] * 7)

    def reference(i, j):  # the definition, cell by cell
        near = [s[i, j]]
        if i + 1 < len(s):
            near.append(max(s[i + 1, c] for c in range(j, j + 3) if c < len(streams) and streams[c] == streams[j]))
        if i > 0:
            near.append(max(s[i - 1, c] for c in range(j - 2, j + 1) if c >= 0 and streams[c] == streams[j]))
        return 0.5 * s[i, j] + 0.5 * np.mean(near)

    got = temporal_support(s, streams, 0.5)
    want = np.array([[reference(i, j) for j in range(12)] for i in range(7)])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.array_equal(temporal_support(s, streams, 0.0), s)

    # a copy at normal speed, at double speed and a still shot keep their cells; a lone match loses a third
    m = np.zeros((6, 30), np.float32)
    for i in range(6):
        m[i, i] = m[i, 10 + 2 * i] = m[i, 25] = 1.0
    m[3, 7] = 1.0
    out = temporal_support(m, np.zeros(30, int), 0.5)
    for i in range(6):
        assert out[i, i] == out[i, 10 + 2 * i] == out[i, 25] == 1.0
    assert out[3, 7] == pytest.approx(2 / 3)
    # nor does support cross from one stream (a video, an inner picture) into the next
    m = np.zeros((6, 30), np.float32)
    m[np.arange(6), 12 + np.arange(6)] = 1.0  # (2, 14) is the last cell of stream 0 below
    assert temporal_support(m, np.zeros(30, int), 0.5)[2, 14] == 1.0
    assert temporal_support(m, np.repeat([0, 1], 15), 0.5)[2, 14] == pytest.approx(5 / 6)


def test_matched_span_finds_offset_and_speed():
    rng = np.random.default_rng(1)
    sim = rng.uniform(-0.1, 0.2, size=(10, 40)).astype(np.float32)
    for i in range(10):
        sim[i, 20 + i] = 0.9  # query 0-10 s at 20-30 s of the target
    span = matched_span(sim, np.arange(10.0), np.arange(40.0), 1.0, 10.0, 40.0)
    assert (span.query_start, span.query_end, span.start, span.end) == (0, 10, 20, 30)
    sim2 = rng.uniform(-0.1, 0.2, size=(10, 40)).astype(np.float32)
    for i in range(2, 8):
        sim2[i, 5 + 2 * i] = 0.9  # query 2-8 s at double speed from 9 s
    span = matched_span(sim2, np.arange(10.0), np.arange(40.0))
    # a copy ends 0.6 of a step after its last matching sample when the next one is noise
    assert (span.query_start, span.start) == (2, 9) and 7.6 <= span.query_end < 8.6 and 19.6 <= span.end < 20.6


def test_matched_span_edge_cases():
    # one frame each: the span is that frame, cut to the videos' lengths
    span = matched_span(np.array([[0.7]], np.float32), np.zeros(1), np.zeros(1), 1.0, 0.5, 0.8)
    assert (span.query_start, span.query_end, span.start, span.end) == (0, 0.5, 0, 0.8)
    # nothing stands out (a flat matrix): a one-frame span, never an exception
    span = matched_span(np.full((5, 7), 0.3, np.float32), np.arange(5.0), np.arange(7.0))
    assert 0 < span.query_end - span.query_start <= 1 and 0 < span.end - span.start <= 1
    # a query longer than the target that holds all of it in its middle
    sim = np.full((12, 4), -0.1, np.float32)
    for j in range(4):
        sim[4 + j, j] = 0.95
    span = matched_span(sim, np.arange(12.0), np.arange(4.0), 1.0, 12.0, 4.0)
    assert (span.query_start, span.query_end, span.start, span.end) == (4, 8, 0, 4)
    # times in seconds at 2 fps: the step is half a second
    sim = np.full((6, 6), 0.0, np.float32)
    np.fill_diagonal(sim, 1.0)
    span = matched_span(sim, np.arange(6) / 2, np.arange(6) / 2, 0.5, 3.0, 3.0)
    assert (span.query_start, span.query_end, span.start, span.end) == (0, 3, 0, 3)


def test_matched_segments_finds_a_clip_used_twice():
    """A 6-frame clip appears twice in a 40-frame video (at 5 s and at 25 s, the second
    time at half speed): both localisers return both segments, best first."""
    from engine.spans import Localiser, matched_segments

    rng = np.random.default_rng(0)
    sim = rng.uniform(0.0, 0.3, (6, 40)).astype(np.float32)
    for i in range(6):
        sim[i, 5 + i] = 0.95
        sim[i, 25 + 2 * i] = sim[i, 26 + 2 * i] = 0.9
    for method in Localiser:
        segs = matched_segments(sim, np.arange(6.0), np.arange(40.0), 1.0, 6.0, 40.0, method=method)
        assert len(segs) == 2, method
        first, second = segs
        assert (first.query_start, first.query_end, first.start, first.end) == (0, 6, 5, 11)
        assert second.query_start == 0 and second.query_end == 6 and 25 <= second.start and second.end >= 35
        assert first.score > second.score > 0.8
    # a single alignment: one segment, and matched_span agrees with it
    one = matched_segments(sim[:, :20], np.arange(6.0), np.arange(20.0), 1.0, 6.0, 20.0)
    assert len(one) == 1 and (one[0].start, one[0].end) == (5, 11)


def test_matched_segments_cuts_a_still_shot_to_one_to_one_time():
    """A 4-s still shot copied at 10 s: every query frame of a longer still shot (here 8 s)
    matches every frame of the copy, and the TN path strays off the diagonal; the box is
    cut to the 4 s that the copy holds, at 1:1 time. A half-speed copy keeps its box."""
    from engine.spans import Localiser, matched_segments

    rng = np.random.default_rng(0)
    sim = rng.uniform(0.0, 0.3, (10, 30)).astype(np.float32)
    sim[0:8, 10:14] = 0.9  # query 0-8 s (one still shot) against the copy's 10-14 s
    for i in range(4):
        sim[2 + i, 10 + i] = 0.95  # the frames actually copied: query 2-6 s
    (seg,) = matched_segments(sim, np.arange(10.0), np.arange(30.0), method=Localiser.TEMPORAL_NETWORK)
    assert seg.query_end - seg.query_start == pytest.approx(seg.end - seg.start) and seg.start == 10, seg
    assert 3.6 <= seg.end - seg.start < 4.6, seg
    speed = rng.uniform(0.0, 0.3, (10, 30)).astype(np.float32)
    for i in range(8):
        speed[i, 10 + i // 2] = 0.9  # 8 s of the query shown at double speed in 4 s
    (seg,) = matched_segments(speed, np.arange(10.0), np.arange(30.0), method=Localiser.TEMPORAL_NETWORK)
    assert (seg.query_start, seg.start) == (0, 10) and 7.6 <= seg.query_end < 8.6 and 13.6 <= seg.end < 14.6, seg


def test_a_box_found_by_two_paths_is_one_segment():
    """A picture-in-picture copy whose samples repeat (each still shown for two samples):
    two TN paths run through the same cells and end on the same box. It is returned once,
    with the better of the two scores (from a collection draw's pair, rounded)."""
    from engine.spans import matched_segments

    block = np.array([[-0.126, 0.150, 0.152, -0.119, -0.144, -0.402],
                      [-0.172, 0.155, 0.157, -0.049, -0.051, -0.357],
                      [-0.210, -0.094, -0.094, 0.183, 0.180, -0.338],
                      [-0.217, -0.156, -0.156, 0.189, 0.186, -0.280],
                      [-0.217, -0.156, -0.156, 0.189, 0.186, -0.280],
                      [-0.224, -0.162, -0.164, 0.189, 0.187, -0.234]], np.float32)
    sim = np.full((6, 15), -0.25, np.float32)
    sim[:, 7:13] = block
    (seg,) = matched_segments(sim, np.arange(6.0), np.arange(15.0), 1.0, 5.125, 14.5)
    assert (seg.query_start, seg.start) == (0, 8) and seg.end - seg.start == pytest.approx(3.6), seg
    assert seg.score == pytest.approx(sim[0:4, 8:12].max(axis=1).mean(), abs=1e-6)


def test_a_segment_takes_its_weaker_first_sample():
    """A copy that fades in: its first sample matches less than the rest, not enough for
    the threshold, but clearly more than the noise. The segment starts there; a segment
    whose previous cell is noise does not grow."""
    from engine.spans import matched_segments

    rng = np.random.default_rng(3)
    sim = rng.uniform(-0.1, 0.2, (12, 30)).astype(np.float32)
    for i in range(3, 10):
        sim[i, 10 + i] = 0.9  # query 3-10 s at 13-20 s of the target
    sim[2, 12] = 0.42  # the fade in, one sample before
    (seg,) = matched_segments(sim, np.arange(12.0), np.arange(30.0))
    assert (seg.query_start, seg.start) == (2, 12) and 9.6 <= seg.query_end < 10.6, seg
    assert seg.end - seg.query_end == pytest.approx(10), seg
    sim[2, 12] = 0.15  # noise: the segment keeps its start
    (seg,) = matched_segments(sim, np.arange(12.0), np.arange(30.0))
    assert (seg.query_start, seg.start) == (3, 13), seg


def test_a_segment_ends_between_its_last_sample_and_the_next():
    """Samples are instants 1 s apart: a copy ends 0.6 s after its last matching sample,
    later as the next sample on its diagonal matches more (a fade out), and at the video's
    end when its last sample is the video's last and the duration is known."""
    from engine.spans import matched_segments

    rng = np.random.default_rng(4)
    sim = rng.uniform(-0.1, 0.1, (12, 30)).astype(np.float32)
    for i in range(2, 8):
        sim[i, 10 + i] = 0.9  # query 2-8 s at 12-18 s of the target
    low = float(sim.mean())
    sim[8, 18] = low  # noise after the last sample
    (seg,) = matched_segments(sim, np.arange(12.0), np.arange(30.0))
    assert (seg.query_end, seg.end) == pytest.approx((7.6, 17.6), abs=1e-3), seg
    sim[8, 18] = 0.25  # the fade out, below the threshold (about 0.3): a quarter of the copy's level
    (seg,) = matched_segments(sim, np.arange(12.0), np.arange(30.0))
    share = (0.25 - sim.mean()) / (0.9 - sim.mean())
    assert (seg.query_end, seg.end) == pytest.approx((7.6 + share, 17.6 + share), abs=1e-3), seg
    # the copy runs to the query's last sample: it ends with the query (9.4 s long)
    clip = sim[2:8]
    (seg,) = matched_segments(clip, np.arange(6.0), np.arange(30.0), 1.0, 5.4, 30.0)
    assert (seg.query_end, seg.end) == pytest.approx((5.4, 17.4), abs=1e-3), seg


def test_a_box_reached_through_look_alike_frames_is_cut_to_the_copy():
    """A compilation: the query's 2-12 s match a 4-s stretch of look-alike footage (one
    template, every frame a little) just before the 10 s actually copied (query 14-24 s at
    6-16 s), and the TN path joins them. The segment is the copied diagonal alone."""
    from engine.spans import matched_segments

    rng = np.random.default_rng(5)
    sim = rng.uniform(-0.6, -0.4, (27, 28)).astype(np.float32)
    sim[2:12, 4:8] = -0.05  # look-alike block
    for i in range(14, 24):
        sim[i, i - 8] = 0.3  # the copy
    (seg,) = matched_segments(sim, np.arange(27.0), np.arange(28.0))
    assert (seg.query_start, seg.start) == (14, 6) and 23.6 <= seg.query_end < 24.6, seg
    assert seg.end - seg.start == pytest.approx(seg.query_end - seg.query_start), seg


def test_a_weaker_path_is_not_a_second_segment():
    """Elsewhere in the target a path matches above the threshold but frame for frame
    clearly less than the copy (look-alike footage): one segment. A second copy as strong
    as the first stays a segment."""
    from engine.spans import matched_segments

    rng = np.random.default_rng(6)
    sim = rng.uniform(-0.1, 0.1, (10, 40)).astype(np.float32)
    for i in range(8):
        sim[i, 10 + i] = 0.9
    for i in range(6):
        sim[i, 20 + i] = 0.7  # a weaker path elsewhere in the target, above the threshold
    segs = matched_segments(sim, np.arange(10.0), np.arange(40.0))
    assert [(s.query_start, s.start) for s in segs] == [(0, 10)], segs
    for i in range(6):
        sim[i, 20 + i] = 0.88
    assert len(matched_segments(sim, np.arange(10.0), np.arange(40.0))) == 2


def test_a_segment_moves_to_the_target_s_cuts():
    """A copy cut into the target at 12.4 s and out at 17.4 s (query 5.4-10.4 s): samples
    1 s apart put its first sample at 13 s and its end 0.6 s after 17 s. With the target's
    cuts the segment is 12.4-17.4 s and the query axis moves with it; a cut more than a
    sample away changes nothing; where the box starts at the query's first sample (a clip
    of the target), the query's own start bounds the copy and the start stays."""
    from engine.spans import matched_segments

    rng = np.random.default_rng(7)
    sim = rng.uniform(-0.1, 0.1, (20, 30)).astype(np.float32)
    for i in range(6, 11):
        sim[i, i + 7] = 0.9
    sim[5, 12] = sim[11, 18] = float(sim.mean())  # noise beside the copy
    qt, vt = np.arange(20.0), np.arange(30.0)
    (plain,) = matched_segments(sim, qt, vt, 1.0, 20.0, 30.0)
    assert (plain.query_start, plain.start) == (6, 13) and plain.end == pytest.approx(17.6, abs=1e-3), plain
    (seg,) = matched_segments(sim, qt, vt, 1.0, 20.0, 30.0, target_cuts=[4.0, 12.4, 17.4, 25.0])
    assert (seg.query_start, seg.query_end, seg.start, seg.end) == pytest.approx((5.4, 10.4, 12.4, 17.4)), seg
    (far,) = matched_segments(sim, qt, vt, 1.0, 20.0, 30.0, target_cuts=[11.5, 19.0])
    assert (far.start, far.end) == pytest.approx((plain.start, plain.end)), far
    clip = sim[6:11]  # the query is the copy itself: its first sample is the box's
    (seg,) = matched_segments(clip, np.arange(5.0), vt, 1.0, 5.0, 30.0, target_cuts=[12.4])
    assert (seg.query_start, seg.start) == (0, 13), seg


def test_a_piece_between_two_cuts_moves_to_its_best_diagonal_on_the_query_axis():
    """A compilation's piece, target 12.4-17.4 s between two cuts, copied from query 5.4-10.4 s:
    a segment read one sample off on the query axis (look-alike frames at the path's ends)
    moves to the diagonal that the piece's samples match best; on a flat matrix it stays."""
    from engine.spans import Segment, _refit_offset

    rng = np.random.default_rng(8)
    sim = rng.uniform(-0.1, 0.1, (20, 30)).astype(np.float32)
    for i in range(6, 11):
        sim[i, i + 7] = 0.9
    qt, vt = np.arange(20.0), np.arange(30.0)
    off = Segment(6.4, 11.4, 12.4, 17.4, score=0.9)
    moved = _refit_offset(off, sim, qt, vt, 1.0, 20.0)
    assert (moved.query_start, moved.query_end, moved.start, moved.end) == pytest.approx((5.4, 10.4, 12.4, 17.4))
    flat = _refit_offset(off, np.zeros_like(sim), qt, vt, 1.0, 20.0)
    assert (flat.query_start, flat.query_end) == pytest.approx((6.4, 11.4))


def test_a_cut_both_videos_show_inside_a_segment_fixes_its_offset():
    """Samples 1 s apart put a copy at offset 7 s; a shot change of the copied footage is at
    8.0 s in the query and 15.7 s in the target, so the offset is 7.7 s. The query moves
    where the target's ends are bounded (its cuts); where the query's own start bounds the
    copy, the target moves instead; a pairing more than a sample off changes nothing."""
    from engine.spans import Segment, _align_on_shared_cut

    seg = Segment(5.4, 10.4, 12.4, 17.4, score=0.9)
    target = np.array([12.4, 15.7, 17.4])
    fixed = _align_on_shared_cut(seg, np.array([8.0]), target, 1.0, (True, True), 20.0, 30.0)
    assert (fixed.query_start, fixed.query_end, fixed.start, fixed.end) == pytest.approx((4.7, 9.7, 12.4, 17.4))
    clip = _align_on_shared_cut(seg, np.array([8.0]), target, 1.0, (False, True), 20.0, 30.0)
    assert (clip.query_start, clip.query_end, clip.start, clip.end) == pytest.approx((5.4, 9.7, 13.1, 17.4))
    far = _align_on_shared_cut(seg, np.array([6.0]), target, 1.0, (True, True), 20.0, 30.0)
    assert far == seg


def test_brightness_places_a_segment_within_a_sample():
    """The copy's footage brightens and darkens as its source's, 7.3 s later in the target;
    1-s samples put the segment at offset 7. The profiles move it to 7.3 (to 0.05 s); a
    still picture (flat profile) or a segment shorter than 2 s stays."""
    from engine.spans import Segment, _align_on_profile

    def profile(times, shift):
        at = times[:, None] + np.arange(4) / 4 - shift
        return (100 + 40 * np.sin(at * 1.7) + 20 * np.sin(at * 0.45)).astype(np.float32)

    qt, vt = np.arange(20.0), np.arange(40.0)
    query, target = (qt, profile(qt, 0.0)), (vt, profile(vt, 7.3))
    seg = Segment(4.0, 12.0, 11.0, 19.0, score=0.9)
    moved = _align_on_profile(seg, query, target, 1.0, (True, True), 20.0, 40.0)
    assert moved.start - moved.query_start == pytest.approx(7.3, abs=0.03) and moved.start == 11.0, moved
    flat = (qt, np.full((20, 4), 90.0, np.float32))
    assert _align_on_profile(seg, flat, target, 1.0, (True, True), 20.0, 40.0) == seg
    short = Segment(4.0, 5.5, 11.0, 12.5, score=0.9)
    assert _align_on_profile(short, query, target, 1.0, (True, True), 20.0, 40.0) == short


@pytest.mark.parametrize("fps", [1.0, 2.0, 4.0])
def test_a_copy_with_a_faded_stretch_is_one_segment_at_any_sampling_rate(fps):
    """The localiser's reaches are seconds: a copy whose middle 3.5 s fade below the
    threshold is one segment at 1, 2 and 4 fps (in samples, 2 fps split it in two)."""
    from engine.spans import matched_segments

    step = 1.0 / fps
    qt, vt = np.arange(0, 30, step), np.arange(0, 40, step)
    sim = np.random.default_rng(0).normal(0, 0.03, (len(qt), len(vt))).astype(np.float32)
    copy = (np.abs(vt[None] - qt[:, None] - 5) < step / 2) & (qt[:, None] >= 5) & (qt[:, None] < 25)
    sim[copy] = 0.6  # query 5-25 s is target 10-30 s
    faded = (qt >= 12) & (qt < 15.5)
    sim[faded] = np.minimum(sim[faded], 0.05)
    (seg,) = matched_segments(sim, qt, vt, step)
    assert (seg.query_start, seg.start) == (5, 10), seg
    assert 24.5 <= seg.query_end <= 25 and seg.end - seg.start == pytest.approx(seg.query_end - seg.query_start)
