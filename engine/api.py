"""The `Engine` facade: everything the CLI and the demo do with the engine, in one class.

    from engine import Engine
    eng = Engine(index="my_index")           # loads the index's own model
    result = eng.search("clip.mp4", k=5)     # ranked matches with spans in seconds
    for m in result.matches:
        print(m.rank, m.id, m.score, m.span)

Everything returned is plain data (dataclasses of numbers, strings and numpy arrays).
A search returns, per match, what explaining it needs (frame times, attention, the frame
similarity matrix and the aligned span), computed once in the search itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import DEFAULT_MODEL
from . import text as frame_text
from .backbone import Backbone, Precision
from .background import distinctiveness
from .embedding import Embedder, VideoEmbedding
from .files import resolve
from .index import IndexFileError, VideoIndex, VideoRecord
from .indexing import BuildReport, build_index
from .model import ModelBundle, ModelError, builtin_model, load_model
from .similarity import Measure, evidence, frame_similarity, text_deciding_frames
from .spans import Segment, Span, matched_segments
from .variants import DEFAULT_VARIANTS, Variant, parse_variants
from .video import DEFAULT_MAX_DURATION, MAX_PIXELS, VideoInfo, frames_at, hard_cuts, probe, write_preview


@dataclass
class IndexedVideo:
    """An indexed video: its record, frame times (s), the attention its frames receive [T]
    (TCA's; uniform without TCA) and their distinctiveness in the collection [T] (shares
    summing to 1, `engine.background.distinctiveness`: what the video vector of a model
    without TCA is pooled by; intros, end cards and black gaps get almost none)."""

    id: str
    path: str
    duration: float
    times: np.ndarray
    attention: np.ndarray
    record: VideoRecord
    distinctiveness: np.ndarray | None = None


@dataclass
class Comparison:
    """Frame-to-frame similarity of a query and one indexed video, for explaining a match.

    similarity: float32 [Tq, Tt], what the ranking used (normalised: cosine minus each indexed
    frame's background, with its temporal support, `engine.similarity`; cells whose frames
    disagree in text lowered by `engine.text.PENALTY`); background: float32 [Tt], each
    indexed frame's (zeros when raw); raw: float32 [Tq, Tt], the plain cosine of the query's
    frames and the video's whole frames; row_best: int [Tq], the best target frame of each
    query frame (what chamfer averages); segments: every copied segment (seconds), in time
    order, found on the pictures without the text; span: the best of them.
    """

    similarity: np.ndarray
    query_times: np.ndarray
    times: np.ndarray
    row_best: np.ndarray
    span: Span
    segments: list[Segment] = field(default_factory=list)
    background: np.ndarray | None = None
    normalized: bool = False
    raw: np.ndarray | None = None

    def __post_init__(self):
        if self.raw is None:
            self.raw = self.similarity

    @property
    def chamfer(self) -> float:
        """The pair's chamfer score, as the ranking computes it from `similarity`."""
        return float(evidence(self.similarity.max(axis=1), self.normalized).mean())


@dataclass
class Match:
    """One search result. Times in seconds; `span` is where query and video match;
    `video` and `comparison` are what the demo draws (no second pass needed)."""

    id: str
    rank: int
    score: float
    span: Span
    duration: float
    path: str  # absolute path of the source video file (it may have moved since indexing)
    video: IndexedVideo
    comparison: Comparison

    @property
    def segments(self) -> list[Segment]:
        """Every copied segment of this match, in time order (`span` is the best one)."""
        return self.comparison.segments

    def as_dict(self) -> dict:
        best = {k: v for k, v in self.span.as_dict().items() if k != "score"}
        return {"id": self.id, "score": round(self.score, 6), "rank": self.rank, "match": best,
                "segments": [s.as_dict() for s in self.segments]}


@dataclass
class SearchResult:
    query: VideoEmbedding
    measure: Measure
    matches: list[Match] = field(default_factory=list)

    normalized: bool = True
    # [Tq]: the query's frames' distinctiveness in the collection (see IndexedVideo)
    query_distinctiveness: np.ndarray | None = None

    def as_dict(self) -> dict:
        return {
            "query": self.query.path,
            "measure": self.measure.value,
            "normalized": self.normalized,
            "variants": [v.value for v in self.query.variants],
            "results": [m.as_dict() for m in self.matches],
        }


