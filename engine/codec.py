"""How an index stores its embeddings: float16, or a trained compact code.

Frame embeddings are most of an index's bytes (float16 at 1 fps, d = 1088: 128 KiB per
indexed minute). Once an index holds `TRAIN_FRAMES` frames it trains a FAISS standalone
codec on the first of them, `default_spec(d)` = "PCARd,SQ4": a PCA rotation of all d
directions (plus a random rotation that spreads their variance evenly), then 4-bit scalar
quantisation per dimension, d / 2 bytes a vector (4x smaller than float16).
Queries are never coded: a query's float32 frames meet the decoded database frames.
The same codec codes the video vectors. Training is deterministic, so two runs over the
same videos (one process, or Ray workers) write the same codes.

Round 7 chose a PCA to 3/4 of d for the 512-d model (chamfer mAP 0.602 against 0.605 in
float16). The learned whitening (round 16) spreads a frame's energy over every direction,
so that truncation kept rows at a cosine of 0.95 to their true values, less for edited
copies (CRF 44, PiP, greyscale: 0.936-0.942) than for a channel's uploads (0.982), and a
search ranked look-alike uploads above copies more often than the float rows do: through a
real index of the collection benchmark (train / val of three draws, chamfer) 36 queries of
162 intruded against 29 in float32. Keeping every direction: 29, mAP level (0.8916 ->
0.8918), rows at 0.992; 1024 of 1088 directions also 29, 960 34, 8 bits on 816 36
(notebooks/RESULTS.md, round 33).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import faiss
import numpy as np

FLOAT16 = "float16"
TRAIN_FRAMES = 4096


def default_spec(dim: int) -> str:
    """The default codec for d-dimensional embeddings: a PCA rotation of all d
    dimensions (an even number of them, as 4-bit codes pack two to a byte), 4 bits each
    (d / 2 bytes a vector)."""
    return f"PCAR{max(2, dim // 2 * 2)},SQ4"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """FAISS on the calling thread only, for the small calls a search makes (decode a few
    thousand codes, scan a segment for one query). Waking FAISS's OpenMP team costs more
    than it saves there: on a 2-core machine a search took 20-90 ms with it (stalls in
    scheduler quanta), 12 ms without. OpenMP's thread count is per calling thread, so
    concurrent searches and index builds elsewhere keep theirs."""
    n = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(n)


class Codec:
    """Encode float32 [n, d] embeddings to a stored array and back.

    unit: the codec was trained on unit vectors (every embedding the engine stores is one),
    and decodes to unit vectors. A code shrinks a vector by what it loses, more for footage
    unlike its training sample (norms 0.86-0.9 against 0.99-1.0), so a decoded row's
    similarities would also depend on how well it was coded, and float16 rows beside coded
    ones would outscore them; as unit vectors they are cosines. Collection benchmark
    through a real index (train/val of two draws, chamfer): mAP 0.866 -> 0.867, intruded
    queries 27 -> 25 of 108 (notebooks/RESULTS.md, round 26)."""

    def __init__(self, spec: str, dim: int, index: faiss.Index | None = None, unit: bool = False):
        self.spec, self.dim, self._index, self.unit = spec, dim, index, unit

    @classmethod
    def float16(cls, dim: int) -> "Codec":
        return cls(FLOAT16, dim)

    @classmethod
    def train(cls, spec: str, sample: np.ndarray) -> "Codec":
        """A codec of FAISS factory string `spec` trained on sample [n, d] float32."""
        sample = np.ascontiguousarray(sample, np.float32)
        index = faiss.index_factory(sample.shape[1], spec)
        index.train(sample)
        unit = len(sample) > 0 and bool(np.allclose(np.linalg.norm(sample, axis=1), 1.0, atol=1e-3))
        return cls(spec, sample.shape[1], index, unit)

    @classmethod
    def from_bytes(cls, spec: str, dim: int, data: bytes | None, unit: bool = False) -> "Codec":
        if spec == FLOAT16:
            return cls.float16(dim)
        index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
        return cls(spec, dim, index, unit)

    def to_bytes(self) -> bytes:
        return b"" if self._index is None else faiss.serialize_index(self._index).tobytes()

    @property
    def trained(self) -> bool:
        return self._index is not None

    @property
    def code_size(self) -> int:
        """Bytes stored per vector."""
        return 2 * self.dim if self._index is None else int(self._index.sa_code_size())

    def encode(self, x: np.ndarray) -> np.ndarray:
        """float [n, d] -> float16 [n, d] or uint8 [n, code_size]."""
        if self._index is None:
            return np.asarray(x, np.float16)
        x = np.ascontiguousarray(x, np.float32)
        if len(x) == 0:
            return np.zeros((0, self.code_size), np.uint8)
        return self._index.sa_encode(x)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Stored codes [n, ...] -> float32 [n, d]."""
        if self._index is None:
            return np.asarray(codes, np.float32)
        if len(codes) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = self._index.sa_decode(np.ascontiguousarray(codes, np.uint8))
        if self.unit:
            norms = np.sqrt(np.einsum("ij,ij->i", out, out))
            out /= np.maximum(norms, 1e-12)[:, None]
        return out
