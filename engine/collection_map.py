"""A 2-D map of an indexed collection: UMAP of the video embeddings, fitted at index time.

The map is stored with the index (`map-G.npy`) so that opening it costs nothing; a query
is dropped into the same map at the similarity-weighted mean of its nearest videos'
positions (no UMAP `transform` per request: that would JIT-compile numba code in the
request path).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

# UMAP needs a handful of neighbours; below this many videos a PCA projection is used.
MIN_UMAP_VIDEOS = 6


def fit_map(videos: np.ndarray, seed: int = 0) -> np.ndarray:
    """float32 [N, 2] map coordinates, scaled into [0, 1], for video embeddings [N, d]."""
    n = len(videos)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    x = np.asarray(videos, np.float32)
    if n < MIN_UMAP_VIDEOS:
        coords = _pca_2d(x)
    else:
        # numba (under umap) caches compiled code next to its sources unless told otherwise;
        # an installed package directory may be read-only.
        os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "numba-cache"))
        import umap

        reducer = umap.UMAP(
            n_neighbors=min(15, n - 1), n_components=2, metric="cosine", min_dist=0.1,
            random_state=seed, n_jobs=1, init="spectral" if n > 16 else "random",
        )
        coords = reducer.fit_transform(x)
    return _unit_box(np.asarray(coords, np.float32))


def _pca_2d(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(0)
    if len(x) < 2 or not np.any(centred):
        angle = np.linspace(0, 2 * np.pi, len(x), endpoint=False)
        return np.stack([np.cos(angle), np.sin(angle)], 1)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))


def _unit_box(coords: np.ndarray) -> np.ndarray:
    lo, hi = coords.min(0), coords.max(0)
    span = np.where(hi - lo > 1e-9, hi - lo, 1.0)
    return ((coords - lo) / span).astype(np.float32)


def place(scores: np.ndarray, coords: np.ndarray, k: int = 5, temperature: float = 0.05) -> np.ndarray:
    """Map position [2] of a query from its similarity to every video (scores [N]).

    The softmax-weighted mean of its k most similar videos' positions: a query that is a
    copy of one video lands on it; one between two clusters lands between them.
    """
    if len(scores) == 0:
        return np.array([0.5, 0.5], np.float32)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    w = np.exp((scores[top] - scores[top].max()) / temperature)
    return (w[:, None] * coords[top]).sum(0).astype(np.float32) / w.sum()
