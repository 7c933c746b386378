"""The model bundle: which backbone, the PCA whitening and (optionally) a TCA, in one file.

One safetensors file holds the tensors (`pca.mean`, `pca.projection`, `tca.*`, and `cnn.*`: the
CNN layers tuned for copies, when the whitening was fitted on a tuned CNN) and its
metadata the backbone name, pooling, TCA shape and layout (`engine.layout`: each frame's
grey thumbnail beside its whitened CNN embedding), so an index can name the exact model it
was built with by the file's SHA-256. A bundle without `tca.*` is the no-TCA baseline:
frames pass through unchanged and the video vector is their mean.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from .backbone import Backbone, Pooling
from .errors import UserError
from .files import atomic_write, resolve
from .layout import Layout
from .pca import PCA
from .tca import TCA

FORMAT = "tca-bundle/1"


class ModelError(UserError):
    """A model file that cannot be used; the message names the file and what to do."""


@dataclass
class ModelBundle:
    backbone: Backbone
    pooling: Pooling
    pca: PCA | None
    tca: TCA | None
    info: dict = field(default_factory=dict)  # free-form: how it was trained, on what
    sha256: str = ""  # of the file it was loaded from / saved to
    # each frame's grey thumbnail beside its whitened CNN embedding (`engine.layout`); None: CNN only
    layout: Layout | None = None
    # the CNN layers tuned for copies (`python -m engine tune-cnn`), in the backbone's own key
    # names; they replace the packaged ImageNet weights. None: the CNN as published
    cnn: dict[str, np.ndarray] | None = None

    @property
    def dim(self) -> int | None:
        """Embedding dimension (the whitened CNN's, then the layout's), or None when it is
        the backbone's (no PCA)."""
        return self.pca.dim + self.layout_dim if self.pca is not None else None

    @property
    def layout_dim(self) -> int:
        """How many values of each frame (raw descriptor and embedding alike) are its layout."""
        return self.layout.dim if self.layout is not None else 0

    @property
    def identity(self) -> str:
        """What an index records to refuse mixing models: the file hash, or the builtin name
        (with '+no-tca' when the bundle's TCA was taken out)."""
        base = self.sha256 or f"builtin:{self.backbone.value}:{self.pooling.value}"
        return base + ("+no-tca" if self.info.get("tca_removed") else "")

    def without_tca(self) -> "ModelBundle":
        """The same model with TCA replaced by mean pooling (its no-TCA baseline)."""
        if self.tca is None:
            return self
        return replace(self, tca=None, info={**self.info, "tca_removed": True})

    @property
    def distinctive(self) -> bool:
        """Whether an index of this model pools each video's frames by their distinctiveness
        in the collection (`engine.background`): without TCA, or a TCA trained with that
        pooling ("distinctive"); else the TCA's own video vector."""
        return self.tca is None or self.tca.pooling == "distinctive"

    @property
    def name(self) -> str:
        if not self.sha256:
            return f"{self.backbone.value} (builtin: no PCA, no TCA)"
        kind = "TCA" if self.tca is not None else ("PCA only, TCA off" if self.info.get("tca_removed") else "PCA only")
        if self.layout is not None:
            kind += f", {self.layout.side}x{self.layout.side} layout"
        if self.cnn:
            kind += ", CNN tuned for copies"
        return f"{self.backbone.value} + {kind} ({self.sha256[:12]})"


def builtin_model(backbone: Backbone | str = Backbone.EFFICIENTNET_LITE0,
                  pooling: Pooling | str = Pooling.L3_IRMAC) -> ModelBundle:
    """No PCA, no TCA: L2-normalised backbone descriptors, mean-pooled. Needs no file."""
    return ModelBundle(Backbone(backbone), Pooling(pooling), None, None)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(bundle: ModelBundle, path: str | Path) -> str:
    """Write the bundle atomically (temp file, then rename); returns its SHA-256."""
    path = Path(path)
    tensors: dict[str, np.ndarray] = {}
    meta = {
        "format": FORMAT,
        "backbone": bundle.backbone.value,
        "pooling": bundle.pooling.value,
        "info": json.dumps(bundle.info),
    }
    if bundle.pca is not None:
        tensors["pca.mean"] = bundle.pca.mean
        tensors["pca.projection"] = bundle.pca.projection
    if bundle.tca is not None:
        meta["tca"] = json.dumps(bundle.tca.config())
        for k, v in bundle.tca.state_dict().items():
            tensors[f"tca.{k}"] = v.detach().cpu().float().numpy()
    if bundle.layout is not None:
        meta["layout"] = json.dumps(bundle.layout.config())
    for k, v in (bundle.cnn or {}).items():
        tensors[f"cnn.{k}"] = np.asarray(v, np.float32)
    data = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=meta)
    with atomic_write(path) as tmp:
        Path(tmp).write_bytes(_canonical_header(data))
    bundle.sha256 = file_sha256(path)
    return bundle.sha256


def _canonical_header(data: bytes) -> bytes:
    """The safetensors bytes with their JSON header's keys sorted. safetensors writes its
    metadata in hash-map order, which changes from run to run, and an index names its model
    by the file's SHA-256: the same model saved twice must be the same file."""
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data stays 8-byte aligned, as safetensors keeps it
    return len(header).to_bytes(8, "little") + header + data[8 + n :]


def load_model(source: str | Path) -> ModelBundle:
    """Read a bundle written by `save_model` from a local file or `hf://owner/repo[/file]`
    (default file model.safetensors). Raises ModelError with a clear message."""
    path = resolve(source, "model.safetensors", ModelError, "model file")
    if not path.is_file():
        raise ModelError(f"{path}: not a model file (a folder?); give the .safetensors file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelError(f"{path}: not a safetensors model bundle ({err})") from err
    if meta.get("format") != FORMAT:
        raise ModelError(
            f"{path}: not a model bundle of this engine (format {meta.get('format')!r}, "
            f"expected {FORMAT!r}); make one with `python -m engine train` or `python -m engine pca`"
        )
    pca = None
    if "pca.mean" in tensors:
        pca = PCA(tensors["pca.mean"], tensors["pca.projection"])
    tca = None
    if "tca" in meta:
        cfg = json.loads(meta["tca"])
        tca = TCA(**cfg)
        state = {k[4:]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith("tca.")}
        try:
            tca.load_state_dict(state)
        except RuntimeError as err:
            raise ModelError(f"{path}: TCA weights do not match their config ({err})") from err
        tca.eval()
    layout = None
    if "layout" in meta:
        try:
            layout = Layout(**json.loads(meta["layout"]))
        except (TypeError, ValueError) as err:
            raise ModelError(f"{path}: unreadable layout settings {meta['layout']!r} ({err})") from err
        if pca is None:
            raise ModelError(f"{path}: a layout needs the model's PCA whitening, and this file has none")
    cnn = {k[4:]: v for k, v in tensors.items() if k.startswith("cnn.")} or None
    return ModelBundle(
        backbone=Backbone(meta["backbone"]),
        pooling=Pooling(meta["pooling"]),
        pca=pca,
        tca=tca,
        info=json.loads(meta.get("info", "{}")),
        sha256=file_sha256(path),
        layout=layout,
        cnn=cnn,
    )
