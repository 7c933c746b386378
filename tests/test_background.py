"""Corpus-aware similarity: backgrounds against brute force, and what they do to a ranking."""
import numpy as np

from engine.background import frame_background, video_background
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
