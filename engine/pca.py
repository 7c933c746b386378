"""PCA whitening of frame descriptors: centre, rotate, scale each component to unit variance.

Fitted once on frames of a corpus (the paper: ~1M random frames), then applied to every
frame: x -> normalise((x - mean) @ projection). Whitening divides by sqrt(eigenvalue);
on a small corpus the smallest eigenvalues are mostly noise, so a shrinkage term (a
fraction of the mean eigenvalue) is added before dividing, which keeps noise from being
amplified into the descriptor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PCA:
    """mean: float32 [D_in]; projection: float32 [D_in, D_out]."""

    mean: np.ndarray
    projection: np.ndarray

    @property
    def dim_in(self) -> int:
        return int(self.projection.shape[0])

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    def apply(self, x: np.ndarray) -> np.ndarray:
        """[N, D_in] -> L2-normalised float32 [N, D_out]."""
        y = (np.asarray(x, np.float32) - self.mean) @ self.projection
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def fit_pca(x: np.ndarray, dim: int = 1024, shrinkage: float = 0.1) -> PCA:
    """Fit whitening PCA on descriptors x [N, D_in] (rows are frames).

    dim: output dimensions (at most D_in). shrinkage: added to every eigenvalue as a
    fraction of their mean before the 1/sqrt scaling (0 = full whitening).
    """
    x = np.asarray(x, np.float64)
    n, d_in = x.shape
    if n < 2:
        raise ValueError(f"PCA needs at least 2 frames, got {n}")
    dim = min(dim, d_in)
    mean = x.mean(axis=0)
    xc = torch.from_numpy(x - mean)
    cov = (xc.T @ xc) / (n - 1)
    eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
    eigvals = eigvals.flip(0)[:dim].clamp_min(0)
    eigvecs = eigvecs.flip(1)[:, :dim]
    # eigh's signs are arbitrary; fix them so refits on the same data agree.
    signs = torch.sign(eigvecs[eigvecs.abs().argmax(dim=0), torch.arange(dim)])
    eigvecs = eigvecs * signs
    reg = shrinkage * float(torch.trace(cov)) / d_in  # the mean eigenvalue, without a second eigh
    projection = eigvecs / torch.sqrt(eigvals + reg + 1e-12)
    return PCA(mean.astype(np.float32), projection.numpy().astype(np.float32))
