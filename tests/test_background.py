"""Corpus-aware similarity: backgrounds against brute force, and what they do to a ranking."""
import numpy as np

from engine.background import (WINDOW_FREE, WINDOW_SECONDS, WINDOW_STRIDE_SECONDS, distinctive_pooling,
                               distinctive_views, distinctiveness, frame_background, video_background, window_margin,
                               window_starts)
from engine.similarity import PICTURE_MARGIN
from engine.similarity import chamfer_many


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_frame_background_is_the_mean_of_the_other_videos_best_matches():
    rng = np.random.default_rng(0)
    lengths = [3, 7, 1, 12, 5, 2, 4]
    frames = _unit(rng.standard_normal((sum(lengths), 8)))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    owner = np.repeat(np.arange(len(lengths)), lengths)
    for k, skip in ((1, 0), (2, 1), (3, 3), (10, 0)):
        got = frame_background(frames, offsets, k, skip, chunk=5)  # chunks cut through videos
        lo = min(skip, max(len(lengths) - 1 - k, 0))
        for f in range(len(frames)):
            best = sorted(((frames[owner == v] @ frames[f]).max() for v in range(len(lengths)) if v != owner[f]),
                          reverse=True)
            assert abs(got[f] - np.mean(best[lo : lo + k])) < 1e-5
    v = _unit(rng.standard_normal((6, 8)))
    s = v @ v.T
    np.fill_diagonal(s, -np.inf)
    np.testing.assert_allclose(video_background(v, 2), np.sort(s, axis=1)[:, ::-1][:, :2].mean(axis=1), atol=1e-6)
    assert frame_background(frames[:3], offsets[:2]).tolist() == [0, 0, 0]  # one video: no background


def test_a_shared_intro_stops_deciding_the_ranking():
    """A channel's uploads share an intro (a still bumper: 4 identical frames). The query is
    a full upload: intro + new content. The database: a copy of that content re-uploaded
    by another channel (no intro), and two other uploads of the query's channel (intro +
    unrelated content). Raw chamfer ranks the channel's uploads first (the intro matches
    perfectly); corpus-aware chamfer ranks the copy first."""
    rng = np.random.default_rng(1)
    intro = np.repeat(_unit(rng.standard_normal((1, 32))), 4, axis=0)
    body = _unit(rng.standard_normal((4, 32)))
    copy = _unit(body + 0.2 * rng.standard_normal(body.shape))
    others = [np.concatenate([intro, _unit(rng.standard_normal((6, 32)))]) for _ in range(2)]
    videos = [copy, *others]
    frames = np.concatenate(videos)
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in videos])])
    query = np.concatenate([intro, body])
    raw = chamfer_many(query, frames, offsets)
    norm = chamfer_many(query, frames, offsets, background=frame_background(frames, offsets, 1, 0))
    assert np.argmax(raw) != 0  # the intro decides
    assert np.argmax(norm) == 0 and norm[0] - max(norm[1:]) > 0.1


