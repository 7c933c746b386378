"""The training recipe's settings, in one dataclass (the CLI's flags are made from it)."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass


class Loss(str, enum.Enum):
    """The video-level loss (see losses.py)."""

    INFONCE = "infonce"
    CIRCLE = "circle"
    QUADLINEAR_AP = "ap"


@dataclass
class TrainConfig:
    dim: int = 512            # PCA output = TCA width
    heads: int = 8
    ff_dim: int = 2048
    dropout: float = 0.2
    loss: Loss = Loss.INFONCE
    temperature: float = 0.05  # InfoNCE
    gamma: float = 256.0       # Circle scale
    margin: float = 0.25       # Circle relaxation
    sigma: float = 0.05        # QuadLinear-AP smoothing
    frame_weight: float = 1.0  # weight of the in-batch chamfer InfoNCE (0 = video level only)
    match_weight: float = 0.0  # weight of the frame-to-frame InfoNCE on matching moments (self-supervised)
    identity_init: bool = False  # start the transformer at the identity (zeroed residual outputs)
    attention_only: bool = False  # start at the identity and train only the attention's query/key projections
    context_only: bool = False  # start at the identity and train only the attention (q, k, v, output); the feed-forward stays the identity
    input_scale: float = 1.0   # TCA input multiplier (sqrt(dim): attention logits that can move, see tca.py)
    pooling: str = "mean"      # TCA video vector: "mean" of refined frames, weighted by "attention", or by "distinctive"-ness
    hard_fraction: float = 0.5  # supervised: share of extra negatives that are an anchor's hard negatives
    match_tolerance: float = 1.0  # seconds apart two frames of one video may be and still match
    bank: int = 4096
    batch: int = 32
    steps: int = 1500
    lr: float = 3e-4
    weight_decay: float = 0.0
    clip_frames: int = 32      # longest training window, in 1-fps frames (paper: 64)
    views: int = 6             # spatial views per video (view 0 is the clean video)
    view_fps: float = 2.0      # descriptors per second kept for training (phase jitter)
    pca_shrinkage: float = 0.5
    whitening: str = ""        # a model bundle whose whitening is kept ("": fit one on the training views)
    seed: int = 0

    def as_info(self) -> dict:
        d = asdict(self)
        d["loss"] = self.loss.value
        return d
