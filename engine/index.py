"""The index: video vectors in FAISS, frame embeddings in a compact store, a JSON manifest.

Layout of an index directory (every data file carries a generation number):
  manifest.json          format version, model identity, dims, counts, one record per video
  videos-G.npy           float32 [N, d] video embeddings (source of truth for FAISS)
  faiss-G.index          FAISS index over videos-G (flat when small, IVF when large)
  offsets-G.npy          int64 [N + 1]: video n's frames are rows offsets[n]:offsets[n+1]
  frames-G.npy           float16 [F, d] frame embeddings, opened memory-mapped
  frame_meta-G.npy       float32 [F, 2]: (time in seconds, attention received)
  map-G.npy              float32 [N, 2]: UMAP map of the videos in [0, 1] (collection_map)
  background-G.npy       float32 [F]: each frame's background (engine.background), and
  video_background-G.npy float32 [N]: each video's, both recomputed at every save
Saving writes a new generation's files, then the manifest (each through `atomic_write`),
then deletes the old generation: a crash at any point leaves a readable index behind.
Building an index from a folder (what changed, embedding, checkpoints) is `indexing.py`.

Search (the DnS pattern): FAISS finds video-level candidates, chamfer re-ranks them with
the frame embeddings, so only the candidates' frames are read from disk. Scores are
corpus-aware by default: each indexed frame's (video's) background is subtracted from
its similarities, so frames that match everything (bumpers, end cards, watermarks,
black) stop deciding the ranking; `normalize=False` compares raw cosines.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from .background import DEFAULT_K, DEFAULT_SKIP, backgrounds
from .errors import UnknownVideoError, UserError
from .files import atomic_write
from .similarity import Measure, chamfer_many, cosine

FORMAT_VERSION = 1
FLAT_LIMIT = 20_000  # exact search up to this many videos; IVF above
MANIFEST = "manifest.json"
_DATA_FILES = ("videos", "offsets", "frames", "frame_meta", "faiss", "map", "background", "video_background")


class IndexFileError(UserError):
    """An index that cannot be opened or used; the message names the folder and what to do."""


class IndexMismatchError(IndexFileError):
    """The index was built with another backbone/model than the one loaded."""


@dataclass
class VideoRecord:
    """One indexed video. `path` is relative to the manifest's root when possible."""

    id: str
    path: str
    size: int
    mtime_ns: int
    duration: float  # seconds
    fps: float  # the source's average frame rate
    width: int
    height: int
    num_frames: int  # sampled frames stored
    warnings: list[str] = field(default_factory=list)


@dataclass
class Hit:
    """Position of a video in the index and its score for one query."""

    position: int
    score: float


def _faiss_index(vectors: np.ndarray) -> faiss.Index:
    n, d = vectors.shape
    if n <= FLAT_LIMIT:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.index_factory(d, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        train = vectors[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)]
        index.train(train)
        faiss.extract_index_ivf(index).nprobe = min(nlist, 32)
    if n:
        index.add(np.ascontiguousarray(vectors, np.float32))
    return index


