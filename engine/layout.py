"""A frame's layout: a small grey thumbnail stored beside its CNN embedding.

Why: an ImageNet CNN's descriptor of a heavily re-encoded (CRF 44), greyscale or
colour-edited copy moves as far from its source as two look-alike uploads of one channel
are apart (one screencast window, one desk set, one slide template), so copies ranked
below look-alikes (notebooks/RESULTS.md, rounds 25 and 28). Where the light and dark parts
of the picture lie survives those edits, and differs between two uploads with different
content: a SIDE x SIDE grey thumbnail of the frame the CNN sees, its mean removed
(brightness) and scaled to unit length (contrast), is that layout. It is concatenated
after the whitened CNN embedding with `weight`, so the inner product of two frames is
(1 - weight) x their CNN cosine + weight x their layout cosine, and every measure, the
corpus-aware backgrounds and the index use it unchanged. The video vector stays the CNN's:
layouts of a video's frames pooled together say little (they cancel, or add up to its
channel's template), so its layout part is zero.

Chosen on the train / val splits of three collection draws (notebooks/RESULTS.md, round 32):
8 x 8 at weight 0.2 takes chamfer mAP from 0.868 to 0.891 and same-channel intrusion from 22%
to 19% of queries; 16 x 16 gives the same (0.891) at four times the size; on two draws 12 x 12
and weights 0.1-0.3 are within 0.004, 0.4-0.5 lose.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as `engine.variants` greys a frame


@dataclass(frozen=True)
class Layout:
    """side: the thumbnail is side x side; weight: its share of a frame's inner product (0-1)."""

    side: int = 8
    weight: float = 0.2

    def __post_init__(self) -> None:
        # a weight outside (0, 1) would scale the CNN part by sqrt of a negative number (NaN)
        if not (isinstance(self.side, int) and self.side >= 1 and 0 < self.weight < 1):
            raise ValueError(f"a layout needs a side of at least 1 and a weight between 0 and 1, "
                             f"not side {self.side!r}, weight {self.weight!r}")

    @property
    def dim(self) -> int:
        return self.side * self.side

    def config(self) -> dict:
        return {"side": self.side, "weight": self.weight}


def thumbnails(images: torch.Tensor, side: int) -> torch.Tensor:
    """RGB frames float [B, 3, H, W] in 0-255 -> grey thumbnails float32 [B, side * side] in 0-1
    (each cell the mean of the pixels it covers)."""
    import torch  # here, so that the CLI's flags (which name `Layout`'s defaults) load without torch
    import torch.nn.functional as F

    grey = torch.einsum("bchw,c->bhw", images.float(), torch.tensor(LUMA, device=images.device))
    return F.adaptive_avg_pool2d(grey[:, None], side).flatten(1) / 255.0


def layout_rows(thumbs: np.ndarray) -> np.ndarray:
    """Thumbnails [..., side * side] -> layouts float32 [..., side * side]: mean removed,
    unit length (a flat frame, which has no layout, gives zeros)."""
    x = np.asarray(thumbs, np.float32)
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 1e-2, x / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def with_layout(frames: np.ndarray, video: np.ndarray, thumbs: np.ndarray, layout: Layout
                ) -> tuple[np.ndarray, np.ndarray]:
    """Unit frame embeddings [T, d] and their video vector [d], with the frames' thumbnails
    [T, side * side] -> (frames [T, d + side * side], unit where the CNN's were; video
    [d + side * side], its layout part zero)."""
    rows = layout_rows(thumbs)
    # a flat frame has no layout: its CNN part keeps its whole length
    cnn = np.where(np.any(rows != 0, axis=-1, keepdims=True), np.sqrt(1.0 - layout.weight), 1.0)
    out = np.concatenate([cnn * frames, np.sqrt(layout.weight) * rows], axis=-1).astype(np.float32)
    return out, np.concatenate([video, np.zeros(layout.dim, np.float32)]).astype(np.float32)
