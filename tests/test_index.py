"""Index: a bad file among good ones, incremental add/change/remove, model mismatch, CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import media
from conftest import run_cli
import numpy as np

from engine import Engine, IndexFileError, IndexMismatchError, ModelError
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


def test_linked_folders_are_followed_once(small_folder, tmp_path):
    """A folder linked in from elsewhere is indexed under its link's path; a link back up the
    tree is no loop; hidden files and folders stay out."""
    from engine.indexing import scan_folder

    elsewhere = tmp_path / "other disk"
    elsewhere.mkdir()
    (elsewhere / "c.mp4").write_bytes((small_folder / "a.mp4").read_bytes())
    (small_folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (small_folder / "linked" / "back").symlink_to(small_folder, target_is_directory=True)
    (small_folder / ".cache").mkdir()
    (small_folder / ".cache" / "d.mp4").write_bytes(b"x")
    found = [p.relative_to(small_folder).as_posix() for p in scan_folder(small_folder)]
    assert found == ["a.mp4", "audio.mp4", "b.mkv", "broken.mp4", "linked/c.mp4"]


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
    # Only files the manifest names remain (tombstoned videos are dropped when segments merge).
    assert set(p.name for p in idx.iterdir()) == named_files(idx)
    # the collection map was refitted for the 2 videos now in the index
    assert reopened.collection_map().coords.shape == (2, 2)


def test_files_with_new_times_but_the_same_bytes_are_not_embedded_again(small_folder, tmp_path, monkeypatch):
    """A fresh clone or a copy gives every file a new mtime: the content hash keeps them."""
    from engine.index import VideoIndex

    eng = Engine(backbone="efficientnet-lite0")
    idx = tmp_path / "idx"
    eng.build_index(small_folder, idx, progress=False)
    hashes = {r.id: r.content_hash for r in VideoIndex.open(idx).records}
    assert all(len(h) == 32 for h in hashes.values())

    for name in ("a.mp4", "b.mkv"):  # as a checkout or `cp` without -p leaves them
        st = (small_folder / name).stat()
        os.utime(small_folder / name, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    data = bytearray((small_folder / "b.mkv").read_bytes())  # same size, other bytes
    data[len(data) // 2] ^= 0xFF
    (small_folder / "b.mkv").write_bytes(bytes(data))

    def no_embedding(path, *args, **kwargs):
        raise AssertionError(f"{path} was embedded again")

    report = eng.build_index(small_folder, idx, progress=False)
    assert report.retimed == ["a.mp4"] and report.unchanged == 1
    assert report.updated == ["b.mkv"] or "b.mkv" in dict(report.skipped)  # read again (broken or not)
    assert "1 unchanged files had new file times" in report.summary()
    records = {r.id: r for r in VideoIndex.open(idx).records}
    assert records["a.mp4"].mtime_ns == (small_folder / "a.mp4").stat().st_mtime_ns
    assert records["a.mp4"].content_hash == hashes["a.mp4"]
    assert set(p.name for p in idx.iterdir()) == named_files(idx)  # the old records file is gone

    for unreadable in ("broken.mp4", "audio.mp4"):  # never indexed, so tried on every run
        (small_folder / unreadable).unlink()
    with monkeypatch.context() as patch:
        patch.setattr(eng.embedder, "embed", no_embedding)
        report = eng.build_index(small_folder, idx, progress=False)  # the new times are recorded: nothing to do
    assert report.unchanged == len(records) and report.retimed == [] and report.added == report.updated == []
    assert eng.search(small_folder / "a.mp4", k=1).matches[0].id == "a.mp4"


def test_a_moved_or_copied_file_reuses_the_stored_rows(small_folder, tmp_path, monkeypatch):
    from engine.index import VideoIndex

    eng = Engine(backbone="efficientnet-lite0")
    idx = tmp_path / "idx"
    eng.build_index(small_folder, idx, progress=False)
    before = VideoIndex.open(idx)
    rows = {vid: before.video_frames(before.position(vid), pictures=True)[0] for vid in ("a.mp4", "b.mkv")}
    (small_folder / "renamed").mkdir()
    (small_folder / "a.mp4").rename(small_folder / "renamed" / "a2.mp4")
    (small_folder / "b copy.mkv").write_bytes((small_folder / "b.mkv").read_bytes())
    for unreadable in ("broken.mp4", "audio.mp4"):
        (small_folder / unreadable).unlink()

    def no_embedding(path, *args, **kwargs):
        raise AssertionError(f"{path} was embedded")

    with monkeypatch.context() as patch:
        patch.setattr(eng.embedder, "embed", no_embedding)
        report = eng.build_index(small_folder, idx, progress=False)
    assert sorted(report.reused) == [("a.mp4", "renamed/a2.mp4"), ("b.mkv", "b copy.mkv")]
    assert report.added == [] and report.removed == ["a.mp4"] and report.unchanged == 1
    assert "2 new files have the bytes of indexed ones" in report.summary()
    after = VideoIndex.open(idx)
    assert sorted(r.id for r in after.records) == ["b copy.mkv", "b.mkv", "renamed/a2.mp4"]
    for new, old in (("renamed/a2.mp4", "a.mp4"), ("b copy.mkv", "b.mkv")):
        np.testing.assert_allclose(after.video_frames(after.position(new), pictures=True)[0], rows[old], atol=2e-3)
        assert after.records[after.position(new)].mtime_ns == (small_folder / new).stat().st_mtime_ns
    top = eng.search(small_folder / "renamed" / "a2.mp4", k=1).matches[0]
    assert top.id == "renamed/a2.mp4" and Path(eng.video(top.id).path) == small_folder / "renamed" / "a2.mp4"


def test_a_video_saved_twice_is_embedded_once(small_folder, tmp_path, monkeypatch):
    """Two new files with the same bytes in one run: the first is embedded, the other copies
    its rows; a twin of a file that cannot be read is skipped for the same reason."""
    from engine.index import VideoIndex

    (small_folder / "again").mkdir()
    (small_folder / "again" / "a.mp4").write_bytes((small_folder / "a.mp4").read_bytes())
    (small_folder / "broken copy.mp4").write_bytes((small_folder / "broken.mp4").read_bytes())
    eng = Engine(backbone="efficientnet-lite0")
    embedded = []
    real = eng.embedder.embed

    def counting(path, *args, **kwargs):
        embedded.append(Path(path).relative_to(small_folder).as_posix())
        return real(path, *args, **kwargs)

    from engine import indexing

    reads = []
    real_hash = indexing.content_hash

    def reading(path, *args):
        reads.append(Path(path).relative_to(small_folder).as_posix())
        return real_hash(path, *args)

    monkeypatch.setattr(eng.embedder, "embed", counting)
    monkeypatch.setattr(indexing, "content_hash", reading)
    report = eng.build_index(small_folder, tmp_path / "idx", progress=False)
    assert len(embedded) == len(set(embedded)) and not {"a.mp4", "again/a.mp4"} <= set(embedded)
    assert sorted(reads) == sorted(set(reads)) and "a.mp4" in reads  # each file read once in the run
    assert not {"broken.mp4", "broken copy.mp4"} <= set(embedded)
    twin = "again/a.mp4" if "a.mp4" in embedded else "a.mp4"
    assert [vid for _, vid in report.reused] == [twin] and twin not in report.added
    skipped = dict(report.skipped)
    assert skipped["broken copy.mp4"] == skipped["broken.mp4"]
    index = VideoIndex.open(tmp_path / "idx")
    np.testing.assert_allclose(index.video_frames(index.position("a.mp4"), pictures=True)[0],
                               index.video_frames(index.position("again/a.mp4"), pictures=True)[0], atol=2e-3)
    assert {m.id for m in eng.search(small_folder / "a.mp4", k=2).matches} == {"a.mp4", "again/a.mp4"}


def test_a_remuxed_copy_is_another_file_with_the_same_rows(small_folder, tmp_path):
    """Twins are byte-identical files only: the speed bench's copies of its clip, remuxed under
    other titles (the same packets), are each embedded, to the same rows."""
    from engine.bench import _remux

    _remux(small_folder / "a.mp4", small_folder / "a remuxed.mp4", "another title")
    assert (small_folder / "a remuxed.mp4").read_bytes() != (small_folder / "a.mp4").read_bytes()
    eng = Engine(backbone="efficientnet-lite0")
    report = eng.build_index(small_folder, tmp_path / "idx", progress=False)
    assert sorted(report.added) == ["a remuxed.mp4", "a.mp4", "b.mkv"] and report.reused == []
    index = eng.index
    np.testing.assert_allclose(index.video_frames(index.position("a.mp4"))[0],
                               index.video_frames(index.position("a remuxed.mp4"))[0], atol=1e-6)


def test_a_file_that_cannot_be_hashed_is_embedded_not_an_error(small_folder, tmp_path, monkeypatch):
    """Hashing reads the whole file; a read error there (permissions, a file being replaced)
    must leave the run to the old size + mtime test, not stop it."""
    from engine import indexing

    eng = Engine(backbone="efficientnet-lite0")
    idx = tmp_path / "idx"
    eng.build_index(small_folder, idx, progress=False)
    st = (small_folder / "a.mp4").stat()
    os.utime(small_folder / "a.mp4", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    (small_folder / "b copy.mkv").write_bytes((small_folder / "b.mkv").read_bytes())
    real = indexing.content_hash

    def unreadable(path, *args):
        if Path(path).name in ("a.mp4", "b copy.mkv"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args)

    monkeypatch.setattr(indexing, "content_hash", unreadable)
    report = eng.build_index(small_folder, idx, progress=False)
    assert report.updated == ["a.mp4"] and report.retimed == []  # embedded again, as without hashes
    assert report.added == ["b copy.mkv"] and report.reused == []
    from engine.index import VideoIndex

    records = {r.id: r for r in VideoIndex.open(idx).records}
    assert records["a.mp4"].content_hash == "" and records["b.mkv"].content_hash


def test_an_index_from_before_hard_cuts_gets_them_once(small_folder, tmp_path):
    """Records keep each video's hard cuts; an older index's records have none (None), and
    its next update finds them by a decode of the kept files (no CNN), once."""
    from engine.index import VideoIndex

    media.write_video(small_folder / "c.mp4", media.scene_frames(13, 2.5) + media.scene_frames(14, 2.5))
    eng = Engine(backbone="efficientnet-lite0")
    idx = tmp_path / "idx"
    eng.build_index(small_folder, idx, progress=False)
    fresh = {r.id: r.cuts for r in VideoIndex.open(idx).records}
    assert fresh["a.mp4"] == [] and fresh["c.mp4"] == [pytest.approx(2.5, abs=0.05)], fresh
    with VideoIndex.writing(idx) as index:  # as an older engine wrote it
        index.update_records({vid: {"cuts": None} for vid in fresh})
    assert all(r.cuts is None for r in VideoIndex.open(idx).records)

    report = eng.build_index(small_folder, idx, progress=False)
    assert sorted(report.cut) == sorted(fresh) and report.unchanged == 3 and not report.added
    assert "hard cuts" in report.summary()
    assert {r.id: r.cuts for r in VideoIndex.open(idx).records} == fresh
    assert eng.build_index(small_folder, idx, progress=False).cut == []


def test_videos_keep_their_brightness_profile_and_older_rows_read_as_unknown(small_folder, tmp_path):
    """The index keeps each video's brightness between samples beside its times; rows written
    before profiles were kept (two meta columns) merge and read back as unknown (NaN)."""
    from engine.cuts import PROFILE
    from engine.index import META_WIDTH, VideoIndex, _wide_meta

    eng = Engine(backbone="efficientnet-lite0")
    idx = tmp_path / "idx"
    eng.build_index(small_folder, idx, progress=False)
    index = VideoIndex.open(idx)
    emb = eng.embed(small_folder / "a.mp4")
    stored = index.video_profile(index.position("a.mp4"))
    assert stored.shape == (len(emb.times), PROFILE)
    np.testing.assert_allclose(stored, emb.profile, atol=0.5)
    old = np.array([[0.0, 0.5], [1.0, 0.5]], np.float32)
    rows = np.concatenate([_wide_meta(old), _wide_meta(np.zeros((1, META_WIDTH), np.float32))])
    assert rows.shape == (3, META_WIDTH) and np.isnan(rows[:2, 2:]).all() and (rows[2] == 0).all()


def test_an_index_from_before_content_hashes_gets_them_once(small_folder, tmp_path):
    from engine.index import VideoIndex

    eng = Engine(backbone="efficientnet-lite0")
    idx = tmp_path / "idx"
    eng.build_index(small_folder, idx, progress=False)
    with VideoIndex.writing(idx) as index:  # as an older engine wrote it
        index.update_records({vid: {"content_hash": ""} for vid in ("a.mp4", "b.mkv")})
    with pytest.raises(ValueError, match="file identity and cuts"):
        with VideoIndex.writing(idx) as index:
            index.update_records({"a.mp4": {"duration": 1.0}})

    report = eng.build_index(small_folder, idx, progress=False)
    assert sorted(report.hashed) == ["a.mp4", "b.mkv"] and report.unchanged == 2
    assert all(r.content_hash for r in VideoIndex.open(idx).records)
    assert eng.build_index(small_folder, idx, progress=False).hashed == []


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
    assert set(data) == {"query", "measure", "normalized", "variants", "results"} and data["measure"] == "chamfer"
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
    code, out, _ = run_cli(capsys, "index", small_folder, tmp_path / "idx", "--quiet")
    assert code == 0 and "indexed 2 new" in out and "skipped broken.mp4" in out
    code, out, _ = run_cli(capsys, "search", tmp_path / "idx", small_folder / "b.mkv", "--top-k", "1")
    assert code == 0 and "b.mkv" in out
    code, out, _ = run_cli(capsys, "info", tmp_path / "idx")
    assert code == 0 and "2 videos" in out


def test_cli_searches_several_queries_with_one_model_load(tmp_path, small_folder, capsys):
    """Files and folders of queries: one JSON line each, in order; an unreadable one is
    reported and the rest still searched, with exit status 2 at the end."""
    idx = tmp_path / "idx"
    assert run_cli(capsys, "index", small_folder, idx, "--quiet")[0] == 0
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "b.mkv").write_bytes((small_folder / "b.mkv").read_bytes())
    code, out, _ = run_cli(capsys, "search", idx, small_folder / "a.mp4", queries, "--top-k", "1", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(d["query"].rsplit("/", 1)[-1], d["results"][0]["id"]) for d in lines] == [("a.mp4", "a.mp4"), ("b.mkv", "b.mkv")]
    code, out, err = run_cli(capsys, "search", idx, small_folder / "broken.mp4", small_folder / "a.mp4", "--top-k", "1")
    assert code == 2 and "query: " in out and out.count("rank") == 1 and "a.mp4" in out
    assert "broken.mp4" in err and "1 of 2 queries could not be searched" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "search", idx, tmp_path / "typo.mp4", small_folder / "a.mp4")
    assert code == 2 and "typo.mp4: query video not found" in err  # before anything is searched


def test_cli_user_errors_are_messages_not_tracebacks(tmp_path, small_folder, capsys):
    idx = tmp_path / "idx"
    assert run_cli(capsys, "index", small_folder, idx, "--quiet")[0] == 0
    for args, words in ((["search", idx, small_folder / "broken.mp4"], "broken.mp4"),
                        (["search", tmp_path / "nowhere", small_folder / "a.mp4"], "nowhere"),
                        (["index", tmp_path / "missing_dir", idx], "missing_dir"),
                        (["search", idx, small_folder / "a.mp4", "--model", "models/typo.safetensors"],
                         "models/typo.safetensors: model file not found"),
                        (["embed", small_folder / "audio.mp4"], "no video stream"),
                        (["index", small_folder, tmp_path / "idx0", "--fps", "0"], "--fps 0"),
                        (["index", small_folder, tmp_path / "idx0", "--fps", "-2"], "--fps -2"),
                        (["index", small_folder, tmp_path / "idx0", "--max-duration", "0"], "--max-duration 0")):
        code, _, err = run_cli(capsys, *args)
        assert code == 2, args
        assert err.strip().splitlines()[-1].startswith("error: ") and words in err and "Traceback" not in err, err
    assert not (tmp_path / "idx0").exists()  # refused before anything was written


def test_embed_json(small_folder, capsys):
    code, out, _ = run_cli(capsys, "embed", small_folder / "a.mp4", "--json", "--backbone", "efficientnet-lite0")
    data = json.loads(out)
    assert code == 0 and set(data) == {"times", "attention", "step", "duration", "warnings"}
    assert all(0 <= t - k < 0.4 for t, k in zip(data["times"], range(4))) and data["step"] == 1.0
    assert sum(data["attention"]) == pytest.approx(1, abs=1e-4) and data["duration"] == pytest.approx(4, abs=0.1)


def named_files(index_dir) -> set[str]:
    """Every file the manifest of an index names, with the manifest and the lock."""
    m = json.loads((index_dir / "manifest.json").read_text())
    names = {"manifest.json", ".lock"}
    for e in m["segments"]:
        names |= {e["files"]["records"].get("file", f"{e['name']}.records.jsonl")}
        names |= {f"{e['name']}.{k}.npy" for k in ("offsets", "videos", "frames", "meta")}
        names |= {v["file"] for v in e["files"].values() if "file" in v}
        names |= {v["file"] for v in (e.get("derived") or {}).values()}
    names |= {m[k]["file"] for k in ("codec", "reference") if "file" in (m.get(k) or {})}
    names |= {spec["file"] for spec in m.get("codecs", {}).values()}
    return names


def test_a_failed_write_leaves_the_previous_index_whole(small_folder, tmp_path, monkeypatch):
    from engine import index as index_module

    idx = tmp_path / "idx"
    eng = Engine(backbone="efficientnet-lite0")
    eng.build_index(small_folder, idx, progress=False)
    before = sorted(p.name for p in idx.iterdir())
    media.write_video(small_folder / "c.mp4", media.scene_frames(13, 4))
    real = index_module.write_array

    def disk_full(path, array):
        if path.name.endswith(".meta.npy"):  # after the segment's other files
            raise OSError(28, "No space left on device")
        return real(path, array)

    monkeypatch.setattr(index_module, "write_array", disk_full)
    with pytest.raises(OSError, match="No space"):
        eng.build_index(small_folder, idx, progress=False)
    monkeypatch.setattr(index_module, "write_array", real)
    again = Engine(index=idx)
    assert sorted(r.id for r in again.index.records) == ["a.mp4", "b.mkv"]
    assert again.search(small_folder / "b.mkv", k=1).matches[0].id == "b.mkv"
    eng.build_index(small_folder, idx, progress=False)  # the next run cleans up and adds c.mp4
    assert sorted(p.name for p in idx.iterdir()) != before and set(p.name for p in idx.iterdir()) == named_files(idx)
    assert "c.mp4" in Engine(index=idx).index


def test_an_interrupted_run_keeps_what_it_finished(small_folder, tmp_path):
    media.write_video(small_folder / "c.mp4", media.scene_frames(13, 4))
    eng = Engine(backbone="efficientnet-lite0")
    done = []

    def embed_then_stop(path):
        if len(done) == 2:
            raise KeyboardInterrupt  # the user presses Ctrl-C during the last readable video
        emb = eng.embed(path)  # (audio.mp4 and broken.mp4 fail here: reported, skipped)
        done.append(path.name)
        return emb

    from engine.indexing import build_index

    bundle = eng.model
    from engine.index import VideoIndex

    def new_index(root):
        return VideoIndex.new(bundle.identity, bundle.backbone.value, bundle.pooling.value, eng.embedder.dim, 1.0, root)

    with pytest.raises(KeyboardInterrupt):
        build_index(small_folder, tmp_path / "idx", embed_then_stop, new_index, lambda i: None, progress=False)
    kept = Engine(index=tmp_path / "idx")  # derived state (backgrounds, map) is computed on open
    assert sorted(r.id for r in kept.index.records) == sorted(done)  # committed after each
    assert kept.search(small_folder / done[0], k=1).matches[0].id == done[0]
    report = kept.build_index(small_folder, tmp_path / "idx", progress=False)
    missing = sorted({"a.mp4", "b.mkv", "c.mp4"} - set(done))
    assert report.unchanged == 2 and report.added == missing  # the re-run embeds only what is missing


def test_kill_9_mid_run_leaves_an_index_that_opens(tmp_path):
    """A real `python -m engine index` process killed with SIGKILL while it writes."""
    import signal
    import time

    folder = tmp_path / "videos"
    for k in range(8):
        media.write_video(folder / f"v{k}.mp4", media.scene_frames(20 + k, 3))
    idx = tmp_path / "idx"
    cmd = [sys.executable, "-m", "engine", "index", str(folder), str(idx), "--quiet",
           "--backbone", "efficientnet-lite0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads((idx / "manifest.json").read_text()).get("num_videos", 0) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    eng = Engine(index=idx)  # opens: the lock died with the process
    have = sorted(r.id for r in eng.index.records)
    assert 2 <= len(have) < 8
    assert eng.search(folder / have[0], k=1).matches[0].id == have[0]
    report = eng.build_index(folder, idx, progress=False)
    assert report.unchanged == len(have) and len(report.added) == 8 - len(have)
    assert set(p.name for p in idx.iterdir()) == named_files(idx)


def test_a_second_writer_is_told_who_holds_the_lock(small_folder, tmp_path):
    from engine.index import VideoIndex

    idx = tmp_path / "idx"
    Engine(backbone="efficientnet-lite0").build_index(small_folder, idx, progress=False)
    with VideoIndex.writing(idx):
        out = subprocess.run([sys.executable, "-m", "engine", "index", str(small_folder), str(idx), "--quiet",
                              "--backbone", "efficientnet-lite0"],
                             cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 2 and f"locked by process {os.getpid()}" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        assert len(Engine(index=idx).index) == 2  # readers are not blocked
    with VideoIndex.writing(idx):  # released when the writer is done
        pass


def _synthetic(first, n, d, frames_per_video):
    """n videos of random unit frames, ids v{first}.. (the scale benchmark's generator)."""
    from engine.bench import synthetic_videos

    return synthetic_videos(first, n, frames_per_video, d)


def _new(d, **kw):
    from engine.index import VideoIndex

    idx = VideoIndex.new("m", "efficientnet-lite0", "l3-irmac", d, 1.0)
    idx.manifest.update(kw)
    return idx


def test_damaged_or_truncated_files_are_clear_errors(tmp_path, monkeypatch):
    from engine import store
    from engine.index import IndexFileError, VideoIndex

    monkeypatch.setattr(store, "BLOCK", 256)  # many blocks: large files are checked as they are read
    d = 16
    records, embs = _synthetic(0, 12, d, 5)
    with VideoIndex.writing(tmp_path / "idx", _new(d)) as idx:
        idx.append(records, embs, derive=True)
    frames = next((tmp_path / "idx").glob("*.frames.npy"))
    original = frames.read_bytes()
    raw = bytearray(original)
    raw[-7] ^= 0xFF  # one byte of the last video's frames
    frames.write_bytes(bytes(raw))
    opened = VideoIndex.open(tmp_path / "idx")  # opening reads nothing large
    q = embs[3].frames
    with pytest.raises(IndexFileError, match=f"{frames.name}: damaged index file"):
        opened.search(q, embs[3].video, k=3)
    frames.write_bytes(bytes(raw[:-100]))  # truncated
    with pytest.raises(IndexFileError, match=f"{frames.name}: damaged index file .*bytes"):
        VideoIndex.open(tmp_path / "idx")
    frames.write_bytes(original)
    manifest = tmp_path / "idx" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["segments"][0]["videos"] = 11
    manifest.write_text(json.dumps(m))
    with pytest.raises(IndexFileError, match="disagree"):
        VideoIndex.open(tmp_path / "idx")


def test_appends_write_only_new_segments_and_merge_in_tiers(tmp_path, monkeypatch):
    from engine import index as index_module
    from engine.index import VideoIndex

    monkeypatch.setattr(index_module, "MERGE_FACTOR", 3)
    d = 64  # random videos far enough apart that each is its own best match by cosine too
    with VideoIndex.writing(tmp_path / "idx", _new(d, exact_frames=50, reference_frames=30)) as idx:
        batches = [_synthetic(4 * s, 4, d, 5) for s in range(5)]
        idx.append(*batches[0], derive=True)
        idx.append(*batches[1], derive=True)
        first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "idx").glob("s*.frames.npy")}
        idx.append(*batches[2], derive=True)  # 3 segments of one tier: merged into one
        assert len(idx.segments) == 1 and len(idx) == 12
        big = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "idx").glob("s*.frames.npy")}
        idx.append(*batches[3], derive=True)
        after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "idx").glob("s*.frames.npy")}
        assert {k: after[k] for k in big} == big and len(after) == 2  # the old segment was not rewritten
        assert not set(first) & set(big)
        assert "reference" in idx.manifest  # 80 frames > exact_frames: a fixed reference sample
        idx.remove(["v1", "v14"])
        idx.append(*batches[4], derive=True)
    opened = VideoIndex.open(tmp_path / "idx")
    assert len(opened) == 18 and "v1" not in opened and "v13" in opened
    for recs, embs in batches:
        for r, e in zip(recs, embs):
            if r.id in ("v1", "v14"):
                continue
            for measure in ("chamfer", "cosine"):
                hit = opened.search(e.frames, e.video, k=1, measure=measure)[0]
                assert opened.records[hit.position].id == r.id
    assert opened.map_coords().shape == (18, 2) and opened.background[0].shape == (opened.num_frames,)
    with VideoIndex.writing(tmp_path / "idx") as idx:
        idx.compact()
        assert len(idx.segments) == 1 and not idx.manifest["tombstones"] and len(idx) == 18


