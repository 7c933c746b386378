"""Decoding: sampling by timestamp, rotation, variable frame rate, bad files."""
from __future__ import annotations

import numpy as np
import pytest

import media
from engine.video import (
    DecodeReport, EmptyVideoError, NoVideoStreamError, TooLargeVideoError, UnreadableVideoError, frames_at,
    iter_frames, probe, read_frames,
)


def test_samples_one_frame_per_second_with_times_in_seconds(tmp_path):
    path = media.write_video(tmp_path / "a.mp4", media.scene_frames(1, 5.0, fps=25), fps=25)
    frames = read_frames(path, fast=False)
    assert frames.images.shape == (5, 224, 224, 3) and frames.images.dtype == np.uint8
    np.testing.assert_allclose(frames.times, [0, 1, 2, 3, 4], atol=1e-3)
    # Fast mode skips B-frames: each sample is the first I/P frame at or after its tick.
    fast = read_frames(path).times
    assert len(fast) == 5 and np.all(fast >= [0, 1, 2, 3, 4]) and np.all(fast < [0.2, 1.2, 2.2, 3.2, 4.2])
    assert frames.duration == pytest.approx(5.0, abs=0.05)
    assert frames.warnings == []
    assert len(read_frames(path, fps=2).times) == 10


@pytest.mark.parametrize("codec,suffix", [("libx264", "mkv"), ("mpeg4", "avi"), ("libvpx-vp9", "webm"), ("mjpeg", "mov")])
def test_containers_and_codecs(tmp_path, codec, suffix):
    path = media.write_video(tmp_path / f"a.{suffix}", media.scene_frames(2, 3.0), codec=codec)
    assert len(read_frames(path).times) == 3


def test_rotation_metadata_is_applied(tmp_path):
    img = np.zeros((48, 96, 3), np.uint8)
    img[:, :16] = 255  # white band on the left of the stored picture
    path = media.write_video(tmp_path / "rot.mp4", [img] * 20, rotation=90)
    info = probe(path)
    assert info.rotation == 90 and (info.width, info.height) == (48, 96)
    t, frame = next(iter_frames(path, short_side=48, crop=None))
    # A 90-degree counter-clockwise turn puts the left band at the bottom, portrait.
    assert frame.shape[:2] == (96, 48)
    assert frame[-8:].mean() > 200 and frame[:8].mean() < 50


def test_variable_frame_rate_is_sampled_by_timestamp(tmp_path):
    times = [0.0, 0.1, 0.15, 2.5, 2.6, 2.7, 5.0, 5.05, 6.2]
    frames = media.scene_frames(3, 1.0, fps=len(times))[: len(times)]
    path = media.write_video(tmp_path / "vfr.mkv", frames, times=times)
    got = read_frames(path).times
    np.testing.assert_allclose(got, [0.0, 2.5, 5.0, 6.2], atol=0.02)


def test_duration_cap_is_reported(tmp_path):
    path = media.write_video(tmp_path / "long.mp4", media.scene_frames(4, 8.0, fps=5), fps=5)
    frames = read_frames(path, max_duration=3)
    assert len(frames.times) == 3 and frames.capped
    assert frames.duration == 3
    assert any("capped" in w for w in frames.warnings)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(UnreadableVideoError, match="notes.mp4"):
        read_frames(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(UnreadableVideoError, match="empty"):
        read_frames(tmp_path / "empty.mp4")
    with pytest.raises(UnreadableVideoError, match="not found"):
        read_frames(tmp_path / "missing.mp4")


def test_truncated_mp4(tmp_path):
    path = media.write_video(tmp_path / "full.mp4", media.scene_frames(5, 6.0))
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) sits at the end: lost
    with pytest.raises(UnreadableVideoError, match="cut.mp4"):
        read_frames(cut)


def test_truncated_streamable_file_keeps_what_decodes(tmp_path):
    path = media.write_video(tmp_path / "full.mkv", media.scene_frames(5, 10.0))
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    frames = read_frames(cut)
    assert 2 <= len(frames.times) < 10


