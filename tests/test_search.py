"""End to end: index a real corpus, search it with transformed copies."""
from __future__ import annotations

import numpy as np
import pytest

from engine import Engine, Measure

EXPECTED = {
    "bunny_crop": "bunny.mp4",
    "scene2_flip": "scene2.webm",
    "scene3_lowrate": "scene3.avi",
    "bikes_bright": "sub/bikes.mp4",
}


def test_build_report(engine_and_index):
    _, _, report = engine_and_index
    assert sorted(report.added) == sorted([
        "bunny.mp4", "sub/bikes.mp4", "carphone.mp4", "scene1.mkv", "scene2.webm",
        "scene3.avi", "sub/scene4.mov", "long.mp4", "half_copy.mp4"])
    assert report.skipped == []


@pytest.mark.parametrize("query", sorted(EXPECTED))
@pytest.mark.parametrize("measure", [m.value for m in Measure])
def test_transformed_copy_ranked_first(engine_and_index, corpus, query, measure):
    eng, _, _ = engine_and_index
    result = eng.search(corpus["queries"][query], k=3, measure=measure)
    assert result.matches[0].id == EXPECTED[query], [(m.id, m.score) for m in result.matches]
    assert result.matches[0].score > result.matches[1].score


def test_inserted_clip_span_points_at_the_right_seconds(engine_and_index, corpus):
    eng, _, _ = engine_and_index
    top = eng.search(corpus["queries"]["insert"], k=1).matches[0]
    assert top.id == "long.mp4"
    # The insert occupies 36-48 s of long.mp4 and the whole 12-s query. Its first half is
    # also in half_copy.mp4, so it matches more weakly after background normalisation and
    # may come back as a segment of its own: the segments together cover the insert, the
    # strongest (`span`) lies inside it.
    segs = top.segments
    assert 36 - 2 <= top.span.start and top.span.end <= 48 + 2, segs
    assert abs(min(s.start for s in segs) - 36) <= 2 and abs(max(s.end for s in segs) - 48) <= 2, segs
    # the insert's edits, found while indexing; the segment starts at the cut, not on a sample
    cuts = next(r.cuts for r in eng.index.records if r.id == "long.mp4")
    assert cuts == pytest.approx([36, 42, 48], abs=0.15), cuts
    assert abs(min(s.start for s in segs) - 36) <= 0.15, segs
    assert min(s.query_start for s in segs) <= 2 and max(s.query_end for s in segs) >= 10, segs


def test_chamfer_finds_the_whole_copy_where_cosine_is_fooled(engine_and_index, corpus):
    """long.mp4 holds all of the query, diluted in 72 s of other footage; half_copy.mp4 holds
    only its first half, but is mostly that. Mean vectors (raw cosine) favour half_copy;
    chamfer, which asks for every query frame to be found, ranks long.mp4 first (the
    paper's eq. 10), and so does corpus-aware cosine, through the vector of the 8-s windows
    that hold the copy (`background.distinctive_views`)."""
    eng, _, _ = engine_and_index
    q = eng.embed(corpus["queries"]["insert"])
    ranks = {}
    for measure in Measure:
        ids = [m.id for m in eng.search(q, k=100, measure=measure).matches]
        ranks[measure] = ids.index("long.mp4") + 1
    raw = [m.id for m in eng.search(q, k=100, measure=Measure.COSINE, normalize=False).matches]
    assert ranks[Measure.CHAMFER] == 1, ranks
    assert ranks[Measure.CHAMFER] < raw.index("long.mp4") + 1, raw
    assert ranks[Measure.COSINE] == 1, ranks


def test_top_k_larger_than_index_returns_everything_ranked(engine_and_index, corpus):
    eng, _, _ = engine_and_index
    for measure in Measure:
        matches = eng.search(corpus["queries"]["bunny_crop"], k=1000, measure=measure).matches
        assert len(matches) == 9
        assert [m.rank for m in matches] == list(range(1, 10))
        scores = [m.score for m in matches]
        assert scores == sorted(scores, reverse=True)


def test_reopened_index_gives_the_same_results(engine_and_index, corpus):
    eng, index_dir, _ = engine_and_index
    again = Engine(index=index_dir)
    q = eng.embed(corpus["queries"]["scene2_flip"])
    a = eng.search(q, k=8).as_dict()["results"]
    b = again.search(q, k=8).as_dict()["results"]
    assert a == b


def test_compare_explains_a_match(engine_and_index, corpus):
    eng, _, _ = engine_and_index
    q = eng.embed(corpus["queries"]["insert"])
    cmp = eng.compare(q, "long.mp4")
    assert cmp.similarity.shape == (len(q.times), len(eng.video("long.mp4").times))
    # Query frame 6 (6 s) matches long.mp4 around 36 + 6 seconds (the insert).
    assert abs(float(cmp.times[cmp.row_best[6]]) - 42) <= 2
    video = eng.video("long.mp4")
    assert video.duration == pytest.approx(84, abs=0.5)
    assert video.attention.sum() == pytest.approx(1, abs=1e-3)
    # raw: the query's own frames against the video's whole frames, plain cosine, as the
    # demo's "raw cosine" view draws it; the ranked matrix is corpus-aware and smoothed in time
    frames = eng.index.video_frames(eng.index.position("long.mp4"))[0]
    np.testing.assert_allclose(cmp.raw, q.frames @ frames.T, atol=1e-4)
    assert cmp.normalized and not np.allclose(cmp.similarity, cmp.raw)
    assert eng.compare(q, "long.mp4", normalize=False).similarity.shape == cmp.raw.shape