def test_codec_is_trained_once_there_are_enough_frames(tmp_path):
    from engine.index import VideoIndex

    d = 32
    with VideoIndex.writing(tmp_path / "idx", _new(d)) as idx:
        idx.manifest["codec"]["train_frames"] = 300
        first = _synthetic(0, 20, d, 10)  # 200 frames: float16
        idx.append(*first, derive=True)
        assert idx.codec.spec == "float16" and idx.segments[0].frames.shape == (200, d)
        second = _synthetic(20, 20, d, 10)  # 400 frames: the codec is trained and all is recoded
        idx.append(*second, derive=True)
    opened = VideoIndex.open(tmp_path / "idx")
    assert opened.codec.spec == "PCAR32,SQ4" and opened.manifest["codec"]["file"]
    # trained on unit vectors, it decodes to unit vectors (cosines, however well a row was coded)
    assert opened.manifest["codec"]["unit"] and opened.codec.unit
    rows = opened.segments[0].codec.decode(opened.segments[0].frames.all())
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    from engine.codec import Codec

    loose = Codec.train("PCAR24,SQ4", 3 * first[1][0].frames.repeat(30, axis=0))
    assert not loose.unit and np.linalg.norm(loose.decode(loose.encode(3 * first[1][0].frames)), axis=1).min() > 2
    code = opened.segments[0].frames.shape[1]
    assert all(s.frames.shape[1] == code < 2 * d for s in opened.segments)
    hits = 0
    for recs, embs in (first, second):
        for r, e in zip(recs, embs):
            got = opened.records[opened.search(e.frames, e.video, k=1)[0].position].id
            hits += got == r.id
            f, _, _ = opened.video_frames(opened.position(r.id))
            assert np.mean(np.sum(f * e.frames, axis=1)) > 0.7  # near the original (random data: 3/4 of the dims kept)
    assert hits == 40


