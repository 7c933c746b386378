"""The demo corpus builder's pieces, and the shipped default (assets/) end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine import ASSETS, DEFAULT_INDEX, DEFAULT_MODEL, Engine, Measure
from engine.evaluation.demo_corpus import CLIPS, FPS, SIZE, clip_frames, make_copy


def _frames(n: int, value: int = 0) -> list[np.ndarray]:
    return [np.full((SIZE[1], SIZE[0], 3), (value + i) % 256, np.uint8) for i in range(n)]


def test_insertion_span_points_at_the_source_frames():
    rng = np.random.default_rng(0)
    src = _frames(24, value=100)
    filler = [_frames(200, value=0), _frames(200, value=0)]
    logo = np.zeros((20, 20, 4), np.uint8)
    frames, label = make_copy(src, [], "insert", rng, filler, logo)
    a, b = (round(t * FPS) for t in label["span"])
    assert b - a == len(src) and label["source_span"] == [0.0, 2.0]
    assert all(np.array_equal(f, s) for f, s in zip(frames[a:b], src))
    assert not np.array_equal(frames[a - 1], src[0])


def test_temporal_crop_and_speed_labels():
    rng = np.random.default_rng(1)
    src = _frames(48, value=10)
    filler = [_frames(100)]
    logo = np.zeros((20, 20, 4), np.uint8)
    frames, label = make_copy(src, ["flip"], "temporal_crop", rng, filler, logo)
    s0, s1 = label["source_span"]
    assert len(frames) == round((s1 - s0) * FPS) and label["span"] == [0.0, round(len(frames) / FPS, 3)]
    assert np.array_equal(frames[0], src[round(s0 * FPS)][:, ::-1])
    frames, label = make_copy(src, [], "speed", rng, filler, logo)
    assert len(frames) == pytest.approx(len(src) / label["speed"], abs=1)


def test_real_clip_keeps_real_time(tmp_path):
    bunny = next(c for c in CLIPS if c.name == "bunny")
    frames = clip_frames(bunny, tmp_path)
    assert len(frames) / FPS == pytest.approx(5.3, abs=0.15)
    assert frames[0].shape == (SIZE[1], SIZE[0], 3)


needs_assets = pytest.mark.skipif(not (DEFAULT_MODEL.is_file() and (DEFAULT_INDEX / "manifest.json").is_file()),
                                  reason="assets/ has no trained default (python -m engine.evaluation.demo_corpus build ...)")


@needs_assets
def test_shipped_default_finds_the_example_sources():
    labels = json.loads((ASSETS / "demo" / "labels.json").read_text())
    channels = json.loads((ASSETS / "demo" / "channels.json").read_text())
    eng = Engine(index=DEFAULT_INDEX)  # the shipped default: its model is assets/model.safetensors
    assert eng.model.tca is None and eng.model.pca is not None  # PCA whitening, mean pooling (RESULTS.md round 12)
    assert len(eng.index) == (len(labels["sources"]) + len(labels["copies"]) + len(labels["distractors"])
                              + len(channels["videos"]))
    for name, lab in labels["examples"].items():
        family = {lab["source"]} | {c for c, x in labels["copies"].items() if x["source"] == lab["source"]}
        result = eng.search(ASSETS / "demo" / "examples" / name, k=3, measure=Measure.CHAMFER)
        assert result.matches[0].id in family, (name, [m.id for m in result.matches])


@needs_assets
def test_shipped_channel_example_shows_the_shared_intro_problem_and_its_fix():
    """The full-upload example of the channel part: raw chamfer ranks an upload of the same
    channel with no shared content (only the intro) among the first four; corpus-aware
    chamfer ranks three copies first, and that upload no longer among them. (Not all four
    copies: the demo's channels have 4-6 uploads, too few for the background to see their
    intro as common once the whitening spreads unrelated frames apart; the partial crop copy
    falls to rank 10. README, Limits.)"""
    channels = json.loads((ASSETS / "demo" / "channels.json").read_text())
    example = next((ASSETS / "demo" / "examples").glob("channel-*-full.mp4"))
    query = channels["queries"]["queries/" + example.name.removeprefix("channel-")]
    copies = {"channels/" + v.removeprefix("videos/") for v, lab in channels["videos"].items()
              if any(s["source"] == query["source"] for s in lab["segments"])}
    channel = "channels/" + query["channel"] + "/"
    eng = Engine(index=DEFAULT_INDEX)
    raw = [m.id for m in eng.search(example, k=len(copies), normalize=False).matches]
    intruders = [v for v in raw if v.startswith(channel)]
    assert intruders, raw
    fixed = [m.id for m in eng.search(example, k=len(copies)).matches]
    assert set(fixed[:3]) <= copies and not set(intruders) & set(fixed), fixed


@needs_assets
def test_shipped_heat_strips_show_wrappers_as_common():
    """Without TCA the heat strips show each frame's distinctiveness in the collection: over
    the channel uploads of the shipped index, intro and end-card frames get under half their
    share of the frames (0.42 of it: the demo's channels are small; 0.0001 on the collection
    benchmark), and the channel example's black gap next to nothing."""
    channels = json.loads((ASSETS / "demo" / "channels.json").read_text())
    eng = Engine(index=DEFAULT_INDEX)
    got = share = 0.0
    for vid, lab in channels["videos"].items():
        if lab["kind"] != "upload":
            continue
        video = eng.video("channels/" + vid.removeprefix("videos/"))
        assert video.distinctiveness.sum() == pytest.approx(1, abs=1e-4)
        wrapper = (video.times < lab["body"][0]) | (video.times >= lab["body"][1])
        got, share = got + video.distinctiveness[wrapper].sum(), share + wrapper.mean()
    assert got / share < 0.5  # issue 13's bound for intros and end cards
    example = next((ASSETS / "demo" / "examples").glob("channel-*-full.mp4"))
    q = eng.search(example, k=1)
    w = q.query_distinctiveness * len(q.query_distinctiveness)  # 1 = the frame's share
    # the black gap: 0.0001 of its share when query and index ran the CNN in one precision,
    # 0.015 for a bfloat16 query against this float32-built index (a flat frame's whitened
    # descriptor moves most; notebooks/RESULTS.md, round 27)
    assert w.min() < 0.03 and w[:3].max() < 0.8 and np.median(w) > 1.0


