"""Embedding many files over a Ray cluster: stage 2 of indexing as Ray Data actors.

    python -m engine index VIDEOS INDEX --ray            # a local Ray on this machine
    python -m engine index VIDEOS INDEX --ray auto       # the running cluster (ray start ...)
    python -m engine index VIDEOS INDEX --ray ray://head:10001

The `index` process (the driver) plans the update and holds the index's lock as always;
the file list becomes a Ray Dataset whose `map_batches` runs `EmbedActor`s: each loads the
backbone and model once (GPU actors when the cluster has GPUs) and turns files into
embeddings (decode, CNN, PCA, TCA). The results stream back through Ray's object store, in
the order of the file list, and the driver writes them as segments exactly like the
single-process path: the same index format, the same commit after every finished video, so
a killed run keeps what it finished. Workers read the videos by the paths the driver sees,
so on a cluster the folder must be mounted at the same path on every node.

Ray is optional (requirements-ray.txt); nothing else in the engine imports this module.
"""
from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import UserError
from .indexing import BuildReport, Outcome, collect
from .model import ModelBundle
from .video import MAX_PIXELS, VideoError

LOCAL = "local"  # --ray without an address: start Ray on this machine


class RayError(UserError):
    """Ray is missing, or the cluster cannot run the job; the message says what to do."""


class EmbedActor:
    """One Ray actor: an Embedder loaded once, embedding one file per row.

    Takes a batch {"id": str [B], "path": str [B]} and returns {"id": [B], "error": [B]
    (empty when it worked), "embedding": [B] (a pickled VideoEmbedding, empty on error)}."""

    def __init__(self, bundle: ModelBundle, backbone_weights: str | None, device: str, fps: float,
                 max_duration: float | None, max_pixels: int, inner_pictures: bool = True,
                 precision: str = "auto", text: bool = False):
        from .embedding import Embedder

        self.embedder = Embedder(bundle, backbone_weights, device, fps, max_duration, max_pixels=max_pixels,
                                 precision=precision)
        self.inner_pictures = inner_pictures
        self.text = text

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        errors, embeddings = [], []
        for path in batch["path"]:
            try:
                emb = self.embedder.embed(str(path), self.inner_pictures, text=self.text)
                errors.append("")
                embeddings.append(pickle.dumps(emb, protocol=pickle.HIGHEST_PROTOCOL))
            except VideoError as err:
                errors.append(err.message)
                embeddings.append(b"")
        return {"id": batch["id"], "error": np.array(errors, dtype=object),
                "embedding": np.array(embeddings, dtype=object)}


def connect(address: str | None = LOCAL) -> None:
    """Join a Ray cluster (`address`: "auto", "ray://host:port", ...) or start a local one
    (None or "local"); nothing happens when Ray is already initialised in this process."""
    try:
        import ray
    except ImportError as err:
        raise RayError("--ray needs Ray: pip install -r requirements-ray.txt") from err
    if ray.is_initialized():
        return
    kwargs: dict = {"include_dashboard": False, "log_to_driver": True,
                    "configure_logging": True, "logging_level": "warning"}
    if address and address != LOCAL:
        # Workers on other nodes get this package shipped to them; the dependencies
        # (requirements.txt) must be installed there.
        kwargs["runtime_env"] = {"py_modules": [str(Path(__file__).resolve().parent)]}
    try:
        ray.init(address=None if not address or address == LOCAL else address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise RayError(f"cannot reach the Ray cluster at {address!r}: {err}") from err


def actor_plan(device: str, actors: int | None = None) -> tuple[int, float, float, str]:
    """(actors, CPUs per actor, GPUs per actor, device) for the connected cluster: one
    actor per GPU when it has GPUs, else one per CPU, unless `actors` is given."""
    import ray

    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))
    if device.startswith("cuda") and not gpus:
        raise RayError("--device cuda with --ray: the Ray cluster has no GPUs")
    if gpus:
        n = actors or gpus
        return n, 1.0, min(1.0, gpus / n), "cuda"
    n = actors or cpus
    return n, float(max(1, cpus // n)), 0.0, "cpu"


def embed_files_ray(
    todo: list[tuple[str, Path]],
    report: BuildReport,
    progress: bool,
    bundle: ModelBundle,
    backbone_weights: str | None = None,
    device: str = "cpu",
    precision: str = "auto",
    fps: float = 1.0,
    max_duration: float | None = None,
    max_pixels: int = MAX_PIXELS,
    address: str | None = LOCAL,
    actors: int | None = None,
    inner_pictures: bool = True,
    text: bool = False,
) -> Iterator[tuple]:
    """Stage 2 on Ray: like `indexing.embed_files`, (record, embedding) of each file that
    worked, in the order of `todo`; bad files are reported in `report` and skipped. text:
    read the text on the frames too (`engine.text`; the actors need tesserocr)."""
    if not todo:
        return iter(())
    connect(address)
    import ray

    n, cpus, gpus, actor_device = actor_plan(device, actors)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the same index as the single-process path
    ctx.enable_progress_bars = False  # collect() draws one bar for the whole run
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and progress notes, per run
    items = [{"id": vid, "path": os.fspath(path.resolve())} for vid, path in todo]
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), max(4 * n, len(items) // 16)))
    ds = ds.map_batches(
        EmbedActor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=n),
        num_cpus=cpus, num_gpus=gpus or None,
        fn_constructor_kwargs={"bundle": bundle, "backbone_weights": backbone_weights, "device": actor_device,
                               "fps": fps, "max_duration": max_duration, "max_pixels": max_pixels,
                               "inner_pictures": inner_pictures, "precision": precision, "text": text},
    )
    paths = dict(todo)

    def outcomes() -> Iterator[Outcome]:
        for row in ds.iter_rows():
            vid = str(row["id"])
            if row["error"]:
                yield vid, paths[vid], VideoError(paths[vid], str(row["error"]))
            else:
                yield vid, paths[vid], pickle.loads(row["embedding"])

    return collect(outcomes(), len(todo), report, progress)
