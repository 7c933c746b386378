"""Frame features for evaluation: read, cache, compute, and embed with a model.

Frame features are the backbone's raw descriptors, one float array [T, D] per video id.
They come from a feature file (`.npz`, or HDF5 `.h5`/`.hdf5` with one dataset per id:
what FIVR users already have) or are computed from a folder of videos (ids are paths
relative to it) and cached in an `.npz`, so that comparing many models costs one pass of
the CNN. Features whose size is the model's output size (already PCA-whitened, like the
paper's released features) skip the PCA. Videos are always embedded whole: no random
crops at evaluation.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..embedding import embed_sequence, embed_sequences
from ..errors import UserError
from ..files import atomic_write
from ..model import ModelBundle

Features = dict[str, np.ndarray]
# The entry of a cache (.npz) that says what made its features (`extract_features`' made_by);
# never a video id.
MADE_BY = "__made_by__"


class FeatureError(UserError):
    """A feature file that cannot be used; the message names it and says what to do."""


def load_features(path: str | Path, ids: Iterable[str] | None = None) -> Features:
    """Read frame features {id: float32 [T, D]} from .npz or HDF5 (only `ids` if given)."""
    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"{path}: feature file not found")
    wanted = set(ids) if ids is not None else None
    if path.suffix in (".h5", ".hdf5"):
        try:
            import h5py
        except ImportError as err:
            raise FeatureError(f"{path}: reading HDF5 needs h5py (pip install h5py)") from err
        try:
            with h5py.File(path, "r") as f:
                keys = [k for k in f.keys() if wanted is None or k in wanted]
                return {k: np.asarray(f[k], np.float32) for k in keys}
        except OSError as err:
            raise FeatureError(f"{path}: not a readable HDF5 file of frame features ({err})") from err
    return _read_npz(path, wanted)[0]


def _read_npz(path: Path, wanted: set[str] | None) -> tuple[Features, str | None]:
    """The features of an .npz (only `wanted` ids if given) and what made them (None: not
    recorded, see `save_features`)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = [k for k in data.files if k != MADE_BY and (wanted is None or k in wanted)]
            made_by = str(data[MADE_BY]) if MADE_BY in data.files else None
            return {k: np.asarray(data[k], np.float32) for k in keys}, made_by
    except (OSError, ValueError) as err:
        raise FeatureError(f"{path}: not a readable .npz of frame features ({err})") from err


def save_features(features: Mapping[str, np.ndarray], path: str | Path, made_by: str = "",
                  dtype: type = np.float16) -> None:
    """Write {id: [T, D]} as .npz (float16 halves the size; cosine barely moves; values that
    must stay exact, such as text hashes, need float32), atomically, with `made_by` (what
    made them) when given."""
    with atomic_write(path) as tmp:
        np.savez(tmp, **{k: np.asarray(v, dtype) for k, v in features.items()},
                 **({MADE_BY: np.array(made_by)} if made_by else {}))


def cache_made_by(path: str | Path) -> str | None:
    """What made the features of a cache written by `save_features` (None: not recorded)."""
    return _read_npz(Path(path), set())[1]


def extract_features(video_dir: str | Path, ids: Iterable[str], describe, cache: str | Path | None = None,
                     made_by: str = "", dtype: type = np.float16) -> Features:
    """Backbone descriptors of the videos `ids` under `video_dir`, reusing `cache` (.npz).

    describe: path -> float32 [T, D] (e.g. `Embedder.descriptors(p)[1]`). Unreadable
    videos are reported on stderr and left out. made_by: what `describe` is (backbone,
    precision, rate...), kept in the cache; a cache made by something else is an error,
    since extending it would mix two kinds of descriptor without a word. dtype: how the
    cache stores them (`save_features`)."""
    from ..video import VideoError

    feats: Features = {}
    label = made_by  # an older cache that does not say what made it stays unlabelled
    if cache is not None and Path(cache).is_file():
        feats, stored = _read_npz(Path(cache), None)
        if made_by and stored is not None and stored != made_by:
            raise FeatureError(f"{cache}: its features were made by {stored}, not by {made_by}; "
                               "pass another --cache or delete this one")
        if stored is None and feats:
            label = ""
            if made_by:
                print(f"note: {cache} does not say what made its features (an older cache); they are "
                      "used as they are", file=sys.stderr)
    missing = [i for i in ids if i not in feats]
    for vid in tqdm(missing, desc="describing", unit="video", disable=not missing):
        try:
            feats[vid] = describe(Path(video_dir) / vid)
        except VideoError as err:
            print(f"skipped {err}", file=sys.stderr)
    if cache is not None and missing:
        save_features(feats, cache, label, dtype)
    return feats


