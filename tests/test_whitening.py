"""Learned whitening: copy pairs from a collection's labels, edited frames of any video, and a
whitening that copies survive."""
import numpy as np

from engine.backbone import Backbone, Pooling, load_backbone
from engine.pca import fit_pca
from engine.training.views import decode_uncropped
from engine.training.whitening import augmented_pairs, copy_pairs, fit_learned_whitening


def test_copy_pairs_match_the_same_moment_and_skip_picture_layouts():
    # each descriptor row says which second of which video it is
    desc = {v: np.stack([[k, i, 0.0] for k in range(20)]).astype(np.float32) for i, v in enumerate("sab")}
    videos = {
        "a": {"kind": "copy", "layout": "insertion",
              "segments": [{"source": "s", "source_span": [10, 13], "span": [3, 6]}]},
        "b": {"kind": "copy", "layout": "compilation",  # the source at double speed
              "segments": [{"source": "s", "source_span": [4, 8], "span": [0, 2]}]},
        "p": {"kind": "copy", "layout": "pip", "segments": [{"source": "s", "source_span": [0, 5], "span": [0, 5]}]},
        "s": {"kind": "upload"},
    }
    desc["p"] = desc["a"]
    copies, sources = copy_pairs(videos, desc, fps=1.0)
    got = sorted((int(c[1]), int(c[0]), int(s[0])) for c, s in zip(copies, sources))
    assert got == [(1, 3, 10), (1, 4, 11), (1, 5, 12), (2, 0, 4), (2, 1, 6)]
    half = copy_pairs(videos, {v: np.repeat(d, 2, axis=0) for v, d in desc.items()}, fps=2.0)[0]
    assert len(half) == 2 * len(copies)


def test_learned_whitening_brings_copies_closer_than_other_frames():
    rng = np.random.default_rng(0)
    d, n = 16, 400
    content = rng.normal(size=(n, d)) * np.r_[np.full(8, 1.0), np.full(8, 0.3)]
    # what an edit changes: a large move along the first content directions
    edit = np.zeros((n, d))
    edit[:, :4] = rng.normal(size=(n, 4)) * 4.0
    copies = content + edit + rng.normal(size=(n, d)) * 0.05
    frames = np.concatenate([content, copies]).astype(np.float32)
    pca = fit_pca(frames, d, 0.1)
    learned = fit_learned_whitening(pca, frames, [(copies[:300].astype(np.float32), content[:300].astype(np.float32))])
    np.testing.assert_allclose(learned.mean, pca.mean)

    def copy_rank(w):  # held-out copies: how many other frames beat the true source
        q, s = w.apply(copies[300:]), w.apply(content[300:])
        sims = q @ s.T
        return float(np.mean((sims > np.diag(sims)[:, None]).sum(axis=1)))

    assert copy_rank(pca) > 0.5 and copy_rank(learned) < 0.2 * copy_rank(pca)
    y = learned.apply(frames)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1, rtol=1e-5)


def test_each_set_of_pairs_weighs_the_same_whatever_its_size():
    rng = np.random.default_rng(1)
    frames = rng.normal(size=(300, 12)).astype(np.float32)
    pca = fit_pca(frames, 12, 0.1)
    along = np.eye(12, dtype=np.float32)
    big = (frames[:200] + rng.normal(size=(200, 1)).astype(np.float32) * 3 * along[0], frames[:200])
    small = (frames[:20] + rng.normal(size=(20, 1)).astype(np.float32) * 3 * along[11], frames[:20])
    one = fit_learned_whitening(pca, frames, [big])
    np.testing.assert_allclose(fit_learned_whitening(pca, frames, [big, big]).projection, one.projection, atol=1e-5)
    both = fit_learned_whitening(pca, frames, [big, small])
    tenfold = fit_learned_whitening(pca, frames, [(np.concatenate([big[0]] + [small[0]] * 10),
                                                   np.concatenate([big[1]] + [small[1]] * 10))])
    np.testing.assert_allclose(both.projection, tenfold.projection, atol=1e-4)


def test_augmented_pairs_are_a_videos_frames_and_their_edits(corpus):
    encoder = load_backbone(Backbone.EFFICIENTNET_LITE0, None, Pooling.L3_IRMAC, "cpu")
    paths = [corpus["videos"] / "scene1.mkv", corpus["videos"] / "bunny.mp4"]
    edited, original = augmented_pairs(encoder, paths, views=2, fps=0.5, seed=3, progress=False)
    assert edited.shape == original.shape and edited.shape[1] == encoder.dim and len(edited) >= 8
    n = len(decode_uncropped(paths[0], 0.5))  # the first video's frames, then its second view's
    assert n >= 4 and np.array_equal(original[:n], original[n : 2 * n])
    assert not np.allclose(edited[:n], edited[n : 2 * n])  # two different edits
    again, _ = augmented_pairs(encoder, paths, views=2, fps=0.5, seed=3, progress=False)
    np.testing.assert_array_equal(again, edited)
    cos = (edited * original).sum(1) / np.linalg.norm(edited, axis=1) / np.linalg.norm(original, axis=1)
    assert np.all(cos < 0.9999) and np.median(cos) > 0.3  # edited, still the same picture
