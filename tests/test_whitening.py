"""Learned whitening: copy pairs from a collection's labels, and a whitening that copies survive."""
import numpy as np

from engine.pca import fit_pca
from engine.training.whitening import copy_pairs, fit_learned_whitening


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
    learned = fit_learned_whitening(pca, frames, copies[:300].astype(np.float32), content[:300].astype(np.float32))
    np.testing.assert_allclose(learned.mean, pca.mean)

    def copy_rank(w):  # held-out copies: how many other frames beat the true source
        q, s = w.apply(copies[300:]), w.apply(content[300:])
        sims = q @ s.T
        return float(np.mean((sims > np.diag(sims)[:, None]).sum(axis=1)))

    assert copy_rank(pca) > 0.5 and copy_rank(learned) < 0.2 * copy_rank(pca)
    y = learned.apply(frames)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1, rtol=1e-5)