@needs_assets
def test_shipped_corpus_is_small_and_attributed():
    videos = list((ASSETS / "demo").rglob("*.mp4"))
    assert sum(v.stat().st_size for v in videos) < 50 * 2**20
    attribution = (ASSETS / "ATTRIBUTION.md").read_text()
    for v in videos:
        assert str(v.relative_to(ASSETS)) in attribution, v


def _fake_packages(tmp_path, monkeypatch):
    """Packages 'already unpacked' in tmp_path/cache (no download): a 30 s clip, four flat
    photos (first set); cut-outs, a drawing, an icon, a repeat, a wallpaper folder and a
    'gradio' clip (second set)."""
    from PIL import Image

    from engine.training import footage
    from engine.video import write_video

    rng = np.random.default_rng(0)
    root = tmp_path / "cache" / "root"
    write_video(root / "pkg/clip.mp4", _frames(30 * 12), FPS)  # 30 s -> pieces of 20 and 10 s
    (root / "pkg/photos").mkdir(parents=True)
    for k in range(4):
        Image.fromarray(np.full((90, 120, 3), 60 * k, np.uint8)).save(root / f"pkg/photos/p{k}.jpg")
    cut = root / "cut/stamps"
    (cut / "animals").mkdir(parents=True)
    for k in range(3):  # a noisy photo in the middle, transparent around it
        rgba = np.zeros((200, 240, 4), np.uint8)
        rgba[30:170, 40:200, :3] = rng.integers(0, 256, (140, 160, 3))
        rgba[30:170, 40:200, 3] = 255
        Image.fromarray(rgba).save(cut / f"animals/a{k}.png")
    Image.open(cut / "animals/a0.png").save(cut / "animals/same-as-a0.png")  # a repeat
    Image.fromarray(np.full((200, 200, 3), (200, 30, 30), np.uint8)).save(cut / "drawing.png")  # one colour
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(cut / "icon.png")  # too small
    walls = root / "walls/Lake"
    walls.mkdir(parents=True)
    for side in (160, 320):  # the same wallpaper at two sizes: the larger file is taken
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(walls / f"{side}.png")
    gradio = tmp_path / "gradio"
    write_video(gradio / "media/v.mp4", _frames(5 * 12), FPS)
    for pkg in ("clips-pkg", "photo-pkg", "cut-pkg", "wall-pkg", "skimage"):
        (tmp_path / "cache" / f"{pkg}.unpacked").touch()
    monkeypatch.setattr(footage, "CLIPS", [footage.Clip("c", "clips-pkg", "pkg/clip.mp4", 30.0)])
    monkeypatch.setattr(footage, "PHOTOS", [("photo-pkg", "pkg/photos/*.jpg")])
    monkeypatch.setattr(footage, "MORE_PHOTOS", [("cut-pkg", "cut/stamps/**/*"), ("wall-pkg", "walls/*/")])
    monkeypatch.setattr(footage, "MORE_CLIPS", [footage.Clip("v", "gradio", "media/v.mp4", 5.0)])
    monkeypatch.setattr(footage, "gradio_root", lambda: gradio)
    return footage


