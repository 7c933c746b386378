"""What the demo does with the engine, UI-free: search a clip, explain a match, make
previews and thumbnails. Every call goes through the engine's public API.

One `Service` per app process. The engine is not thread-safe (torch's thread count is
global): engine calls that embed, search or compare hold the Service's lock, as do the caches.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine import (
    DEFAULT_INDEX, Comparison, Engine, IndexedVideo, Measure, SearchResult, Span, VideoEmbedding, VideoError,
)
from engine.video import probe, read_frames, write_preview

# Uploads the demo refuses before decoding (the engine itself caps length, not size).
MAX_PIXELS = 4096 * 2304
MAX_QUERY_SECONDS = 120.0  # longer queries are cut here (the engine says so in its warnings)
PREVIEW_SECONDS = 300.0  # previews of longer videos stop here
MAX_TOP_K = 50
THUMB_SIDE = 72  # short side of hover thumbnails (pixels)
PREVIEW_CACHE = 64  # previews kept on disk


class UserInputError(Exception):
    """A problem with what the visitor gave us; the message is shown as it is."""


@dataclass
class Explanation:
    """Why a video matches a query: everything the detail view draws.

    query_* / video_*: frame times (s), attention (sums to 1) and thumbnails (uint8 RGB)
    of the sampled frames; comparison: the frame similarity matrix (None when the view
    has no query); preview: a browser-playable mp4 of the video (None if unreadable).
    """

    video_id: str
    duration: float
    video_times: np.ndarray
    video_attention: np.ndarray
    video_thumbs: list[np.ndarray]
    preview: Path | None
    comparison: Comparison | None = None
    score: float | None = None
    rank: int | None = None
    query_times: np.ndarray | None = None
    query_attention: np.ndarray | None = None
    query_thumbs: list[np.ndarray] = field(default_factory=list)
    query_duration: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def span(self) -> Span | None:
        return self.comparison.span if self.comparison is not None else None


@dataclass
class Search:
    """One visitor's search: the result plus what the UI needs to explain it later."""

    result: SearchResult
    map_position: np.ndarray  # [2] where the query falls on the collection map
    seconds: float  # request to results, wall clock

    @property
    def query(self) -> VideoEmbedding:
        return self.result.query