# A codec that keeps fewer directions than d (the default keeps them all, and then footage
# unlike its sample is kept as well as the sample): the drift between kinds of footage
# that a codec of its own answers.
TRUNCATING = "PCAR24,SQ4"


def _footage(first, n, d, frames_per_video, dims):
    """n synthetic videos whose unit frames lie near the coordinate axes `dims` (one kind of
    footage; another slice of dims is footage unlike it)."""
    records, embs = _synthetic(first, n, d, frames_per_video)
    rng = np.random.default_rng(first)
    for e in embs:
        f = 0.05 * rng.standard_normal(e.frames.shape).astype(np.float32)
        f[:, dims] += rng.standard_normal((len(f), len(dims))).astype(np.float32)
        e.frames[:] = f / np.linalg.norm(f, axis=1, keepdims=True)
        e.video[:] = e.frames.mean(0) / np.linalg.norm(e.frames.mean(0))
    return records, embs


def test_footage_unlike_the_codec_gets_a_codec_of_its_own(tmp_path):
    """The codec is trained on the first footage; videos of other footage, added later one by
    one, wait in float16 and then get a codec trained on them, instead of being stored
    through one that loses most of them. Each kind of footage keeps its rows; segments of
    one codec merge with their own; the first footage still goes to the main codec."""
    from engine.index import VideoIndex

    d, first, other = 32, list(range(16)), list(range(16, 32))
    folder = tmp_path / "idx"
    with VideoIndex.writing(folder, _new(d)) as idx:
        idx.manifest["codec"]["train_frames"] = 300
        idx.manifest["codec"]["train"] = TRUNCATING  # keeps 24 of 32 directions: other footage loses most
        a = _footage(0, 40, d, 10, first)
        idx.append(*a)  # 400 frames: the main codec is trained on the first footage
        assert idx.manifest["codec"]["fidelity"] > 0.95
        b = _footage(100, 35, d, 10, other)
        main_keeps = np.mean(np.sum(b[1][0].frames * idx.codec.decode(idx.codec.encode(b[1][0].frames)), axis=1))
        assert main_keeps < 0.85  # what the main codec would have stored
        for r, e in zip(*b):
            idx.append([r], [e])
            if r.id == "v101":  # the first videos of the other footage wait in float16
                assert {s.entry.get("codec") for s in idx.segments} == {None, "float16"}
        more = _footage(200, 5, d, 10, first)
        idx.append(*more)
    opened = VideoIndex.open(folder)
    (name, spec), = opened.manifest["codecs"].items()
    assert spec["fidelity"] > 0.95 and (folder / spec["file"]).is_file()
    assert {s.entry.get("codec") for s in opened.segments} == {None, name}
    assert opened.segments[-1].entry.get("codec") is None  # the first footage, added last
    for recs, embs in (a, b, more):
        for r, e in zip(recs, embs):
            f, _, _ = opened.video_frames(opened.position(r.id))
            assert np.mean(np.sum(f * e.frames, axis=1)) > 0.95, r.id
    e = b[1][20]
    assert opened.records[opened.search(e.frames, e.video, k=1)[0].position].id == "v120"
    assert set(p.name for p in folder.iterdir()) == named_files(folder)
    with VideoIndex.writing(folder) as idx:
        idx.compact()
    compacted = VideoIndex.open(folder)
    assert sorted(str(s.entry.get("codec")) for s in compacted.segments) == sorted(["None", name])
    assert len(compacted) == 80


