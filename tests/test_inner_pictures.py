"""Inner pictures: a copy shown in a box of another video's frame is found by its box."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import media
from conftest import ROOT
from engine import Engine
from engine.inner_pictures import crop, grey, inner_boxes


def pip(source: list[np.ndarray], background: list[np.ndarray], box: tuple[int, int, int, int]) -> list[np.ndarray]:
    """The source scaled into box (x0, y0, x1, y1, pixels) over the background, frame by frame."""
    from PIL import Image

    x0, y0, x1, y1 = box
    out = []
    for s, b in zip(source, background):
        f = b.copy()
        f[y0:y1, x0:x1] = np.asarray(Image.fromarray(s).resize((x1 - x0, y1 - y0), Image.BILINEAR))
        out.append(f)
    return out


def test_finds_the_box_of_a_picture_in_picture_and_nothing_in_a_plain_video():
    src = media.scene_frames(21, 8, fps=2, size=(320, 180))
    bg = media.scene_frames(22, 8, fps=2, size=(320, 180))
    frames = pip(src, bg, (176, 90, 304, 162))
    boxes = inner_boxes(grey(np.stack(frames)))
    assert boxes, "no box found"
    x0, y0, x1, y1 = boxes[0]
    assert abs(x0 - 176 / 320) < 0.03 and abs(x1 - 304 / 320) < 0.03, boxes
    assert abs(y0 - 90 / 180) < 0.03 and abs(y1 - 162 / 180) < 0.03, boxes
    assert inner_boxes(grey(np.stack(bg))) == []
    assert inner_boxes(grey(np.stack(frames[:2]))) == []  # too few frames to tell
    assert crop(frames[0], boxes[0]).shape == (224, 224, 3)


def test_a_reaction_layout_source_against_the_frame_edge_is_a_box():
    """Side by side: the source on the left 60% between black bars, the reactor on the right,
    whose desk edge continues the source's lower side across the frame. Only three sides
    are lines and the two parallel ones differ in extent; the reactor's edge closes the box."""
    from PIL import Image

    w, h, sw = 320, 180, 192
    sh = sw * h // w  # 108: y 36..144
    src = media.scene_frames(24, 8, fps=2, size=(w, h))
    cam = media.scene_frames(25, 8, fps=2, size=(w - sw, h))
    frames = []
    for s, c in zip(src, cam):
        f = np.zeros((h, w, 3), np.uint8)
        f[(h - sh) // 2:(h - sh) // 2 + sh, :sw] = np.asarray(Image.fromarray(s).resize((sw, sh), Image.BILINEAR))
        c = c.copy()
        c[(h + sh) // 2:] = (90, 60, 30)  # the desk, from the source's lower edge down
        f[:, sw:] = c
        frames.append(f)
    boxes = inner_boxes(grey(np.stack(frames)))
    want = (0.0, (h - sh) / 2 / h, sw / w, (h + sh) / 2 / h)
    assert any(np.allclose(b, want, atol=0.03) for b in boxes), boxes



def test_a_picture_whose_edges_the_footage_behind_it_breaks_is_a_box():
    """Picture-in-picture over footage that has the inset's brightness along a fifth of its
    top side and of its left side: no two parallel lines are whole or share an end, but
    every side is mostly there."""
    src = media.scene_frames(26, 8, fps=2, size=(320, 180))
    bg = media.scene_frames(27, 8, fps=2, size=(320, 180))
    x0, y0, x1, y1 = 70, 60, 230, 150
    frames = pip(src, bg, (x0, y0, x1, y1))
    for f in frames:  # one flat colour across the edge, inside and out: no edge there
        f[y0 - 4:y0 + 4, x1 - (x1 - x0) // 5:x1 + 4] = (120, 120, 120)
        f[y1 - (y1 - y0) // 5:y1 + 4, x0 - 4:x0 + 4] = (120, 120, 120)
    boxes = inner_boxes(grey(np.stack(frames)))
    want = (x0 / 320, y0 / 180, x1 / 320, y1 / 180)
    assert any(np.allclose(b, want, atol=0.03) for b in boxes), boxes

def vertical_repost(source: list[np.ndarray]) -> list[np.ndarray]:
    """Landscape frames as a 9:16 repost shows them: fitted to the width across the middle,
    over a blurred, zoomed copy of themselves (faint edges)."""
    from PIL import Image, ImageFilter

    h, w = source[0].shape[:2]
    vw, vh, band = h, w, h * h // w
    out = []
    for s in source:
        img = Image.fromarray(s)
        zoom = img.resize((vh * w // h, vh)).filter(ImageFilter.GaussianBlur(8))
        f = np.asarray(zoom)[:, (zoom.width - vw) // 2:][:, :vw].copy()
        f[(vh - band) // 2:(vh - band) // 2 + band] = np.asarray(img.resize((vw, band), Image.BILINEAR))
        out.append(f)
    return out


def test_a_portrait_video_gets_its_middle_band_as_an_inner_picture():
    src = media.scene_frames(23, 8, fps=2, size=(320, 180))
    frames = vertical_repost(src)
    assert frames[0].shape == (320, 180, 3)
    boxes = inner_boxes(grey(np.stack(frames)))
    assert boxes and boxes[0] == pytest.approx((0.0, 0.5 - 101 / 640, 1.0, 0.5 + 101 / 640), abs=0.01), boxes
    # The band's crop shows what the landscape original's whole frame shows.
    diff = np.abs(crop(frames[3], boxes[0]).astype(np.float32) - crop(src[3], (0.0, 0.0, 1.0, 1.0))).mean()
    whole = np.abs(crop(frames[3], (0.0, 0.0, 1.0, 1.0)).astype(np.float32) - crop(src[3], (0.0, 0.0, 1.0, 1.0))).mean()
    assert diff < 6 < 30 < whole, (diff, whole)
    assert inner_boxes(grey(np.stack(src))) == []  # a landscape video gets no band
    assert len(inner_boxes(grey(np.stack(frames)), top=1)) == 1


@pytest.fixture(scope="module")
def pip_corpus(tmp_path_factory):
    """Eight plain videos and one that shows scene 31 in a corner box over scene 32."""
    root = tmp_path_factory.mktemp("pip")
    size = (320, 180)
    for i in range(8):
        media.write_video(root / "videos" / f"plain{i}.mp4", media.scene_frames(40 + i, 10, fps=4, size=size), fps=4)
    src = media.scene_frames(31, 10, fps=4, size=size)
    media.write_video(root / "videos" / "pip.mp4", pip(src, media.scene_frames(32, 10, fps=4, size=size),
                                                        (160, 80, 304, 161)), fps=4)
    query = media.write_video(root / "query.mp4", src, fps=4)
    return root, query


@pytest.mark.parametrize("inner", [True, False])
def test_an_index_with_inner_pictures_finds_the_copy_in_the_box(pip_corpus, pca_model, tmp_path, inner):
    root, query = pip_corpus
    eng = Engine(model=pca_model)
    eng.build_index(root / "videos", tmp_path / "idx", progress=False, inner_pictures=inner)
    index = eng.index
    assert index.manifest["inner_pictures"] is inner
    pos = index.position("pip.mp4")
    rec = index.records[pos]
    frames, times, attention = index.video_frames(pos)
    assert frames.shape[0] == len(times) == rec.num_frames  # the whole frames, as before
    rows, _, _ = index.video_frames(pos, pictures=True)
    assert rows.shape == (rec.views, rec.num_frames, frames.shape[1])
    assert index.frame_backgrounds(pos).shape == (rec.views, rec.num_frames)
    result = eng.search(query, k=9)
    rank = [m.id for m in result.matches].index("pip.mp4") + 1
    top = result.matches[0]
    assert top.comparison.similarity.shape == (len(result.query.times), len(top.video.times))
    # cosine compares one video vector per view: the box's own finds the copy too
    cos = [m.id for m in eng.search(query, k=9, measure="cosine").matches].index("pip.mp4") + 1
    if inner:
        assert rec.views >= 2
        assert rank == 1, [(m.id, m.score) for m in result.matches]
        assert cos == 1
        assert all(r.views == 1 for r in index.records if r.id.startswith("plain"))
    else:
        assert rec.views == 1
        assert rank > 1  # the whole frames alone miss it (rank 7 of 9 when written)
        assert cos > 1, cos


@pytest.mark.parametrize("fps", [1.0, 2.0])
def test_indexing_finds_inner_pictures_in_the_same_decode(pip_corpus, pca_model, monkeypatch, fps):
    """A video with inner pictures is decoded once: the small whole frames the boxes are found
    in come from the decode the CNN's squares come from (a second decode took 1.8x the time
    on 720p footage), and the pictures are those that decoding again gives, at any rate (at
    2 fps a sample that skipped B-frames is a quarter of a second late, which once lost every
    picture of the video in the second decode)."""
    import engine.video

    root, _ = pip_corpus
    embedder = Engine(model=pca_model, fps=fps).embedder
    opened = []
    real_open = engine.video._open
    monkeypatch.setattr(engine.video, "_open", lambda path: opened.append(path) or real_open(path))
    emb = embedder.embed(root / "videos" / "pip.mp4", inner_pictures=True)
    assert len(opened) == 1 and emb.pictures.shape[0] >= 1
    from engine.embedding import embed_pictures

    again = embed_pictures(embedder.bundle, embedder.picture_descriptors(root / "videos" / "pip.mp4", emb.times))
    np.testing.assert_allclose(emb.pictures, again, atol=1e-6)
    assert len(opened) == 2  # the standalone path decodes its own small frames


def test_evaluate_with_inner_pictures_describes_every_ranked_video(pip_corpus, tmp_path):
    """A benchmark without a database list ranks every video, queries too: each gets its
    inner pictures (a query that is also in the database once got none)."""
    root, _ = pip_corpus
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"pip.mp4": ["plain0.mp4"]}))
    cmd = [sys.executable, "-m", "engine", "evaluate", "generic", str(gt), "--videos", str(root / "videos"),
           "--cache", str(tmp_path / "f.npz"), "--measure", "chamfer", "--inner-pictures", "--json"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["model"].endswith("with inner pictures")
    from engine.evaluation.features import MADE_BY

    with np.load(tmp_path / "f.pictures.npz") as cached:
        assert sorted(set(cached.files) - {MADE_BY}) == sorted(p.name for p in (root / "videos").iterdir())
        assert MADE_BY in cached.files
        assert cached["pip.mp4"].shape[0] >= 1
    bad = subprocess.run(cmd[:6] + ["--features", str(tmp_path / "f.npz"), "--inner-pictures"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "--inner-pictures needs --videos" in bad.stderr
    bad = subprocess.run(cmd[:6] + ["--features", str(tmp_path / "f.npz"), "--fps", "2"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "--fps needs --videos" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("fps", [2.0, 4.0])
def test_boxes_are_found_on_samples_a_second_apart_at_any_rate(fps):
    """The demo's PiP copy of `cup` (a short copy whose box edges show in a few samples
    only) has its box found at 1 fps; at 2 and 4 fps the detector looks at samples about
    1 s apart too and finds the same box (on all samples it found none, and the demo
    benchmark lost that family)."""
    from engine.embedding import WHOLE_SIDE
    from engine.video import iter_frames

    path = ROOT / "assets" / "demo" / "videos" / "copies" / "cup-pip+colour-temporal_crop.mp4"

    def boxes(rate: float) -> list:
        images = np.stack([img for _, img in iter_frames(path, rate, short_side=WHOLE_SIDE, crop=None)])
        return inner_boxes(grey(images), fps=rate)

    once = boxes(1.0)
    assert len(once) == 1
    got = boxes(fps)
    assert len(got) == 1 and np.allclose(got[0], once[0], atol=0.03), (got, once)
