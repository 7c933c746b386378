"""Decoding: a video file -> RGB frames sampled at a fixed rate, with timestamps in seconds.

PyAV (FFmpeg) does the work. Decoding is the floor of the whole pipeline, so in `fast`
mode (the default) we decode less: B-frames are skipped when sampling at <= 2 fps (no
frame depends on them, and an I/P frame is always within a few frames of each tick), the
in-loop deblocking filter is skipped (invisible at 224 px), decoding is threaded, and
only the sampled frames are converted to RGB, resized inside swscale. On a 720p H.264
clip this halves the CPU time of decoding every frame.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from .cuts import CutDetector, brightness_profile, luma_thumbnail, sample_ticks
from .errors import UserError
from .files import atomic_write

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .wmv .flv .3gp .ts .mts .m2ts .ogv .gif".split()
)

DEFAULT_MAX_DURATION = 20 * 60.0  # seconds; longer videos are cut there, and told so
MAX_PIXELS = 8192 * 8192  # beyond 8K x 8K we refuse rather than risk the memory


class VideoError(UserError):
    """A video that cannot be used. `path` names the file, `message` says what is wrong and
    what to do; str(err) is both ("PATH: message")."""

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")


def _reason(err: Exception) -> str:
    """FFmpeg's reason without the file name it appends (the message already starts with it)."""
    return getattr(err, "strerror", None) or str(err)


class UnreadableVideoError(VideoError):
    """Not a media file FFmpeg can open (not a video, or damaged beyond its header)."""


class NoVideoStreamError(VideoError):
    """A media file without a video stream (audio only, subtitles...)."""


class EmptyVideoError(VideoError):
    """A video stream that yields no decodable frame (0 frames, truncated to nothing)."""


class TooLargeVideoError(VideoError):
    """A resolution above what the caller accepts."""


@dataclass
class VideoInfo:
    """What the container says about a video, before decoding it."""

    path: str
    duration: float  # seconds; 0.0 when the container does not say
    fps: float  # average frame rate; 0.0 when unknown
    width: int  # display width (after rotation)
    height: int  # display height (after rotation)
    rotation: int  # degrees counter-clockwise that a player applies
    codec: str


@dataclass
class DecodeReport:
    """What one sampling pass found, filled in as it goes (see `iter_frames`).

    info: the container's facts (rotation from the first frame); samples: frames yielded;
    capped: stopped at max_duration; duration: seconds the samples cover (set when the pass
    ends); warnings: notes for the user (capped, truncated, decoding stopped early);
    timeline: every decoded frame of the pass seen by the cut detector (`engine.cuts`), whose
    `cuts` and `brightness_profile` it gives."""

    info: VideoInfo | None = None
    samples: int = 0
    last_time: float = 0.0
    capped: bool = False
    duration: float = 0.0
    warnings: list[str] = field(default_factory=list)
    timeline: CutDetector = field(default_factory=CutDetector)

    @property
    def cuts(self) -> list[float]:
        """Times (s) of the hard cuts among all the frames decoded."""
        return self.timeline.cuts

    def brightness_profile(self, sample_times: np.ndarray, step: float) -> np.ndarray:
        """float32 [T, engine.cuts.PROFILE]: the brightness between the samples taken at
        sample_times [T] s, step s apart (`engine.cuts.brightness_profile`)."""
        return brightness_profile(np.array(self.timeline.times), np.array(self.timeline.brightness),
                                  sample_times, step)


@dataclass
class Frames:
    """Frames sampled from one video.

    images: uint8 [T, size, size, 3] RGB, short side resized then centre-cropped.
    times: float32 [T], seconds from the start of the video, increasing.
    duration: seconds covered by decoding (the cap, when capped).
    warnings: human-readable notes (capped, truncated...) for the caller to show.
    """

    path: str
    images: np.ndarray
    times: np.ndarray
    duration: float
    info: VideoInfo
    capped: bool = False
    warnings: list[str] = field(default_factory=list)