def test_a_failure_while_footage_gets_its_codec_leaves_the_index_whole(tmp_path, monkeypatch):
    """The disk fills while waiting footage is recoded with its new codec: the index is the
    last committed one (its videos all found, the waiting ones in float16), and the next
    append trains the codec again and drops the orphaned files."""
    from engine import index as index_module
    from engine.index import VideoIndex

    d, folder = 32, tmp_path / "idx"
    with VideoIndex.writing(folder, _new(d)) as idx:
        idx.manifest["codec"]["train_frames"] = 300
        idx.manifest["codec"]["train"] = TRUNCATING  # keeps 24 of 32 directions: other footage loses most
        idx.append(*_footage(0, 40, d, 10, list(range(16))))
        other = _footage(100, 30, d, 10, list(range(16, 32)))
        for r, e in zip(other[0][:29], other[1][:29]):
            idx.append([r], [e])
    real = index_module.write_array

    def disk_full(path, array):
        if path.name.endswith(".frames.npy") and array.dtype == np.uint8:
            raise OSError(28, "No space left on device")
        return real(path, array)

    monkeypatch.setattr(index_module, "write_array", disk_full)
    with pytest.raises(OSError, match="No space"):
        with VideoIndex.writing(folder) as idx:
            idx.append([other[0][29]], [other[1][29]])  # the 300th waiting frame: the codec is trained
    monkeypatch.setattr(index_module, "write_array", real)
    kept = VideoIndex.open(folder)
    assert len(kept) == 69 and "codecs" not in kept.manifest
    assert kept.records[kept.search(other[1][3].frames, other[1][3].video, k=1)[0].position].id == "v103"
    with VideoIndex.writing(folder) as idx:
        idx.append([other[0][29]], [other[1][29]])
    after = VideoIndex.open(folder)
    assert len(after) == 70 and len(after.manifest["codecs"]) == 1
    assert set(p.name for p in folder.iterdir()) == named_files(folder)


