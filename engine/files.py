"""Files: atomic writes, and where a model or index comes from (a local path or the Hub).

Every file the engine writes goes through `atomic_write`: the data lands in a temporary
file beside the target, is flushed to disk, then renamed over it, so a reader or a crash
never sees half a file. Hugging Face Hub sources are explicit (`hf://owner/repo[/file]`):
a local path that does not exist fails at once with "file not found", never after a
round of Hub retries.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError

HUB_PREFIX = "hf://"
FILE_SUFFIXES = {".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".npz", ".json"}  # clearly files, not repo ids


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` in one rename.

    The temporary name keeps the target's suffix (numpy and FFmpeg choose formats by it).
    On an exception the temporary file is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # durable before it becomes visible
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def content_hash(path: str | Path, block: int = 1 << 20) -> str:
    """A fingerprint of a file's bytes (BLAKE2b, 128 bits, hex): equal for a copy of the file
    wherever it lies and whatever its file times. Reads the whole file (about 1 GB/s)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def is_hub(spec: str | Path) -> bool:
    return str(spec).startswith(HUB_PREFIX)


def resolve(spec: str | Path, filename: str | None, error: type[UserError], what: str) -> Path:
    """A local file or folder for `spec`.

    spec: a local path, or `hf://owner/repo` (then `filename` from that repo, or the whole
    repo when filename is None), or `hf://owner/repo/path/in/repo`. `error` is raised,
    naming `spec` and `what` it should be, when the path is missing or the download fails."""
    text = str(spec)
    if not is_hub(text):
        path = Path(text).expanduser()
        if not path.exists():
            hint = ""
            if (text.count("/") == 1 and not text.startswith((".", "/", "~"))
                    and path.suffix.lower() not in FILE_SUFFIXES):
                hint = f" (for a Hugging Face Hub repo, write {HUB_PREFIX}{text})"
            raise error(f"{text}: {what} not found{hint}")
        return path
    parts = text[len(HUB_PREFIX):].strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise error(f"{text}: a Hub source is {HUB_PREFIX}owner/repo or {HUB_PREFIX}owner/repo/file")
    repo, inner = "/".join(parts[:2]), "/".join(parts[2:]) or filename
    try:
        from huggingface_hub import hf_hub_download, snapshot_download

        return Path(hf_hub_download(repo, inner) if inner else snapshot_download(repo))
    except Exception as err:  # offline, unknown repo, auth: a message, not a traceback
        raise error(f"{text}: downloading the {what} from the Hugging Face Hub failed "
                    f"({err.__class__.__name__}: {err})") from err


class FolderLockedError(UserError):
    """Another process is writing to the same folder."""


@contextlib.contextmanager
def folder_lock(directory: str | Path, what: str = "index") -> Iterator[None]:
    """Hold an exclusive lock on `directory` (created if missing) while writing it.

    An advisory `flock` on `directory/.lock`, which the kernel releases when the holder
    exits, even by kill -9: a crashed writer never leaves a stale lock. A second writer
    gets FolderLockedError naming the holder's process id, at once."""
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise FolderLockedError(
                f"{directory}: {what} is locked by process {holder}, which is writing to it; "
                "wait for it to finish (or stop it) and run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
