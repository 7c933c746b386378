"""The collection benchmark: a tiny build, its ground truth, its metrics, and the CLI on it."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_cli
from engine import text
from engine.evaluation import collection
from engine.evaluation.benchmarks import load_benchmark
from engine.model import load_model
from engine.training.pairs import read_pairs
from engine.video import probe


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("collection")
    labels = collection.build(out, seed=3, uploads_per_channel=2, query_sources={"train": 1, "val": 2, "test": 3},
                              progress=False)
    return out, labels


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    """One feature cache for the evaluate tests of the default model: the tiny collection's
    frames are described once (its cuts and texts are cached beside it as they are made)."""
    return tmp_path_factory.mktemp("features") / "f.npz"


def test_build_has_channels_copies_queries_and_consistent_segments(tiny):
    out, labels = tiny
    assert len(labels["queries"]) == 6
    kinds = {lab["kind"] for lab in labels["queries"].values()}
    assert kinds == {"full", "clip"}
    for qid, lab in labels["queries"].items():
        assert (out / qid).is_file()
        if lab["kind"] == "full":  # a full upload is the query, not in the database
            assert lab["source"] not in labels["videos"] and not (out / lab["source"]).exists()
    copies = {v: lab for v, lab in labels["videos"].items() if lab["kind"] == "copy"}
    assert {lab["layout"] for lab in copies.values()} >= {"reupload", "partial", "insertion", "pip", "reaction"}
    for vid, lab in list(copies.items())[:6]:
        info = probe(out / vid)
        assert abs(info.duration - lab["duration"]) < 0.3
        if lab["layout"] == "vertical":
            assert info.height > info.width
        for seg in lab["segments"]:
            (a, b), (c, d) = seg["source_span"], seg["span"]
            assert 0 <= c < d <= lab["duration"] + 1e-6 and b - a == pytest.approx(d - c, abs=0.01)
    uploads = [lab for lab in labels["videos"].values() if lab["kind"] == "upload"]
    assert all(lab["body"][0] == collection.BUMPER_SECONDS for lab in uploads)


def test_same_seed_same_collection(tiny, tmp_path):
    out, labels = tiny
    again = collection.build(tmp_path, seed=3, uploads_per_channel=2,
                             query_sources={"train": 1, "val": 2, "test": 3}, progress=False)
    assert again == labels


def _oracle(bench, good: bool):
    """Similarities that rank every positive first (good) or every same-channel video first."""
    sims = {}
    for q in bench.queries:
        pos = bench.positives(q)
        ch = bench.query_labels[q]["channel"]
        sims[q] = {v: (1.0 if v in pos else 0.0) if good else
                   (1.0 if bench.videos[v]["channel"] == ch and v not in pos else 0.5 if v in pos else 0.0)
                   for v in bench.database}
    return sims


def test_metrics_on_known_rankings(tiny):
    out, _ = tiny
    bench = load_benchmark("collection", out / "labels.json")
    assert all(bench.positives(q) for q in bench.queries)
    perfect = bench.evaluate(_oracle(bench, True))
    assert perfect["mAP_all"] == 1.0 and perfect["intrusion_all"] == 0.0 and perfect["queries_test"] == 3
    bad = bench.evaluate(_oracle(bench, False))
    assert bad["mAP_all"] < 1.0 and bad["intrusion_all"] > 0
    truth = {q: dict(bench.truth[q]) for q in bench.queries}
    spans = bench.evaluate_segments(truth)
    assert spans["span_F1_all"] == pytest.approx(1.0) and spans["span_pairs_all"] == sum(map(len, truth.values()))
    # half of each true box predicted: precision 1, recall 1/4 (half on each axis)
    halves = {q: {v: [(a, (a + b) / 2, c, (c + d) / 2) for a, b, c, d in boxes] for v, boxes in t.items()}
              for q, t in truth.items()}
    half = bench.evaluate_segments(halves)
    assert half["span_P_all"] == pytest.approx(1.0) and half["span_R_all"] == pytest.approx(0.25, abs=0.02)
    table = bench.edit_table(_oracle(bench, True))
    assert all(hit == total for hit, total in table.values()) and "original" in table


def test_evaluate_collection_cli(tiny, features, capsys):
    out, _ = tiny
    # without the text on the frames, which the next test reads
    cmd = [sys.executable, "-m", "engine", "evaluate", "collection", str(out / "labels.json"), "--videos", str(out),
           "--cache", str(features), "--no-text", "--measure", "chamfer", "--json"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    r = data["results"]["chamfer"]
    assert r["queries_all"] == 6 and 0 < r["mAP_all"] <= 1 and "span_F1_all" in r
    assert data["edits_test"]["original"][1] >= 1
    dist = json.loads(subprocess.run(cmd[:-3] + ["--measure", "cosine", "--json", "--pooling", "distinctive"],
                                     cwd=ROOT, capture_output=True, text=True).stdout)
    assert dist["model"].endswith("pooled by distinctiveness") and 0 < dist["results"]["cosine"]["mAP_all"] <= 1
    # the database videos' hard cuts, where segments end as a search's do, are cached beside --cache
    cuts = json.loads(features.with_suffix(".cuts.json").read_text())
    assert cuts["made_by"].startswith("at 1 fps") and any(len(c) for c in cuts["cuts"].values())
    assert set(cuts["profiles"]) == set(cuts["cuts"])  # brightness between samples, for every video and query
    plain = json.loads(subprocess.run(cmd + ["--no-cuts"], cwd=ROOT, capture_output=True, text=True).stdout)
    assert plain["model"].endswith("(no cuts)") and plain["results"]["chamfer"]["mAP_all"] == r["mAP_all"]
    raw = subprocess.run(cmd + ["--no-normalize"], cwd=ROOT, capture_output=True, text=True)
    assert json.loads(raw.stdout)["model"].endswith("raw cosine")
    assert json.loads(raw.stdout)["results"]["chamfer"] != r
    # Ranked as a search returns them, through a real index of the database: all of it
    # re-ranked here (a small index), so the same mAP up to its float16 rows; a search
    # that returns 2 videos misses the rest.
    for top in ("100", "2"):
        got = subprocess.run(cmd + ["--through-index", top], cwd=ROOT, capture_output=True, text=True)
        assert got.returncode == 0, got.stderr
        data = json.loads(got.stdout)
        assert f"ranked through a real index (top {top})" in data["model"]
        mine = data["results"]["chamfer"]
        assert mine["queries_all"] == 6
        if top == "100":
            assert mine["mAP_all"] == pytest.approx(r["mAP_all"], abs=0.02)
        else:
            assert mine["mAP_all"] < r["mAP_all"] - 0.05
    for bad, says in ((["--through-index", "0"], "at least 1 video"), (["--through-index", "--codec", "PCAR384,SQ4"], "drop --codec"),
                      (["--fps", "0"], "must be above 0")):
        code, _, err = run_cli(capsys, *cmd[3:], *bad)
        assert code != 0 and says in err, err


@pytest.mark.skipif(not text.available(), reason="no Tesseract here (pip install -r requirements.txt)")
def test_evaluate_collection_reads_the_frames_text(tiny, features):
    """By default every video's and query's words are read once into a cache beside
    --cache, and the frame matches of frames whose texts disagree lowered, as a search
    against an index that keeps text lowers them (--through-index: the same)."""
    out, _ = tiny
    cmd = [sys.executable, "-m", "engine", "evaluate", "collection", str(out / "labels.json"), "--videos", str(out),
           "--cache", str(features), "--measure", "chamfer", "--json"]
    # first without: the frames' features cached (a cached run reads them rounded to float16)
    plain = json.loads(subprocess.run(cmd + ["--no-text"], cwd=ROOT, capture_output=True, text=True).stdout)
    assert "texts" not in plain["model"] and plain["results"]["chamfer"]["queries_all"] == 6
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["model"].endswith("texts disagree lowered")
    r = data["results"]["chamfer"]
    assert r["queries_all"] == 6 and 0 < r["mAP_all"] <= 1 and "span_F1_all" in r
    labels = json.loads((out / "labels.json").read_text())
    with np.load(features.with_suffix(".text.npz")) as z:
        sketches = {k: z[k] for k in z.files if k in labels["videos"] or k in labels["queries"]}
        assert str(z["__made_by__"]).endswith(f"model {text.model_identity()}")
    assert len(sketches) == len(labels["videos"]) + len(labels["queries"])
    assert all(x.shape[1] == text.SKETCH for x in sketches.values())
    assert any(np.isfinite(x).any() for x in sketches.values())  # the slides' words, the bumpers' names
    # read back from the cache (its hashes kept exactly): the same numbers
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert json.loads(again.stdout)["results"] == data["results"] and "describing" not in again.stderr
    # through a real index that keeps the text: a search lowers the same cells
    got = subprocess.run(cmd + ["--through-index"], cwd=ROOT, capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    mine = json.loads(got.stdout)
    assert "real index" in mine["model"] and mine["model"].endswith("texts disagree lowered")
    assert mine["results"]["chamfer"]["mAP_all"] == pytest.approx(r["mAP_all"], abs=0.02)
    # feature files have no frames to read: compared without text
    got = subprocess.run(cmd[:6] + ["--features", str(features), "--measure", "chamfer", "--json"],
                         cwd=ROOT, capture_output=True, text=True)
    assert got.returncode == 0 and "texts" not in json.loads(got.stdout)["model"], got.stderr


def test_training_pairs_agree_with_the_benchmark_and_hard_negatives_share_only_the_channel(tiny):
    out, labels = tiny
    bench = load_benchmark("collection", out / "labels.json")
    plan = read_pairs(out / "labels.json")
    paired = {}
    for a, b in plan.pairs:
        paired.setdefault(a, set()).add(b)
        paired.setdefault(b, set()).add(a)
    for q in bench.queries:  # two derivations of "shows the same content" agree
        assert paired.get(q, set()) == bench.positives(q)
    channel = {**{v: lab["channel"] for v, lab in labels["videos"].items()},
               **{q: lab["channel"] for q, lab in labels["queries"].items()}}
    assert any(plan.hard.values())
    for vid, hard in plan.hard.items():
        for h in hard:
            assert channel[h] == channel[vid] and not plan.content[h] & plan.content[vid]
            assert h not in paired.get(vid, set())
    assert set(plan.distractors).isdisjoint(paired)


def test_train_on_a_collection(tiny, tmp_path):
    out, _ = tiny
    model = tmp_path / "m.safetensors"
    res = subprocess.run([sys.executable, "-m", "engine", "train", str(out), "--pairs", str(out / "labels.json"),
                          "--out", str(model), "--steps", "3", "--batch", "4", "--dim", "16", "--bank", "8",
                          "--pooling", "attention", "--input-scale", "4"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    bundle = load_model(model)
    assert (bundle.tca.pooling, bundle.tca.input_scale) == ("attention", 4.0)
    assert bundle.info["config"]["hard_fraction"] == 0.5
    ev = subprocess.run([sys.executable, "-m", "engine", "evaluate", "collection", str(out / "labels.json"),
                         "--videos", str(out), "--cache", str(tmp_path / "f.npz"), "--model", str(model),
                         "--measure", "cosine", "--json"], cwd=ROOT, capture_output=True, text=True)
    assert ev.returncode == 0, ev.stderr
    r = json.loads(ev.stdout)["results"]["cosine"]
    assert 0 <= r["attention_wrapper"] < 10 and "attention_black" in r


def test_attention_share_by_hand(tiny):
    out, labels = tiny
    bench = load_benchmark("collection", out / "labels.json")
    uploads = {v: lab for v, lab in labels["videos"].items() if lab["kind"] == "upload"}
    frames = {v: int(lab["duration"]) for v, lab in uploads.items()}
    uniform = {v: np.full(t, 1 / t) for v, t in frames.items()}
    black = {v: np.arange(t) == t // 2 for v, t in frames.items()}
    share = bench.attention_share(uniform, black)
    assert share == pytest.approx({"attention_wrapper": 1.0, "attention_black": 1.0})
    body_only = {}
    for v, t in frames.items():
        a, b = uploads[v]["body"]
        w = np.array([a <= i < b and i != t // 2 for i in range(t)], float)
        body_only[v] = w / w.sum()
    assert bench.attention_share(body_only, black) == pytest.approx({"attention_wrapper": 0.0, "attention_black": 0.0})


def test_pca_learns_its_whitening_from_a_collections_copies(tiny, tmp_path, capsys):
    out, labels = tiny
    model = tmp_path / "lw.safetensors"
    res = subprocess.run([sys.executable, "-m", "engine", "pca", str(out), str(model), "--dim", "32",
                          "--copies", str(out / "labels.json"), "--augment", "1"], cwd=ROOT, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    bundle = load_model(model)
    whole = [v for v, lab in labels["videos"].items() if lab["kind"] == "copy"
             and lab["layout"] in ("reupload", "partial", "insertion", "compilation")]
    assert whole and bundle.info["copy_pairs"] > 0 and "--copies" in bundle.info["made_by"]
    # the edited frames come from the videos that are not copies, one view each at 0.5 fps
    not_copies = [v for v, lab in labels["videos"].items() if lab["kind"] != "copy"]
    assert len(not_copies) <= bundle.info["augmented_pairs"] < sum(lab["duration"] for lab in labels["videos"].values())
    assert "--augment 1" in bundle.info["made_by"] and "copy pairs and" in res.stdout
    assert bundle.pca.projection.shape == (bundle.pca.dim_in, 32)
    code, _, err = run_cli(capsys, "pca", out, model, "--copies", tmp_path / "none.json")
    assert code != 0 and "none.json" in err, err
    for rates in (["--augment", "1", "--augment-fps", "0"], ["--fps", "-1"], ["--augment", "-2"]):
        code, _, err = run_cli(capsys, "pca", out, model, *rates)
        assert code != 0 and rates[-2] in err, err
    for broken in ({"videos": ["a.mp4"]}, {"videos": {"c.mp4": {"kind": "copy", "segments": [{"span": [0, 1]}]}}}):
        (tmp_path / "broken.json").write_text(json.dumps(broken))
        code, _, err = run_cli(capsys, "pca", out, model, "--copies", tmp_path / "broken.json")
        assert code != 0 and "broken.json" in err, err


def test_tune_cnn_then_pca_carries_the_tuned_layers(tiny, tmp_path, capsys):
    """`tune-cnn` on a collection's uploads writes the tuned layers, `pca --cnn` fits the
    whitening on them and the bundle carries them: its embedder's CNN is the tuned one."""
    from safetensors.numpy import load_file

    from engine.backbone import load_backbone
    from engine.embedding import Embedder

    out, _ = tiny
    cnn = tmp_path / "cnn.safetensors"
    code, said, err = run_cli(capsys, "tune-cnn", out / "labels.json", cnn, "--steps", "2", "--channels", "2",
                              "--per-channel", "2")
    assert code == 0 and "tuned on" in said, err
    tensors = load_file(str(cnn))
    untouched = load_backbone(precision="float32")
    assert not np.allclose(tensors["_conv_head.weight"], untouched.trunk.head.conv.weight.detach().numpy())
    model = tmp_path / "m.safetensors"
    code, said, err = run_cli(capsys, "pca", out, model, "--dim", "16", "--cnn", cnn)
    assert code == 0, err
    bundle = load_model(model)
    assert set(bundle.cnn) == set(tensors) and "--cnn" in bundle.info["made_by"]
    assert "tune-cnn" in bundle.info["cnn_made_by"] and "tuned" in bundle.name
    frames = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    np.testing.assert_allclose(Embedder(bundle, precision="float32").encoder.describe(frames)[:, :2048],
                               load_backbone(precision="float32", tuned=tensors).describe(frames), atol=1e-6)
    code, _, err = run_cli(capsys, "tune-cnn", tmp_path / "none.json", cnn)
    assert code == 2 and "none.json" in err, err
    code, _, err = run_cli(capsys, "tune-cnn", out / "labels.json", cnn, "--steps", "0")
    assert code == 2 and "--steps" in err, err
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    code, _, err = run_cli(capsys, "pca", out, model, "--cnn", tmp_path / "junk.safetensors")
    assert code == 2 and "junk.safetensors" in err, err
