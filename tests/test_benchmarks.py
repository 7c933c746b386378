"""Benchmark adapters on tiny annotation files, against AP values worked out by hand."""
from __future__ import annotations

import json
import math

import pytest

from engine.evaluation.benchmarks import BenchmarkError, average_precision, load_benchmark, micro_average_precision


def test_average_precision_by_hand():
    # positives at ranks 1 and 3: (1/1 + 2/3) / 2
    assert average_precision(["a", "x", "b", "y"], {"a", "b"}) == pytest.approx((1 + 2 / 3) / 2)
    # a positive that is never ranked counts as precision 0: (1/2) / 2
    assert average_precision(["x", "a"], {"a", "missing"}) == pytest.approx(0.25)
    assert math.isnan(average_precision(["a"], set()))
    # pooled pairs: scores 0.9(pos) 0.8(neg) 0.7(pos) -> (1 + 2/3) / 2
    assert micro_average_precision([(0.7, True), (0.9, True), (0.8, False)], 2) == pytest.approx((1 + 2 / 3) / 2)


def test_generic(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"q1": ["a", "b"], "q2": ["c"]}))
    bench = load_benchmark("generic", gt)
    sims = {
        "q1": {"q1": 1.0, "a": 0.9, "x": 0.8, "b": 0.7, "c": 0.1},  # the query itself is excluded
        "q2": {"a": 0.9, "c": 0.5, "b": 0.4},                         # c at rank 2
    }
    r = bench.evaluate(sims)
    assert r["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)
    # pooled: 0.9 a+, 0.9 a-, 0.8 x-, 0.7 b+, 0.5 c+, 0.4 b-, 0.1 c- (ties keep input order)
    assert 0 < r["uAP"] < 1 and r["queries"] == 2


def test_fivr_tasks(tmp_path):
    ann = tmp_path / "annotation.json"
    ann.write_text(json.dumps({"q": {"ND": ["nd"], "DS": ["ds"], "CS": ["cs"], "IS": ["is"]}}))
    sims = {"q": {"nd": 0.9, "cs": 0.8, "x": 0.7, "ds": 0.6, "is": 0.5, "gone": 0.1}}
    r = load_benchmark("fivr-200k", ann).evaluate(sims)
    # ranking: nd cs x ds is gone
    assert r["DSVR"] == pytest.approx((1 + 2 / 4) / 2)            # nd@1, ds@4
    assert r["CSVR"] == pytest.approx((1 + 2 / 2 + 3 / 4) / 3)    # nd@1, cs@2, ds@4
    assert r["ISVR"] == pytest.approx((1 + 1 + 3 / 4 + 4 / 5) / 4)
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps({"queries": ["q"], "database": ["nd", "ds", "x"]}))
    r5 = load_benchmark("fivr-5k", ann, subset).evaluate(sims)
    assert r5["DSVR"] == pytest.approx((1 + 2 / 3) / 2)           # cs, is, gone are outside the subset
    with pytest.raises(BenchmarkError, match="subset"):
        load_benchmark("fivr-5k", ann)


def test_cc_web_variants(tmp_path):
    ann = tmp_path / "cc_web.json"
    ann.write_text(json.dumps({
        "queries": ["q"],
        "ground_truth": [{"q": "E", "a": "S", "b": "X", "c": "L"}],
        "ground_truth_cleaned": [{"q": "E", "a": "S", "b": "X", "c": "X"}],
    }))
    sims = {"q": {"a": 0.9, "other": 0.8, "b": 0.7, "c": 0.6}}
    r = load_benchmark("cc_web", ann).evaluate(sims)
    assert r["cc_web"] == pytest.approx((1 + 2 / 4) / 2)    # a@1, c@4 among all videos
    assert r["cc_web*"] == pytest.approx((1 + 2 / 3) / 2)   # 'other' is not in the query's set
    assert r["cc_web_c"] == pytest.approx(1.0)               # cleaned: c is no longer a positive
    assert r["cc_web_c*"] == pytest.approx(1.0)


def test_evve_trapezoid_ap(tmp_path):
    annots = tmp_path / "annots"
    annots.mkdir()
    (annots / "party.dat").write_text("q1 1 query\np1 1 database\nn1 0 database\np2 1 database\n")
    (annots / "storm.dat").write_text("q2 1 query\ns1 1 database\n")
    sims = {"q1": {"p1": 0.9, "n1": 0.8, "p2": 0.7, "s1": 0.1}, "q2": {"s1": 0.2, "p1": 0.9}}
    r = load_benchmark("evve", annots).evaluate(sims)
    # q1: p1@0 -> (1 + 1)/2 * 1/2 = 0.5; p2@2 -> (1/2 + 2/3)/2 * 1/2 = 7/24  => 19/24
    # q2: s1@1 -> (0 + 1/2)/2 * 1 = 1/4
    assert r["mAP"] == pytest.approx((19 / 24 + 1 / 4) / 2)
    assert r["mAP_events"] == pytest.approx((19 / 24 + 1 / 4) / 2)
    with pytest.raises(BenchmarkError, match="expected"):
        (annots / "bad.dat").write_text("only two\n")
        load_benchmark("evve", annots)


def test_bad_annotation_files(tmp_path):
    with pytest.raises(BenchmarkError, match="not found"):
        load_benchmark("generic", tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BenchmarkError, match="JSON"):
        load_benchmark("fivr-200k", bad)


def test_demo_families_splits_and_shared_filler(tmp_path):
    labels = {
        "sources": {"s1": {"split": "train"}, "s2": {"split": "test"}},
        "copies": {
            "c1": {"source": "s1"},
            "c2": {"source": "s2", "filler": ["d1"]},  # s2 inserted into footage of d1
            "c3": {"source": "s1", "filler": ["d1"]},  # s1 over a d1 background
        },
        "distractors": ["d1", "d2"],
    }
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(labels))
    bench = load_benchmark("demo", path)
    assert bench.excluded("c2") == {"c3", "d1"} and bench.excluded("c1") == set()
    sims = {
        # c2 ranks d1 and c3 (shared filler: left out), then s2 (its family), then d2
        "c2": {"d1": 0.95, "c3": 0.9, "s2": 0.8, "d2": 0.7, "s1": 0.1, "c1": 0.05},
        # c1: s1 first, d2 second, c3 third -> (1 + 2/3) / 2
        "c1": {"s1": 0.9, "d2": 0.8, "c3": 0.7, "d1": 0.1, "c2": 0.0, "s2": 0.0},
    }
    r = bench.evaluate(sims)
    assert r["mAP_test"] == pytest.approx(1.0)
    assert r["mAP_train"] == pytest.approx((1 + 2 / 3) / 2)
    assert r["mAP_all"] == pytest.approx((1 + (1 + 2 / 3) / 2) / 2)
