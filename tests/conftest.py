"""Shared fixtures: a small real corpus (several codecs/containers) and an index of it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import media  # noqa: E402


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """`python -m engine ARGS` in this process (no interpreter and torch to start per call):
    (exit code, stdout, stderr). argparse's usage errors give their exit code; any other
    exception fails the test, as a traceback would."""
    from engine.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict:
    """A folder of videos plus the clips that are NOT in it (queries).

    long.mp4 is 84 s: 36 s of scene 5, the 12-s 'insert' clip from 36 s to 48 s, 36 s of
    scene 6. The insert is 6 s of scene 7 then 6 s of scene 9; half_copy.mp4 holds the same
    6 s of scene 7, then 3 s of scene 10: as a whole it is closer to the insert than long.mp4
    is (cosine is fooled), frame by frame it is not (chamfer is not).
    Queries are transformed copies of indexed videos and of the insert.
    """
    base = tmp_path_factory.mktemp("corpus")
    videos = base / "videos"
    queries = base / "queries"
    bunny = media.real_frames("bigbuckbunny")
    bikes = media.real_frames("bikes")
    scenes = {i: media.scene_frames(i, 12) for i in range(1, 5)}
    scene7 = media.scene_frames(7, 6)
    insert = scene7 + media.scene_frames(9, 6)
    media.write_video(videos / "bunny.mp4", bunny, fps=25)
    media.write_video(videos / "sub" / "bikes.mp4", bikes, fps=25)
    media.write_video(videos / "carphone.mp4", media.real_frames("carphone_pristine"), fps=30)
    media.write_video(videos / "scene1.mkv", scenes[1])
    media.write_video(videos / "scene2.webm", scenes[2], codec="libvpx-vp9")
    media.write_video(videos / "scene3.avi", scenes[3], codec="mpeg4")
    media.write_video(videos / "sub" / "scene4.mov", scenes[4])
    long = media.scene_frames(5, 36) + insert + media.scene_frames(6, 36)
    media.write_video(videos / "long.mp4", long)
    media.write_video(videos / "half_copy.mp4", scene7 + media.scene_frames(10, 3))
    q = {
        "bunny_crop": media.write_video(queries / "bunny_crop.mp4", media.crop(bunny), fps=25),
        "scene2_flip": media.write_video(queries / "scene2_flip.mp4", media.flip(scenes[2])),
        "scene3_lowrate": media.write_video(
            queries / "scene3_lowrate.mp4", scenes[3], options={"crf": "40"}),
        "bikes_bright": media.write_video(queries / "bikes_bright.mp4", media.brighten(bikes), fps=25),
        "insert": media.write_video(queries / "insert.mp4", media.crop(insert, 0.85)),
    }
    return {"videos": videos, "queries": q, "base": base}


@pytest.fixture(scope="session")
def pca_model(corpus, tmp_path_factory) -> Path:
    """A PCA-whitening bundle fitted on the corpus with the CLI, as a user would."""
    from engine.cli import main

    out = tmp_path_factory.mktemp("model") / "pca.safetensors"
    assert main(["pca", str(corpus["videos"]), str(out), "--dim", "64"]) == 0
    return out


@pytest.fixture(scope="session")
def engine_and_index(corpus, pca_model, tmp_path_factory):
    from engine import Engine

    index_dir = tmp_path_factory.mktemp("index") / "idx"
    eng = Engine(model=pca_model)
    report = eng.build_index(corpus["videos"], index_dir, progress=False)
    return eng, index_dir, report