def test_distinctive_pooling_weighs_common_frames_down():
    frames = np.eye(4, dtype=np.float32)[:3]
    w = distinctiveness(np.array([0.2, 0.6, 1.0]))  # the third frame matches everything
    np.testing.assert_allclose(w, np.array([0.512, 0.064, 0]) / 0.576, atol=1e-6)  # (1 - background)^3
    v = distinctive_pooling(frames, np.array([0.2, 0.2, 1.0]))
    np.testing.assert_allclose(v, [2 ** -0.5, 2 ** -0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(distinctive_pooling(frames, np.ones(3)), [3 ** -0.5] * 3 + [0], atol=1e-6)
    looks = distinctive_pooling(np.stack([frames, frames[::-1]]), np.array([[0.2, 0.2, 1.0], [0.2, 0.2, 1.0]]))
    np.testing.assert_allclose(looks, [[2 ** -0.5, 2 ** -0.5, 0, 0], [0, 2 ** -0.5, 2 ** -0.5, 0]], atol=1e-6)


def _channel(rng, d=32):
    """A channel's uploads share a long intro (6 identical frames, then 4 of content). The
    query is an upload; the database: a re-upload of its content by another channel (no
    intro) and five other uploads of the query's channel (intro + other content)."""
    from engine.bench import _Emb
    from engine.index import VideoRecord

    intro = np.repeat(_unit(rng.standard_normal((1, d))), 6, axis=0)
    body = _unit(rng.standard_normal((4, d)))
    videos = [_unit(body + 0.3 * rng.standard_normal(body.shape))]
    videos += [np.concatenate([intro, _unit(rng.standard_normal((4, d)))]) for _ in range(5)]
    records, embs = [], []
    for i, f in enumerate(videos):
        v = f.mean(0)
        t = np.arange(len(f), dtype=np.float32)
        embs.append(_Emb(f, v / np.linalg.norm(v), t, np.full(len(f), 1 / len(f), np.float32)))
        records.append(VideoRecord(f"v{i}", f"v{i}.mp4", 0, 0, float(len(f)), 30.0, 0, 0, len(f)))
    return np.concatenate([intro, body]), records, embs


def test_which_indexes_pool_by_distinctiveness():
    """Without TCA, or with a TCA trained to be pooled so; indexes written before the
    manifest recorded it decide by their TCA flag."""
    from engine.index import VideoIndex

    new = lambda **kw: VideoIndex.new("m", "efficientnet-lite0", "l3-irmac", 8, 1.0, **kw)
    assert new(tca=False).distinctive and not new(tca=True).distinctive
    assert new(tca=True, distinctive=True).distinctive
    for tca in (True, False):
        old = new(tca=tca)
        del old.manifest["distinctive"]
        assert old.distinctive is not tca


def test_an_index_without_tca_pools_its_video_vectors_by_distinctiveness(tmp_path):
    """Mean pooling lets the shared intro decide cosine; an index built without TCA pools
    both sides by distinctiveness in the collection, so the copy comes first, and the
    query's intro frames are the ones it weighs least."""
    from engine.index import VideoIndex

    query, records, embs = _channel(np.random.default_rng(3))
    qv = query.mean(0) / np.linalg.norm(query.mean(0))
    for tca in (True, False):
        idx = VideoIndex.new("m", "efficientnet-lite0", "l3-irmac", 32, 1.0, tca=tca)
        with VideoIndex.writing(tmp_path / f"idx-{tca}", idx) as idx:
            idx.append(records, embs, derive=True)
        opened = VideoIndex.open(tmp_path / f"idx-{tca}")
        assert opened.distinctive is not tca
        best = opened.search(query, qv, k=1, measure="cosine")[0]
        assert (opened.records[best.position].id == "v0") is not tca
        raw = opened.search(query, qv, k=1, measure="cosine", normalize=False)[0]
        assert opened.records[raw.position].id != "v0"  # raw cosine: mean pooling, the intro decides
    w = distinctiveness(opened.query_background(query))
    assert w[:6].sum() < 0.1 and w[6:].min() > 5 * w[:6].max()
    np.testing.assert_allclose(opened.query_background(np.stack([query, query])), [opened.query_background(query)] * 2)


def test_a_stored_video_has_a_vector_for_its_whole_frames_each_window_and_each_picture():
    rng = np.random.default_rng(5)
    starts, length = window_starts(30, 1.0)
    assert length == WINDOW_SECONDS and starts[1] - starts[0] == WINDOW_STRIDE_SECONDS and starts[-1] + length <= 30
    assert window_starts(30, 2.0)[1] == 2 * WINDOW_SECONDS  # windows are seconds, not samples
    assert len(window_starts(int(WINDOW_SECONDS + WINDOW_STRIDE_SECONDS) - 1, 1.0)[0]) == 0  # too short
    rows = _unit(rng.standard_normal((2 * 30, 16)))  # whole frames, then one inner picture
    bg = rng.uniform(0, 0.5, 60).astype(np.float32)
    vectors, margins = distinctive_views(rows, bg, 2, 1.0)
    assert vectors.shape == (1 + len(starts) + 1, 16)
    np.testing.assert_allclose(margins, [0.0] * (1 + len(starts)) + [PICTURE_MARGIN])  # a few windows are free
    np.testing.assert_allclose(vectors[0], distinctive_pooling(rows[:30], bg[:30]), atol=1e-6)
    a = int(starts[2])
    np.testing.assert_allclose(vectors[3], distinctive_pooling(rows[a : a + length], bg[a : a + length]), atol=1e-6)
    np.testing.assert_allclose(vectors[-1], distinctive_pooling(rows[30:], bg[30:]), atol=1e-6)
    short, margins = distinctive_views(rows[:6], bg[:6], 2)  # 3 s: whole frames and the picture only
    assert short.shape == (2, 16)
    np.testing.assert_allclose(margins, [0.0, PICTURE_MARGIN])
    # the best of very many windows matches anything a little: each then pays a margin that
    # grows with their number
    long_rows = _unit(rng.standard_normal((600, 16)))
    _, margins = distinctive_views(long_rows, np.zeros(600, np.float32), 1)
    n = len(margins) - 1
    assert n > WINDOW_FREE and np.all(margins[1:] == window_margin(n)) and margins[0] == 0
    assert window_margin(WINDOW_FREE) == 0 < window_margin(n) < window_margin(10 * n) < 0.3


def test_cosine_finds_a_copy_that_is_a_few_seconds_of_a_longer_video(tmp_path):
    """A compilation holds the query's 8 s among 24 s of other sources, so its whole vector
    is less like the query than a video that only resembles it; the window that holds the
    copy is a view of its own, and puts the compilation first."""
    from engine.bench import _Emb
    from engine.index import VideoIndex, VideoRecord

    rng = np.random.default_rng(7)
    d = 64
    query = _unit(rng.standard_normal((8, d)))
    compilation = np.concatenate([_unit(rng.standard_normal((12, d))), _unit(query + 0.02 * rng.standard_normal(query.shape)),
                                  _unit(rng.standard_normal((12, d)))])
    alike = _unit(query.mean(0, keepdims=True) + 0.06 * rng.standard_normal((8, d)))  # near the query's mean only
    videos = [compilation, alike] + [_unit(rng.standard_normal((10, d))) for _ in range(4)]
    records, embs = [], []
    for i, f in enumerate(videos):
        v = _unit(f.mean(0))
        embs.append(_Emb(f, v, np.arange(len(f), dtype=np.float32), np.full(len(f), 1 / len(f), np.float32)))
        records.append(VideoRecord(f"v{i}", f"v{i}.mp4", 0, 0, float(len(f)), 30.0, 0, 0, len(f)))
    idx = VideoIndex.new("m", "efficientnet-lite0", "l3-irmac", d, 1.0, tca=False)
    with VideoIndex.writing(tmp_path / "idx", idx) as idx:
        idx.append(records, embs, derive=True)
    opened = VideoIndex.open(tmp_path / "idx")
    vectors, counts, margins = opened.distinctive_vectors(np.arange(len(videos)))
    whole = vectors[np.concatenate([[0], np.cumsum(counts)[:-1]])]
    qv = distinctive_pooling(query, opened.query_background(query))
    assert qv @ whole[1] > qv @ whole[0]  # by whole vectors the look-alike would win
    assert counts[0] > 1 and counts[1] == 1 and not margins.any()
    hits = opened.search(query, _unit(query.mean(0)), k=2, measure="cosine")
    assert [opened.records[h.position].id for h in hits] == ["v0", "v1"]
