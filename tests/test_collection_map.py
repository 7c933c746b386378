"""The UMAP map stored with an index, and placing a query in it."""
import numpy as np

from engine.collection_map import MIN_UMAP_VIDEOS, fit_map, place


def _clusters(n_per: int = 5, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim))
    x = np.concatenate([c + 0.05 * rng.normal(size=(n_per, dim)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(3), n_per)


def test_umap_keeps_clusters_apart_and_fits_the_unit_box():
    x, label = _clusters()
    assert len(x) >= MIN_UMAP_VIDEOS
    coords = fit_map(x)
    assert coords.shape == (15, 2) and coords.min() >= 0 and coords.max() <= 1
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    same = label[:, None] == label[None]
    np.fill_diagonal(same, False)
    # every video's farthest cluster-mate is closer than its nearest other-cluster video
    assert (np.where(same, d, 0).max(1) < np.where(label[:, None] != label[None], d, np.inf).min(1)).all()
    assert np.array_equal(coords, fit_map(x)), "seeded: the same index gives the same map"


def test_tiny_collections_use_a_projection():
    assert fit_map(np.zeros((0, 8))).shape == (0, 2)
    one = fit_map(np.ones((1, 8)))
    assert one.shape == (1, 2) and np.isfinite(one).all()
    three = fit_map(np.eye(3, 8, dtype=np.float32))
    assert three.shape == (3, 2) and len({tuple(p) for p in three.round(4)}) == 3


def test_a_copy_lands_on_its_video():
    x, _ = _clusters()
    coords = fit_map(x)
    q = x[7] + 0.01
    q /= np.linalg.norm(q)
    pos = place(x @ q, coords)
    assert np.linalg.norm(pos - coords[7]) < np.linalg.norm(coords[7] - coords[0])
    assert place(np.zeros(0), np.zeros((0, 2))).tolist() == [0.5, 0.5]