def is_video_path(path: Path) -> bool:
    """True for file names with a common video extension (case-insensitive)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise UnreadableVideoError(p, "file not found")
    if p.is_dir():
        raise UnreadableVideoError(p, "is a folder, not a video file")
    if p.stat().st_size == 0:
        raise UnreadableVideoError(p, "file is empty (0 bytes)")
    try:
        return av.open(str(p), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise UnreadableVideoError(
            p, f"cannot be opened as a video ({_reason(err)}); "
            "is it a video file, and is it complete? Re-export or re-download it."
        ) from err


def _info(path: str | Path, container: av.container.InputContainer) -> VideoInfo:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise NoVideoStreamError(
            path, f"has no video stream (it contains {', '.join(kinds)}); choose a video file"
        )
    stream = container.streams.video[0]
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    fps = float(stream.average_rate) if stream.average_rate else 0.0
    width, height = stream.codec_context.width, stream.codec_context.height
    return VideoInfo(str(path), duration, fps, width, height, 0, stream.codec_context.name)


def _set_rotation(info: VideoInfo, frame: av.VideoFrame) -> None:
    info.rotation = _frame_rotation(frame)
    if info.rotation in (90, 270):
        info.width, info.height = info.height, info.width


def probe(path: str | Path) -> VideoInfo:
    """Container facts: duration (s), fps, display size and rotation.

    Rotation lives in per-frame side data, so the first frame is decoded to read it.
    """
    with _open(path) as container:
        info = _info(path, container)
        try:
            frame = next(container.decode(container.streams.video[0]), None)
        except av.FFmpegError:
            frame = None
        if frame is not None:
            _set_rotation(info, frame)
        return info


def _frame_rotation(frame: av.VideoFrame) -> int:
    rot = getattr(frame, "rotation", 0) or 0
    return int(round(float(rot) / 90.0)) * 90 % 360


def _resize_dims(width: int, height: int, short_side: int) -> tuple[int, int]:
    scale = short_side / min(width, height)
    return max(short_side, round(width * scale)), max(short_side, round(height * scale))


def _centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return img[y : y + size, x : x + size]


def _configure(path: str | Path, container: av.container.InputContainer, fps: float, fast: bool,
               max_pixels: int) -> tuple[av.video.stream.VideoStream, VideoInfo]:
    """The video stream set up for sampling at `fps`, and the container's facts."""
    info = _info(path, container)
    if info.width * info.height > max_pixels:
        raise TooLargeVideoError(
            path, f"resolution {info.width}x{info.height} is larger than accepted here "
            f"({max_pixels / 1e6:.1f} megapixels); downscale it first"
        )
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if fast:
        stream.codec_context.options = {"skip_loop_filter": "all"}
        if fps <= 2:
            stream.codec_context.skip_frame = "BIDIR"
    return stream, info