def test_training_footage_builder_first_set(tmp_path, monkeypatch):
    """`--basic`: clips cut into pieces, photos three to a montage, and a list and a
    source table that name them."""
    from engine.video import probe

    footage = _fake_packages(tmp_path, monkeypatch)
    ids = footage.build(tmp_path / "out", tmp_path / "cache", more=False)
    assert ids == ["clip-c-0.mp4", "clip-c-1.mp4", "montage-00.mp4"]  # 4 photos: one montage of 3
    assert [round(probe(tmp_path / "out/videos" / v).duration) for v in ids] == [20, 10, 12]
    assert (tmp_path / "out/list.txt").read_text().split() == ids
    table = (tmp_path / "out/SOURCES.md").read_text()
    assert "clips-pkg: pkg/clip.mp4, 20-30 s" in table and table.count("photo-pkg: pkg/photos/p") == 3


def test_training_footage_builder_second_set(tmp_path, monkeypatch):
    """The second set keeps photographs only (no drawing, icon or repeat), lays cut-outs on
    a plain background, takes one file per wallpaper, and adds the installed package's clip."""
    from PIL import Image

    footage = _fake_packages(tmp_path, monkeypatch)
    ids = footage.build(tmp_path / "out", tmp_path / "cache")
    assert ids == ["clip-c-0.mp4", "clip-c-1.mp4", "montage-00.mp4", "xmontage-00.mp4", "xclip-v-0.mp4"]
    kept = sorted(p.name for p in (tmp_path / "out/photos").iterdir())
    assert kept == ["cut-pkg__0000.jpg", "cut-pkg__0001.jpg", "cut-pkg__0002.jpg", "wall-pkg__0003.jpg"]
    flat = np.asarray(Image.open(tmp_path / "out/photos/cut-pkg__0000.jpg"))
    assert flat.shape == (200, 240, 3) and flat[:20].reshape(-1, 3).std(0).max() < 3  # margin: one plain colour
    assert Image.open(tmp_path / "out/photos/wall-pkg__0003.jpg").size == (320, 320)
    table = (tmp_path / "out/SOURCES.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| xmontage-00.mp4"))
    assert "gradio: media/v.mp4, 0-5 s" in table
    assert row.count("cut-pkg: cut/stamps/animals/a") + row.count("wall-pkg: walls/Lake/320.png") == 3