class Service:
    """The engine plus the demo's caches (previews on disk, thumbnails in memory)."""

    def __init__(self, index: str | Path | None = None, model: str | Path | None = None,
                 device: str = "cpu", workdir: str | Path | None = None):
        self.engine = Engine(model=model, index=index or DEFAULT_INDEX, device=device,
                             max_duration=MAX_QUERY_SECONDS)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tca-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._previews: OrderedDict[str, Path] = OrderedDict()
        self._thumbs: OrderedDict[str, list[np.ndarray]] = OrderedDict()
        self._posters: dict[str, np.ndarray] = {}

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ facts for the UI
    def about(self) -> dict:
        eng = self.engine
        index = eng.index
        model = eng.model
        return {
            "model": model.name,
            "backbone": model.backbone.value,
            "tca": model.tca is not None,
            "model_info": model.info,
            "index": str(index.directory),
            "videos": len(index),
            "frames": index.num_frames,
            "dim": index.dim,
            "fps": float(index.manifest["sample_fps"]),
            "device": str(eng.embedder.device),
        }

    # ------------------------------------------------------------------ search
    def check_upload(self, path: str | Path | None) -> Path:
        """The upload as a path, or UserInputError saying what is wrong with it."""
        if not path:
            raise UserInputError("Upload a video clip (or pick an example) first.")
        p = Path(path)
        if not p.is_file() or p.stat().st_size == 0:
            raise UserInputError(f"{p.name}: the upload is empty or did not arrive; try again.")
        try:
            info = probe(p)
        except VideoError as err:
            raise UserInputError(_user_message(p, err)) from None
        if info.width * info.height > MAX_PIXELS:
            raise UserInputError(
                f"{p.name}: {info.width}x{info.height} is larger than this demo takes (4K); "
                "downscale the clip and upload it again."
            )
        return p

    def search(self, path: str | Path | None, measure: str | Measure = Measure.CHAMFER,
               k: int = 10, progress=None) -> Search:
        """Embed an uploaded clip and rank the collection. Raises UserInputError."""
        started = time.perf_counter()
        p = self.check_upload(path)
        k = int(min(max(int(k), 1), MAX_TOP_K))
        if progress:
            progress(0.1, desc="decoding and embedding the clip")
        try:
            with self._lock:
                query = self.engine.embed(p)
        except VideoError as err:
            raise UserInputError(_user_message(p, err)) from None
        if progress:
            progress(0.7, desc="searching the index")
        with self._lock:
            result = self.engine.search(query, k=k, measure=Measure(measure))
            position = self.engine.place(query)
        return Search(result, position, time.perf_counter() - started)

    def explain(self, search: Search | None, video_id: str) -> Explanation:
        """Everything the detail view shows for one indexed video (and the query, if any)."""
        with self._lock:
            video = self.engine.video(video_id)
            comparison = self.engine.compare(search.query, video_id) if search else None
        exp = Explanation(
            video_id=video.id, duration=video.duration, video_times=video.times,
            video_attention=video.attention, video_thumbs=self._video_thumbs(video.id, video.path, video.times),
            preview=self.preview(video.id, video.path), comparison=comparison,
        )
        if exp.preview is None:
            exp.notes.append(f"{video.id}: the video file is not readable from {video.path}")
        elif comparison is not None and comparison.span.start > PREVIEW_SECONDS:
            exp.notes.append(f"the preview shows the first {PREVIEW_SECONDS:.0f} s; the match starts later")
        if search is not None:
            q = search.query
            exp.query_times, exp.query_attention, exp.query_duration = q.times, q.attention, q.duration
            exp.query_thumbs = self._video_thumbs("query:" + str(q.path), str(q.path), q.times)
            for m in search.result.matches:
                if m.id == video_id:
                    exp.score, exp.rank = m.score, m.rank
            if exp.score is None and comparison is not None:
                exp.score = float(comparison.similarity.max(axis=1).mean())
        return exp

    def comparisons(self, search: Search) -> list[tuple[IndexedVideo, Comparison]]:
        """For every match of a search: what the index holds about it and its frame
        similarity matrix with the query (the data behind the figures, for the API)."""
        with self._lock:
            return [(self.engine.video(m.id), self.engine.compare(search.query, m.id))
                    for m in search.result.matches]

    # ------------------------------------------------------------------ media
    def preview(self, key: str, path: str | Path) -> Path | None:
        """A browser-playable mp4 of a video (cached by id), or None if it cannot be read."""
        with self._lock:
            if key in self._previews and self._previews[key].is_file():
                self._previews.move_to_end(key)
                return self._previews[key]
        name = hashlib.sha1(key.encode()).hexdigest()[:16] + ".mp4"
        out = self.workdir / "previews" / name
        try:
            write_preview(path, out, max_duration=PREVIEW_SECONDS)
        except (VideoError, OSError, ValueError):
            return None
        with self._lock:
            self._previews[key] = out
            while len(self._previews) > PREVIEW_CACHE:
                _, old = self._previews.popitem(last=False)
                old.unlink(missing_ok=True)
        return out

    def poster(self, video_id: str) -> np.ndarray | None:
        """A small still of an indexed video (its frame nearest a third of the way in)."""
        if video_id in self._posters:
            return self._posters[video_id]
        video = self.engine.video(video_id)
        try:
            frames = read_frames(video.path, fps=1.0, short_side=THUMB_SIDE // 2 * 2, crop=None,
                                 max_duration=max(video.duration / 3, 1.0) + 1.0)
        except VideoError:
            return None
        img = frames.images[min(len(frames.images) - 1, int(video.duration / 3))]
        self._posters[video_id] = img
        return img

    def _video_thumbs(self, key: str, path: str, times: np.ndarray) -> list[np.ndarray]:
        """Thumbnails of a video at the engine's sampled times (decoded once, cached);
        empty when the file cannot be decoded."""
        with self._lock:
            if key in self._thumbs:
                return self._thumbs[key]
        fps = self.engine.embedder.fps
        try:
            frames = read_frames(path, fps=fps, short_side=THUMB_SIDE, crop=None,
                                 max_duration=float(times[-1]) + 1.0 / fps if len(times) else None)
            # Same sampling rule as the index: pair each time with the decoded frame at it.
            pos = np.clip(np.searchsorted(frames.times, times - 1e-3), 0, len(frames.times) - 1)
            thumbs = [frames.images[i] for i in pos]
        except VideoError:
            thumbs = []
        with self._lock:
            self._thumbs[key] = thumbs
            while len(self._thumbs) > 2 * PREVIEW_CACHE:
                self._thumbs.popitem(last=False)
        return thumbs


def _user_message(path: Path, err: VideoError) -> str:
    """The engine's message under the upload's own name, not the server-side temp path."""
    return f"{path.name}: {err.message}"