class VideoIndex:
    """An opened (or new, in-memory) index. Positions 0..N-1 follow `records`."""

    def __init__(
        self,
        manifest: dict,
        records: list[VideoRecord],
        videos: np.ndarray,
        offsets: np.ndarray,
        frames: np.ndarray,
        frame_meta: np.ndarray,
        faiss_index: faiss.Index | None = None,
        directory: Path | None = None,
        coords: np.ndarray | None = None,
        background: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.manifest = manifest
        self.records = records
        self.videos = videos
        self.offsets = offsets
        self.frames = frames
        self.frame_meta = frame_meta
        self.directory = directory
        self.coords = coords if coords is not None and len(coords) == len(videos) else None
        self._faiss = faiss_index if faiss_index is not None else _faiss_index(videos)
        self._position = {r.id: i for i, r in enumerate(records)}
        self._background = background if background is not None and len(background[1]) == len(videos) else None

    @property
    def background(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame backgrounds float32 [F], video backgrounds float32 [N]) over this index's
        videos (computed now when the index has none stored)."""
        if self._background is None:
            self._background = backgrounds(self.frames, self.offsets, self.videos,
                                           int(self.manifest.get("background_k", DEFAULT_K)),
                                           int(self.manifest.get("background_skip", DEFAULT_SKIP)))
        return self._background

    # ---------------------------------------------------------------- construction
    @classmethod
    def new(cls, model_id: str, backbone: str, pooling: str, dim: int, sample_fps: float,
            root: str | None = None, model_path: str | None = None, tca: bool = True) -> "VideoIndex":
        manifest = {
            "format_version": FORMAT_VERSION,
            "backbone": backbone,
            "pooling": pooling,
            "model_id": model_id,
            "model_path": model_path,
            "tca": tca,  # False: built with the model's TCA replaced by mean pooling (index --no-tca)
            "dim": dim,
            "sample_fps": sample_fps,
            "root": root,
            "generation": 0,
            "background_k": DEFAULT_K,
            "background_skip": DEFAULT_SKIP,
        }
        return cls(
            manifest, [], np.zeros((0, dim), np.float32), np.zeros(1, np.int64),
            np.zeros((0, dim), np.float16), np.zeros((0, 2), np.float32),
        )

    @classmethod
    def open(cls, directory: str | Path) -> "VideoIndex":
        """Open an index directory (frames memory-mapped). Raises IndexFileError when unusable."""
        directory = Path(directory)
        path = directory / MANIFEST
        if not path.is_file():
            raise IndexFileError(
                f"{directory}: not an index (no {MANIFEST}); build one with "
                "`python -m engine index VIDEO_DIR INDEX_DIR`"
            )
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise IndexFileError(f"{path}: unreadable manifest ({err}); rebuild the index") from err
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexFileError(
                f"{directory}: index format {manifest.get('format_version')} is not supported "
                f"(this engine reads {FORMAT_VERSION}); rebuild the index"
            )
        gen = manifest["generation"]
        try:
            videos = np.load(directory / f"videos-{gen}.npy")
            offsets = np.load(directory / f"offsets-{gen}.npy")
            frames = np.load(directory / f"frames-{gen}.npy", mmap_mode="r")
            frame_meta = np.load(directory / f"frame_meta-{gen}.npy", mmap_mode="r")
            index = faiss.read_index(str(directory / f"faiss-{gen}.index"))
        except (OSError, ValueError, RuntimeError) as err:
            raise IndexFileError(f"{directory}: index files damaged or missing ({err}); rebuild it") from err
        coords = None
        if (directory / f"map-{gen}.npy").is_file():  # indexes saved before maps existed have none
            try:
                coords = np.load(directory / f"map-{gen}.npy")
            except (OSError, ValueError):
                coords = None
        background = None
        if (directory / f"background-{gen}.npy").is_file():  # older indexes compute it on first use
            try:
                background = (np.load(directory / f"background-{gen}.npy"),
                              np.load(directory / f"video_background-{gen}.npy"))
            except (OSError, ValueError):
                background = None
        records = [VideoRecord(**r) for r in manifest.pop("videos")]
        if len(records) != len(videos) or offsets[-1] != len(frames) or index.ntotal != len(videos):
            raise IndexFileError(f"{directory}: index files disagree with the manifest; rebuild it")
        return cls(manifest, records, videos, offsets, frames, frame_meta, index, directory, coords, background)

    def use_device(self, device: str) -> str:
        """Move the FAISS index to the GPU when device is cuda and FAISS was built with GPU
        support (requirements-gpu.txt); returns where it runs. The CPU path needs nothing."""
        if not str(device).startswith("cuda") or not hasattr(faiss, "StandardGpuResources"):
            return "cpu"
        if faiss.get_num_gpus() < 1:
            return "cpu"
        self._gpu_resources = faiss.StandardGpuResources()
        self._faiss = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._faiss)
        return "cuda"

    def check_model(self, model_id: str, backbone: str) -> None:
        """Raise IndexMismatchError unless the index was built with this model."""
        if self.manifest["backbone"] != backbone or self.manifest["model_id"] != model_id:
            raise IndexMismatchError(
                f"{self.directory}: index built with backbone {self.manifest['backbone']} and model "
                f"{self.manifest['model_id'][:16]}, but backbone {backbone} and model {model_id[:16]} "
                "are loaded. Load the index's own model (omit --model), or build a new index."
            )

    # ---------------------------------------------------------------- content
    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_frames(self) -> int:
        return int(self.offsets[-1])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def position(self, video_id: str) -> int:
        try:
            return self._position[video_id]
        except KeyError:
            raise UnknownVideoError(f"no video with id {video_id!r} in the index {self.directory}") from None

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._position

    def map_coords(self) -> np.ndarray:
        """float32 [N, 2] map positions of the videos (fitted now if the index has none)."""
        if self.coords is None or len(self.coords) != len(self):
            from .collection_map import fit_map

            self.coords = fit_map(self.videos)
        return self.coords

    def video_frames(self, position: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frames float32 [T, d], times float32 [T] s, attention float32 [T]) of one video."""
        lo, hi = self.offsets[position], self.offsets[position + 1]
        meta = np.asarray(self.frame_meta[lo:hi], np.float32)
        return np.asarray(self.frames[lo:hi], np.float32), meta[:, 0].copy(), meta[:, 1].copy()

    def source_path(self, position: int) -> Path:
        """Absolute path of the video file, resolved against the recorded root."""
        p = Path(self.records[position].path)
        if p.is_absolute():
            return p
        root = Path(self.manifest.get("root") or ".")
        if not root.is_absolute() and self.directory is not None:
            root = self.directory / root
        return (root / p).resolve()

    # ---------------------------------------------------------------- search
    def search(
        self,
        query_frames: np.ndarray,
        query_video: np.ndarray,
        k: int = 10,
        measure: Measure | str = Measure.CHAMFER,
        candidates: int = 100,
        normalize: bool = True,
    ) -> list[Hit]:
        """Top-k videos for a query, best first. k >= len(index) ranks the whole index.

        FAISS finds the `candidates` best videos by cosine of the video vectors (all videos
        when the index is smaller); they are re-ranked exactly by the measure, minus the
        backgrounds when `normalize` (cosine: the video's; chamfer: each frame's).
        """
        measure = Measure(measure)
        n = len(self)
        if n == 0 or k <= 0:
            return []
        k = min(k, n)
        q = np.ascontiguousarray(query_video.reshape(1, -1), np.float32)
        n_cand = max(k, min(candidates, n))
        if n_cand >= n:
            pos = np.arange(n)
        else:
            _, ids = self._faiss.search(q, n_cand)
            pos = np.sort(ids[0][ids[0] >= 0])
        if measure == Measure.COSINE:
            scores = cosine(q[0], self.videos[pos])
            if normalize:
                scores = scores - self.background[1][pos]
        else:
            scores = self._chamfer(query_frames, pos, measure == Measure.SYMMETRIC_CHAMFER, normalize)
        order = np.argsort(-scores, kind="stable")[:k]
        return [Hit(int(pos[i]), float(scores[i])) for i in order]

    def _chamfer(self, query_frames: np.ndarray, positions: np.ndarray, symmetric: bool,
                 normalize: bool) -> np.ndarray:
        bg = self.background[0] if normalize else None
        if len(positions) == len(self):
            return chamfer_many(query_frames, self.frames, self.offsets, symmetric, background=bg)
        # Gather only the candidates' frames (a few reads from the memory map).
        lengths = self.offsets[positions + 1] - self.offsets[positions]
        sub_offsets = np.concatenate([[0], np.cumsum(lengths)])
        spans = [slice(self.offsets[p], self.offsets[p + 1]) for p in positions]
        sub = np.concatenate([self.frames[s] for s in spans])
        sub_bg = np.concatenate([bg[s] for s in spans]) if bg is not None else None
        return chamfer_many(query_frames, sub, sub_offsets, symmetric, background=sub_bg)

    def frame_backgrounds(self, position: int) -> np.ndarray:
        """float32 [T]: the backgrounds of one video's frames."""
        return self.background[0][self.offsets[position] : self.offsets[position + 1]].copy()

    # ---------------------------------------------------------------- updating and saving
    def replace(
        self,
        keep: list[int],
        new_records: list[VideoRecord],
        new_embeddings: list,
    ) -> "VideoIndex":
        """A new in-memory index: the videos at `keep` plus new ones (VideoEmbedding-like)."""
        dim = self.dim
        rec = [self.records[i] for i in keep] + list(new_records)
        vids = [self.videos[keep]] + [e.video.reshape(1, -1) for e in new_embeddings]
        frames = [self.frames[self.offsets[i] : self.offsets[i + 1]] for i in keep]
        metas = [self.frame_meta[self.offsets[i] : self.offsets[i + 1]] for i in keep]
        lengths = [int(self.offsets[i + 1] - self.offsets[i]) for i in keep]
        for e in new_embeddings:
            frames.append(e.frames.astype(np.float16))
            metas.append(np.stack([e.times, e.attention], axis=1).astype(np.float32))
            lengths.append(len(e.times))
        videos = np.concatenate(vids).astype(np.float32) if rec else np.zeros((0, dim), np.float32)
        return VideoIndex(
            dict(self.manifest),
            rec,
            videos,
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            np.concatenate(frames).astype(np.float16) if frames else np.zeros((0, dim), np.float16),
            np.concatenate(metas).astype(np.float32) if metas else np.zeros((0, 2), np.float32),
            directory=self.directory,
        )

    def save(self, directory: str | Path) -> None:
        """Write atomically as a new generation; older generations are removed after."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        old_gen = None
        if (directory / MANIFEST).is_file():
            try:
                old_gen = json.loads((directory / MANIFEST).read_text())["generation"]
            except (OSError, ValueError, KeyError):
                old_gen = None
        gen = max(int(self.manifest.get("generation", 0)), old_gen or 0) + 1

        try:
            frame_bg, video_bg = self.background
            for name, arr in (("videos", self.videos), ("offsets", self.offsets), ("frames", self.frames),
                              ("frame_meta", self.frame_meta), ("map", self.map_coords()),
                              ("background", frame_bg), ("video_background", video_bg)):
                with atomic_write(directory / f"{name}-{gen}.npy") as tmp:
                    np.save(tmp, np.ascontiguousarray(arr))
            with atomic_write(directory / f"faiss-{gen}.index") as tmp:
                faiss.write_index(self._faiss, str(tmp))
        except BaseException:  # the manifest still names the old generation: drop the half-written one
            for name in _DATA_FILES:
                (directory / f"{name}-{gen}{'.index' if name == 'faiss' else '.npy'}").unlink(missing_ok=True)
            raise
        manifest = dict(self.manifest)
        manifest.update(
            generation=gen,
            num_videos=len(self),
            num_frames=self.num_frames,
            faiss=("flat" if len(self) <= FLAT_LIMIT else "ivf"),
            bytes_per_video=_bytes_per_video(self),
            updated=time.strftime("%Y-%m-%dT%H:%M:%S"),
            videos=[asdict(r) for r in self.records],
        )
        with atomic_write(directory / MANIFEST) as tmp:  # the commit point of the new generation
            tmp.write_text(json.dumps(manifest, indent=1))
        manifest.pop("videos")
        self.manifest, self.directory = manifest, directory
        current = {f"{name}-{gen}" for name in _DATA_FILES}
        for f in directory.iterdir():
            stem = f.name.lstrip(".").split(".")[0]
            name, _, g = stem.rpartition("-")
            if name in _DATA_FILES and g.isdigit() and stem not in current:
                f.unlink(missing_ok=True)


def _bytes_per_video(index: VideoIndex) -> float:
    n = max(len(index), 1)
    return float(index.videos.nbytes + index.offsets.nbytes + index.frames.nbytes
                 + index.frame_meta.nbytes) / n
