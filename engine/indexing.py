"""Building an index from a folder, in three stages: what changed, embedding, saving.

1. `plan_update`: scan the folder (recursive, by extension) and diff it with the index:
   files whose size and mtime are unchanged are kept, and so are files whose time changed
   but whose bytes did not (a fresh clone or a copy: same `content_hash`; their records
   take the new time); a new file with the bytes of an indexed one (moved, renamed,
   duplicated) takes a copy of its stored rows; other new and changed files are to embed,
   files gone are dropped.
2. `embed_files`: embed each file; unreadable ones are reported and skipped, never fatal
   (or `engine.ray_embedding.embed_files_ray`: the same over a Ray cluster).
3. committing: removed and changed files are tombstoned first (a changed file that then
   fails to embed leaves no stale vectors), new embeddings are appended as segments
   every `commit_seconds` (default: after every video), so a run that is killed keeps
   every video it had finished, and a re-run embeds only what is missing. The run holds
   the index's lock throughout: a second writer gets a clear error at once.
"""
from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .embedding import VideoEmbedding
from .files import content_hash
from .index import MANIFEST, IndexFileError, VideoIndex, VideoRecord
from .video import VideoError, is_video_path


@dataclass
class BuildReport:
    """What one `index` run did. Ids are paths relative to the video folder; seconds are wall time."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    # of the unchanged: files whose time changed but bytes did not, and files indexed before
    # content hashes were kept, hashed now (once)
    retimed: list[str] = field(default_factory=list)
    hashed: list[str] = field(default_factory=list)
    # of the unchanged: files indexed before hard cuts were kept, their cuts found now (a decode, no CNN)
    cut: list[str] = field(default_factory=list)
    # new files whose bytes were indexed under another id (moved, renamed, copied): (that id, new id)
    reused: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    video_seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"indexed {len(self.added)} new, {len(self.updated)} changed, "
            f"{self.unchanged} unchanged, {len(self.removed)} removed, "
            f"{len(self.skipped)} skipped, in {self.seconds:.1f} s"
            + (f" ({self.video_seconds / max(self.seconds, 1e-9):.1f} video-s per s)" if self.video_seconds else "")
        ]
        if self.retimed:
            lines.append(f"  {len(self.retimed)} unchanged files had new file times (same content): kept")
        if self.reused:
            lines.append(f"  {len(self.reused)} new files have the bytes of indexed ones (moved, renamed or "
                         "copied): their stored rows were reused, not embedded again")
        if self.hashed:
            lines.append(f"  {len(self.hashed)} files indexed before content hashes were kept: hashed")
        if self.cut:
            lines.append(f"  {len(self.cut)} files indexed before hard cuts were kept: their cuts were found")
        lines += [f"  skipped {vid}: {why}" for vid, why in self.skipped]
        lines += [f"  note {vid}: {why}" for vid, why in self.warnings]
        return "\n".join(lines)


@dataclass
class Plan:
    """The diff of a folder against an index: positions to keep, (id, path) to embed, and
    the kept records' new file identity or cuts ({id: {"mtime_ns" / "content_hash" / "cuts":
    value}})."""

    keep: list[int]
    todo: list[tuple[str, Path]]
    report: BuildReport
    identity: dict[str, dict] = field(default_factory=dict)
    reuse: dict[str, tuple[str, Path]] = field(default_factory=dict)  # new id: (indexed id of its bytes, path)
    twins: dict[str, tuple[str, Path]] = field(default_factory=dict)  # new id: (id embedded this run with its bytes, path)


def scan_folder(video_dir: Path) -> list[Path]:
    """Video files under a folder (recursive, by extension), sorted, hidden files skipped.
    Linked folders are followed (a library often links in folders from other disks), each
    real folder once, so a link back up the tree is no loop."""
    found, seen = [], set()
    for root, dirs, files in os.walk(video_dir, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # sorted: the same path wins each run
        found += [Path(root) / f for f in files if not f.startswith(".")]
    return sorted(p for p in found if is_video_path(p) and p.is_file())


def plan_update(video_dir: Path, index: VideoIndex,
                find_cuts: Callable[[Path], list[float]] | None = None) -> Plan:
    """Stage 1: which indexed videos stay, which files need embedding, which are gone.

    A file of the indexed size but another mtime is read once and kept when its
    `content_hash` is the record's; a kept record without a hash (an older index) gets one,
    and one without hard cuts gets them from `find_cuts(path)` (seconds; a decode pass)."""
    plan = Plan([], [], BuildReport())
    report = plan.report
    present = {p.relative_to(video_dir).as_posix(): p for p in scan_folder(video_dir)}
    by_size: dict[int, list] = {}
    for r in index.records:
        if r.content_hash:
            by_size.setdefault(r.size, []).append(r)
    for vid, p in present.items():
        st = p.stat()
        if vid in index:
            i = index.position(vid)
            r = index.records[i]
            if r.size == st.st_size and (r.mtime_ns == st.st_mtime_ns or
                                         (r.content_hash and _hash(p) == r.content_hash)):
                plan.keep.append(i)
                if r.mtime_ns != st.st_mtime_ns:
                    report.retimed.append(vid)
                    plan.identity[vid] = {"mtime_ns": st.st_mtime_ns}
                elif not r.content_hash and (digest := _hash(p)):
                    report.hashed.append(vid)
                    plan.identity[vid] = {"content_hash": digest}
                if r.cuts is None and find_cuts is not None:
                    try:
                        plan.identity.setdefault(vid, {})["cuts"] = [round(float(c), 3) for c in find_cuts(p)]
                        report.cut.append(vid)
                    except VideoError:
                        pass  # it decoded when it was indexed; it keeps ending its segments on samples
                continue
            report.updated.append(vid)
        else:
            same = _indexed_bytes(p, st.st_size, by_size)
            if same is not None:
                report.reused.append((same, vid))
                plan.reuse[vid] = (same, p)
                continue
            report.added.append(vid)
        plan.todo.append((vid, p))
    _find_twins(plan)
    report.unchanged = len(plan.keep)
    report.removed = [r.id for r in index.records if r.id not in present]
    return plan


def _find_twins(plan: Plan) -> None:
    """Files to embed that have the bytes of another file to embed (the same video saved
    twice) move from `plan.todo` to `plan.twins`: the first is embedded, the others copy its
    rows. Only files that share a size with another are read."""
    by_size: dict[int, list[tuple[str, Path]]] = {}
    for vid, path in plan.todo:
        try:
            by_size.setdefault(path.stat().st_size, []).append((vid, path))
        except OSError:
            continue
    for group in by_size.values():
        if len(group) < 2:
            continue
        first: dict[str, str] = {}
        for vid, path in group:
            digest = _hash(path)
            if not digest:
                continue
            if digest in first:
                plan.twins[vid] = (first[digest], path)
            else:
                first[digest] = vid
    if plan.twins:
        plan.todo = [(vid, path) for vid, path in plan.todo if vid not in plan.twins]
        plan.report.added = [vid for vid in plan.report.added if vid not in plan.twins]


def _indexed_bytes(path: Path, size: int, by_size: dict[int, list]) -> str | None:
    """The id of an indexed video whose file had exactly these bytes, or None (a file is
    read only when a record of its size has a hash)."""
    candidates = by_size.get(size)
    if not candidates:
        return None
    digest = _hash(path)
    return next((r.id for r in candidates if r.content_hash == digest), None) if digest else None


def _hash(path: Path) -> str:
    """`content_hash` of a file, or "" when it cannot be read: the file is then embedded (or
    reported unreadable) as if it had no hash, never an error that stops the run. A file is
    read once while its size and time stay the same (planning may hash a new file to find
    its twin or its indexed bytes, and its record hashes it again)."""
    try:
        st = path.stat()
        return _hash_of(str(path), st.st_size, st.st_mtime_ns)
    except OSError:
        return ""


@functools.lru_cache(maxsize=1 << 16)
def _hash_of(path: str, size: int, mtime_ns: int) -> str:
    return content_hash(path)


def record_for(vid: str, path: Path, emb: VideoEmbedding) -> VideoRecord:
    """The manifest record of a freshly embedded file."""
    st = path.stat()
    info = emb.info
    return VideoRecord(
        id=vid, path=vid, size=st.st_size, mtime_ns=st.st_mtime_ns,
        duration=round(float(emb.duration), 3), fps=round(float(info.fps), 3) if info else 0.0,
        width=info.width if info else 0, height=info.height if info else 0,
        num_frames=emb.num_frames, warnings=list(emb.warnings), content_hash=_hash(path),
        cuts=[round(float(c), 3) for c in emb.cuts],
    )


Outcome = tuple[str, Path, "VideoEmbedding | VideoError"]  # (id, path, embedding or why not)


def embed_files(todo: list[tuple[str, Path]], embed: Callable[[Path], VideoEmbedding], report: BuildReport,
                progress: bool = True) -> Iterator[tuple[VideoRecord, VideoEmbedding]]:
    """Stage 2, in this process: embed each file in turn (see `collect` for the rest)."""

    def outcomes() -> Iterator[Outcome]:
        for vid, path in todo:
            try:
                yield vid, path, embed(path)
            except VideoError as err:
                yield vid, path, err

    return collect(outcomes(), len(todo), report, progress)


def collect(outcomes: Iterable[Outcome], total: int, report: BuildReport,
            progress: bool = True) -> Iterator[tuple[VideoRecord, VideoEmbedding]]:
    """Embedding outcomes -> (record, embedding) of the files that worked; a VideoError is
    reported in `report` and the file skipped. Shared by every way of embedding (this
    process, engine.ray_embedding), so they report alike."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc="indexing", unit="video", disable=not progress, dynamic_ncols=True)
    with bar:
        for vid, path, out in outcomes:
            bar.update()
            bar.set_postfix_str(vid[-40:])
            if isinstance(out, VideoError):
                report.skipped.append((vid, out.message))
                for listed in (report.added, report.updated):
                    if vid in listed:
                        listed.remove(vid)
                continue
            report.video_seconds += float(out.duration)
            report.warnings += [(vid, w) for w in out.warnings]
            yield record_for(vid, path, out), out


