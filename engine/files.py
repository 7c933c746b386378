"""Files: atomic writes, and where a model or index comes from (a local path or the Hub).

Every file the engine writes goes through `atomic_write`: the data lands in a temporary
file beside the target, is flushed to disk, then renamed over it, so a reader or a crash
never sees half a file. Hugging Face Hub sources are explicit (`hf://owner/repo[/file]`):
a local path that does not exist fails at once with "file not found", never after a
round of Hub retries.
"""
from __future__ import annotations

import contextlib
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
