"""TCA video retrieval engine: the public API the CLI and the UI use.

    from engine import Engine
    eng = Engine(index="my_index")           # loads the index's own model
    result = eng.search("clip.mp4", k=5)     # ranked matches with spans in seconds
    for m in result.matches:
        print(m.rank, m.id, m.score, m.span)

Everything returned is plain data (dataclasses of numbers, strings and numpy arrays).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backbone import Backbone, BackboneError, Pooling
from .embedding import Embedder, VideoEmbedding
from .index import BuildReport, IndexFileError, IndexMismatchError, VideoIndex, VideoRecord, build_index
from .model import ModelBundle, ModelError, builtin_model, load_model
from .similarity import Measure, Span, frame_similarity, matched_span
from .video import DEFAULT_MAX_DURATION, VideoError

__all__ = [
    "Engine", "Match", "SearchResult", "Comparison", "IndexedVideo", "VideoEmbedding", "CollectionMap",
    "Measure", "Span", "Backbone", "Pooling", "BuildReport",
    "VideoError", "ModelError", "BackboneError", "IndexFileError", "IndexMismatchError",
    "ASSETS", "DEFAULT_MODEL", "DEFAULT_INDEX",
]

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_MODEL = ASSETS / "model.safetensors"
DEFAULT_INDEX = ASSETS / "index"


@dataclass
class Match:
    """One search result. Times in seconds; `span` is where query and video match."""

    id: str
    rank: int
    score: float
    span: Span
    duration: float
    path: str  # absolute path of the source video file (it may have moved since indexing)

    def as_dict(self) -> dict:
        return {"id": self.id, "score": round(self.score, 6), "rank": self.rank, "match": self.span.as_dict()}


@dataclass
class SearchResult:
    query: VideoEmbedding
    measure: Measure
    matches: list[Match] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "query": self.query.path,
            "measure": self.measure.value,
            "results": [m.as_dict() for m in self.matches],
        }


@dataclass
class IndexedVideo:
    """An indexed video: its record, frame times (s) and the attention its frames receive."""

    id: str
    path: str
    duration: float
    times: np.ndarray
    attention: np.ndarray
    record: VideoRecord


@dataclass
class Comparison:
    """Frame-to-frame similarity of a query and one indexed video, for explaining a match.

    similarity: float32 [Tq, Tt]; row_best: int [Tq], the best target frame of each query
    frame (what chamfer averages); span: the aligned spans in seconds.
    """

    similarity: np.ndarray
    query_times: np.ndarray
    times: np.ndarray
    row_best: np.ndarray
    span: Span


@dataclass
class CollectionMap:
    """The indexed collection as points on a 2-D map (UMAP of the video embeddings).

    ids: N video ids; coords: float32 [N, 2] in [0, 1]; durations: seconds [N].
    """

    ids: list[str]
    coords: np.ndarray
    durations: np.ndarray


def _hub_or_path(spec: str | Path, filename: str | None = None) -> Path:
    """A local path as it is; an `owner/name` Hugging Face Hub repo id is downloaded first."""
    p = Path(spec)
    if p.exists() or str(spec).count("/") != 1 or str(spec).startswith((".", "/")):
        return p
    try:
        from huggingface_hub import hf_hub_download, snapshot_download

        if filename:
            return Path(hf_hub_download(str(spec), filename))
        return Path(snapshot_download(str(spec)))
    except Exception as err:  # offline, unknown repo, auth: report, don't crash
        raise IndexFileError(
            f"{spec}: not a local path, and downloading it from the Hugging Face Hub failed "
            f"({err.__class__.__name__}: {err})"
        ) from err


def resolve_model(model: str | Path | None = None) -> tuple[ModelBundle, Path | None]:
    """A model bundle and the file it came from: `model` (a path or Hub repo id), else
    assets/model.safetensors when present, else the builtin baseline (no file)."""
    if model is not None:
        path = _hub_or_path(model, "model.safetensors")
        return load_model(path), path
    if DEFAULT_MODEL.is_file():
        return load_model(DEFAULT_MODEL), DEFAULT_MODEL
    return builtin_model(), None


class Engine:
    """Loads the backbone, model bundle and (optionally) an index once; then embeds and searches.

    model: a bundle file (.safetensors) or Hub repo id, a ModelBundle, or None: the index's
    own model when an index is given, else assets/model.safetensors when present, else the
    builtin no-PCA/no-TCA baseline of `backbone`.
    index: an index folder or Hub repo id, or None (embedding only; `build_index` makes one).
    """

    def __init__(
        self,
        model: str | Path | ModelBundle | None = None,
        index: str | Path | None = None,
        backbone: Backbone | str | None = None,
        backbone_weights: str | Path | None = None,
        device: str = "cpu",
        fps: float | None = None,
        max_duration: float | None = DEFAULT_MAX_DURATION,
        candidates: int = 100,
    ):
        self.index: VideoIndex | None = VideoIndex.open(_hub_or_path(index)) if index else None
        self.model_path: Path | None = None
        if isinstance(model, ModelBundle):
            bundle = model
        elif model is None and self.index is not None:
            bundle = self._index_model(self.index)
        elif model is None and backbone is not None:
            bundle = builtin_model(backbone)
        else:
            bundle, self.model_path = resolve_model(model)
        if backbone is not None and Backbone(backbone) != bundle.backbone:
            raise ModelError(
                f"model {bundle.name} was made for backbone {bundle.backbone.value}, not {Backbone(backbone).value}"
            )
        if self.index is not None:
            self.index.check_model(bundle.identity, bundle.backbone.value)
            self.index.use_device(device)
            fps = fps or float(self.index.manifest["sample_fps"])
        self.embedder = Embedder(bundle, backbone_weights, device, fps or 1.0, max_duration)
        self.candidates = candidates

    def _index_model(self, index: VideoIndex) -> ModelBundle:
        m = index.manifest
        if not m.get("model_path"):
            return builtin_model(m["backbone"], m["pooling"])
        path = Path(m["model_path"])
        if not path.is_absolute():
            path = (index.directory / path).resolve()
        if not path.is_file():
            raise IndexFileError(
                f"{index.directory}: its model file {path} is missing; pass --model with the file "
                "the index was built with"
            )
        self.model_path = path
        return load_model(path)

    @property
    def model(self) -> ModelBundle:
        return self.embedder.bundle

    # ------------------------------------------------------------------ embedding
    def embed(self, path: str | Path) -> VideoEmbedding:
        """Embed a video file (decode at the engine's fps, backbone, PCA, TCA)."""
        return self.embedder.embed(path)

    # ------------------------------------------------------------------ search
    def _require_index(self) -> VideoIndex:
        if self.index is None:
            raise IndexFileError("no index loaded: pass index=... or call build_index first")
        return self.index

    def search(
        self,
        query: str | Path | VideoEmbedding,
        k: int = 10,
        measure: Measure | str = Measure.CHAMFER,
    ) -> SearchResult:
        """Rank indexed videos against a query file or embedding. k >= index size ranks all."""
        index = self._require_index()
        measure = Measure(measure)
        q = query if isinstance(query, VideoEmbedding) else self.embed(query)
        hits = index.search(q.frames, q.video, k, measure, self.candidates)
        matches = []
        for rank, hit in enumerate(hits, 1):
            rec = index.records[hit.position]
            frames, times, _ = index.video_frames(hit.position)
            span = matched_span(
                frame_similarity(q.frames, frames), q.times, times, q.step, q.duration, rec.duration
            )
            matches.append(Match(rec.id, rank, hit.score, span, rec.duration, str(index.source_path(hit.position))))
        return SearchResult(q, measure, matches)

    def compare(self, query: VideoEmbedding, video_id: str) -> Comparison:
        """The frame similarity matrix of a query and an indexed video, with the aligned span."""
        index = self._require_index()
        pos = index.position(video_id)
        frames, times, _ = index.video_frames(pos)
        sim = frame_similarity(query.frames, frames)
        span = matched_span(sim, query.times, times, query.step, query.duration, index.records[pos].duration)
        return Comparison(sim, query.times, times, sim.argmax(axis=1), span)

    def video(self, video_id: str) -> IndexedVideo:
        """What the index holds about one video (no decoding)."""
        index = self._require_index()
        pos = index.position(video_id)
        _, times, attention = index.video_frames(pos)
        rec = index.records[pos]
        return IndexedVideo(rec.id, str(index.source_path(pos)), rec.duration, times, attention, rec)

    def collection_map(self) -> CollectionMap:
        """Every indexed video's position on the map stored with the index (fitted now
        when an older index has none)."""
        index = self._require_index()
        return CollectionMap(
            [r.id for r in index.records], index.map_coords(),
            np.array([r.duration for r in index.records], np.float32),
        )

    def place(self, query: VideoEmbedding, neighbours: int = 5) -> np.ndarray:
        """Where a query falls on the collection map: float32 [2] (see collection_map.place)."""
        from .collection_map import place

        index = self._require_index()
        hits = index.search(query.frames, query.video, max(neighbours, 1), Measure.COSINE)
        if not hits:
            return np.array([0.5, 0.5], np.float32)
        coords = index.map_coords()[[h.position for h in hits]]
        return place(np.array([h.score for h in hits], np.float32), coords, neighbours)

    # ------------------------------------------------------------------ indexing
    def build_index(self, video_dir: str | Path, index_dir: str | Path, progress: bool = True) -> BuildReport:
        """Index (or incrementally update) `index_dir` from every video under `video_dir`."""
        bundle = self.model
        index_dir = Path(index_dir)
        model_path = None
        if self.model_path is not None:
            import os

            model_path = os.path.relpath(self.model_path.resolve(), index_dir.resolve())

        def new_index(root: str | None) -> VideoIndex:
            return VideoIndex.new(
                bundle.identity, bundle.backbone.value, bundle.pooling.value,
                self.embedder.dim, self.embedder.fps, root, model_path,
            )

        def check(index: VideoIndex) -> None:
            index.check_model(bundle.identity, bundle.backbone.value)
            index.manifest["model_path"] = model_path

        report = build_index(video_dir, index_dir, self.embed, new_index, check, progress)
        self.index = VideoIndex.open(index_dir)
        self.index.use_device(str(self.embedder.device))
        return report