@dataclass
class CollectionMap:
    """The indexed collection as points on a 2-D map (UMAP of the video embeddings).

    ids: N video ids; coords: float32 [N, 2] in [0, 1]; durations: seconds [N].
    """

    ids: list[str]
    coords: np.ndarray
    durations: np.ndarray


@dataclass
class EngineInfo:
    """What is loaded: the model, where it runs, and the index (None fields without one)."""

    model: str
    backbone: str
    tca: bool
    model_info: dict
    model_path: str | None
    device: str
    fps: float
    dim: int
    index: str | None = None
    videos: int = 0
    frames: int = 0
    faiss: str | None = None
    precision: str = "float32"  # what the CNN runs in (engine.backbone.Precision)
    # video vectors pooled by each frame's distinctiveness in the collection (no TCA, or a
    # TCA trained so), so that is what a heat strip shows; else the TCA's attention
    distinctive: bool = True
    # whether searches compare the text on the frames (`Engine._query_text`), and why not
    text: bool = False
    text_note: str | None = None


def resolve_model(model: str | Path | None = None) -> tuple[ModelBundle, Path | None]:
    """A model bundle and the file it came from: `model` (a path or hf:// source), else
    assets/model.safetensors when present, else the builtin baseline (no file)."""
    if model is not None:
        path = resolve(model, "model.safetensors", ModelError, "model file")
        return load_model(path), path
    if DEFAULT_MODEL.is_file():
        return load_model(DEFAULT_MODEL), DEFAULT_MODEL
    return builtin_model(), None


def open_index(index: str | Path) -> VideoIndex:
    """An index folder, or `hf://owner/repo` (downloaded once, then cached)."""
    return VideoIndex.open(resolve(index, None, IndexFileError, "index folder"))