def test_footage_waiting_for_a_codec_joins_the_best_one_when_no_new_one_may_be_trained(tmp_path, monkeypatch):
    """With no room for another codec, the float16 segments of footage unlike the codec are
    recoded with the best codec there is once they hold a codec's sample, not kept apart."""
    from engine import index as index_module
    from engine.index import VideoIndex

    monkeypatch.setattr(index_module, "MAX_CODECS", 1)
    d = 32
    with VideoIndex.writing(tmp_path / "idx", _new(d)) as idx:
        idx.manifest["codec"]["train_frames"] = 300
        idx.manifest["codec"]["train"] = TRUNCATING  # keeps 24 of 32 directions: other footage loses most
        idx.append(*_footage(0, 40, d, 10, list(range(16))))
        other = _footage(100, 30, d, 10, list(range(16, 32)))  # 300 frames: one codec sample
        for r, e in zip(*other):
            idx.append([r], [e])
            if r.id == "v101":
                assert {s.entry.get("codec") for s in idx.segments} == {None, "float16"}
    opened = VideoIndex.open(tmp_path / "idx")
    assert "codecs" not in opened.manifest and {s.entry.get("codec") for s in opened.segments} == {None}
    assert len(opened) == 70 and opened.records[opened.search(other[1][5].frames, other[1][5].video, k=1)[0].position].id == "v105"


