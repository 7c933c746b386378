"""Temporal Context Aggregation: one transformer encoder layer over a video's frames.

As in the paper: a single post-LN `TransformerEncoderLayer` (d_model = descriptor size,
8 heads, feed-forward 2048), NO positional encoding (frames attend by content, so the
model is indifferent to speed changes and re-ordering), padding masked out. Outputs the
refined frame embeddings (each L2-normalised), the video embedding (masked mean of those,
L2-normalised) and the attention each frame receives (the paper's figure 5).

Two settings go past the paper, both stored with the model (older bundles get the paper's):
- `input_scale`: the descriptors arrive L2-normalised, so each element is ~1/sqrt(d) and,
  with the default initialisation, every attention logit is ~0.001: attention is uniform
  and a few hundred steps never move it. Scaling the input by sqrt(d) (unit-variance
  elements, what a pre-norm transformer sees) gives logits of order 0.5 from the start.
- `pooling`: "mean" (the paper: mean of the refined frames), "attention": the video
  vector is the refined frames weighted by the attention each receives, so the video-level
  loss teaches the attention itself which frames carry the video, and the heat strip shows
  exactly the weights the video vector used; or "distinctive": the refined frames weighted
  by how distinctive each is in the collection (`engine.background`), as an index without
  TCA pools them. Only a collection knows that, so `forward` takes each frame's background
  (an index measures it over itself, training over the training videos); without one the
  video vector is the mean.

The layer is run by hand (attention, residual, norm, feed-forward, residual, norm) so the
attention weights come out of the same pass that produces the embeddings; PyTorch's
fused encoder path never returns them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .background import DISTINCTIVE_POWER


@dataclass
class TCAOutput:
    """frames: [B, T, d] (zeros at padding); video: [B, d]; attention: [B, T], sums to 1 per video."""

    frames: torch.Tensor
    video: torch.Tensor
    attention: torch.Tensor


POOLINGS = ("mean", "attention", "distinctive")


class TCA(nn.Module):
    def __init__(self, dim: int = 1024, heads: int = 8, ff_dim: int = 2048, dropout: float = 0.2,
                 input_scale: float = 1.0, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.dim, self.heads, self.ff_dim = dim, heads, ff_dim
        self.input_scale, self.pooling = float(input_scale), pooling
        self.layer = nn.TransformerEncoderLayer(
            dim, heads, ff_dim, dropout=dropout, batch_first=True, norm_first=False
        )

    def start_at_identity(self) -> "TCA":
        """Zero the two residual branches' output layers (attention output projection and
        the feed-forward's second layer), so an untrained model returns its input frames
        (up to the layer norms) and training only adds context where it helps."""
        for lin in (self.layer.self_attn.out_proj, self.layer.linear2):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        return self

    def config(self) -> dict[str, int | float | str]:
        return {"dim": self.dim, "heads": self.heads, "ff_dim": self.ff_dim,
                "input_scale": self.input_scale, "pooling": self.pooling}

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                background: torch.Tensor | None = None) -> TCAOutput:
        """x: [B, T, d] frame descriptors; mask: bool [B, T], True where a frame is real;
        background: [B, T], each frame's background in the collection (used by "distinctive"
        pooling only)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        layer = self.layer
        x = x * self.input_scale
        attn_out, weights = layer.self_attn(
            x, x, x, key_padding_mask=~mask, need_weights=True, average_attn_weights=True
        )
        h = layer.norm1(x + layer.dropout1(attn_out))
        ff = layer.linear2(layer.dropout(layer.activation(layer.linear1(h))))
        h = layer.norm2(h + layer.dropout2(ff))
        out = aggregate(h, mask, weights, self.pooling == "attention")
        if self.pooling == "distinctive" and background is not None:
            w = (1 - background.to(h.dtype)).clamp_min(0) ** DISTINCTIVE_POWER * mask
            # a video whose every frame is as common as the collection's commonest keeps its mean
            flat = w.sum(1, keepdim=True) <= 1e-12
            w = torch.where(flat, mask.to(h.dtype), w)
            out.video = F.normalize((out.frames * w.unsqueeze(-1)).sum(1), dim=-1)
        return out


def aggregate(h: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None,
              weighted: bool = False) -> TCAOutput:
    """Normalise frames, pool the real ones into a video vector, and sum received attention.

    weights: [B, T(query), T(key)] attention rows, or None for uniform (no TCA).
    weighted: pool with the received attention instead of the plain mean.
    """
    m = mask.to(h.dtype).unsqueeze(-1)
    frames = F.normalize(h, dim=-1) * m
    if weights is None:
        received = mask.to(h.dtype)
    else:
        # Column means over the real query rows: how much attention each frame receives.
        received = (weights * m).sum(1)
    received = received * mask
    attention = received / received.sum(1, keepdim=True).clamp_min(1e-12)
    pool = attention.unsqueeze(-1) if weighted else m / m.sum(1, keepdim=True).clamp_min(1)
    video = F.normalize((frames * pool).sum(1), dim=-1)
    return TCAOutput(frames, video, attention)
