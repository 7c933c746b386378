"""The index: immutable segments of videos, a JSON manifest that names them, and search.

An index directory holds (format 3):
  manifest.json            format, model identity, dims, codec, the live segments with every
                           data file's size and block checksums, tombstones, derived state
  .lock                    held by the one process writing (engine.files.folder_lock)
  codec-G.faiss            the trained frame codec (engine.codec), once there are enough frames;
                           more of them when footage unlike its sample arrives (`DRIFT`)
  S.records.jsonl          per segment S: one VideoRecord per line (S.records-G.jsonl once
                           `update_records` has rewritten them)
  S.offsets.npy            int64 [n + 1]: video i's frames are rows offsets[i]:offsets[i+1]
  S.videos.npy             video embeddings [n, ...] in the codec's storage
  S.frames.npy             frame embeddings [f, ...] in the codec's storage (memory-mapped)
  S.meta.npy               float32 [f, 2 + P]: (time in seconds, attention received, the
                           brightness profile's P values, engine.cuts; NaN: not known);
                           [f, 2] in an index written before profiles were kept
  S.faiss-G.index          large segments only: their IVF-PQ index (memory-mapped on open)
  S.frames_faiss-G.index   segments of many rows only: an IVF index of their stored rows
  S.background-G.npy       float32 [f] frame backgrounds (engine.background), and
  S.video_background-G.npy float32 [n] video backgrounds; S.map-G.npy float32 [n, 2] map
  reference-G.npz          large collections: the fixed background reference set

Writing is append-only. `append` writes the new videos as a new segment and then the
manifest (each file through an atomic rename; the manifest is the commit point), so
adding N videos to an index of M writes O(N) bytes, and a kill at any moment leaves the
last committed manifest, whose files are all there. Removed or changed videos are
tombstoned and dropped when segments merge (small segments are merged in tiers of
`MERGE_FACTOR`, so there are O(log M) of them) or at an explicit `compact`.

The frame codec is trained once, on the first frames an index receives. A collection that
later grows into other footage would store that footage through a codec that does not fit
it (the collection benchmark's landscape, screencast and fractal videos added after its
slides and webcam uploads: 0.828 of their true rows' similarity kept as searched, 0.948 with
this, notebooks/RESULTS.md round 26). So each new segment is written
with the codec that keeps its rows best; when none keeps them within `DRIFT` of what it
keeps of new rows of its own footage, the segment is stored in float16, and once such segments
hold a codec's sample of frames, a codec is trained on them and they are recoded with it.
Segments of different codecs merge only with their own (a segment entry names its codec).

Derived state (backgrounds, map) depends on the whole collection while it is small: up
to `EXACT_FRAMES` frames it is recomputed over every video at `refresh_derived` (end of
an `index` run); above that, each new segment's backgrounds are measured against a fixed
reference sample of the collection and its videos are placed on the existing map, so the
cost of an append stays O(N). A segment whose derived state is missing (a run that was
killed) gets it computed in memory on open and written by the next writer.

Search (the DnS pattern): a first stage finds candidates, the measure re-ranks them with
the decoded frame embeddings; only the candidates' frames are read and checked. For the
frame measures the candidates come from the frames: each query frame fetches its nearest
stored rows (a FAISS IVF index in segments of many rows, exact in small ones), so a video that
shares a few seconds with the query is found however little its video vector moved; for
cosine they come from the video vectors. Format-1 indexes (one generation of
float16 files) open read-only and are converted to a segment by the next writer.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import faiss
import numpy as np

from .background import (DEFAULT_K, DEFAULT_SKIP, collection_views, distinctive_pooling, frame_background,
                         query_background, video_background)
from .codec import FLOAT16, TRAIN_FRAMES, Codec, default_spec, one_thread
from .cuts import PROFILE
from .errors import IndexFileError, UnknownVideoError
from .files import atomic_write, folder_lock
from .inner_pictures import stored_rows
from .similarity import (Measure, chamfer_many, cosine, cosine_views, look_margins, stream_ids,
                         text_deciding_frames)
from .text import SKETCH
from .store import (CheckedArray, DamagedFileError, entry_of, verified_bytes, write_array, write_array_chunks,
                    write_bytes)

# 3: records carry content_hash and a segment may name a rewritten records file
# (S.records-G.jsonl), which engines that read only 2 cannot; they now say so instead of
# failing on the first record. A format-2 index is read as it is and written as 3.
FORMAT_VERSION = 3
READS = (1, 2, 3)
MAX_CODECS = 8  # trained codecs an index may hold (each kind of footage's segments merge apart)
DRIFT = 0.04  # `_fidelity`: how much worse than rows of its own footage a codec may keep new rows
FLAT_LIMIT = 20_000  # a segment with more videos gets an IVF-PQ index; smaller ones are searched exactly
FRAME_FLAT_ROWS = 20_000  # a segment with more stored rows gets an IVF index of them
FRAME_NEIGHBOURS = 32  # stored rows each query row fetches for the frame measures' candidates
# The frame index's code: PCA to half the dimensions, 4 bits each (256 B a row at d = 1024).
# Its similarities decide which videos are re-ranked, and the corpus-aware evidence in them
# is small (0.05-0.25 above a row's background): 64-byte PQ codes lost 0.03-0.08 val mAP at
# 25 candidates of 460, this one nothing, and it trains in seconds where 8-bit PQ of the same
# size took minutes (notebooks/RESULTS.md, round 19)
FRAME_CODE = "PCAR{half},IVF{nlist},SQ4"
# The frame index holds every FRAME_INDEX_EVERY-th row of each stream (a video's whole
# frames, or one inner picture's), the first always: a copied stretch is found by any of its
# rows and the re-rank reads them all, so the index needs not hold each one. Every second row
# halves the index (storage 21.8 -> 17.7 KiB per indexed minute at d = 512) for no loss
# through a real index of the collection benchmark (notebooks/RESULTS.md, round 21).
FRAME_INDEX_EVERY = 2
# The frame measures' candidates are fetched by at most this many query rows (each look's
# frames evenly strided, the same frames in every look): a copied stretch is found by any of
# its rows, and the cost of fetching grows with the rows and with the index's segments. A
# 60-s query with its five looks has 300 rows; at 300k indexed videos they took 0.93 s to
# fetch for, 64 take 0.21 s, for no loss through a real index of the collection benchmark at
# 20 candidates of 460 (notebooks/RESULTS.md, round 28).
FRAME_QUERY_ROWS = 64
EXACT_FRAMES = 20_000  # derived state over the whole collection up to this many frames
REFERENCE_FRAMES = 20_000  # the background reference sample's size above it
MAP_REFIT_VIDEOS = 5_000  # the UMAP map is refitted up to this many videos, then new videos are placed
MERGE_FACTOR = 8
CACHE_FRAMES = 50_000  # small indexes keep their decoded frames in memory
MANIFEST = "manifest.json"


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
    # rows stored per sampled time: the whole frame, then each inner picture (engine.inner_pictures),
    # in blocks of num_frames rows
    views: int = 1
    # engine.files.content_hash of the file when it was indexed ("": indexed before hashes were
    # kept): a file whose time changed but whose bytes did not (a fresh clone, a copy) is kept
    content_hash: str = ""
    # seconds of the video's hard cuts (engine.cuts), to which a matched segment's boundary
    # moves; None: indexed before they were kept (found on the index's next update)
    cuts: list[float] | None = None


@dataclass
class StoredVideo:
    """A video's stored rows read back (`VideoIndex.stored_video`): frames float32 [T, d],
    pictures [V, T, d] or None, video [d], times [T] s, attention [T], brightness profile
    [T, P] or None, text sketches [T, SKETCH] or None."""

    frames: np.ndarray
    pictures: np.ndarray | None
    video: np.ndarray
    times: np.ndarray
    attention: np.ndarray
    profile: np.ndarray | None = None
    text: np.ndarray | None = None


@dataclass
class Hit:
    """Position of a video in the index and its score for one query."""

    position: int
    score: float


# A stored row's meta columns: time (s), attention, the brightness profile (`engine.cuts`),
# the text sketch (`engine.text`); an older segment's narrower rows read as NaN beyond theirs.
PROFILE_COLUMNS = slice(2, 2 + PROFILE)
TEXT_COLUMNS = slice(2 + PROFILE, 2 + PROFILE + SKETCH)
META_WIDTH = 2 + PROFILE + SKETCH


def _rows(emb) -> tuple[np.ndarray, np.ndarray, int]:
    """What one video stores: frames float32 [V * T, d] (`stored_rows`), meta float32
    [V * T, META_WIDTH] (time s, attention, brightness profile, text sketch; inner pictures
    get the whole frame's times and profile, no attention and no text: a picture's words
    were not read) and V, the record's `views`."""
    frames = stored_rows(emb.frames, getattr(emb, "pictures", None))
    times = np.asarray(emb.times, np.float32)
    views = len(frames) // len(times) if len(times) else 1
    meta = np.full((len(frames), META_WIDTH), np.nan, np.float32)
    meta[:, 0], meta[:, 1] = np.tile(times, views), 0.0
    meta[: len(times), 1] = emb.attention
    profile = getattr(emb, "profile", None)
    if profile is not None and np.shape(profile) == (len(times), PROFILE):
        meta[:, PROFILE_COLUMNS] = np.tile(np.asarray(profile, np.float32), (views, 1))
    text = getattr(emb, "text", None)
    if text is not None and np.shape(text) == (len(times), SKETCH):
        meta[: len(times), TEXT_COLUMNS] = text
    return frames, meta, views