EmbedStage = Callable[[list[tuple[str, Path]], BuildReport, bool], Iterator[tuple[VideoRecord, VideoEmbedding]]]


def build_index(
    video_dir: str | Path,
    index_dir: str | Path,
    embed: Callable[[Path], VideoEmbedding],
    new_index: Callable[[str | None], VideoIndex],
    check: Callable[[VideoIndex], None],
    progress: bool = True,
    commit_seconds: float = 0.0,
    embed_stage: EmbedStage | None = None,
    find_cuts: Callable[[Path], list[float]] | None = None,
) -> BuildReport:
    """Index every video under `video_dir` into `index_dir`, incrementally.

    embed(path) -> VideoEmbedding (VideoError for bad files, which are reported and
    skipped); new_index(root) makes an empty index for this model; check(idx) raises
    IndexMismatchError if an existing index was built with another model. Finished
    videos are committed whenever `commit_seconds` have passed since the last commit
    (0: after each one); derived state (backgrounds, map) is stored at the end.
    embed_stage(todo, report, progress) replaces stage 2 (default: `embed_files` with
    `embed`, in this process; engine.ray_embedding spreads it over a Ray cluster).
    find_cuts(path) -> seconds: the hard cuts of a kept video indexed before they were kept."""
    video_dir, index_dir = Path(video_dir), Path(index_dir)
    if not video_dir.is_dir():
        raise IndexFileError(f"{video_dir}: not a folder; give the folder that holds your videos")
    started = time.perf_counter()
    root = os.path.relpath(video_dir.resolve(), index_dir.resolve())
    fresh = not (index_dir / MANIFEST).exists()
    with VideoIndex.writing(index_dir, new_index(root) if fresh else None) as index:
        check(index)  # a mismatch is an error before anything is written
        index.manifest["root"] = root
        index.manifest["root_absolute"] = str(video_dir.resolve())  # if the index is moved alone
        plan = plan_update(video_dir, index, find_cuts)
        report = plan.report
        _reuse_stored(index, plan.reuse)  # before the removals: a moved file's old id is among them
        index.remove(report.removed + report.updated)
        index.update_records(plan.identity)
        if index.codec_pending:
            # The frame codec is trained on the first frames embedded; in path order they are
            # one folder's footage (a first build of the demo corpus: its channel uploads only),
            # and the rest was stored at a mean cosine of 0.80-0.86 to its true rows. A fixed
            # shuffle makes them a sample of the whole folder (notebooks/RESULTS.md, round 25).
            random.Random(0).shuffle(plan.todo)
        records, embeddings = [], []
        last = time.perf_counter()
        stage = embed_stage or (lambda todo, rep, prog: embed_files(todo, embed, rep, prog))
        for record, emb in stage(plan.todo, report, progress):
            records.append(record)
            embeddings.append(emb)
            if time.perf_counter() - last >= commit_seconds:
                index.append(records, embeddings)
                records, embeddings, last = [], [], time.perf_counter()
        index.append(records, embeddings)
        _copy_twins(index, plan)
        index.refresh_derived()
    report.seconds = time.perf_counter() - started
    return report


def _copy_twins(index: VideoIndex, plan: Plan) -> None:
    """Each twin takes a copy of the rows embedded this run for its first file; when that
    file could not be embedded, the twin is reported skipped for the same reason."""
    skipped = dict(plan.report.skipped)
    ready = {}
    for vid, (first, path) in plan.twins.items():
        if first in index:
            ready[vid] = (first, path)
            plan.report.reused.append((first, vid))
        else:
            plan.report.skipped.append((vid, skipped.get(first, f"{first} (the same bytes) was not indexed")))
    _reuse_stored(index, ready)


def _reuse_stored(index: VideoIndex, reuse: dict[str, tuple[str, Path]], batch: int = 1000) -> None:
    """Add each new id with a copy of the stored rows of the indexed video of the same bytes,
    `batch` videos a segment (so memory stays bounded)."""
    items = list(reuse.items())
    for a in range(0, len(items), batch):
        records, stored = [], []
        for vid, (same, path) in items[a : a + batch]:
            pos = index.position(same)
            st = path.stat()
            records.append(replace(index.records[pos], id=vid, path=vid, size=st.st_size, mtime_ns=st.st_mtime_ns))
            stored.append(index.stored_video(pos))
        index.append(records, stored)
