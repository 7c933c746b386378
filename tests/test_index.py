"""Index: a bad file among good ones, incremental add/change/remove, model mismatch, CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import media
import numpy as np

from engine import Engine, IndexFileError, IndexMismatchError, ModelError
from engine.cli import main
from engine.model import ModelBundle, builtin_model, save_model
from engine.pca import fit_pca

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def small_folder(tmp_path):
    folder = tmp_path / "videos"
    media.write_video(folder / "a.mp4", media.scene_frames(11, 4))
    media.write_video(folder / "b.mkv", media.scene_frames(12, 4))
    (folder / "broken.mp4").write_text("not a video")
    media.write_audio_only(folder / "audio.mp4")
    (folder / "readme.txt").write_text("ignored: not a video extension")
    return folder


def test_bad_files_are_reported_and_skipped(small_folder, tmp_path):
    eng = Engine(backbone="efficientnet-lite0")
    report = eng.build_index(small_folder, tmp_path / "idx", progress=False)
    assert sorted(report.added) == ["a.mp4", "b.mkv"]
    skipped = dict(report.skipped)
    assert set(skipped) == {"broken.mp4", "audio.mp4"}
    assert "no video stream" in skipped["audio.mp4"]
    assert "skipped broken.mp4" in report.summary()
    assert len(eng.index) == 2


def test_incremental_add_change_remove(small_folder, tmp_path):
    eng = Engine(backbone="efficientnet-lite0")
    idx = tmp_path / "idx"
    eng.build_index(small_folder, idx, progress=False)
    before = eng.search(small_folder / "a.mp4", k=1, normalize=False).matches[0]
    assert before.id == "a.mp4" and before.score == pytest.approx(1, abs=1e-3)
    assert eng.search(small_folder / "a.mp4", k=1).matches[0].id == "a.mp4"

    media.write_video(small_folder / "new" / "c.mp4", media.scene_frames(13, 4))
    report = eng.build_index(small_folder, idx, progress=False)
    assert report.added == ["new/c.mp4"] and report.unchanged == 2 and report.updated == []

    media.write_video(small_folder / "a.mp4", media.scene_frames(14, 6))  # content replaced
    (small_folder / "b.mkv").unlink()
    report = eng.build_index(small_folder, idx, progress=False)
    assert report.updated == ["a.mp4"] and report.removed == ["b.mkv"] and report.unchanged == 1

    reopened = Engine(index=idx)
    assert sorted(r.id for r in reopened.index.records) == ["a.mp4", "new/c.mp4"]
    assert reopened.video("a.mp4").duration == pytest.approx(6, abs=0.1)
    # Only the current generation's files remain.
    names = sorted(p.name for p in idx.iterdir())
    assert len(names) == 9 and "manifest.json" in names
    # the collection map was refitted for the 2 videos now in the index
    assert reopened.collection_map().coords.shape == (2, 2)


def test_model_mismatch_is_a_clear_error(small_folder, tmp_path):
    idx = tmp_path / "idx"
    Engine(backbone="efficientnet-lite0").build_index(small_folder, idx, progress=False)
    other = tmp_path / "other.safetensors"
    rng = np.random.default_rng(0)
    save_model(ModelBundle(builtin_model().backbone, builtin_model().pooling,
                           fit_pca(rng.random((50, 2048)), 16), None), other)
    with pytest.raises(IndexMismatchError, match="built with"):
        Engine(model=other, index=idx)
    with pytest.raises(IndexMismatchError):
        Engine(model=other).build_index(small_folder, idx, progress=False)


def test_not_an_index(tmp_path):
    with pytest.raises(IndexFileError, match="not an index"):
        Engine(index=tmp_path)


def test_damaged_manifest(small_folder, tmp_path):
    idx = tmp_path / "idx"
    Engine(backbone="efficientnet-lite0").build_index(small_folder, idx, progress=False)
    (idx / "manifest.json").write_text("{")
    with pytest.raises(IndexFileError, match="manifest"):
        Engine(index=idx)


def test_cli_contract(engine_and_index, corpus, tmp_path):
    """The JSON shape of `search --json` is relied on by other tools: check it exactly."""
    _, index_dir, _ = engine_and_index
    cmd = [sys.executable, "-m", "engine", "search", str(index_dir), str(corpus["queries"]["bunny_crop"]),
           "--top-k", "50", "--json"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert set(data) == {"query", "measure", "normalized", "results"} and data["measure"] == "chamfer"
    assert data["normalized"] is True
    assert len(data["results"]) == 9  # more than the index holds: everything, ranked
    first = data["results"][0]
    assert set(first) == {"id", "score", "rank", "match", "segments"} and first["rank"] == 1
    assert first["id"] == "bunny.mp4"
    assert set(first["match"]) == {"query_start", "query_end", "start", "end"}
    assert first["match"]["end"] > first["match"]["start"] >= 0
    for r in data["results"]:
        segs = r["segments"]
        assert segs and all(set(s) == {"query_start", "query_end", "start", "end", "score"} for s in segs)
        assert [s["start"] for s in segs] == sorted(s["start"] for s in segs)  # time order
        assert {k: r["match"][k] for k in r["match"]} in [{k: s[k] for k in r["match"]} for s in segs]


def test_cli_index_and_table(tmp_path, small_folder, capsys):
    assert main(["index", str(small_folder), str(tmp_path / "idx"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "indexed 2 new" in out and "skipped broken.mp4" in out
    assert main(["search", str(tmp_path / "idx"), str(small_folder / "b.mkv"), "--top-k", "1"]) == 0
    assert "b.mkv" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "idx")]) == 0
    assert "2 videos" in capsys.readouterr().out


def test_cli_user_errors_are_messages_not_tracebacks(tmp_path, small_folder, capsys):
    idx = tmp_path / "idx"
    main(["index", str(small_folder), str(idx), "--quiet"])
    capsys.readouterr()
    for args, words in ((["search", str(idx), str(small_folder / "broken.mp4")], "broken.mp4"),
                        (["search", str(tmp_path / "nowhere"), str(small_folder / "a.mp4")], "nowhere"),
                        (["index", str(tmp_path / "missing_dir"), str(idx)], "missing_dir"),
                        (["search", str(idx), str(small_folder / "a.mp4"), "--model", "models/typo.safetensors"],
                         "models/typo.safetensors: model file not found"),
                        (["embed", str(small_folder / "audio.mp4")], "no video stream")):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1].startswith("error: ") and words in err and "Traceback" not in err, err


def test_embed_json(small_folder, capsys):
    assert main(["embed", str(small_folder / "a.mp4"), "--json", "--backbone", "efficientnet-lite0"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"times", "attention", "step", "duration", "warnings"}
    assert all(0 <= t - k < 0.4 for t, k in zip(data["times"], range(4))) and data["step"] == 1.0
    assert sum(data["attention"]) == pytest.approx(1, abs=1e-4) and data["duration"] == pytest.approx(4, abs=0.1)


def test_a_failed_save_leaves_the_previous_index_whole(small_folder, tmp_path, monkeypatch):
    import faiss

    from engine import index as index_module

    idx = tmp_path / "idx"
    eng = Engine(backbone="efficientnet-lite0")
    eng.build_index(small_folder, idx, progress=False)
    before = sorted(p.name for p in idx.iterdir())
    media.write_video(small_folder / "c.mp4", media.scene_frames(13, 4))

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_module.faiss, "write_index", disk_full)  # fails after the .npy files
    with pytest.raises(OSError, match="No space"):
        eng.build_index(small_folder, idx, progress=False)
    monkeypatch.setattr(index_module.faiss, "write_index", faiss.write_index)
    assert sorted(p.name for p in idx.iterdir()) == before  # no new generation, no temp files
    again = Engine(index=idx)
    assert sorted(r.id for r in again.index.records) == ["a.mp4", "b.mkv"]
    assert again.search(small_folder / "b.mkv", k=1).matches[0].id == "b.mkv"


def test_an_interrupted_run_keeps_its_checkpoints(small_folder, tmp_path):
    media.write_video(small_folder / "c.mp4", media.scene_frames(13, 4))
    eng = Engine(backbone="efficientnet-lite0")
    done = []

    def embed_then_stop(path):
        if path.name == "c.mp4":
            raise KeyboardInterrupt  # the user presses Ctrl-C during the last video
        emb = eng.embed(path)  # (audio.mp4 and broken.mp4 fail here: reported, skipped)
        done.append(path.name)
        return emb

    from engine.indexing import build_index

    bundle = eng.model
    from engine.index import VideoIndex

    def new_index(root):
        return VideoIndex.new(bundle.identity, bundle.backbone.value, bundle.pooling.value, eng.embedder.dim, 1.0, root)

    with pytest.raises(KeyboardInterrupt):
        build_index(small_folder, tmp_path / "idx", embed_then_stop, new_index, lambda i: None, progress=False,
                    checkpoint_seconds=0)
    kept = Engine(index=tmp_path / "idx")
    assert sorted(r.id for r in kept.index.records) == ["a.mp4", "b.mkv"] == done  # a checkpoint after each
    report = kept.build_index(small_folder, tmp_path / "idx", progress=False)
    assert report.unchanged == 2 and report.added == ["c.mp4"]  # the re-run embeds only what is missing


def test_ivf_branch_for_large_collections(tmp_path, monkeypatch):
    from engine import index as index_module
    from engine.index import VideoIndex, VideoRecord

    monkeypatch.setattr(index_module, "FLAT_LIMIT", 100)
    rng = np.random.default_rng(0)
    n, d = 400, 16
    videos = rng.standard_normal((n, d)).astype(np.float32)
    videos /= np.linalg.norm(videos, axis=1, keepdims=True)
    empty = VideoIndex.new("m", "efficientnet-lite0", "l3-irmac", d, 1.0)
    records = [VideoRecord(f"v{i}", f"v{i}.mp4", 0, 0, 1.0, 1.0, 8, 8, 1) for i in range(n)]
    idx = VideoIndex(empty.manifest, records, videos, np.arange(n + 1, dtype=np.int64),
                     videos.astype(np.float16), np.zeros((n, 2), np.float32), coords=np.zeros((n, 2), np.float32))
    assert "IVF" in type(idx._faiss).__name__
    idx.save(tmp_path / "ivf")
    opened = VideoIndex.open(tmp_path / "ivf")
    assert opened.manifest["faiss"] == "ivf"
    for i in (0, 123, 399):
        for measure in ("cosine", "chamfer"):
            hit = opened.search(videos[i:i + 1], videos[i], k=1, measure=measure, normalize=False)[0]
            assert (hit.position, round(hit.score, 2)) == (i, 1.0)
            assert opened.search(videos[i:i + 1], videos[i], k=1, measure=measure)[0].position == i


def test_index_and_model_from_the_hub(engine_and_index, pca_model, corpus, monkeypatch):
    import huggingface_hub

    _, index_dir, _ = engine_and_index
    calls = []

    def fake_file(repo_id, filename, **kw):
        calls.append((repo_id, filename))
        return str(pca_model)

    def fake_snapshot(repo_id, **kw):
        calls.append((repo_id, None))
        return str(index_dir)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_file)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    eng = Engine(model="hf://me/model", index="hf://me/index")
    assert calls == [("me/index", None), ("me/model", "model.safetensors")]
    assert eng.search(corpus["queries"]["bunny_crop"], k=1).matches[0].id == "bunny.mp4"
    with pytest.raises(ModelError, match="no/such.safetensors: model file not found"):
        Engine(model="no/such.safetensors")
    assert len(calls) == 2  # a missing local path never asks the Hub


def test_a_failed_download_is_a_model_error(monkeypatch):
    import huggingface_hub

    def offline(*a, **kw):
        raise ConnectionError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(ModelError, match="hf://me/model: downloading the model file .* failed"):
        Engine(model="hf://me/model")


def test_index_without_tca_is_recorded_and_reopened_so(small_folder, tmp_path):
    from engine import DEFAULT_MODEL

    eng = Engine(model=DEFAULT_MODEL, use_tca=False)
    assert eng.model.tca is None and "TCA off" in eng.model.name
    eng.build_index(small_folder, tmp_path / "idx", progress=False)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["tca"] is False and manifest["model_id"].endswith("+no-tca")
    reopened = Engine(index=tmp_path / "idx")  # the index's own model, TCA off again
    assert reopened.model.tca is None and reopened.search(small_folder / "a.mp4", k=1).matches[0].id == "a.mp4"
    with_tca = Engine(model=DEFAULT_MODEL)
    assert with_tca.model.tca is not None and with_tca.model.identity != manifest["model_id"]