def test_audio_only(tmp_path):
    path = media.write_audio_only(tmp_path / "song.m4a")
    with pytest.raises(NoVideoStreamError, match="no video stream.*audio"):
        read_frames(path)


def test_zero_frames(tmp_path):
    path = media.write_zero_frames(tmp_path / "zero.mp4")
    with pytest.raises((EmptyVideoError, UnreadableVideoError), match="zero.mp4"):
        read_frames(path)


def test_one_pass_reports_info_cap_and_duration(tmp_path):
    path = media.write_video(tmp_path / "long.mp4", media.scene_frames(4, 8.0, fps=5), fps=5)
    report = DecodeReport()
    times = [t for t, _ in iter_frames(path, max_duration=3, report=report)]
    assert len(times) == 3 and report.capped and report.duration == 3 and report.samples == 3
    assert report.info.duration == pytest.approx(8, abs=0.3) and report.info.width == 192
    with pytest.raises(TooLargeVideoError, match="larger than accepted here"):
        next(iter_frames(path, max_pixels=100 * 100))


def test_frames_at_seeks_to_the_frames_that_were_sampled(tmp_path):
    path = media.write_video(tmp_path / "a.mp4", media.scene_frames(5, 30.0, fps=5), fps=5, options={"g": "25"})
    exact = read_frames(path, fast=False, short_side=72, crop=None)
    want = [0.0, 1.0, 2.0, 17.0, 29.0, 3.0]  # out of order, with a gap that seeks
    got = frames_at(path, want, short_side=72)
    assert len(got) == len(want) and got[0].shape == exact.images[0].shape
    for t, img in zip(want, got):
        ref = exact.images[int(np.argmin(np.abs(exact.times - t)))].astype(int)
        assert np.abs(img.astype(int) - ref).mean() < 3, t


@pytest.mark.parametrize("fps", [1.0, 4.0])
def test_hard_cuts_are_found_on_every_decoded_frame(tmp_path, fps):
    """Two shots joined by a cut at 2.5 s (between samples at 1 fps): the sampling pass finds
    that one cut, to the frame, and none inside the panning shots; `hard_cuts` says the same."""
    from engine.video import DecodeReport, hard_cuts, iter_frames

    path = media.write_video(tmp_path / "cut.mp4", media.scene_frames(0, 2.5) + media.scene_frames(1, 2.5))
    report = DecodeReport()
    times = [t for t, _ in iter_frames(path, fps, report=report)]
    assert len(times) == int(5 * fps)
    assert report.cuts == [pytest.approx(2.5, abs=0.05)], report.cuts
    assert hard_cuts(path, fps) == report.cuts
    one_shot = media.write_video(tmp_path / "pan.mp4", media.scene_frames(2, 5))
    assert hard_cuts(one_shot, fps) == []


def test_brightness_profile_follows_the_picture_between_samples(tmp_path):
    """A picture that brightens over 4 s: the profile holds PROFILE values a sample, rising
    within each second as the picture does, at the sample's tick plus k/PROFILE of a step."""
    from engine.cuts import PROFILE, brightness_profile, profile_times
    from engine.video import cuts_and_profile

    frames = [np.full((144, 192, 3), 40 + 4 * i, np.uint8) for i in range(40)]  # 10 fps, +40 grey levels a second
    path = media.write_video(tmp_path / "ramp.mp4", frames)
    cuts, profile = cuts_and_profile(path, 1.0)
    assert cuts == [] and profile.shape == (4, PROFILE) and np.isfinite(profile).all()
    steps = np.diff(profile.ravel())
    assert (steps > 0).all() and abs(float(np.median(steps)) - 40 / PROFILE) < 4, profile
    # between decoded frames the values are interpolated; before the first, the first's
    np.testing.assert_allclose(brightness_profile(np.array([0.0, 1.0]), np.array([10.0, 20.0]), np.array([0.02]), 1.0),
                               [[10 + 10 * k / PROFILE for k in range(PROFILE)]], rtol=1e-6)
    np.testing.assert_allclose(profile_times(np.array([2.1, 3.0]), 0.5, 2), [[2.0, 2.25], [3.0, 3.25]])
