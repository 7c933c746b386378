"""Index: a bad file among good ones, incremental add/change/remove, model mismatch, CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import media
from engine import Engine, IndexFileError, IndexMismatchError
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
    before = eng.search(small_folder / "a.mp4", k=1).matches[0]
    assert before.id == "a.mp4" and before.score == pytest.approx(1, abs=1e-3)

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
    assert len(names) == 7 and "manifest.json" in names
    # the collection map was refitted for the 2 videos now in the index
    assert reopened.collection_map().coords.shape == (2, 2)


def test_model_mismatch_is_a_clear_error(small_folder, tmp_path):
    idx = tmp_path / "idx"
    Engine(backbone="efficientnet-lite0").build_index(small_folder, idx, progress=False)
    other = tmp_path / "other.safetensors"
    rng = __import__("numpy").random.default_rng(0)
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
    assert set(data) == {"query", "measure", "results"} and data["measure"] == "chamfer"
    assert len(data["results"]) == 9  # more than the index holds: everything, ranked
    first = data["results"][0]
    assert set(first) == {"id", "score", "rank", "match"} and first["rank"] == 1
    assert first["id"] == "bunny.mp4"
    assert set(first["match"]) == {"query_start", "query_end", "start", "end"}
    assert first["match"]["end"] > first["match"]["start"] >= 0


def test_cli_index_and_table(tmp_path, small_folder, capsys):
    assert main(["index", str(small_folder), str(tmp_path / "idx"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "indexed 2 new" in out and "skipped broken.mp4" in out
    assert main(["search", str(tmp_path / "idx"), str(small_folder / "b.mkv"), "--top-k", "1"]) == 0
    assert "b.mkv" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "idx")]) == 0
    assert "2 videos" in capsys.readouterr().out


def test_cli_user_errors_are_messages_not_tracebacks(tmp_path, small_folder):
    idx = tmp_path / "idx"
    main(["index", str(small_folder), str(idx), "--quiet"])
    for args in (["search", str(idx), str(small_folder / "broken.mp4")],
                 ["search", str(tmp_path / "nowhere"), str(small_folder / "a.mp4")],
                 ["index", str(tmp_path / "missing_dir"), str(idx)]):
        r = subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert "error: " in r.stderr and "Traceback" not in r.stderr