class Engine:
    """Loads the backbone, model bundle and (optionally) an index once; then embeds and searches.

    model: a bundle file (.safetensors) or hf:// source, a ModelBundle, or None: the index's
    own model when an index is given, else assets/model.safetensors when present, else the
    builtin no-PCA/no-TCA baseline of `backbone`.
    index: an index folder or hf:// source, or None (embedding only; `build_index` makes one).
    max_duration: seconds of a video used (longer ones are cut, and told); max_pixels: larger
    frames are refused with a clear error before decoding. normalize: corpus-aware scores
    (each indexed frame's background subtracted, see engine.background) unless False.
    use_tca=False: the model's TCA replaced by mean pooling (an index built so records it).
    variants: the query variants a search also describes (greyscale, low detail...: see
    engine.variants; names or Variant, () for none): each query frame counts with its best
    look, so greyscale and degraded copies rank; one more backbone pass per variant.
    precision: the number format the CNN runs in (`engine.backbone.Precision`; auto: bfloat16
    on a CPU with AMX, float16 on CUDA, else float32).
    text: read the text on the frames (`engine.text`) where this machine can: an index built
    so keeps it, and a query against such an index is read with the same model (only its
    frames whose text can change the ranking), so that a look-alike slide or terminal with
    other words counts as no evidence of a copy (False: neither read nor compared).
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
        max_pixels: int = MAX_PIXELS,
        normalize: bool = True,
        use_tca: bool = True,
        variants: tuple[Variant | str, ...] | str | None = DEFAULT_VARIANTS,
        precision: Precision | str = Precision.AUTO,
        text: bool = True,
    ):
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be above 0 (frames sampled per second), not {fps}")
        self.index: VideoIndex | None = open_index(index) if index else None
        self.model_path: Path | None = None
        if isinstance(model, ModelBundle):
            bundle = model
        elif model is None and self.index is not None:
            bundle = self._index_model(self.index)
        elif model is None and backbone is not None:
            bundle = builtin_model(backbone)
        else:
            bundle, self.model_path = resolve_model(model)
        if not use_tca:
            bundle = bundle.without_tca()
        if backbone is not None and Backbone(backbone) != bundle.backbone:
            raise ModelError(
                f"model {bundle.name} was made for backbone {bundle.backbone.value}, not {Backbone(backbone).value}"
            )
        if self.index is not None:
            self.index.check_model(bundle.identity, bundle.backbone.value)
            self.index.use_device(device)
            fps = fps if fps is not None else float(self.index.manifest["sample_fps"])
        self.embedder = Embedder(bundle, backbone_weights, device, fps if fps is not None else 1.0, max_duration,
                                 max_pixels=max_pixels, precision=precision)
        self.backbone_weights = str(backbone_weights) if backbone_weights else None
        self.candidates = candidates
        self.normalize = normalize
        self.variants = parse_variants(variants)
        self.text = text

    def _index_model(self, index: VideoIndex) -> ModelBundle:
        m = index.manifest
        if not m.get("model_path"):
            return builtin_model(m["backbone"], m["pooling"])
        if m.get("tca") is False:
            return self._index_model_file(index).without_tca()
        return self._index_model_file(index)

    def _index_model_file(self, index: VideoIndex) -> ModelBundle:
        path = index.located("model_path")
        if not path.is_file():
            raise ModelError(
                f"{index.directory}: its model file {path} is missing; pass --model with the file "
                "the index was built with"
            )
        self.model_path = path
        return load_model(path)

    @property
    def model(self) -> ModelBundle:
        return self.embedder.bundle

    def info(self) -> EngineInfo:
        """The loaded model, device and index, for an About panel or `engine info`."""
        b = self.model
        out = EngineInfo(b.name, b.backbone.value, b.tca is not None, dict(b.info),
                         str(self.model_path) if self.model_path else None, str(self.embedder.device),
                         float(self.embedder.fps), int(self.embedder.dim))
        out.precision = self.embedder.encoder.precision_name
        out.distinctive = b.distinctive
        if self.index is not None:
            out.index, out.videos, out.frames = str(self.index.directory), len(self.index), self.index.num_frames
            out.faiss = self.index.manifest.get("faiss")
            out.text, out.text_note = self._query_text()
        return out

    # ------------------------------------------------------------------ media
    def probe(self, path: str | Path) -> VideoInfo:
        """Container facts of a video file (duration s, fps, display size, rotation).
        Raises VideoError subclasses with a message for files that cannot be used."""
        return probe(path)

    def thumbnails(self, path: str | Path, times: np.ndarray | list[float], side: int = 72) -> list[np.ndarray]:
        """uint8 RGB frames of a video at `times` (s), short side `side` px; seeks across
        gaps, so a few stills of a long video are cheap. Raises VideoError."""
        return frames_at(path, [float(t) for t in times], short_side=side // 2 * 2)

    def poster(self, video_id: str, side: int = 72) -> np.ndarray:
        """A still of an indexed video: its frame a third of the way in. Raises VideoError."""
        video = self.video(video_id)
        return self.thumbnails(video.path, [video.duration / 3], side)[0]

    def preview(self, path: str | Path, out: str | Path, max_duration: float | None = None) -> Path:
        """A small browser-playable MP4 (H.264, yuv420p, faststart) of a video, written
        atomically to `out`; at most `max_duration` s. Raises VideoError."""
        return write_preview(path, out, max_duration=max_duration or self.embedder.max_duration)

    # ------------------------------------------------------------------ embedding
    def embed(self, path: str | Path, variants: tuple[Variant | str, ...] | str | None = None) -> VideoEmbedding:
        """Embed a video file (decode at the engine's fps, backbone, PCA, TCA) as a query:
        with the engine's query variants, or `variants` ('none' or () for none); the file is
        opened once. Raises VideoError subclasses for files that cannot be used."""
        chosen = self.variants if variants is None else parse_variants(variants)
        read, why = self._query_text()
        # kept, not read: a search reads only the frames whose text can change its ranking
        emb = self.embedder.embed(path, variants=chosen, keep_text_frames=read)
        if why:
            emb.warnings.append(why)
        return emb

    def _query_text(self) -> tuple[bool, str | None]:
        """Whether a query's text is read (the index keeps its frames' text, read with the
        model this machine reads with) and, where the index keeps text that cannot be
        compared, why not (a warning for the user)."""
        wanted = self.index.text_model if self.text and self.index is not None else None
        if wanted is None:
            return False, None
        mine = frame_text.model_identity()
        if mine == wanted:
            return True, None
        why = (frame_text.unavailable_reason() if mine is None
               else f"the index's frames were read with another text model ({wanted}, here {mine})")
        return False, f"text on the frames not compared: {why}"

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
        normalize: bool | None = None,
    ) -> SearchResult:
        """Rank indexed videos against a query file or embedding. k >= index size ranks all.
        Each match carries its frame similarity matrix and every copied segment. A query
        file is described with the engine's variants (an embedding is searched with those it
        carries). normalize: None = the engine's setting."""
        index = self._require_index()
        measure = Measure(measure)
        norm = self.normalize if normalize is None else normalize
        q = query if isinstance(query, VideoEmbedding) else self.embed(query)
        text = q.text if q.text is not None else q.text_frames.read if q.text_frames is not None else None
        hits = index.search(*q.looks, k, measure, self.candidates, norm, query_text=text)
        # what the search read: every frame whose text can change a candidate's score
        read = q.text if q.text is not None else q.text_frames.known() if q.text_frames is not None else None
        matches = []
        for rank, hit in enumerate(hits, 1):
            video, cmp = self._at(hit.position, q, norm, read)
            matches.append(Match(video.id, rank, hit.score, cmp.span, video.duration, video.path, video, cmp))
        return SearchResult(q, measure, matches, norm, self.distinctiveness(q))

    def distinctiveness(self, query: VideoEmbedding) -> np.ndarray:
        """float32 [Tq]: how much each frame of a query says about it rather than about the
        indexed collection (shares summing to 1; `engine.background.distinctiveness` of
        the frames' backgrounds against the index)."""
        return distinctiveness(self._require_index().query_background(query.frames))

    def _at(self, pos: int, query: VideoEmbedding | None = None, normalize: bool | None = None,
            query_text: np.ndarray | None = None) -> tuple[IndexedVideo, Comparison | None]:
        """The indexed video at `pos` and (with a query) its comparison, from one read of its
        frames. query_text: the query's text sketches [Tq, SKETCH] as its search read them
        (None: `query.text`, or those of its kept frames that this video's scores need)."""
        index = self._require_index()
        frames, times, attention = index.video_frames(pos, pictures=query is not None)
        rec = index.records[pos]
        video = IndexedVideo(rec.id, str(index.source_path(pos)), rec.duration, times, attention, rec,
                             distinctiveness(index.frame_backgrounds(pos)[0]))
        if query is None:
            return video, None
        norm = self.normalize if normalize is None else normalize
        views, t = frames.shape[:2]
        bg = index.frame_backgrounds(pos) if norm else None
        # the best of the whole frame and its inner pictures at each time, as the search's
        # chamfer takes it; `raw` is the query's own frames against the whole frames
        rows, bg_rows = frames.reshape(views * t, -1), bg.reshape(-1) if bg is not None else None
        pictured = frame_similarity(query.looks[0], rows, bg_rows, views)
        sim = pictured
        query_text = query.text if query_text is None else query_text
        reads = query_text is not None or query.text_frames is not None
        rows_text = index.video_text(pos, pictures=True) if reads else None
        if rows_text is not None:  # picture rows were not read: they never disagree
            if query_text is None:  # read what this video's ranking needs
                need = text_deciding_frames(query.looks[0], rows, np.array([0, len(rows)]),
                                            np.isfinite(rows_text).any(axis=1), background=bg_rows,
                                            views=np.array([views]))
                query_text = query.text_frames.read(need)
            sim = frame_similarity(query.looks[0], rows, bg_rows, views, text=(query_text, rows_text))
        raw = frame_similarity(query.frames, frames[0]) if norm else pictured
        # segments are found on the pictures alone: an edit that changes a copy's words (a
        # crop, a caption) would split them (notebooks/RESULTS.md, round 36)
        segments = matched_segments(pictured, query.times, times, query.step, query.duration, rec.duration,
                                    target_cuts=rec.cuts, query_cuts=query.cuts, query_profile=query.profile,
                                    target_profile=index.video_profile(pos))
        best = segments[0]  # the strongest alignment
        segments.sort(key=lambda s: (s.start, s.query_start))
        return video, Comparison(sim, query.times, times, sim.argmax(axis=1), best, segments,
                                 bg[0] if bg is not None else np.zeros(t, np.float32), norm, raw)

    def compare(self, query: VideoEmbedding, video_id: str, normalize: bool | None = None) -> Comparison:
        """The frame similarity matrix of a query and an indexed video, with every copied
        segment (a search's matches carry theirs already). Raises UnknownVideoError."""
        return self._at(self._require_index().position(video_id), query, normalize)[1]

    def video(self, video_id: str) -> IndexedVideo:
        """What the index holds about one video (no decoding). Raises UnknownVideoError."""
        return self._at(self._require_index().position(video_id))[0]

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
    def build_index(self, video_dir: str | Path, index_dir: str | Path, progress: bool = True,
                    commit_seconds: float = 0.0, ray: str | None = None, actors: int | None = None,
                    inner_pictures: bool = True) -> BuildReport:
        """Index (or incrementally update) `index_dir` from every video under `video_dir`;
        finished videos are committed every `commit_seconds` (0: after each), so a killed
        run keeps them; one writer at a time (a second gets a clear error).
        ray: embed on Ray Data actors instead of in this process ("local" starts Ray here,
        else a cluster address such as "auto"; `actors` of them, default one per GPU or CPU);
        the index is the same. inner_pictures: also store each video's inner pictures
        (picture-in-picture boxes, side-by-side halves, vertical bands; `engine.inner_pictures`), so
        that a copy shown inside another video's frame is found: costs a second small decode
        and one CNN pass per picture found at index time, nothing at query time."""
        bundle = self.model
        index_dir = Path(index_dir)
        model_path = None
        if self.model_path is not None:
            model_path = os.path.relpath(self.model_path.resolve(), index_dir.resolve())

        def new_index(root: str | None) -> VideoIndex:
            return VideoIndex.new(
                bundle.identity, bundle.backbone.value, bundle.pooling.value,
                self.embedder.dim, self.embedder.fps, root, model_path, bundle.tca is not None,
                distinctive=bundle.distinctive, layout_dim=bundle.layout_dim,
            )

        reads_text = False  # decided in `check`, once the index is open

        def check(index: VideoIndex) -> None:
            nonlocal reads_text
            index.check_model(bundle.identity, bundle.backbone.value)
            index.manifest["model_path"] = model_path
            index.manifest["model_path_absolute"] = str(self.model_path.resolve()) if self.model_path else None
            index.manifest["inner_pictures"] = inner_pictures
            mine = frame_text.model_identity() if self.text else None
            if len(index) == 0:  # a new (or emptied) index keeps text when this machine reads it
                index.manifest["text_model"] = mine
            # rows of an index that keeps no text, or text read with another model, stay
            # without: an index reads all its frames with one model or none
            reads_text = mine is not None and index.text_model == mine

        stage = None
        e = self.embedder
        if ray is not None:
            from .ray_embedding import connect, embed_files_ray

            connect(ray)  # a missing Ray or an unreachable cluster fails before the index is touched

            def stage(todo, report, progress):
                return embed_files_ray(
                    todo, report, progress, bundle=bundle, backbone_weights=self.backbone_weights,
                    device=str(e.device), precision=e.precision.value, fps=e.fps, max_duration=e.max_duration,
                    max_pixels=e.max_pixels, address=ray, actors=actors, inner_pictures=inner_pictures,
                    text=reads_text)
        report = build_index(video_dir, index_dir, lambda p: e.embed(p, inner_pictures, text=reads_text),
                             new_index, check, progress, commit_seconds, stage,
                             lambda p: hard_cuts(p, e.fps, e.max_duration, e.max_pixels))
        self.index = VideoIndex.open(index_dir)
        self.index.use_device(str(self.embedder.device))
        return report
