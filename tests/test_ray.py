"""Indexing on Ray Data actors (a local Ray) gives the same index as the single-process path."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import media

ray = pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt")

from engine import Engine  # noqa: E402
from engine.cli import main  # noqa: E402
from engine.index import VideoIndex  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, object_store_memory=256 << 20, include_dashboard=False,
             logging_level="warning", log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_index_equals_the_single_process_index(local_ray, pca_model, tmp_path, capsys):
    folder = tmp_path / "videos"
    for i in range(5):
        media.write_video(folder / f"v{i}.mp4", media.scene_frames(40 + i, 4 + i))
    media.write_video(folder / "sub" / "long.mkv", media.scene_frames(50, 6) + media.scene_frames(41, 5))
    (folder / "broken.mp4").write_text("not a video")

    eng = Engine(model=pca_model)
    single = eng.build_index(folder, tmp_path / "single", progress=False)
    assert main(["index", str(folder), str(tmp_path / "ray"), "--model", str(pca_model),
                 "--ray", "--actors", "2", "--quiet"]) == 0
    assert "skipped broken.mp4" in capsys.readouterr().out

    a, b = VideoIndex.open(tmp_path / "single"), VideoIndex.open(tmp_path / "ray")
    # the same videos, in the same (shuffled, while the codec is untrained) order
    assert [r.id for r in a.records] == [r.id for r in b.records]
    assert sorted(r.id for r in a.records) == sorted(single.added)
    assert b.manifest["model_id"] == a.manifest["model_id"]
    np.testing.assert_allclose(b.video_vectors(), a.video_vectors(), atol=2e-3)
    for pos in range(len(a)):
        for x, y in zip(a.video_frames(pos), b.video_frames(pos)):
            np.testing.assert_allclose(y, x, atol=2e-3)

    query = folder / "sub" / "long.mkv"
    on_a = Engine(index=tmp_path / "single").search(query, k=len(a))
    on_b = Engine(index=tmp_path / "ray").search(query, k=len(b))
    assert [m.id for m in on_a.matches] == [m.id for m in on_b.matches]
    assert np.allclose([m.score for m in on_a.matches], [m.score for m in on_b.matches], atol=2e-3)

    # incremental on Ray as well: only the new file is embedded
    media.write_video(folder / "v9.mp4", media.scene_frames(49, 4))
    report = Engine(index=tmp_path / "ray").build_index(folder, tmp_path / "ray", progress=False, ray="local")
    assert report.added == ["v9.mp4"] and report.unchanged == len(a)


def test_without_ray_installed_the_flag_says_what_to_install(tmp_path, monkeypatch, capsys):
    media.write_video(tmp_path / "videos" / "a.mp4", media.scene_frames(11, 2))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["index", str(tmp_path / "videos"), str(tmp_path / "idx"), "--backbone", "efficientnet-lite0",
                 "--ray", "--quiet"]) == 2
    assert "pip install -r requirements-ray.txt" in capsys.readouterr().err
    assert not (tmp_path / "idx").exists(), "nothing is written before Ray is there"