def test_format_1_index_opens_and_converts(tmp_path):
    """An index written by the previous engine (format 1) is searched as it is and converted
    to segments by the next writer."""
    from engine import index as index_module
    from engine.index import VideoIndex

    import faiss

    d, n, t = 16, 6, 4
    records, embs = _synthetic(0, n, d, t)
    folder = tmp_path / "v1"
    folder.mkdir()
    videos = np.stack([e.video for e in embs])
    np.save(folder / "videos-3.npy", videos)
    np.save(folder / "offsets-3.npy", np.arange(0, n * t + 1, t, dtype=np.int64))
    np.save(folder / "frames-3.npy", np.concatenate([e.frames for e in embs]).astype(np.float16))
    np.save(folder / "frame_meta-3.npy", np.zeros((n * t, 2), np.float32))
    flat = faiss.IndexFlatIP(d)
    flat.add(videos)
    faiss.write_index(flat, str(folder / "faiss-3.index"))
    from dataclasses import asdict

    (folder / "manifest.json").write_text(json.dumps({
        "format_version": 1, "backbone": "efficientnet-lite0", "pooling": "l3-irmac", "model_id": "m",
        "model_path": None, "dim": d, "sample_fps": 1.0, "root": ".", "generation": 3,
        "videos": [asdict(r) for r in records]}))
    old = VideoIndex.open(folder)
    assert len(old) == n and old.search(embs[2].frames, embs[2].video, k=1)[0].position == 2
    more_r, more_e = _synthetic(n, 2, d, t)
    with VideoIndex.writing(folder) as idx:
        idx.append(more_r, more_e, derive=True)
    new = VideoIndex.open(folder)
    assert new.manifest["format_version"] == index_module.FORMAT_VERSION and len(new) == n + 2
    assert not list(folder.glob("*-3.npy"))  # the format-1 files are gone
    assert new.records[new.search(more_e[1].frames, more_e[1].video, k=1)[0].position].id == more_r[1].id


def test_format_2_index_opens_and_a_newer_format_is_refused_clearly(tmp_path):
    """Format 2 (before content hashes) is read as it is and written as the current format;
    a format this engine does not know is an IndexFileError that says what to do, never a
    traceback on the first record."""
    from engine.errors import IndexFileError
    from engine.index import FORMAT_VERSION, MANIFEST, VideoIndex

    records, embs = _synthetic(0, 4, 16, 4)
    folder = tmp_path / "idx"
    with VideoIndex.writing(folder, _new(16)) as idx:
        idx.append(records, embs)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 3
    (folder / MANIFEST).write_text(json.dumps({**manifest, "format_version": 2}))
    assert len(VideoIndex.open(folder)) == 4
    more_r, more_e = _synthetic(4, 1, 16, 4)
    with VideoIndex.writing(folder) as idx:
        idx.append(more_r, more_e)
    assert json.loads((folder / MANIFEST).read_text())["format_version"] == FORMAT_VERSION
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(IndexFileError, match="format 4 is not supported.*update the engine"):
        VideoIndex.open(folder)