def _to_image(frame: av.VideoFrame, dims: tuple[int, int], crop: int | None) -> np.ndarray:
    """RGB, resized inside swscale, rotated as a player would, centre-cropped if asked."""
    img = frame.to_ndarray(width=dims[0], height=dims[1], format="rgb24")
    rot = _frame_rotation(frame)
    if rot:
        img = np.ascontiguousarray(np.rot90(img, k=rot // 90))
    return _centre_crop(img, crop) if crop is not None else img


def sample_tick(t: float, step: float) -> int:
    """The number of the 1/fps tick (step = 1/fps s) at or before time t (s): the tick a
    sample taken at t stands for, since the sampler keeps the first frame at or after each
    tick (one a skipped B-frame late still belongs to its tick, not the next)."""
    return int(sample_ticks(np.array([t]), step)[0])


def _sample(path: str | Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
            fps: float, views: Sequence[tuple[int, int | None]], max_duration: float | None,
            report: DecodeReport) -> Iterator[tuple[float, tuple[np.ndarray, ...]]]:
    """The sampling loop: the first frame at or after each 1/fps tick, by presentation time,
    as one image per (short_side, crop) view. Every decoded frame goes to the cut detector."""
    step = 1.0 / fps
    report.timeline = timeline = CutDetector()
    start: float | None = None
    next_t = 0.0
    dims: list[tuple[int, int]] | None = None
    decoded = 0
    try:
        for frame in container.decode(stream):
            decoded += 1
            if frame.time is None:
                continue
            if start is None:
                start = frame.time
                _set_rotation(report.info, frame)
            t = frame.time - start
            if max_duration is not None and t >= max_duration:
                report.capped = True
                report.warnings.append(
                    f"capped: only the first {max_duration:g} s were used "
                    f"(the video is {report.info.duration:g} s long)"
                )
                break
            timeline.add(t, luma_thumbnail(frame))
            if t + 1e-6 < next_t:
                continue
            # Next tick after this frame: a VFR gap never makes a burst of samples.
            next_t = (sample_tick(t, step) + 1) * step
            if dims is None:
                dims = [_resize_dims(frame.width, frame.height, side) for side, _ in views]
            report.samples += 1
            report.last_time = t
            yield t, tuple(_to_image(frame, d, crop) for d, (_, crop) in zip(dims, views))
    except av.FFmpegError as err:
        if decoded == 0:
            raise UnreadableVideoError(
                path, f"no frame could be decoded ({_reason(err)}); the file is damaged"
            ) from err
        report.warnings.append(
            f"decoding stopped early at frame {decoded} ({_reason(err)}): file damaged or truncated")


def iter_frames(
    path: str | Path,
    fps: float = 1.0,
    short_side: int = 256,
    crop: int | None = 224,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    fast: bool = True,
    report: DecodeReport | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in seconds, uint8 RGB [H, W, 3]) at `fps` samples per second.

    Samples by presentation time, so variable frame rate is handled: the first frame at
    or after each 1/fps tick is kept. Rotation metadata is applied (the image is what a
    player shows). The short side is resized to `short_side`, then a centre square of
    `crop` is cut (crop=None keeps the whole resized frame). Stops at `max_duration`
    seconds (None: no cap). The file is opened once; what the pass finds (container facts,
    capped, duration covered, notes) is filled into `report`. Raises VideoError subclasses
    for files that cannot be used (TooLargeVideoError above `max_pixels`).
    """
    for t, (img,) in iter_frame_views(path, fps, ((short_side, crop),), max_duration, fast, report, max_pixels):
        yield t, img


def iter_frame_views(
    path: str | Path,
    fps: float = 1.0,
    views: Sequence[tuple[int, int | None]] = ((256, 224),),
    max_duration: float | None = DEFAULT_MAX_DURATION,
    fast: bool = True,
    report: DecodeReport | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[tuple[float, tuple[np.ndarray, ...]]]:
    """`iter_frames` with several pictures of each sample from one decode: views is a
    sequence of (short_side, crop) (crop None: the whole resized frame); yields (time in
    seconds, one uint8 RGB [H, W, 3] per view). Indexing uses it to get the CNN's square
    and the small whole frame that inner pictures are found in without decoding twice."""
    if fps <= 0:
        raise ValueError("fps must be positive")
    report = report if report is not None else DecodeReport()
    with _open(path) as container:
        stream, report.info = _configure(path, container, fps, fast, max_pixels)
        yield from _sample(path, container, stream, fps, views, max_duration, report)
    if report.samples == 0 and fast:
        # Some streams have nothing but frames that fast mode skips: decode them all.
        report.warnings.clear()
        yield from iter_frame_views(path, fps, views, max_duration, False, report, max_pixels)
        return
    if report.samples == 0:
        raise EmptyVideoError(path, "no frame could be decoded: the video is empty or truncated")
    report.duration = _covered_duration(report, 1.0 / fps, max_duration)


def hard_cuts(path: str | Path, fps: float = 1.0, max_duration: float | None = DEFAULT_MAX_DURATION,
              max_pixels: int = MAX_PIXELS) -> list[float]:
    """Times (s) of a video's hard cuts, as a sampling pass at `fps` finds them
    (`DecodeReport.cuts`), without keeping its frames. Raises VideoError subclasses."""
    return cuts_and_profile(path, fps, max_duration, max_pixels)[0]


def cuts_and_profile(path: str | Path, fps: float = 1.0, max_duration: float | None = DEFAULT_MAX_DURATION,
                     max_pixels: int = MAX_PIXELS) -> tuple[list[float], np.ndarray]:
    """`hard_cuts` and the samples' brightness profile (float32 [T, engine.cuts.PROFILE],
    `brightness_profile`) from one sampling pass at `fps`. Raises VideoError subclasses."""
    report = DecodeReport()
    times = [t for t, _ in iter_frame_views(path, fps, ((32, None),), max_duration, report=report,
                                            max_pixels=max_pixels)]
    return list(report.cuts), report.brightness_profile(np.array(times), 1.0 / fps)


def _covered_duration(report: DecodeReport, step: float, max_duration: float | None) -> float:
    """Seconds of the video that the samples cover; notes a likely truncation."""
    info = report.info
    if report.capped and max_duration:
        return float(max_duration)
    if info.duration > 0 and report.last_time + 2 * step < 0.9 * info.duration:
        report.warnings.append(
            f"decoded {report.last_time:.1f} s of a {info.duration:.1f} s video: the file may be truncated"
        )
        return float(report.last_time) + step
    return info.duration if info.duration > 0 else float(report.last_time) + step


def read_frames(
    path: str | Path,
    fps: float = 1.0,
    short_side: int = 256,
    crop: int | None = 224,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    fast: bool = True,
) -> Frames:
    """Decode a whole video into `Frames` (see `iter_frames` for the sampling rules)."""
    report = DecodeReport()
    times, images = [], []
    for t, img in iter_frames(path, fps, short_side, crop, max_duration, fast, report):
        times.append(t)
        images.append(img)
    return Frames(
        path=str(path),
        images=np.stack(images),
        times=np.asarray(times, dtype=np.float32),
        duration=report.duration,
        info=report.info,
        capped=report.capped,
        warnings=report.warnings,
    )


def frames_at(path: str | Path, times: Sequence[float], short_side: int = 72,
              seek_gap: float = 8.0) -> list[np.ndarray]:
    """uint8 RGB frames (short side `short_side`, not cropped) shown at `times` (s).

    Each is the last frame at or before its time. Decoding runs forward through close
    times and seeks (to the keyframe before) across gaps above `seek_gap` seconds, so one
    poster in a long video costs a seek and a few frames, not a decode from the start.
    Raises VideoError subclasses for files that cannot be used."""
    order = sorted(range(len(times)), key=lambda i: times[i])
    out: list[np.ndarray | None] = [None] * len(times)
    with _open(path) as container:
        stream, _ = _configure(path, container, 1000.0, False, MAX_PIXELS)
        base = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0

        def decode_from(t: float) -> Iterator[tuple[float, av.VideoFrame]]:
            if t > seek_gap:
                container.seek(int((base + t) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is not None:
                    yield frame.time - base, frame

        frames: Iterator[tuple[float, av.VideoFrame]] | None = None
        shown = ahead = None  # (time, frame): the frame on screen at t, and the one after it
        dims: tuple[int, int] | None = None
        try:
            for i in order:
                t = max(float(times[i]), 0.0)
                if frames is None or (shown is not None and t - shown[0] > seek_gap):
                    frames, shown, ahead = decode_from(t), None, None
                while True:
                    ahead = ahead or next(frames, None)
                    if ahead is None or (shown is not None and ahead[0] > t + 1e-3):
                        break
                    shown, ahead = ahead, None
                if shown is None:
                    break
                dims = dims or _resize_dims(shown[1].width, shown[1].height, short_side)
                out[i] = _to_image(shown[1], dims, None)
        except av.FFmpegError:
            pass  # a damaged tail: keep what was found
    found = [img for img in out if img is not None]
    if not found:
        raise EmptyVideoError(path, "no frame could be decoded: the video is empty or truncated")
    return [img if img is not None else found[-1] for img in out]


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 12.0,
    crf: int = 28,
    preset: str = "medium",
) -> Path:
    """Encode uint8 RGB frames [H, W, 3] as a browser-playable MP4 (H.264, yuv420p).

    Odd sizes are trimmed to even (yuv420p needs it); the index is moved to the front
    (`+faststart`) so a browser can start playing before the whole file has arrived.
    Written to a temporary name, then renamed: a half-written file never has `path`.
    """
    path = Path(path)
    stream = None
    with atomic_write(path) as tmp, av.open(str(tmp), "w", format="mp4",
                                            options={"movflags": "+faststart"}) as out:
        for img in frames:
            h, w = img.shape[0] - img.shape[0] % 2, img.shape[1] - img.shape[1] % 2
            if stream is None:
                stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.options = {"crf": str(crf), "preset": preset}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:h, :w]), format="rgb24")
            out.mux(stream.encode(frame))
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        out.mux(stream.encode())
    return path


def write_preview(
    src: str | Path,
    dst: str | Path,
    short_side: int = 360,
    max_fps: float = 25.0,
    max_duration: float | None = DEFAULT_MAX_DURATION,
) -> Path:
    """Re-encode any readable video as a small browser-playable MP4 (see `write_video`).

    The short side is brought down to `short_side` (never up), the frame rate to at most
    `max_fps`, the length to `max_duration` seconds; rotation is applied; audio is dropped.
    Raises VideoError subclasses for files that cannot be used.
    """
    info = probe(src)
    fps = min(info.fps, max_fps) if info.fps > 0 else max_fps
    side = min(short_side, min(info.width, info.height) or short_side)
    frames = (img for _, img in iter_frames(src, fps, side, None, max_duration))
    return write_video(dst, frames, fps=fps, crf=26, preset="veryfast")
