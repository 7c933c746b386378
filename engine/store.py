"""Checked data files: arrays written once, atomically, with a CRC32 per 64-KiB block.

Every data file of an index is written through `write_array` / `write_bytes` (an atomic
rename, so a crash never leaves half a file under the final name) and described by an
entry the manifest keeps: its size and one CRC32 per block. `CheckedArray` opens an
array memory-mapped and verifies the blocks that a read touches, the first time they are
touched, so a flipped byte or a truncated file is a `DamagedFileError` naming the file,
never a garbage score, while opening a large index reads nothing but its small files.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from .errors import IndexFileError
from .files import atomic_write

BLOCK = 1 << 16  # bytes per checksum block: a random read checks little more than it reads


class DamagedFileError(IndexFileError):
    """A data file whose bytes do not match the checksums recorded when it was written."""


def _crcs(data: memoryview | bytes) -> list[int]:
    view = memoryview(data).cast("B")
    return [zlib.crc32(view[a : a + BLOCK]) for a in range(0, len(view), BLOCK)] or [0]


def entry_of(path: Path) -> dict:
    """The manifest entry of a written file: {"bytes": size, "crc32": [one per block]}.
    Read in 16-MiB chunks (not memory-mapped: a merge's multi-GB file would otherwise
    count in the writer's resident memory)."""
    crcs = []
    with open(path, "rb") as f:
        while chunk := f.read(256 * BLOCK):
            crcs += _crcs(chunk)
    return {"bytes": path.stat().st_size, "crc32": crcs or [0]}


def write_array(path: Path, array: np.ndarray) -> dict:
    """Write a .npy file atomically; return its manifest entry."""
    with atomic_write(path) as tmp:
        np.save(tmp, np.ascontiguousarray(array))
    return entry_of(path)


def write_bytes(path: Path, data: bytes) -> dict:
    """Write a file of bytes atomically; return its manifest entry."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return entry_of(path)


def verified_bytes(path: Path, entry: dict, handle=None) -> bytes:
    """A small file's whole content (read from `handle`, a file object opened earlier, when
    given: it stays readable after a writer replaced the file), checked against its entry."""
    if handle is None:
        _check_size(path, entry)
        data = path.read_bytes()
    else:
        handle.seek(0)
        data = handle.read()
    if _crcs(data) != list(entry["crc32"]):
        raise DamagedFileError(_damaged(path))
    return data


def _damaged(path: Path, what: str = "its bytes do not match the checksums written with it") -> str:
    return (f"{path}: damaged index file ({what}); rebuild the index "
            "(`python -m engine index VIDEO_DIR INDEX_DIR` re-embeds what is missing)")


def _check_size(path: Path, entry: dict) -> None:
    try:
        size = path.stat().st_size
    except OSError as err:
        raise DamagedFileError(_damaged(path, f"missing: {err.strerror}")) from err
    if size != entry["bytes"]:
        raise DamagedFileError(_damaged(path, f"{size} bytes, {entry['bytes']} written"))


class CheckedArray:
    """A .npy array whose reads are checked block by block.

    `rows(lo, hi)` returns a copy of rows lo:hi after verifying the blocks they lie in
    (each block once per process); `all()` verifies and returns the whole array. Small
    reads (a search's candidates) come from a memory map; large ones (merges, derived
    state) and the checks themselves are plain file reads, so a writer streaming
    gigabytes does not hold them as resident mapped pages.
    entry None: a file written without checksums (format-1 indexes), read unchecked."""

    LARGE = 1 << 20  # bytes: reads at least this big bypass the memory map

    def __init__(self, path: Path, entry: dict | None):
        if entry is not None:
            _check_size(path, entry)
        self.path, self._crc = path, list(entry["crc32"]) if entry is not None else []
        try:
            self._array = np.load(path, mmap_mode="r")
            self._file = open(path, "rb")
        except (OSError, ValueError) as err:
            raise DamagedFileError(_damaged(path, f"unreadable: {err}")) from err
        self._header = int(getattr(self._array, "offset", 0))
        self._size = self._header + self._array.nbytes
        self._row_bytes = int(np.prod(self._array.shape[1:], dtype=np.int64)) * self._array.itemsize
        self._ok = np.zeros(len(self._crc), bool)
        self._verify(0, self._header)  # the header says the shape: check it at once

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    def __len__(self) -> int:
        return len(self._array)

    def _read(self, lo_byte: int, hi_byte: int) -> np.ndarray:
        """uint8 bytes lo_byte:hi_byte of the file, read (not mapped), checked (when the
        file has checksums)."""
        b0, b1 = lo_byte // BLOCK, -(-hi_byte // BLOCK)
        a, z = b0 * BLOCK, min(b1 * BLOCK, self._size)
        buf = np.empty(z - a, np.uint8)
        if os.preadv(self._file.fileno(), [buf], a) != z - a:
            raise DamagedFileError(_damaged(self.path, "shorter than written"))
        for b in range(b0, min(b1, len(self._crc))):
            if not self._ok[b]:
                if zlib.crc32(buf[(b - b0) * BLOCK : (b - b0 + 1) * BLOCK]) != self._crc[b]:
                    raise DamagedFileError(_damaged(self.path))
                self._ok[b] = True
        return buf[lo_byte - a : hi_byte - a]

    def _verify(self, lo_byte: int, hi_byte: int) -> None:
        if not self._crc:
            return
        b0, b1 = lo_byte // BLOCK, min(-(-hi_byte // BLOCK), len(self._crc))
        todo = np.flatnonzero(~self._ok[b0:b1]) + b0
        if len(todo):  # one read from the first block to check to the last
            self._read(int(todo[0]) * BLOCK, min(int(todo[-1] + 1) * BLOCK, self._size))

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """A checked copy of rows lo:hi."""
        lo_byte, hi_byte = self._header + lo * self._row_bytes, self._header + hi * self._row_bytes
        if hi_byte - lo_byte >= self.LARGE:
            return self._read(lo_byte, hi_byte).view(self._array.dtype).reshape(hi - lo, *self._array.shape[1:])
        self._verify(lo_byte, hi_byte)
        return np.array(self._array[lo:hi])

    def take(self, spans: list[tuple[int, int]]) -> np.ndarray:
        """Rows of several (lo, hi) spans, concatenated, each checked."""
        if not spans:
            return np.zeros((0, *self._array.shape[1:]), self._array.dtype)
        return np.concatenate([self.rows(lo, hi) for lo, hi in spans])

    def all(self) -> np.ndarray:
        return self.rows(0, len(self._array))


def write_array_chunks(path: Path, shape: tuple[int, ...], dtype, chunks) -> dict:
    """Write a .npy file of `shape` from an iterable of row blocks (never the whole array
    in memory), atomically; return its manifest entry."""
    dtype = np.dtype(dtype)
    header = np.lib.format.header_data_from_array_1_0(np.empty((0, *shape[1:]), dtype))
    header["shape"] = tuple(shape)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:  # written, not mapped (resident memory)
        np.lib.format.write_array_header_1_0(f, header)
        at = 0
        for block in chunks:
            f.write(np.ascontiguousarray(block, dtype).data)
            at += len(block)
        if at != shape[0]:
            raise ValueError(f"{path}: {at} rows written, {shape[0]} expected")
    return entry_of(path)