def extract_cuts_and_profiles(video_dir: str | Path, ids: Iterable[str], find,
                              cache: str | Path | None = None, made_by: str = ""
                              ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Hard cuts {id: seconds} and brightness profiles {id: float32 [T, P]} of the videos
    `ids` under `video_dir`, reusing `cache` (.json).

    find: path -> (cuts, profile) (e.g. `engine.video.cuts_and_profile` at the sampling rate:
    which frames a pass decodes depends on it); made_by says how, and a cache made otherwise
    is an error. Unreadable videos are left out (`extract_features` reports them)."""
    from ..video import VideoError

    found: dict[str, list[float]] = {}
    profiles: dict[str, list] = {}
    if cache is not None and Path(cache).is_file():
        try:
            stored = json.loads(Path(cache).read_text())
            found, profiles, stored_by = dict(stored["cuts"]), dict(stored["profiles"]), stored.get("made_by", "")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise FeatureError(f"{cache}: not a readable cache of hard cuts ({err}); delete it") from err
        if stored_by != made_by:
            raise FeatureError(f"{cache}: its cuts were found {stored_by}, not {made_by}; "
                               "pass another --cache or delete this one")
    missing = [i for i in ids if i not in found or i not in profiles]
    for vid in tqdm(missing, desc="finding cuts", unit="video", disable=not missing):
        try:
            cuts, profile = find(Path(video_dir) / vid)
        except VideoError:
            continue
        found[vid] = [round(float(t), 3) for t in cuts]
        profiles[vid] = np.round(np.asarray(profile, np.float64), 2).tolist()
    if cache is not None and missing:
        with atomic_write(cache) as tmp:
            tmp.write_text(json.dumps({"made_by": made_by, "cuts": found, "profiles": profiles}))
    return found, {k: np.asarray(v, np.float32).reshape(len(v), -1) for k, v in profiles.items()}


def embed_features(bundle: ModelBundle, features: Mapping[str, np.ndarray], device: str = "cpu",
                   use_tca: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{id: (frames [T, d], video [d])} with the bundle's PCA and (if use_tca) its TCA."""
    if use_tca and bundle.tca is not None:
        bundle.tca.to(device).eval()
    n = bundle.layout_dim  # each frame's thumbnail follows its descriptor (`engine.layout`)
    accepted = {bundle.pca.dim_in + n, bundle.pca.dim + n} if bundle.pca is not None else None
    out = {}
    for vid, x in features.items():
        if accepted is not None and x.shape[1] not in accepted:
            raise FeatureError(
                f"video {vid}: features are {x.shape[1]}-d, but model {bundle.name} takes "
                f"{bundle.pca.dim_in}-d backbone descriptors (or {bundle.pca.dim}-d whitened ones)"
                + (f", each followed by its {n}-value layout thumbnail" if n else "")
            )
        frames, video, _ = embed_sequence(bundle, x, device, use_tca)
        out[vid] = (frames, video)
    return out


def with_variants(embeddings: Mapping[str, tuple[np.ndarray, np.ndarray]], variant_features: Mapping[str, np.ndarray],
                  bundle: ModelBundle, device: str = "cpu", use_tca: bool = True
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The embeddings with each video of `variant_features` ({id: backbone descriptors of
    its query variants [W, T, D]}) given as its looks, as a search compares a query:
    (frames [1 + W, T, d], videos [1 + W, d]), itself first (`engine.variants`). Use them
    as queries only: a database is built from plain embeddings."""
    out = dict(embeddings)
    for vid, x in variant_features.items():
        if vid in out and len(x):
            frames, videos = embed_sequences(bundle, x, device, use_tca)
            out[vid] = (np.concatenate([out[vid][0][None], frames]), np.concatenate([out[vid][1][None], videos]))
    return out


def attention_of(bundle: ModelBundle, features: Mapping[str, np.ndarray], ids: Iterable[str],
                 device: str = "cpu") -> dict[str, np.ndarray]:
    """{id: the attention [T] each frame receives} under the bundle's TCA (uniform without one)."""
    return {v: embed_sequence(bundle, features[v], device)[2] for v in ids if v in features}


def black_frames(features: Mapping[str, np.ndarray], black: np.ndarray, threshold: float = 0.95) -> dict[str, np.ndarray]:
    """{id: bool [T]} True where a frame's raw descriptor is within `threshold` cosine of
    `black` [D], the backbone's descriptor of an all-black image (on the collection
    benchmark, black gaps give >= 0.99 and every other frame < 0.95)."""
    b = np.asarray(black, np.float32) / max(float(np.linalg.norm(black)), 1e-12)
    out = {}
    for vid, x in features.items():
        x = np.asarray(x, np.float32)
        if x.shape[1] != b.shape[0]:
            return {}  # already-whitened features: no raw descriptors to compare
        out[vid] = (x @ b) / np.maximum(np.linalg.norm(x, axis=1), 1e-12) >= threshold
    return out
