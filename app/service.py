"""What the demo does with the engine, UI-free: search a clip, explain a match, make
previews and thumbnails. Every call goes through the `engine` facade (`from engine import ...`).

One `Service` per app process. The engine is not thread-safe (torch's thread count is
global): engine calls that embed, search or decode hold the Service's lock, as do the caches.
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
    DEFAULT_INDEX, Comparison, Engine, IndexedVideo, Match, Measure, SearchResult, Span, UnknownVideoError,
    VideoEmbedding, VideoError,
)

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

    video: what the index holds about the video (frame times s, attention); thumbs: uint8
    RGB stills at its sampled times; comparison: the frame similarity matrix and span
    (None when the view has no query); preview: a browser-playable mp4 (None if unreadable).
    """

    video: IndexedVideo
    video_thumbs: list[np.ndarray]
    preview: Path | None
    comparison: Comparison | None = None
    score: float | None = None
    rank: int | None = None
    query: VideoEmbedding | None = None
    query_thumbs: list[np.ndarray] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    query_distinctiveness: np.ndarray | None = None  # [Tq] (see IndexedVideo.distinctiveness)

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

    def match(self, video_id: str) -> Match | None:
        return next((m for m in self.result.matches if m.id == video_id), None)


class Service:
    """The engine plus the demo's caches (previews on disk, stills in memory)."""

    def __init__(self, index: str | Path | None = None, model: str | Path | None = None,
                 device: str = "cpu", workdir: str | Path | None = None):
        self.engine = Engine(model=model, index=index or DEFAULT_INDEX, device=device,
                             max_duration=MAX_QUERY_SECONDS, max_pixels=MAX_PIXELS)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tca-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._previews: OrderedDict[str, Path] = OrderedDict()
        self._thumbs: OrderedDict[str, list[np.ndarray]] = OrderedDict()
        self._posters: dict[str, np.ndarray | None] = {}

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ search
    def search(self, path: str | Path | None, measure: str | Measure = Measure.CHAMFER,
               k: int = 10, progress=None) -> Search:
        """Embed an uploaded clip and rank the collection. Raises UserInputError.

        The upload is opened once: decoding checks it (not a video, no video stream, empty,
        truncated, above MAX_PIXELS) and reports what is wrong."""
        started = time.perf_counter()
        if not path:
            raise UserInputError("Upload a video clip (or pick an example) first.")
        p = Path(path)
        if not p.is_file() or p.stat().st_size == 0:
            raise UserInputError(f"{p.name}: the upload is empty or did not arrive; try again.")
        k = int(min(max(int(k), 1), MAX_TOP_K))
        if progress:
            progress(0.1, desc="decoding and embedding the clip")
        try:
            with self._lock:
                query = self.engine.embed(p)
        except VideoError as err:  # the engine's message under the upload's own name
            raise UserInputError(f"{p.name}: {err.message}") from None
        if progress:
            progress(0.7, desc="searching the index")
        with self._lock:
            result = self.engine.search(query, k=k, measure=Measure(measure))
            position = self.engine.place(query)
        return Search(result, position, time.perf_counter() - started)

    def explain(self, search: Search | None, video_id: str) -> Explanation:
        """Everything the detail view shows for one indexed video (and the query, if any).
        A match of the search reuses what the search computed. Raises UnknownVideoError."""
        match = search.match(video_id) if search else None
        if match is not None:
            video, comparison = match.video, match.comparison
        else:
            with self._lock:
                video = self.engine.video(video_id)
                comparison = self.engine.compare(search.query, video_id) if search else None
        exp = Explanation(video, self.thumbnails(video.id, video.path, video.times),
                          self.preview(video.id, video.path), comparison)
        if exp.preview is None:
            exp.notes.append(f"{video.id}: the video file is not readable from {video.path}")
        elif comparison is not None and comparison.span.start > PREVIEW_SECONDS:
            exp.notes.append(f"the preview shows the first {PREVIEW_SECONDS:.0f} s; the match starts later")
        if search is not None:
            q = exp.query = search.query
            exp.query_distinctiveness = search.result.query_distinctiveness
            exp.query_thumbs = self.thumbnails("query:" + str(q.path), str(q.path), q.times)
            if match is not None:
                exp.score, exp.rank = match.score, match.rank
            else:
                exp.score = comparison.chamfer
        return exp

    # ------------------------------------------------------------------ media
    def preview(self, key: str, path: str | Path) -> Path | None:
        """A browser-playable mp4 of a video (cached by id), or None if it cannot be read."""
        with self._lock:
            if key in self._previews and self._previews[key].is_file():
                self._previews.move_to_end(key)
                return self._previews[key]
        out = self.workdir / "previews" / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".mp4")
        try:
            self.engine.preview(path, out, max_duration=PREVIEW_SECONDS)
        except (VideoError, OSError, ValueError):
            return None
        with self._lock:
            self._previews[key] = out
            while len(self._previews) > PREVIEW_CACHE:
                _, old = self._previews.popitem(last=False)
                old.unlink(missing_ok=True)
        return out

    def poster(self, video_id: str) -> np.ndarray | None:
        """A small still of an indexed video (a third of the way in; one seek), or None."""
        if video_id not in self._posters:
            try:
                with self._lock:
                    self._posters[video_id] = self.engine.poster(video_id, THUMB_SIDE)
            except (VideoError, UnknownVideoError):
                self._posters[video_id] = None
        return self._posters[video_id]

    def thumbnails(self, key: str, path: str, times: np.ndarray) -> list[np.ndarray]:
        """Stills of a video at the given sampled times (decoded once, cached); empty when
        the file cannot be decoded."""
        with self._lock:
            if key in self._thumbs:
                return self._thumbs[key]
            try:
                thumbs = self.engine.thumbnails(path, times, THUMB_SIDE)
            except VideoError:
                thumbs = []
            self._thumbs[key] = thumbs
            while len(self._thumbs) > 2 * PREVIEW_CACHE:
                self._thumbs.popitem(last=False)
        return thumbs