def test_ivf_branch_for_large_segments(tmp_path, monkeypatch):
    from engine import index as index_module
    from engine.index import VideoIndex

    monkeypatch.setattr(index_module, "FLAT_LIMIT", 100)
    d = 16
    records, embs = _synthetic(0, 400, d, 1)
    with VideoIndex.writing(tmp_path / "ivf", _new(d)) as idx:
        idx.append(records, embs, derive=True)
    opened = VideoIndex.open(tmp_path / "ivf")
    assert opened.manifest["faiss"] == "ivf-pq"
    for i in (0, 123, 399):
        e = embs[i]
        for measure in ("cosine", "chamfer"):
            hit = opened.search(e.frames, e.video, k=1, measure=measure, normalize=False, candidates=50)[0]
            assert (hit.position, round(hit.score, 2)) == (i, 1.0)


def test_candidates_count_a_variant_look_less_its_margin(tmp_path):
    """The candidate stage ranks videos as the re-rank does: a variant look's match counts
    VARIANT_MARGIN less, so a variant's near-equal neighbour cannot push the original's
    best match out of a short candidate list."""
    from engine.index import VideoIndex
    from engine.similarity import VARIANT_MARGIN

    d = 16
    records, embs = _synthetic(0, 3, d, 1)
    eye = np.eye(d, dtype=np.float32)
    embs = [type(e)(eye[i][None], eye[i], e.times, e.attention) for i, e in enumerate(embs)]
    with VideoIndex.writing(tmp_path / "idx", _new(d)) as idx:
        idx.append(records, embs, derive=True)
    index = VideoIndex.open(tmp_path / "idx")

    def look(i, other, c):
        return c * eye[i] + np.sqrt(1 - c * c) * eye[other]

    # the original look matches v0 at 0.90, the variant matches v1 at 0.90 + margin / 2
    looks = np.stack([look(0, 5, 0.90), look(1, 6, 0.90 + VARIANT_MARGIN / 2)]).astype(np.float32)
    for candidates in (1, 3):  # a one-video candidate list, and the whole index (exact)
        hit = index.search(looks[:, None], looks, k=1, measure="cosine", normalize=False, candidates=candidates)[0]
        assert index.records[hit.position].id == "v0"
        assert hit.score == pytest.approx(0.90, abs=1e-5)