def _wide_meta(rows: np.ndarray) -> np.ndarray:
    """Meta rows [r, META_WIDTH]: an older segment's narrower rows padded with NaN (no
    brightness profile, no text), so readers and merges see one width."""
    if rows.shape[1] == META_WIDTH:
        return rows
    return np.pad(rows, ((0, 0), (0, META_WIDTH - rows.shape[1])), constant_values=np.nan)


def records_file(entry: dict) -> str:
    """The name of a segment's records file (its manifest entry names a rewritten one)."""
    return entry["files"]["records"].get("file", f"{entry['name']}.records.jsonl")


def _records_bytes(records: Sequence[VideoRecord]) -> bytes:
    return "".join(json.dumps(asdict(r)) + "\n" for r in records).encode()


def _read_codec(directory: Path, spec: dict, dim: int) -> Codec:
    data = verified_bytes(directory / spec["file"], spec) if spec["spec"] != FLOAT16 else None
    return Codec.from_bytes(spec["spec"], dim, data, bool(spec.get("unit")))


def _held_out_fidelity(spec: str, sample: np.ndarray, held: float = 0.2) -> float:
    """`_fidelity` on the last `held` of a training sample of a codec trained on the rest: what
    rows of the same footage get. On its own training sample a codec keeps more (PCAR768,SQ4
    on 4096 rows of the collection benchmark: 0.982 there, 0.94 on new videos of the same
    footage, which this estimates within 0.005)."""
    cut = int(len(sample) * (1 - held))
    return _fidelity(Codec.train(spec, sample[:cut]), sample[cut:])


def _fidelity(codec: Codec, rows: np.ndarray, sample: int = 4096) -> float:
    """How much of each row's similarity to itself its stored version keeps, x . decode(encode(x))
    / |x|^2, averaged over rows [n, d] (at most `sample` of them, spread evenly): as a search
    sees it, the cosine for unit rows through a `unit` codec."""
    if len(rows) > sample:
        rows = rows[np.linspace(0, len(rows) - 1, sample).astype(np.int64)]
    rows = np.asarray(rows, np.float32)
    back = codec.decode(codec.encode(rows))
    return float(np.mean(np.sum(rows * back, axis=1) / np.maximum(np.sum(rows * rows, axis=1), 1e-12)))