def _partial_copy_collection(d=64, n_decoys=40, seed=3):
    """A query of 4 frames; `target` hides them (slightly changed) among 60 other frames, so
    its video vector barely moves towards the query's; every decoy's frames are the query's
    mean plus noise, so the decoys' video vectors are the query's nearest and no frame of
    theirs matches a query frame well."""
    from engine.bench import _Emb
    from engine.index import VideoRecord

    rng = np.random.default_rng(seed)

    def unit(x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    query = unit(rng.standard_normal((4, d)))
    mean = unit(query.mean(0))
    videos = [unit(np.concatenate([rng.standard_normal((30, d)), query + 0.1 * rng.standard_normal((4, d)),
                                   rng.standard_normal((30, d))]))]
    videos += [unit(mean + 0.6 * rng.standard_normal((8, d))) for _ in range(n_decoys)]
    embs = [_Emb(f, unit(f.mean(0)), np.arange(len(f), dtype=np.float32), np.full(len(f), 1 / len(f), np.float32))
            for f in videos]
    records = [VideoRecord("target" if i == 0 else f"decoy{i}", f"{i}.mp4", 0, 0, float(len(f)), 30.0, 0, 0, len(f))
               for i, f in enumerate(videos)]
    return records, embs, query, mean


@pytest.mark.parametrize("flat_rows", [10**9, 100])  # exact in small segments; the stored IVF index
def test_chamfer_candidates_come_from_the_frames(tmp_path, monkeypatch, flat_rows):
    """A video that shares four seconds with the query is re-ranked however far its video
    vector is: the frame measures' candidates are the videos whose stored rows the query's
    frames fetch. By video vectors it is not among the 5 best (checked), so it would never
    reach the re-rank."""
    from engine import index as index_module
    from engine.index import VideoIndex
    from engine.similarity import cosine

    monkeypatch.setattr(index_module, "FRAME_FLAT_ROWS", flat_rows)
    records, embs, query, mean = _partial_copy_collection()
    with VideoIndex.writing(tmp_path / "idx", _new(query.shape[1])) as idx:
        idx.append(records, embs, derive=True)
    index = VideoIndex.open(tmp_path / "idx")
    assert ("frames_faiss" in index.segments[0].entry["files"]) == (flat_rows == 100)
    by_vector = np.argsort(-cosine(mean, index.video_vectors()))
    assert index.records[int(by_vector[0])].id != "target" and 0 not in by_vector[:5].tolist()
    for measure in ("chamfer", "symmetric_chamfer"):
        for normalize in (True, False):
            hits = index.search(query, mean, k=1, measure=measure, candidates=5, normalize=normalize)
            assert index.records[hits[0].position].id == "target", (measure, normalize)
    # a query with no frame evidence anywhere still gets its k videos, by video vectors
    stranger = np.eye(query.shape[1], dtype=np.float32)[:2]
    assert len(index.search(stranger, stranger[0], k=5, candidates=5)) == 5


def test_a_segment_written_before_frame_indexes_gets_one_in_memory(tmp_path, monkeypatch):
    """An index written with no frame index for a segment of many rows (as every index was
    before them) still finds candidates by frames: the segment builds its index on first
    search, and the files stay as they were."""
    from engine import index as index_module
    from engine.index import VideoIndex

    records, embs, query, mean = _partial_copy_collection()
    with VideoIndex.writing(tmp_path / "idx", _new(query.shape[1])) as idx:
        idx.append(records, embs, derive=True)
    before = sorted(p.name for p in (tmp_path / "idx").iterdir())
    monkeypatch.setattr(index_module, "FRAME_FLAT_ROWS", 100)
    index = VideoIndex.open(tmp_path / "idx")
    assert "frames_faiss" not in index.segments[0].entry["files"]
    hits = index.search(query, mean, k=1, candidates=5)
    assert index.records[hits[0].position].id == "target"
    assert index.segments[0]._frame_index is not None
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == before


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
    from engine import TCA_MODEL

    eng = Engine(model=TCA_MODEL, use_tca=False)
    assert eng.model.tca is None and "TCA off" in eng.model.name
    eng.build_index(small_folder, tmp_path / "idx", progress=False)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["tca"] is False and manifest["model_id"].endswith("+no-tca")
    reopened = Engine(index=tmp_path / "idx")  # the index's own model, TCA off again
    assert reopened.model.tca is None and reopened.search(small_folder / "a.mp4", k=1).matches[0].id == "a.mp4"
    with_tca = Engine(model=TCA_MODEL)
    assert with_tca.model.tca is not None and with_tca.model.identity != manifest["model_id"]


def test_an_index_moved_alone_still_finds_its_videos_and_model(small_folder, tmp_path):
    import shutil

    from engine import DEFAULT_MODEL

    model = tmp_path / "models" / "m.safetensors"
    model.parent.mkdir()
    shutil.copy(DEFAULT_MODEL, model)
    Engine(model=model).build_index(small_folder, tmp_path / "idx", progress=False)
    moved = tmp_path / "elsewhere" / "deeper" / "idx"  # its relative paths now point nowhere
    moved.parent.mkdir(parents=True)
    shutil.move(tmp_path / "idx", moved)
    eng = Engine(index=moved)
    assert eng.model_path == model.resolve()
    top = eng.search(small_folder / "a.mp4", k=1).matches[0]
    assert top.id == "a.mp4" and top.path == str(small_folder.resolve() / "a.mp4")
    # moved together with its videos, the relative paths win (the absolute ones are gone)
    together = tmp_path / "together"
    together.mkdir()
    shutil.move(moved, together / "idx")
    shutil.move(small_folder, together / small_folder.name)
    shutil.move(model.parent, together / "models")
    manifest = json.loads((together / "idx" / "manifest.json").read_text())
    assert not os.path.exists(manifest["root_absolute"])
    eng = Engine(index=together / "idx")
    assert eng.model_path == (together / "models" / "m.safetensors").resolve()
    assert Path(eng.search(together / small_folder.name / "a.mp4", k=1).matches[0].path).is_file()


def test_the_frame_index_holds_every_second_row_of_each_stream(tmp_path, monkeypatch):
    """A segment's frame index holds every FRAME_INDEX_EVERY-th row of each stream from its
    first (whole frames and each inner picture apart), under the rows' own ids, so a video of
    one frame is in it and what it returns are stored rows the re-rank reads."""
    from engine import index as index_module
    from engine.index import FRAME_INDEX_EVERY, VideoIndex, frame_index_rows

    assert FRAME_INDEX_EVERY == 2
    # video 0: 3 frames, 1 stream; video 1: 2 streams of 3; video 2: 1 frame
    rows = frame_index_rows(np.array([0, 3, 9, 10]), [1, 2, 1])
    assert rows.tolist() == [0, 2, 3, 5, 6, 8, 9]

    monkeypatch.setattr(index_module, "FRAME_FLAT_ROWS", 100)
    records, embs, query, mean = _partial_copy_collection()
    with VideoIndex.writing(tmp_path / "idx", _new(query.shape[1])) as idx:
        idx.append(records, embs, derive=True)
    index = VideoIndex.open(tmp_path / "idx")
    seg = index.segments[0]
    held = frame_index_rows(seg.offsets, [r.views for r in seg.records])
    assert seg._frame_index.ntotal == len(held) < seg.f
    _, ids = seg.frame_neighbours(index.codec.decode(seg.frames.rows(0, 5)), 4)
    assert np.isin(ids[ids >= 0], held).all()


def test_a_long_query_fetches_candidates_with_a_budget_of_rows(tmp_path, monkeypatch):
    """A long query with five looks fetches its frame candidates with at most
    FRAME_QUERY_ROWS rows (each look's frames strided alike), and still finds a video that
    hides ten seconds of it among unrelated frames, where the video vectors would not."""
    from engine import index as index_module
    from engine.bench import _Emb
    from engine.index import FRAME_QUERY_ROWS, Segment, VideoIndex, VideoRecord

    rng = np.random.default_rng(5)
    d = 64

    def unit(x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    query = unit(rng.standard_normal((5, 100, d)))  # itself, then four looks
    videos = [unit(np.concatenate([rng.standard_normal((40, d)), query[0, 40:50] + 0.1 * rng.standard_normal((10, d)),
                                   rng.standard_normal((40, d))]))]
    mean = unit(query.mean(1))  # [5, d]: each look's video vector
    videos += [unit(mean[0] + 0.6 * rng.standard_normal((30, d))) for _ in range(60)]  # near the query by vector
    embs = [_Emb(f, unit(f.mean(0)), np.arange(len(f), dtype=np.float32), np.full(len(f), 1 / len(f), np.float32))
            for f in videos]
    records = [VideoRecord("target" if i == 0 else f"other{i}", f"{i}.mp4", 0, 0, float(len(f)), 30.0, 0, 0, len(f))
               for i, f in enumerate(videos)]
    monkeypatch.setattr(index_module, "FRAME_FLAT_ROWS", 100)  # the stored IVF frame index
    with VideoIndex.writing(tmp_path / "idx", _new(d)) as idx:
        idx.append(records, embs, derive=True)
    index = VideoIndex.open(tmp_path / "idx")
    by_vector = np.argsort(-(index.video_vectors() @ mean[0]))
    assert 0 not in by_vector[:5].tolist()  # the video vectors alone would not re-rank it
    fetched = []
    original = Segment.frame_neighbours

    def spy(self, rows, k, decoded=None):
        fetched.append(len(rows))
        return original(self, rows, k, decoded)

    monkeypatch.setattr(Segment, "frame_neighbours", spy)
    hits = index.search(query, mean, k=1, candidates=5)
    assert index.records[hits[0].position].id == "target"
    assert fetched and max(fetched) <= FRAME_QUERY_ROWS and max(fetched) >= FRAME_QUERY_ROWS - 5, fetched