# ------------------------------------------------------------------------------ segments
class Segment:
    """One immutable group of videos on disk; `entry` is its manifest record."""

    def __init__(self, directory: Path, entry: dict, codec: Codec):
        self.directory, self.entry, self.codec = directory, entry, codec
        self.name = entry["name"]
        self.n, self.f = int(entry["videos"]), int(entry["frames"])
        files = entry["files"]
        # a format-1 index is one unchecked segment whose entries name its files
        self.offsets, self.videos, self.frames, self.meta = (
            CheckedArray(directory / files[k]["file"] if "file" in files[k] else self._path(k),
                         files[k] if "crc32" in files[k] else None) for k in ("offsets", "videos", "frames", "meta"))
        self.offsets = self.offsets.all()
        if len(self.offsets) != self.n + 1 or self.offsets[-1] != self.f or len(self.frames) != self.f:
            raise DamagedFileError(f"{directory}: segment {self.name}'s files disagree with the manifest; "
                                    "rebuild the index")
        self._records: list[VideoRecord] | None = None
        self._records_file = None
        if not entry.get("v1"):  # opened now: still readable if a writer merges this segment away
            path = self.directory / records_file(entry)
            try:
                self._records_file = open(path, "rb")
            except OSError as err:
                raise DamagedFileError(f"{path}: damaged index file (missing: {err.strerror}); "
                                        "rebuild the index") from err
        self.background: np.ndarray | None = None  # [f]
        self.video_background: np.ndarray | None = None  # [n]
        self.coords: np.ndarray | None = None  # [n, 2]
        derived = entry.get("derived") or {}
        with contextlib.suppress(KeyError):
            self.background = self._derived(derived["background"])
            self.video_background = self._derived(derived["video_background"])
        with contextlib.suppress(KeyError):
            self.coords = self._derived(derived["map"])
        self._faiss = self._stored_index("faiss")
        self._frame_index = self._stored_index("frames_faiss")
        self._decoded: np.ndarray | None = None  # a small segment's rows, decoded on first search

    def _stored_index(self, kind: str) -> faiss.Index | None:
        """The segment's stored FAISS index of this kind (memory-mapped), checked first: a
        flipped code would give wrong candidates. None when it has none."""
        spec = self.entry["files"].get(kind)
        if spec is None:
            return None
        path = self.directory / spec["file"]
        verified_bytes(path, spec)
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)

    def _path(self, kind: str) -> Path:
        return self.directory / f"{self.name}.{kind}.npy"

    def _derived(self, spec: dict) -> np.ndarray:
        return CheckedArray(self.directory / spec["file"], spec if "crc32" in spec else None).all()

    @property
    def records(self) -> list[VideoRecord]:
        if self._records is None:
            spec = self.entry["files"]["records"]
            if self.entry.get("v1"):
                self._records = [VideoRecord(**r) for r in spec["inline"]]
            else:
                text = verified_bytes(self.directory / records_file(self.entry), spec, self._records_file).decode()
                self._records = [VideoRecord(**json.loads(line)) for line in text.splitlines()]
        return self._records

    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def replace_records(self, records: list[VideoRecord], spec: dict) -> None:
        """Use `records`, just written to the file `spec` names, from now on."""
        old = self._records_file
        self._records, self.entry["files"]["records"] = records, spec
        self._records_file = open(self.directory / spec["file"], "rb")
        if old is not None:
            old.close()

    def meta_rows(self, spans: list[tuple[int, int]]) -> np.ndarray:
        """float32 [rows, META_WIDTH]: the meta of these row spans (`_wide_meta`)."""
        return _wide_meta(self.meta.take(spans))

    def video_vectors(self, local: np.ndarray | None = None) -> np.ndarray:
        """Decoded float32 video vectors [len(local) or n, d]."""
        if local is None:
            return self.codec.decode(self.videos.all())
        return self.codec.decode(self.videos.take([(i, i + 1) for i in local]))

    def faiss_index(self) -> faiss.Index:
        """The segment's video-level index: the stored IVF-PQ of a large segment, else an
        exact one built from the decoded video vectors on first use."""
        if self._faiss is None:
            self._faiss = faiss.IndexFlatIP(self.codec.dim)
            self._faiss.add(np.ascontiguousarray(self.video_vectors(), np.float32))
        return self._faiss

    def candidates(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(local ids, approximate scores) of the k best videos by cosine of video vectors,
        for each row of q [d] or its looks [L, d] (so a video may come back once per look; a
        variant look's scores less VARIANT_MARGIN, as `similarity.cosine` counts them)."""
        k = min(k, self.n)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores, ids = self.faiss_index().search(np.ascontiguousarray(np.atleast_2d(q), np.float32), k)
        scores -= look_margins(len(scores))[:, None]
        keep = ids >= 0  # [L, k]: each of the query's looks
        return ids[keep].astype(np.int64), scores[keep]

    def frame_neighbours(self, rows: np.ndarray, k: int, decoded: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """(inner products float32 [R, k], local stored-row ids int64 [R, k], -1 where none)
        of the k stored rows (whole frames and inner pictures) nearest each query row of
        rows [R, d]: the stored IVF index of a segment of many rows (built now, in memory, for
        one written before there were frame indexes), else exact over the decoded rows
        (`decoded`, when the caller holds them)."""
        k = min(k, self.f)
        rows = np.ascontiguousarray(rows, np.float32)
        if k <= 0:
            return np.zeros((len(rows), 0), np.float32), np.zeros((len(rows), 0), np.int64)
        if self._frame_index is None and self.f > FRAME_FLAT_ROWS:
            self._frame_index = _ivf(self.f, lambda a, b: self.codec.decode(self.frames.rows(a, b)),
                                     rows=frame_index_rows(self.offsets, [r.views for r in self.records]))
        if self._frame_index is not None:
            sims, ids = self._frame_index.search(rows, k)
            return sims, ids.astype(np.int64)
        if decoded is None:
            if self._decoded is None:
                self._decoded = np.ascontiguousarray(self.codec.decode(self.frames.all()), np.float32)
            decoded = self._decoded
        sims, ids = faiss.knn(rows, np.ascontiguousarray(decoded, np.float32), k, faiss.METRIC_INNER_PRODUCT)
        return sims, ids.astype(np.int64)


# ------------------------------------------------------------------------------ the index
class Records(Sequence):
    """The live videos' records by position, loaded per segment on first use."""

    def __init__(self, index: "VideoIndex"):
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, pos):
        if isinstance(pos, slice):
            return [self[i] for i in range(*pos.indices(len(self)))]
        s, i = self._index._locate(self._index._live[pos])
        return self._index.segments[s].records[i]


class VideoIndex:
    """An opened index. Positions 0..N-1 number its live videos, segment by segment."""

    def __init__(self, manifest: dict, directory: Path | None, segments: list[Segment], codec: Codec,
                 codecs: dict[str, Codec] | None = None):
        self.manifest, self.directory, self.segments, self.codec = manifest, directory, segments, codec
        # codecs other than the main one, by the name a segment entry gives ("float16": footage
        # that no trained codec fits, waiting for enough frames to train one)
        self.codecs = codecs if codecs is not None else {FLOAT16: Codec.float16(codec.dim)}
        self._writable = False
        self._reindex()

    def _reindex(self) -> None:
        self._video_start = np.concatenate([[0], np.cumsum([s.n for s in self.segments])]).astype(np.int64)
        self._frame_start = np.concatenate([[0], np.cumsum([s.f for s in self.segments])]).astype(np.int64)
        dead = np.zeros(int(self._video_start[-1]), bool)
        tomb = self.manifest.get("tombstones", {})
        for s, seg in enumerate(self.segments):
            rows = tomb.get(seg.name, [])
            if rows:
                dead[self._video_start[s] + np.asarray(rows, np.int64)] = True
        self._dead = dead
        self._live = np.flatnonzero(~dead)
        counts = np.concatenate([np.diff(s.offsets) for s in self.segments]) if self.segments else \
            np.zeros(0, np.int64)
        self._live_frame_mask = np.repeat(~dead, counts)  # [physical frames]
        self._row_start = np.concatenate(  # [physical videos + 1]: each video's first global row
            [s.offsets[:-1] + self._frame_start[i] for i, s in enumerate(self.segments)]
            + [self._frame_start[-1:]]).astype(np.int64)
        self._position: dict[str, int] | None = None
        self._frames_cache: np.ndarray | None = None
        self._bg_cache: tuple[np.ndarray, np.ndarray] | None = None
        self._query_ref: tuple[np.ndarray, np.ndarray] | None = None
        self.records = Records(self)

    # ---------------------------------------------------------------- construction
    @classmethod
    def new(cls, model_id: str, backbone: str, pooling: str, dim: int, sample_fps: float,
            root: str | None = None, model_path: str | None = None, tca: bool = True,
            codec: str | None = None, distinctive: bool | None = None, layout_dim: int = 0) -> "VideoIndex":
        """An empty index for this model, not yet on disk (see `writing`). distinctive:
        whether corpus-aware cosine pools the videos by distinctiveness (default: without
        TCA; `ModelBundle.distinctive`); layout_dim: how many of each frame's `dim` values
        are its layout (`engine.layout`; `ModelBundle.layout_dim`)."""
        manifest = {
            "format_version": FORMAT_VERSION,
            "backbone": backbone,
            "pooling": pooling,
            "model_id": model_id,
            "model_path": model_path,
            "tca": tca,  # False: built with the model's TCA replaced by mean pooling (index --no-tca)
            "distinctive": (not tca) if distinctive is None else bool(distinctive),
            "dim": dim,
            "layout_dim": int(layout_dim),
            "sample_fps": sample_fps,
            "root": root,
            "generation": 0,
            "background_k": DEFAULT_K,
            "background_skip": DEFAULT_SKIP,
            "codec": {"spec": FLOAT16, "train": codec or default_spec(dim), "train_frames": TRAIN_FRAMES},
            "exact_frames": EXACT_FRAMES,
            "reference_frames": REFERENCE_FRAMES,
            "segments": [],
            "tombstones": {},
        }
        return cls(manifest, None, [], Codec.float16(dim))

    @classmethod
    def open(cls, directory: str | Path) -> "VideoIndex":
        """Open an index directory (large files memory-mapped, checked as they are read).
        Raises IndexFileError when it cannot be used."""
        directory = Path(directory)
        for attempt in range(3):  # a writer may replace the manifest and drop old files meanwhile
            manifest = _read_manifest(directory)
            try:
                return cls._from_manifest(directory, manifest)
            except DamagedFileError:
                if attempt == 2 or _read_manifest(directory).get("generation") == manifest.get("generation"):
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _from_manifest(cls, directory: Path, manifest: dict) -> "VideoIndex":
        if manifest.get("format_version") == 1:
            return cls._from_v1(directory, manifest)
        if manifest.get("format_version") not in READS:
            raise IndexFileError(
                f"{directory}: index format {manifest.get('format_version')} is not supported "
                f"(this engine reads formats {READS[0]} to {READS[-1]}); update the engine "
                "(pip install -U, or git pull) or rebuild the index")
        dim = int(manifest["dim"])
        try:
            codec = _read_codec(directory, manifest["codec"], dim)
            codecs = {FLOAT16: Codec.float16(dim)}
            codecs |= {name: _read_codec(directory, spec, dim) for name, spec in manifest.get("codecs", {}).items()}
            segments = [Segment(directory, e, codecs[e["codec"]] if "codec" in e else codec)
                        for e in manifest["segments"]]
        except DamagedFileError as err:
            raise DamagedFileError(str(err)) from None
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise DamagedFileError(f"{directory}: index files damaged or missing ({err}); rebuild it") from err
        return cls(manifest, directory, segments, codec, codecs)

    @classmethod
    def _from_v1(cls, directory: Path, manifest: dict) -> "VideoIndex":
        gen = manifest["generation"]
        records = manifest.pop("videos")
        n = len(records)
        files = {k: {"file": f"{k}-{gen}.npy"} for k in ("offsets", "videos", "frames")}
        files["meta"] = {"file": f"frame_meta-{gen}.npy"}
        files["records"] = {"inline": records}
        try:
            index = faiss.read_index(str(directory / f"faiss-{gen}.index"))
            offsets = np.load(directory / f"offsets-{gen}.npy")
            entry = {"name": f"v1-{gen}", "videos": n, "frames": int(offsets[-1]), "files": files, "v1": True}
            derived = {}
            if (directory / f"background-{gen}.npy").is_file():
                derived = {"background": {"file": f"background-{gen}.npy"},
                           "video_background": {"file": f"video_background-{gen}.npy"}}
            if (directory / f"map-{gen}.npy").is_file():
                derived["map"] = {"file": f"map-{gen}.npy"}
            entry["derived"] = derived
            seg = Segment(directory, entry, Codec.float16(int(manifest["dim"])))
        except (OSError, ValueError, RuntimeError, DamagedFileError) as err:
            raise IndexFileError(f"{directory}: index files damaged or missing ({err}); rebuild it") from err
        if index.ntotal != n or len(seg.videos) != n:
            raise IndexFileError(f"{directory}: index files disagree with the manifest; rebuild it")
        seg._faiss = index
        manifest.update(segments=[entry], tombstones={}, codec={"spec": FLOAT16, "train": default_spec(int(manifest["dim"])),
                                                                 "train_frames": TRAIN_FRAMES})
        return cls(manifest, directory, [seg], seg.codec)

    def use_device(self, device: str) -> str:
        """Move the segments' FAISS indexes to the GPU when device is cuda and FAISS was built
        with GPU support (requirements-gpu.txt); returns where they run."""
        if not str(device).startswith("cuda") or not hasattr(faiss, "StandardGpuResources"):
            return "cpu"
        if faiss.get_num_gpus() < 1:
            return "cpu"
        self._gpu_resources = faiss.StandardGpuResources()
        for seg in self.segments:
            seg._faiss = faiss.index_cpu_to_gpu(self._gpu_resources, 0, seg.faiss_index())
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
        return len(self._live)

    @property
    def num_frames(self) -> int:
        """Frames of the live videos."""
        return int(self._live_frame_mask.sum())

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def _locate(self, phys: int) -> tuple[int, int]:
        s = int(np.searchsorted(self._video_start, phys, side="right") - 1)
        return s, int(phys - self._video_start[s])

    def _span(self, pos: int) -> tuple[int, int]:
        """Global frame rows [lo, hi) of the video at live position pos."""
        s, i = self._locate(int(self._live[pos]))
        seg = self.segments[s]
        base = int(self._frame_start[s])
        return base + int(seg.offsets[i]), base + int(seg.offsets[i + 1])

    def position(self, video_id: str) -> int:
        if self._position is None:
            self._position = {}
            for s, seg in enumerate(self.segments):
                for i, vid in enumerate(seg.ids()):
                    phys = int(self._video_start[s]) + i
                    if not self._dead[phys]:
                        self._position[vid] = int(np.searchsorted(self._live, phys))
        try:
            return self._position[video_id]
        except KeyError:
            raise UnknownVideoError(f"no video with id {video_id!r} in the index {self.directory}") from None

    def __contains__(self, video_id: str) -> bool:
        try:
            self.position(video_id)
            return True
        except UnknownVideoError:
            return False

    def _gather(self, spans: list[tuple[int, int]], what: str = "frames") -> np.ndarray:
        """Rows of global frame spans, in order, from the segments' `what` arrays: "frames"
        decoded to float32 [rows, d] (one decode call per segment: a FAISS decode has a
        fixed cost per call), "meta" as stored ([rows, META_WIDTH], NaN where an older
        segment kept less)."""
        decode = what == "frames"
        held = self._held_rows() if decode else None
        if held is not None:
            return np.concatenate([held[a:b] for a, b in spans]) if spans else np.zeros((0, self.dim), np.float32)
        width = self.dim if decode else META_WIDTH
        if not spans:
            return np.zeros((0, width), np.float32)
        seg_of = np.searchsorted(self._frame_start, [lo for lo, _ in spans], side="right") - 1
        lengths = np.array([hi - lo for lo, hi in spans])
        start = np.concatenate([[0], np.cumsum(lengths)])
        out = np.empty((int(start[-1]), width), np.float32)
        for s in np.unique(seg_of):
            base, seg = int(self._frame_start[s]), self.segments[s]
            which = np.flatnonzero(seg_of == s)
            local = [(spans[j][0] - base, spans[j][1] - base) for j in which]
            rows = seg.codec.decode(seg.frames.take(local)) if decode else seg.meta_rows(local)
            at = 0
            for j in which:
                out[start[j] : start[j + 1]] = rows[at : at + lengths[j]]
                at += lengths[j]
        return out

    def _held_rows(self) -> np.ndarray | None:
        """Every stored row decoded, float32 [F, d], for an index of up to CACHE_FRAMES rows
        (decoded on first use and kept); None for a larger one."""
        if self._frames_cache is None and self._frame_start[-1] <= CACHE_FRAMES:
            self._frames_cache = np.concatenate(
                [s.codec.decode(s.frames.all()) for s in self.segments]
            ) if self.segments else np.zeros((0, self.dim), np.float32)
        return self._frames_cache

    def video_frames(self, position: int, pictures: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frames float32 [T, d], times float32 [T] s, attention float32 [T]) of one video's
        whole frames; with `pictures`, frames [V, T, d] of the whole frames (view 0) and
        each inner picture stored with them."""
        lo, hi = self._span(position)
        views = max(int(self.records[position].views), 1)
        meta = self._whole_meta(position)
        t = len(meta)
        with one_thread():
            frames = self._gather([(lo, hi) if pictures else (lo, lo + t)])
        return (frames.reshape(views, t, -1) if pictures else frames), meta[:, 0].copy(), meta[:, 1].copy()

    def stored_video(self, position: int) -> "StoredVideo":
        """What one video stores, decoded, in the shape `append` takes: a file with the same
        bytes under another name is added from it without being embedded again."""
        frames, times, attention = self.video_frames(position, pictures=True)
        return StoredVideo(frames=frames[0], pictures=frames[1:] if len(frames) > 1 else None,
                           video=self.video_vectors(np.array([position]))[0], times=times, attention=attention,
                           profile=self.video_profile(position), text=self.video_text(position))

    def _whole_meta(self, position: int) -> np.ndarray:
        """float32 [T, META_WIDTH]: the meta of one video's whole frames."""
        lo, hi = self._span(position)
        t = (hi - lo) // max(int(self.records[position].views), 1)
        return self._gather([(lo, lo + t)], "meta")

    def video_profile(self, position: int) -> np.ndarray | None:
        """float32 [T, P]: one video's brightness between its samples (`engine.cuts`), or None
        where it was indexed before profiles were kept."""
        profile = self._whole_meta(position)[:, PROFILE_COLUMNS]
        return profile if len(profile) and np.isfinite(profile).all() else None

    def video_text(self, position: int, pictures: bool = False) -> np.ndarray | None:
        """float32 [T, SKETCH]: the text sketches of one video's frames (`engine.text`, NaN
        rows: no text), or None where its text was not read; with `pictures`, [V * T, SKETCH]
        of every row it stores (its inner pictures' rows NaN: their words are not read)."""
        if not self.text_model:
            return None
        if pictures:
            return self.text_rows([self._span(position)])
        return np.ascontiguousarray(self._whole_meta(position)[:, TEXT_COLUMNS])

    @property
    def text_model(self) -> str | None:
        """The model this index's frames were read with (`engine.text.model_identity`), or
        None where text was not read: then a query is compared without text."""
        return self.manifest.get("text_model")

    def text_rows(self, spans: list[tuple[int, int]]) -> np.ndarray:
        """float32 [rows, SKETCH]: the text sketches of rows of global frame spans (NaN: none)."""
        return np.ascontiguousarray(self._gather(spans, "meta")[:, TEXT_COLUMNS])

    def video_vectors(self, positions: np.ndarray | None = None) -> np.ndarray:
        """float32 [len(positions) or N, d] decoded video embeddings of live positions."""
        positions = np.arange(len(self)) if positions is None else np.asarray(positions, np.int64)
        out = np.zeros((len(positions), self.dim), np.float32)
        phys = self._live[positions]
        seg_of = np.searchsorted(self._video_start, phys, side="right") - 1
        for s in np.unique(seg_of):
            sel = seg_of == s
            out[sel] = self.segments[s].video_vectors(phys[sel] - self._video_start[s])
        return out

    def source_path(self, position: int) -> Path:
        """Absolute path of the video file, resolved against the recorded root."""
        p = Path(self.records[position].path)
        if p.is_absolute():
            return p
        return (self.located("root") or self.directory or Path(".")).joinpath(p).resolve()

    def located(self, key: str) -> Path | None:
        """Where the manifest's `root` (the video folder) or `model_path` points: relative to
        the index folder, so a folder moved with its videos keeps working; when that is not
        there (the index was moved or copied alone) and the absolute path recorded at build
        time (`KEY_absolute`) is, that one. None when the manifest names none."""
        value = self.manifest.get(key)
        if not value:
            return None
        path = Path(value)
        if not path.is_absolute() and self.directory is not None:
            path = (self.directory / path).resolve()
        moved = self.manifest.get(f"{key}_absolute")
        if not path.exists() and moved and Path(moved).exists():
            return Path(moved)
        return path

    # ---------------------------------------------------------------- derived state
    @property
    def background(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame backgrounds float32 [F], video backgrounds float32 [N]) of the live videos
        (computed now for segments that have none stored)."""
        if self._bg_cache is None:
            self._fill_derived(persist=False)
            if not self.segments:
                self._bg_phys = np.zeros(0, np.float32)
                self._bg_cache = (np.zeros(0, np.float32), np.zeros(0, np.float32))
                return self._bg_cache
            self._bg_phys = np.concatenate([s.background for s in self.segments])
            vb = np.concatenate([s.video_background for s in self.segments])
            self._bg_cache = (self._bg_phys[self._live_frame_mask], vb[self._live])
        return self._bg_cache

    def _row_backgrounds(self) -> np.ndarray:
        """float32 [physical rows]: every stored row's background, dead videos' rows
        included, in the segments' row order (filled with `background`)."""
        self.background
        return self._bg_phys

    def frame_backgrounds(self, position: int) -> np.ndarray:
        """float32 [V, T]: the backgrounds of one video's stored rows, whole frames (view 0)
        and inner pictures (`video_frames(position, pictures=True)`)."""
        lo, hi = self._span(position)
        return self._row_backgrounds()[lo:hi].reshape(max(int(self.records[position].views), 1), -1).copy()

    @property
    def distinctive(self) -> bool:
        """Whether corpus-aware cosine pools each video's frames by their distinctiveness
        (`engine.background.distinctive_pooling`): indexes built without TCA or with a TCA
        trained to be pooled so; another TCA model's video vector is its own. (Indexes from
        before this was recorded: without TCA.)"""
        return bool(self.manifest.get("distinctive", self.manifest.get("tca") is False))

    @property
    def layout_dim(self) -> int:
        """How many of each frame's values are its layout (`engine.layout`), which video
        vectors leave out (indexes from before layouts: none)."""
        return int(self.manifest.get("layout_dim", 0))

    def query_background(self, frames: np.ndarray) -> np.ndarray:
        """How much each frame of a query looks like the collection (`engine.background`):
        frames [T, d] (or looks [L, T, d]) -> float32 [T] (or [L, T]). Measured against
        every live video while the collection is small, else against the fixed reference
        sample, as the indexed frames' own backgrounds are; the query is none of them."""
        if self._query_ref is None:
            if self._exact():
                spans = [self._span(p) for p in range(len(self))]
                ref = (self._gather(spans),
                       np.concatenate([[0], np.cumsum([b - a for a, b in spans])]).astype(np.int64))
            else:
                r = self._reference(persist=False)
                ref = (np.asarray(r["frames"], np.float32), np.asarray(r["offsets"], np.int64))
            self._query_ref = ref
        k = int(self.manifest.get("background_k", DEFAULT_K))
        skip = int(self.manifest.get("background_skip", DEFAULT_SKIP))
        with one_thread():
            return query_background(frames, self._query_ref, k, skip)

    def distinctive_vectors(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each live video's views pooled by their distinctiveness in the collection (its
        stored frame backgrounds; `background.distinctive_views`): (float32 [sum(counts), d],
        a video's whole frames, each window of them, then each inner picture; int64
        [len(positions)] views per video; float32 [sum(counts)], what each view pays), as
        `similarity.cosine_views` takes them."""
        row_bg = self._row_backgrounds()
        positions = [int(p) for p in np.asarray(positions, np.int64)]
        spans = [self._span(p) for p in positions]
        offsets = np.concatenate([[0], np.cumsum([b - a for a, b in spans])]).astype(np.int64)
        bg = np.concatenate([row_bg[a:b] for a, b in spans]) if spans else np.zeros(0, np.float32)
        views = [self.records[p].views for p in positions]
        return collection_views(self._gather(spans), offsets, bg, views, float(self.manifest["sample_fps"]),
                                self.layout_dim)

    def map_coords(self) -> np.ndarray:
        """float32 [N, 2] map positions of the live videos."""
        if not self.segments:
            return np.zeros((0, 2), np.float32)
        if any(s.coords is None for s in self.segments):
            self._fill_derived(persist=False)
        return np.concatenate([s.coords for s in self.segments])[self._live]

    def _exact(self) -> bool:
        """Derived state over the whole collection (small), or against the reference sample."""
        return "reference" not in self.manifest and getattr(self, "_ref", None) is None and \
            int(self._frame_start[-1]) <= int(self.manifest.get("exact_frames", EXACT_FRAMES))

    def _invalidate_derived(self) -> None:
        for seg in self.segments:
            seg.background = seg.video_background = seg.coords = None
            seg.entry["derived"] = None
        self._bg_cache = None

    def _fill_derived(self, persist: bool) -> None:
        """Compute the missing derived state: over every live video in exact mode, else each
        pending segment's against the reference sample. persist: write it (a writer)."""
        k = int(self.manifest.get("background_k", DEFAULT_K))
        skip = int(self.manifest.get("background_skip", DEFAULT_SKIP))
        pending = [s for s in self.segments if s.background is None or s.coords is None]
        if not pending:
            return
        self._bg_cache = None
        if self._exact():
            self._invalidate_derived()
            n = len(self)
            spans = [self._span(p) for p in range(n)]
            frames = self._gather(spans)
            offsets = np.concatenate([[0], np.cumsum([b - a for a, b in spans])]).astype(np.int64)
            videos = self.video_vectors()
            from .collection_map import fit_map

            text = self.text_rows(spans) if self.text_model else None
            fb = frame_background(frames, offsets, k, skip, text=text)
            vb, coords = video_background(videos, k), fit_map(videos)
            # tombstoned videos are not part of the collection: they get zeros
            phys_fb = np.zeros(int(self._frame_start[-1]), np.float32)
            phys_vb = np.zeros(len(self._dead), np.float32)
            phys_map = np.zeros((len(self._dead), 2), np.float32)
            phys_fb[self._live_frame_mask], phys_vb[self._live], phys_map[self._live] = fb, vb, coords
            for i, s in enumerate(self.segments):
                fa, fz = int(self._frame_start[i]), int(self._frame_start[i + 1])
                va, vz = int(self._video_start[i]), int(self._video_start[i + 1])
                s.background, s.video_background, s.coords = phys_fb[fa:fz], phys_vb[va:vz], phys_map[va:vz]
            pending = list(self.segments)
        else:
            fresh = "reference" not in self.manifest and getattr(self, "_ref", None) is None
            ref = self._reference(persist)
            if fresh:  # every segment is measured against the new reference
                self._invalidate_derived()
                pending = list(self.segments)
            where = {vid: j for j, vid in enumerate(ref["ids"])}
            ref_text = ref.get("text") if self.text_model else None  # an older reference has none
            for s in pending:
                same = np.array([where.get(vid, -1) for vid in s.ids()], np.int64)
                vids = s.video_vectors()
                s.background = np.empty(s.f, np.float32)
                step = max(1, (1 << 16) * s.n // max(s.f, 1))  # about 65k frames decoded at a time
                for va in range(0, s.n, step):
                    vz = min(va + step, s.n)
                    lo, hi = int(s.offsets[va]), int(s.offsets[vz])
                    text = s.meta_rows([(lo, hi)])[:, TEXT_COLUMNS] if ref_text is not None else None
                    s.background[lo:hi] = frame_background(
                        s.codec.decode(s.frames.rows(lo, hi)), s.offsets[va : vz + 1] - lo, k, skip,
                        reference=(ref["frames"], ref["offsets"]), same=same[va:vz], text=text,
                        reference_text=ref_text)
                s.video_background = video_background(vids, k, reference=ref["videos"], same=same)
                s.coords = self._place(vids, ref)
        if persist:
            gen = int(self.manifest["generation"]) + 1
            for s in pending:
                s.entry["derived"] = {
                    kind: {"file": f"{s.name}.{kind}-{gen}.npy",
                           **write_array(self.directory / f"{s.name}.{kind}-{gen}.npy", arr)}
                    for kind, arr in (("background", s.background), ("video_background", s.video_background),
                                      ("map", s.coords))}

    def _reference(self, persist: bool) -> dict:
        """The fixed background reference: a random sample of whole live videos, up to
        `reference_frames` frames (ids, frames, offsets, video vectors, and their own UMAP
        map, on which every other video is placed), drawn once when the collection
        outgrows exact mode."""
        if getattr(self, "_ref", None) is not None:
            return self._ref
        spec = self.manifest.get("reference")
        if spec is not None:
            data = np.load(io.BytesIO(verified_bytes(self.directory / spec["file"], spec)))
            self._ref = {k: data[k] for k in data.files}
            return self._ref
        from .collection_map import fit_map

        budget = int(self.manifest.get("reference_frames", REFERENCE_FRAMES))
        chosen, total = [], 0
        for p in np.random.default_rng(0).permutation(len(self)):
            lo, hi = self._span(int(p))
            if total + hi - lo > budget and chosen:
                break
            chosen.append(int(p))
            total += hi - lo
        chosen.sort()
        spans = [self._span(p) for p in chosen]
        videos = self.video_vectors(np.array(chosen, np.int64))
        self._ref = {"ids": np.array([self.records[p].id for p in chosen]),
                     "frames": self._gather(spans).astype(np.float16),
                     "offsets": np.concatenate([[0], np.cumsum([b - a for a, b in spans])]).astype(np.int64),
                     "videos": videos, "coords": fit_map(videos), "text": self.text_rows(spans)}
        if persist:
            buf = io.BytesIO()
            np.savez(buf, **self._ref)
            name = f"reference-{int(self.manifest['generation']) + 1}.npz"
            self.manifest["reference"] = {"file": name, **write_bytes(self.directory / name, buf.getvalue())}
        return self._ref

    @staticmethod
    def _place(vids: np.ndarray, ref: dict) -> np.ndarray:
        """Map positions of videos [n, d] among the reference's (engine.collection_map.place)."""
        from .collection_map import place

        if not len(vids):
            return np.zeros((0, 2), np.float32)
        sims = vids @ np.asarray(ref["videos"], np.float32).T
        return np.stack([place(row, ref["coords"]) for row in sims]).astype(np.float32)

    # ---------------------------------------------------------------- search
    def search(
        self,
        query_frames: np.ndarray,
        query_video: np.ndarray,
        k: int = 10,
        measure: Measure | str = Measure.CHAMFER,
        candidates: int = 100,
        normalize: bool = True,
        query_text: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> list[Hit]:
        """Top-k videos for a query, best first. k >= len(index) ranks the whole index.

        query_frames [Tq, d], query_video [d]; or the query's looks, itself then its variants
        (`engine.variants`): [L, Tq, d] and [L, d], each query frame (and the video vector)
        counting with its best look. The `candidates` best videos by cosine of the video
        vectors, of any look (all videos when the index is smaller), are re-ranked exactly by
        the measure, minus the backgrounds when `normalize` (cosine: the video's; chamfer:
        each frame's). Normalised cosine in an index without TCA compares video vectors
        pooled by distinctiveness, one per view: a video's whole frames, each window of a
        few seconds of them and each inner picture (`distinctive_vectors`,
        `query_background`, `similarity.cosine_views`). query_text: float32 [Tq, SKETCH], the
        text on the query's frames (`engine.text`, read with this index's `text_model`): the
        chamfer measures' re-rank lowers the cells of frames that disagree in it; or a
        function that reads the frames marked in bool [Tq] and returns those sketches (NaN
        for frames not read; `engine.text.KeptFrames.read`): only the frames whose text can
        change the re-rank are read (`similarity.text_deciding_frames`)."""
        with one_thread():
            return self._search(query_frames, query_video, k, Measure(measure), candidates, normalize,
                                query_text)

    def _search(self, query_frames: np.ndarray, query_video: np.ndarray, k: int, measure: Measure,
                candidates: int, normalize: bool,
                query_text: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None) -> list[Hit]:
        n = len(self)
        if n == 0 or k <= 0:
            return []
        k = min(k, n)
        q = np.ascontiguousarray(np.atleast_2d(query_video), np.float32)  # [L, d]
        n_cand = max(k, min(candidates, n))
        if n_cand >= n:
            pos = np.arange(n)
        elif measure == Measure.COSINE and not (normalize and self.distinctive):
            pos = self._candidates(q, n_cand)
        else:  # a copy inside a picture or a stretch of a long video: its frames find it
            pos = self._frame_candidates(np.asarray(query_frames, np.float32), q, n_cand, normalize)
        if measure == Measure.COSINE:
            if normalize and self.distinctive:
                looks = np.asarray(query_frames, np.float32)
                scores = cosine_views(distinctive_pooling(looks, self.query_background(looks), self.layout_dim),
                                      *self.distinctive_vectors(pos))
            else:
                scores = cosine(q, self.video_vectors(pos))
            if normalize:
                scores = scores - self.background[1][pos]
        else:
            spans = [self._span(int(p)) for p in pos]
            offsets = np.concatenate([[0], np.cumsum([b - a for a, b in spans])]).astype(np.int64)
            bg = None
            if normalize:
                row_bg = self._row_backgrounds()
                bg = np.concatenate([row_bg[a:b] for a, b in spans])
            views = np.array([self.records[int(p)].views for p in pos], np.int64)
            frames = self._gather(spans)
            symmetric = measure == Measure.SYMMETRIC_CHAMFER
            text = None
            if query_text is not None and self.text_model:
                rows_text = self.text_rows(spans)
                if callable(query_text):
                    has = np.isfinite(rows_text).any(axis=1)
                    # the symmetric measure's column maxima can turn on any query frame
                    need = (np.full(np.shape(query_frames)[-2], has.any()) if symmetric else text_deciding_frames(
                        query_frames, frames, offsets, has, background=bg, views=views))
                    query_text = query_text(need)
                if np.isfinite(query_text).any():
                    text = (np.asarray(query_text, np.float32), rows_text)
            scores = chamfer_many(query_frames, frames, offsets, symmetric, background=bg, views=views,
                                  text=text)
        order = np.argsort(-scores, kind="stable")[:k]
        return [Hit(int(pos[i]), float(scores[i])) for i in order]

    def _candidates(self, q: np.ndarray, n_cand: int) -> np.ndarray:
        """Live positions of the n_cand best videos by (approximate) video cosine of the
        best of the query's looks q [L, d]."""
        phys, scores = [], []
        tomb = self.manifest.get("tombstones", {})
        for s, seg in enumerate(self.segments):
            ids, sc = seg.candidates(q, n_cand + len(tomb.get(seg.name, [])))
            phys.append(ids + self._video_start[s])
            scores.append(sc)
        phys, scores = np.concatenate(phys), np.concatenate(scores)
        alive = ~self._dead[phys]
        phys, scores = phys[alive], scores[alive]
        phys = phys[np.argsort(-scores, kind="stable")]
        first = np.unique(phys, return_index=True)[1]  # a video once, at its best look
        best = phys[np.sort(first)][:n_cand]
        return np.sort(np.searchsorted(self._live, best))

    def _frame_candidates(self, query_frames: np.ndarray, q: np.ndarray, n_cand: int, normalize: bool
                          ) -> np.ndarray:
        """Live positions of the n_cand best videos by chamfer over the cells the query's rows
        fetch: each row of query_frames [Tq, d] (or its looks [L, Tq, d]) fetches its
        FRAME_NEIGHBOURS nearest stored rows in every segment (of at most FRAME_QUERY_ROWS
        rows: a long query's frames are strided); a fetched cell counts as the
        re-rank counts it (a variant look's less VARIANT_MARGIN, less the stored row's
        background when `normalize`), a video scores the sum over query frames of its best
        positive cell. Videos found this way come first; the best by video cosine (`q`
        [L, d]) fill what is left of the list."""
        looks = query_frames if query_frames.ndim == 3 else query_frames[None]
        n_looks, every, d = looks.shape
        per_look = max(1, FRAME_QUERY_ROWS // n_looks)
        looks = looks[:, :: max(1, -(-every // per_look))]  # every ceil(Tq / per_look)-th frame
        t = looks.shape[1]
        rows = looks.reshape(-1, d)
        less = np.repeat(look_margins(n_looks), t)[:, None]
        frame_of = np.tile(np.arange(t, dtype=np.int64), n_looks)[:, None]
        row_bg = self._row_backgrounds() if normalize else None
        all_rows = self._held_rows()
        keys, cells = [], []
        for s, seg in enumerate(self.segments):
            base = int(self._frame_start[s])
            held = all_rows[base : base + seg.f] if all_rows is not None else None
            sims, ids = seg.frame_neighbours(rows, FRAME_NEIGHBOURS, held)
            found = ids >= 0
            glob = np.where(found, ids, 0) + base
            cell = sims - less - (row_bg[glob] if row_bg is not None else 0.0)
            phys = np.searchsorted(self._row_start, glob, side="right") - 1
            keep = found & (cell > 0) & ~self._dead[phys]
            keys.append((np.broadcast_to(frame_of, cell.shape)[keep] * len(self._dead) + phys[keep]))
            cells.append(cell[keep])
        keys, cells = np.concatenate(keys), np.concatenate(cells).astype(np.float64)
        chosen = np.zeros(0, np.int64)
        if len(keys):
            uniq, inverse = np.unique(keys, return_inverse=True)
            best = np.full(len(uniq), -np.inf)
            np.maximum.at(best, inverse, cells)  # a query frame's best cell in each video
            score = np.bincount(uniq % len(self._dead), weights=best, minlength=len(self._dead))
            found = np.flatnonzero(score > 0)
            chosen = found[np.argsort(-score[found], kind="stable")][:n_cand]
        chosen = np.searchsorted(self._live, chosen)
        if len(chosen) < n_cand:  # no fetched evidence for the rest: the video vectors decide
            extra = self._candidates(q, n_cand)
            extra = extra[~np.isin(extra, chosen)][: n_cand - len(chosen)]
            chosen = np.concatenate([chosen, extra])
        return np.sort(chosen)

    # ---------------------------------------------------------------- writing
    @classmethod
    @contextlib.contextmanager
    def writing(cls, directory: str | Path, new: "VideoIndex | None" = None) -> Iterator["VideoIndex"]:
        """Open (or create from `new`) the index at `directory` for writing, holding its
        lock: a second writer gets a clear error naming this process. Nothing is written
        before the first write (a format-1 index is converted to a segment then)."""
        directory = Path(directory)
        with folder_lock(directory):
            if (directory / MANIFEST).is_file():
                index = cls.open(directory)
            elif new is not None:
                index = new
                index.directory = directory
                index._writable = True
                index._commit()
            else:
                raise IndexFileError(f"{directory}: not an index (no {MANIFEST})")
            index._writable = True
            try:
                yield index
            finally:
                index._writable = False

    def _require_writable(self) -> None:
        """Every write starts here: inside `writing`, and a format-1 index converted first."""
        if not self._writable or self.directory is None:
            raise IndexFileError("write to an index inside `with VideoIndex.writing(directory):`")
        if self.manifest.get("format_version") == 1:
            self._convert_v1()

    def append(self, records: list[VideoRecord], embeddings: list, derive: bool = False) -> None:
        """Add videos (VideoEmbedding-like: frames [T, d], video [d], times [T] s, attention
        [T]) as a new segment, and commit: O(new videos) work and bytes. Their ids must not
        be in the index (`remove` an old version first). derive: also compute and store the
        derived state now (else the end of the run does, or readers compute it)."""
        self._require_writable()
        if not records:
            return
        rows = [_rows(e) for e in embeddings]
        frames = np.concatenate([r[0] for r in rows])
        videos = np.stack([np.asarray(e.video, np.float32).reshape(-1) for e in embeddings])
        meta = np.concatenate([r[1] for r in rows])
        lengths = [len(r[0]) for r in rows]
        for rec, (_, _, views) in zip(records, rows):
            rec.views = views  # the layout just written
        merge = self._maybe_train_codec(frames)
        self._write_segment(list(records), videos, frames, meta, lengths, merge,
                            codec_name=None if merge else self._fitting_codec(frames))
        del frames, videos, meta  # written: not held through the merges below
        self._merge_tiers()
        self._maybe_train_drift_codec()
        if self._exact():  # the whole collection's backgrounds and map change
            self._invalidate_derived()
        if derive:
            self._fill_derived(persist=True)
        self._commit()

    def remove(self, ids: list[str]) -> None:
        """Tombstone these videos (dropped from the files when their segment is merged)."""
        self._require_writable()
        if ids:
            self._tombstone(ids)
            self._commit()

    def _tombstone(self, ids: list[str]) -> None:
        tomb = self.manifest.setdefault("tombstones", {})
        for vid in ids:
            phys = int(self._live[self.position(vid)])
            s, i = self._locate(phys)
            tomb.setdefault(self.segments[s].name, []).append(i)
        self._reindex()
        if self._exact():  # exact backgrounds are over the live videos: now stale
            self._invalidate_derived()

    def update_records(self, changes: dict[str, dict]) -> None:
        """Change indexed videos' file identity or hard cuts ({id: {"size" / "mtime_ns" /
        "content_hash" / "cuts": value}}) without touching their embeddings; commit. Each
        segment holding one gets a new records file, written before the manifest names it
        (a kill leaves the old one)."""
        self._require_writable()
        by_segment: dict[int, dict[int, dict]] = {}
        for vid, change in changes.items():
            unknown = set(change) - {"size", "mtime_ns", "content_hash", "cuts"}
            if unknown:
                raise ValueError(f"only a video's file identity and cuts can change, not {sorted(unknown)}")
            s, i = self._locate(int(self._live[self.position(vid)]))
            by_segment.setdefault(s, {})[i] = change
        if not by_segment:
            return
        gen = int(self.manifest["generation"]) + 1
        for s, rows in by_segment.items():
            seg = self.segments[s]
            records = [replace(r, **rows[i]) if i in rows else r for i, r in enumerate(seg.records)]
            name = f"{seg.name}.records-{gen}.jsonl"
            seg.replace_records(records, {"file": name, **write_bytes(self.directory / name, _records_bytes(records))})
        self.manifest["generation"] = gen
        self._commit()

    def refresh_derived(self) -> None:
        """Compute and store the missing derived state (all of it in exact mode); commit."""
        self._require_writable()
        self._fill_derived(persist=True)
        self._commit()

    def compact(self) -> None:
        """Rewrite every live video into one segment per codec (IVF-PQ searched when large),
        dropping tombstones; derived state is recomputed in exact mode and carried over
        otherwise."""
        self._require_writable()
        for members in self._families().values():  # one segment per codec
            self._merge([self.segments.index(seg) for seg in members])
        if self._exact():
            self._invalidate_derived()
        self._fill_derived(persist=True)
        self._commit()

    @property
    def codec_pending(self) -> bool:
        """True while the frame codec is still to be trained on the frames appended next (it
        trains once there are enough); False once trained or for an index kept in float16."""
        return not self.codec.trained and self.manifest["codec"].get("train") not in (None, FLOAT16)

    def _maybe_train_codec(self, new_frames: np.ndarray) -> bool:
        """Train the codec once there are enough frames; True when the float16 segments
        must then be recoded."""
        if not self.codec_pending:
            return False
        spec = self.manifest["codec"]
        need = int(spec.get("train_frames", TRAIN_FRAMES))
        have = int(self._frame_start[-1])
        if have + len(new_frames) < need:
            return False
        old = self._gather([(0, have)]) if have else np.zeros((0, self.dim), np.float32)
        sample = np.concatenate([old, new_frames])[:need]  # the first frames: deterministic
        self.codec = Codec.train(spec["train"], sample)
        self.manifest["codec"] = {"train": spec["train"], "train_frames": need,
                                  **self._write_codec(self.codec, _held_out_fidelity(spec["train"], sample))}
        return bool(self.segments)

    def _write_codec(self, codec: Codec, fidelity: float) -> dict:
        """Store a trained codec; its manifest entry, with `fidelity`: how well a codec of its
        kind keeps rows of its footage that it was not trained on (`_held_out_fidelity`)."""
        gen = int(self.manifest["generation"]) + 1
        self.manifest["generation"] = gen
        name = f"codec-{gen}.faiss"
        return {"spec": codec.spec, "file": name, "fidelity": round(fidelity, 4), "unit": codec.unit,
                **write_bytes(self.directory / name, codec.to_bytes())}

    def _fitting_codec(self, frames: np.ndarray) -> str | None:
        """The codec a new segment is written with: None for the main one, else a name in
        `codecs`. A trained codec fits when it keeps the new rows (`_fidelity`) no more than
        DRIFT below what it keeps of its own footage; the best fitting one wins, the main one on a
        tie; when none fits, "float16" (indexes whose codec predates the measure: the main)."""
        if not self.codec.trained or "fidelity" not in self.manifest["codec"]:
            return None
        specs = {None: self.manifest["codec"], **self.manifest.get("codecs", {})}
        best, best_fit = FLOAT16, -np.inf
        for name, spec in specs.items():
            fit = _fidelity(self._codec_named(name), frames)
            if fit >= spec["fidelity"] - DRIFT and fit > best_fit:
                best, best_fit = name, fit
        return best

    def _codec_named(self, name: str | None) -> Codec:
        """The codec a segment entry names (None: the main one)."""
        return self.codec if name is None else self.codecs[name]

    def _families(self) -> dict[str | None, list[Segment]]:
        """The segments by the codec they are written with (None: the main codec)."""
        out: dict[str | None, list[Segment]] = {}
        for seg in self.segments:
            out.setdefault(seg.entry.get("codec"), []).append(seg)
        return out

    def _maybe_train_drift_codec(self) -> None:
        """Once the float16 segments of footage that no codec fits hold a codec's sample of
        frames, train a codec on them (rows spread evenly over them) and recode them with it.
        The new codec is kept only when it keeps their rows at least DRIFT / 2 better than
        the best codec there is (and there are fewer than MAX_CODECS); else they are recoded
        with that best one, so that hard footage of the same kind (the last few percent of
        any collection) does not breed codecs."""
        waiting = self._families().get(FLOAT16, [])
        need = int(self.manifest["codec"].get("train_frames", TRAIN_FRAMES))
        if sum(seg.f for seg in waiting) < need:
            return
        rows = np.concatenate([seg.codec.decode(seg.frames.all()) for seg in waiting])
        sample = rows[np.linspace(0, len(rows) - 1, need).astype(np.int64)]
        del rows
        fits = {name: _fidelity(self._codec_named(name), sample)
                for name in [None, *self.manifest.get("codecs", {})]}
        best = max(fits, key=lambda name: fits[name])
        spec = self.manifest["codec"].get("train") or self.codec.spec
        fidelity = _held_out_fidelity(spec, sample)
        if len(fits) < MAX_CODECS and fidelity >= fits[best] + DRIFT / 2:
            codec = Codec.train(spec, sample)
            entry = self._write_codec(codec, fidelity)
            best = entry["file"].removesuffix(".faiss")
            self.manifest.setdefault("codecs", {})[best] = entry
            self.codecs[best] = codec
        self._merge([self.segments.index(seg) for seg in waiting], codec_name=best)

    def _write_segment(self, records: list[VideoRecord], videos: np.ndarray, frames: np.ndarray,
                       meta: np.ndarray, lengths: list[int], recode: bool = False,
                       derived: dict | None = None, encoded: bool = False, codec_name: str | None = None) -> None:
        """Write one segment of new videos (float32 inputs, or the codec's codes when
        `encoded`) with the main codec or `codecs[codec_name]`. recode: the old float16
        segments are rewritten into it (the codec was just trained)."""
        if recode:
            self._merge(list(range(len(self.segments))), extra=(records, videos, frames, meta, lengths))
            return
        codec = self._codec_named(codec_name)
        gen = int(self.manifest["generation"]) + 1
        name = f"s{gen:06d}"
        d = self.directory
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        video_codes = videos if encoded else codec.encode(videos)
        files = {
            "records": write_bytes(d / f"{name}.records.jsonl", _records_bytes(records)),
            "offsets": write_array(d / f"{name}.offsets.npy", offsets),
            "videos": write_array(d / f"{name}.videos.npy", video_codes),
            "frames": (write_array_chunks(d / f"{name}.frames.npy", *frames) if isinstance(frames, tuple) else
                       write_array(d / f"{name}.frames.npy", frames if encoded else codec.encode(frames))),
            "meta": write_array(d / f"{name}.meta.npy", meta),
        }
        del frames
        if len(records) > FLAT_LIMIT:
            vecs, decode = (video_codes, codec.decode) if encoded else (videos, np.asarray)
            files["faiss"] = _write_index(d / f"{name}.faiss-{gen}.index",
                                          _ivf(len(vecs), lambda a, b: decode(vecs[a:b])))
        if offsets[-1] > FRAME_FLAT_ROWS:  # read back from the file just written, block by block
            stored = CheckedArray(d / f"{name}.frames.npy", files["frames"])
            files["frames_faiss"] = _write_index(
                d / f"{name}.frames_faiss-{gen}.index",
                _ivf(int(offsets[-1]), lambda a, b: codec.decode(stored.rows(a, b)),
                     rows=frame_index_rows(offsets, [r.views for r in records])))
        entry = {"name": name, "videos": len(records), "frames": int(offsets[-1]), "files": files}
        if codec_name is not None:
            entry["codec"] = codec_name
        seg = Segment(d, entry, codec)
        if derived is not None:
            seg.background, seg.video_background, seg.coords = (derived["background"], derived["video_background"],
                                                                derived["map"])
            entry["derived"] = {kind: {"file": f"{name}.{kind}-{gen}.npy",
                                       **write_array(d / f"{name}.{kind}-{gen}.npy", arr)}
                                for kind, arr in derived.items()}
        self.segments.append(seg)
        self.manifest["segments"].append(entry)
        self.manifest["generation"] = gen
        self._reindex()

    def _merge(self, which: list[int], extra: tuple | None = None, codec_name: str | None = "theirs") -> None:
        """Replace the segments at `which` by one holding their live videos (plus `extra`,
        float32 new videos), written with `codec_name`'s codec (None: the main one; "theirs",
        the default: the members' own, the main one with `extra`). Codes are copied as they are when the codec is the same
        (no decoding: a merge of large segments costs their bytes, not their floats)."""
        if not which and extra is None:
            return
        if extra is None and not self._exact():
            # Members without derived state (a fresh append) get theirs now, O(their size),
            # so the merged segment carries everyone's instead of recomputing them all
            # (persisted: the reference sample, if drawn now, must reach the manifest).
            self._fill_derived(persist=True)
        if codec_name == "theirs":
            codec_name = self.segments[which[0]].entry.get("codec") if extra is None and which else None
        target = self._codec_named(codec_name)
        same = extra is None and all(self.segments[s].codec is target for s in which)
        records, vids, frames, meta, lengths = [], [], [], [], []
        keep_derived = extra is None and not self._exact() and all(
            self.segments[s].background is not None and self.segments[s].coords is not None for s in which)
        bgs, vbgs, maps = [], [], []
        tomb = self.manifest.get("tombstones", {})
        for s in which:
            seg = self.segments[s]
            dead = set(tomb.get(seg.name, []))
            live = np.array([i for i in range(seg.n) if i not in dead], np.int64)
            if not len(live):
                continue
            recs = seg.records
            records += [recs[i] for i in live]
            all_live = len(live) == seg.n
            if same:
                vids.append(seg.videos.take([(i, i + 1) for i in live]))
            else:
                vids.append(seg.video_vectors(live))
            spans = [(0, seg.f)] if all_live else [(int(seg.offsets[i]), int(seg.offsets[i + 1])) for i in live]
            if same:  # copied block by block when written
                frames.append((seg, spans))
            else:
                frames.append(seg.codec.decode(seg.frames.take(spans)))
            meta.append(seg.meta_rows(spans))
            lengths += list(np.diff(seg.offsets)[live])
            if keep_derived:
                bgs.append(seg.background if all_live else np.concatenate([seg.background[a:b] for a, b in spans]))
                vbgs.append(seg.video_background[live])
                maps.append(seg.coords[live])
        if extra is not None:
            r, v, f, m, ln = extra
            records += r
            vids.append(v)
            frames.append(f)
            meta.append(m)
            lengths += ln
        names = {self.segments[s].name for s in which}
        self.segments = [s for i, s in enumerate(self.segments) if i not in which]
        self.manifest["segments"] = [e for e in self.manifest["segments"] if e["name"] not in names]
        for name in names:
            tomb.pop(name, None)
        self._reindex()
        if records:
            derived = None
            if keep_derived:
                derived = {"background": np.concatenate(bgs), "video_background": np.concatenate(vbgs),
                           "map": np.concatenate(maps)}
            vids_all, meta_all = np.concatenate(vids), np.concatenate(meta)
            del vids, meta
            if same:
                first = frames[0][0].frames
                frames_all = ((sum(b - a for _, spans in frames for a, b in spans), *first.shape[1:]),
                              first.dtype, _blocks(frames))
            else:
                frames_all = np.concatenate(frames) if len(frames) > 1 else frames[0]
            del frames
            self._write_segment(records, vids_all, frames_all, meta_all, lengths, derived=derived, encoded=same,
                                codec_name=codec_name)

    def _merge_tiers(self) -> None:
        """Merge segments in tiers: MERGE_FACTOR segments of one size class become one, so
        there are O(log N) segments and each video is rewritten O(log N) times."""
        while True:
            tiers: dict[tuple[str, int], list[int]] = {}
            for i, seg in enumerate(self.segments):  # segments of one codec merge with their own only
                size = int(np.log(max(seg.n, 1)) / np.log(MERGE_FACTOR))
                tiers.setdefault((seg.entry.get("codec") or "", size), []).append(i)
            full = [t for t, members in tiers.items() if len(members) >= MERGE_FACTOR]
            if not full:
                return
            self._merge(tiers[min(full, key=lambda t: t[1])])

    def _convert_v1(self) -> None:
        seg = self.segments[0]
        self.segments, self.manifest["segments"] = [], []
        self.manifest["format_version"] = FORMAT_VERSION
        self._reindex()
        self._merge([], extra=(seg.records, seg.video_vectors(), seg.codec.decode(seg.frames.all()),
                               seg.meta_rows([(0, seg.f)]), list(np.diff(seg.offsets))))
        self._commit()

    def _commit(self) -> None:
        """Write the manifest (the commit point), then delete files no longer named in it."""
        manifest = dict(self.manifest)
        manifest.update(
            format_version=FORMAT_VERSION,
            num_videos=len(self),
            num_frames=int(self._frame_start[-1]),
            faiss=("ivf-pq" if any("faiss" in s.entry["files"] for s in self.segments) else "flat"),
            updated=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        manifest["generation"] = int(manifest["generation"]) + 1
        manifest.pop("videos", None)
        with atomic_write(self.directory / MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1))
        self.manifest = manifest
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        named = {MANIFEST, ".lock"}
        for e in self.manifest["segments"]:
            named |= {records_file(e)} | {f"{e['name']}.{k}.npy" for k in ("offsets", "videos", "frames", "meta")}
            named |= {v["file"] for v in e["files"].values() if "file" in v}
            named |= {v["file"] for v in (e.get("derived") or {}).values()}
        for key in ("codec", "reference"):
            if "file" in (self.manifest.get(key) or {}):
                named.add(self.manifest[key]["file"])
        named |= {spec["file"] for spec in self.manifest.get("codecs", {}).values()}
        for f in self.directory.iterdir():
            if f.is_file() and f.name not in named and not f.name.startswith("."):
                f.unlink(missing_ok=True)

    @property
    def bytes_on_disk(self) -> int:
        """Bytes of every file the manifest names (and the manifest)."""
        if self.directory is None:
            return 0
        return sum(f.stat().st_size for f in self.directory.iterdir() if f.is_file() and f.name != ".lock")


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.is_file():
        raise IndexFileError(
            f"{directory}: not an index (no {MANIFEST}); build one with "
            "`python -m engine index VIDEO_DIR INDEX_DIR`"
        )
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise IndexFileError(f"{path}: unreadable manifest ({err}); rebuild the index") from err


def _blocks(parts: list, rows: int = 1 << 18):
    """Frame code rows of (segment, spans) parts, in blocks of at most `rows` rows."""
    for seg, spans in parts:
        for lo, hi in spans:
            for a in range(lo, hi, rows):
                yield seg.frames.rows(a, min(a + rows, hi))


def _write_index(path: Path, index: faiss.Index) -> dict:
    """Write a FAISS index file atomically, straight from FAISS (a serialised copy in memory
    would be the size of a large segment's frame index, twice); return its manifest entry."""
    with atomic_write(path) as tmp:
        faiss.write_index(index, str(tmp))
    return {"file": path.name, **entry_of(path)}


def frame_index_rows(offsets: np.ndarray, views: Sequence[int]) -> np.ndarray:
    """int64 [R]: the stored rows (local ids, ascending) that a segment's frame index holds,
    every FRAME_INDEX_EVERY-th row of each stream from its first; video n is rows
    offsets[n]:offsets[n + 1], views[n] streams of equal length."""
    streams = stream_ids(np.diff(np.asarray(offsets, np.int64)), np.asarray(views, np.int64))
    ordinal = np.arange(len(streams)) - np.searchsorted(streams, streams)  # streams ascend: first row of each
    return np.flatnonzero(ordinal % FRAME_INDEX_EVERY == 0).astype(np.int64)


def _ivf(n: int, read, rows: np.ndarray | None = None) -> faiss.Index:
    """An IVF index over n vectors that read(lo, hi) gives as float32 [hi - lo, d]: a large
    segment's video vectors (PQ, 64 bytes a vector), or, given `rows` (the local ids of
    `frame_index_rows`), those of a segment's stored rows (FRAME_CODE, d / 4 bytes and an id a
    row). Trained on every s-th vector, added in blocks under their ids; nprobe 32."""
    d = read(0, 1).shape[1]
    count = n if rows is None else len(rows)
    nlist = int(min(4 * np.sqrt(count), 8192))
    if rows is not None:
        spec = FRAME_CODE.format(half=max(2, d // 4 * 2), nlist=nlist)
    else:
        spec = f"IVF{nlist},PQ{next(m for m in (64, 32, 16, 8, 4, 2, 1) if d % m == 0)}"
    index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
    faiss.extract_index_ivf(index).cp.niter = 10
    stride = max(1, count // (40 * nlist))  # FAISS asks for 39 vectors a centroid

    def blocks():
        """(ids, float32 vectors) of the indexed rows, block by block."""
        for a in range(0, n, 100_000):
            b = min(a + 100_000, n)
            if rows is None:
                yield np.arange(a, b), np.ascontiguousarray(read(a, b), np.float32)
                continue
            ids = rows[np.searchsorted(rows, a):np.searchsorted(rows, b)]
            if len(ids):
                yield ids, np.ascontiguousarray(read(a, b)[ids - a], np.float32)

    # copied, not sliced: a strided view would keep each whole decoded block alive until the
    # sample is joined (every row of the segment in float32 at once: the build's peak memory)
    index.train(np.concatenate([np.array(x[::stride]) for _, x in blocks()]))
    faiss.extract_index_ivf(index).nprobe = min(nlist, 32)
    for ids, x in blocks():
        index.add_with_ids(x, ids.astype(np.int64))
    return index
