"""From a video file to its embeddings: decode -> backbone -> PCA -> TCA.

Decoding runs in a background thread (FFmpeg releases the GIL) and hands batches of
frames to the backbone as they come, so the CNN works while the decoder is still busy.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .backbone import FrameEncoder, Precision, load_backbone
from .inner_pictures import crop, grey, inner_boxes
from .layout import with_layout
from .model import ModelBundle
from .tca import aggregate
from .text import READ_SIDE, KeptFrames, TextStream
from .variants import Variant, apply_variant
from .video import DEFAULT_MAX_DURATION, MAX_PIXELS, DecodeReport, VideoInfo, iter_frame_views, iter_frames, sample_tick


@dataclass
class VideoEmbedding:
    """A video as the engine sees it.

    times: float32 [T] seconds (start of each sampled frame); step: seconds per sample.
    frames: float32 [T, d] L2-normalised frame embeddings; video: float32 [d], L2-normalised.
    attention: float32 [T], attention each frame receives, sums to 1 (uniform without TCA).
    duration: seconds covered; warnings: notes for the user (capped, truncated);
    capped: True when the video was cut at the engine's max_duration.
    pictures: float32 [V, T, d]: the frame embeddings of V inner pictures (picture-in-picture
    boxes, side-by-side halves, vertical bands: `engine.inner_pictures`) at the same times, or None
    when they were not looked for.
    variants: the query variants described (`engine.variants`), with variant_frames float32
    [W, T, d] and variant_videos float32 [W, d], each variant's sequence embedded like the frames.
    cuts: seconds of the video's hard cuts, found on every decoded frame (`engine.cuts`);
    profile: float32 [T, engine.cuts.PROFILE], its brightness between samples, or None.
    text: float32 [T, engine.text.SKETCH], the text on each frame (`engine.text`; NaN rows:
    none, or not read), or None when it was not read; text_frames: a query's frames kept
    for a search to read those whose text can change its ranking (`engine.text.KeptFrames`).
    """

    times: np.ndarray
    frames: np.ndarray
    video: np.ndarray
    attention: np.ndarray
    duration: float
    step: float
    path: str | None = None
    info: VideoInfo | None = None
    warnings: list[str] = field(default_factory=list)
    capped: bool = False
    pictures: np.ndarray | None = None
    variants: tuple[Variant, ...] = ()
    variant_frames: np.ndarray | None = None
    variant_videos: np.ndarray | None = None
    cuts: list[float] = field(default_factory=list)
    profile: np.ndarray | None = None
    text: np.ndarray | None = None
    text_frames: KeptFrames | None = field(default=None, repr=False)

    @property
    def num_frames(self) -> int:
        return int(len(self.times))

    @property
    def looks(self) -> tuple[np.ndarray, np.ndarray]:
        """What a search compares: (frames [L, T, d], videos [L, d]), the video itself then
        each of its variants (L = 1 + W)."""
        if self.variant_frames is None or not len(self.variant_frames):
            return self.frames[None], self.video[None]
        return (np.concatenate([self.frames[None], self.variant_frames]),
                np.concatenate([self.video[None], self.variant_videos]))


# Short side (px) of the whole frames that inner pictures are found in and cut from.
WHOLE_SIDE = 180


# Decoded batches waiting for the CNN (8 samples of 224 x 224 RGB: 1.2 MB a batch): deep
# enough that the decoder finishes while the CNN still has most of a clip's variants to
# run, which then get every core (notebooks/RESULTS.md, round 38).
QUEUED_BATCHES = 32


class Embedder:
    """Loads the backbone once and embeds videos with a model bundle (PCA + optional TCA)."""

    def __init__(
        self,
        bundle: ModelBundle,
        backbone_weights: str | Path | None = None,
        device: str = "cpu",
        fps: float = 1.0,
        max_duration: float | None = DEFAULT_MAX_DURATION,
        batch_size: int = 8,
        encoder: FrameEncoder | None = None,
        max_pixels: int = MAX_PIXELS,
        precision: Precision | str = Precision.AUTO,
    ):
        self.bundle = bundle
        self.precision = Precision(precision)
        self.max_pixels = max_pixels
        self.device = torch.device(device)
        self.fps = fps
        self.max_duration = max_duration
        self.batch_size = batch_size
        self.encoder = encoder or load_backbone(
            bundle.backbone, backbone_weights, bundle.pooling, self.device, self.precision,
            bundle.layout.side if bundle.layout is not None else 0, bundle.cnn,
        )
        if bundle.pca is not None and bundle.pca.dim_in + bundle.layout_dim != self.encoder.dim:
            raise ValueError(
                f"model {bundle.name}: its PCA and layout expect {bundle.pca.dim_in + bundle.layout_dim}-d "
                f"descriptors but backbone {bundle.backbone.value} gives {self.encoder.dim}-d"
            )
        if bundle.tca is not None:
            bundle.tca.to(self.device).eval()

    @property
    def dim(self) -> int:
        return self.bundle.dim or self.encoder.dim

    def descriptors(self, path: str | Path, report: DecodeReport | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Backbone descriptors of a video: (times [T] s, float32 [T, D_backbone]).

        The file is opened once; what decoding found (container facts, cap, duration
        covered, notes) is filled into `report`."""
        times, descs, _ = self.variant_descriptors(path, (), report)
        return times, descs

    def variant_descriptors(self, path: str | Path, variants: tuple[Variant, ...],
                            report: DecodeReport | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`descriptors` and, from the same decode, those of each query variant
        (`engine.variants`): (times [T] s, float32 [T, D], float32 [W, T, D])."""
        return self._decode_and_describe(path, variants, report)[:3]

    def _decode_and_describe(self, path: str | Path, variants: tuple[Variant, ...], report: DecodeReport | None = None,
                             whole_side: int | None = None, text: TextStream | KeptFrames | None = None
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
        """`variant_descriptors`, and with `whole_side` the whole frames at that short side
        (uint8 [h, w, 3] each, from the same decode; else an empty list); with `text`, each
        whole frame at READ_SIDE is added to it as it is decoded."""
        report = report if report is not None else DecodeReport()
        views = (((256, 224),) + (((whole_side, None),) if whole_side else ())
                 + (((READ_SIDE, None),) if text is not None else ()))
        wholes: list[np.ndarray] = []
        batches: queue.Queue = queue.Queue(maxsize=QUEUED_BATCHES)
        stop, decoded = threading.Event(), threading.Event()

        def put(item: object) -> None:
            while not stop.is_set():
                try:
                    return batches.put(item, timeout=0.1)
                except queue.Full:
                    pass

        def produce() -> None:
            try:
                buf_t, buf_i = [], []
                for t, (img, *more) in iter_frame_views(path, self.fps, views, self.max_duration,
                                                        report=report, max_pixels=self.max_pixels):
                    if stop.is_set():
                        return
                    buf_t.append(t)
                    buf_i.append(img)
                    if whole_side:
                        wholes.append(more[0])
                    if text is not None:
                        text.add(more[-1])
                    if len(buf_i) == self.batch_size:
                        put((buf_t, np.stack(buf_i)))
                        buf_t, buf_i = [], []
                if buf_i:
                    put((buf_t, np.stack(buf_i)))
                decoded.set()
                put(None)
            except BaseException as err:  # handed to the consumer, which re-raises it
                put(err)

        thread = threading.Thread(target=produce, daemon=True)
        threads = torch.get_num_threads()
        # The decoder keeps ~1.5 cores busy; a CNN on every core as well oversubscribes the
        # CPU and is slower than leaving it one core fewer while both run. Once the decoder
        # is done, the batches still queued (a query's variants make the CNN the slower
        # side) get every core back.
        shared = self.device.type == "cpu" and threads > 1
        if shared:
            torch.set_num_threads(threads - 1)
        thread.start()
        times, descs = [], []
        try:
            while True:
                if shared and decoded.is_set():
                    torch.set_num_threads(threads)
                    shared = False
                item = batches.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                times.extend(item[0])
                descs.append(np.stack([self.encoder.describe(item[1], self.batch_size)]
                                      + [self.encoder.describe(apply_variant(v, item[1]), self.batch_size)
                                         for v in variants]))
        finally:
            stop.set()  # a consumer error must not leave the decoder blocked on a full queue
            torch.set_num_threads(threads)
            thread.join()
            if text is not None:
                text.close()
        out = np.concatenate(descs, axis=1)
        return np.asarray(times, np.float32), out[0], out[1:], wholes

    def embed_descriptors(self, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Backbone descriptors [T, D] -> (frames [T, d], video [d], attention [T]), float32."""
        return embed_sequence(self.bundle, descriptors, self.device)

    def picture_descriptors(self, path: str | Path, times: np.ndarray) -> np.ndarray:
        """Backbone descriptors float32 [V, T, D] of a video's inner pictures (`engine.inner_pictures`)
        at `times` [T] s (those of `descriptors`); V = 0 when there are none. A second,
        small decode of the whole frames (`WHOLE_SIDE` px high, no crop) finds the boxes
        (`embed` takes them from its one decode instead)."""
        step = 1.0 / self.fps
        # by tick, as the sampler numbers them (rounding gave a sample a quarter of a second
        # late at 2 fps the next tick's number, and the video no pictures at all)
        shown = {sample_tick(t, step): img for t, img in iter_frames(
            path, self.fps, short_side=WHOLE_SIDE, crop=None, max_duration=self.max_duration,
            max_pixels=self.max_pixels)}
        keys = [sample_tick(float(t), step) for t in times]
        if not keys or not all(k in shown for k in keys):  # a damaged file: whole frames only
            return np.zeros((0, len(times), self.encoder.dim), np.float32)
        return self._pictures_in([shown[k] for k in keys])

    def _pictures_in(self, images: list[np.ndarray]) -> np.ndarray:
        """Backbone descriptors float32 [V, T, D] of the inner pictures found in a video's
        whole frames (uint8 [h, w, 3] each, `WHOLE_SIDE` high)."""
        out = [self.encoder.describe(np.stack([crop(img, box) for img in images]), self.batch_size)
               for box in inner_boxes(grey(np.stack(images)), fps=self.fps)] if images else []
        return np.stack(out) if out else np.zeros((0, len(images), self.encoder.dim), np.float32)

    def embed(self, path: str | Path, inner_pictures: bool = False,
              variants: tuple[Variant, ...] = (), text: bool = False,
              keep_text_frames: bool = False) -> VideoEmbedding:
        """Embed one video file; with `inner_pictures`, its inner pictures too (for indexing:
        a query is compared whole); with `variants`, those query variants too (for searching:
        `engine.variants`); with `text`, the text on its frames (`engine.text`), read beside
        the CNN; with `keep_text_frames`, its frames kept to be read later (`text_frames`).
        Raises engine.video.VideoError for files that cannot be used and
        engine.text.TextUnavailable when `text` cannot be read here."""
        report = DecodeReport()
        stream = TextStream() if text else KeptFrames() if keep_text_frames else None
        times, desc, variant_desc, wholes = self._decode_and_describe(
            path, tuple(variants), report, WHOLE_SIDE if inner_pictures else None, stream)
        frames, video, attention = self.embed_descriptors(desc)
        variant_frames, variant_videos = embed_sequences(self.bundle, variant_desc, self.device) if variants \
            else (None, None)
        return VideoEmbedding(
            times=times,
            frames=frames,
            video=video,
            attention=attention,
            duration=report.duration,
            step=1.0 / self.fps,
            path=str(path),
            info=report.info,
            warnings=report.warnings,
            capped=report.capped,
            pictures=embed_pictures(self.bundle, self._pictures_in(wholes), self.device) if inner_pictures else None,
            variants=tuple(variants),
            variant_frames=variant_frames,
            variant_videos=variant_videos,
            cuts=list(report.cuts),
            profile=report.brightness_profile(times, 1.0 / self.fps),
            text=stream.sketches() if isinstance(stream, TextStream) else None,
            text_frames=stream if isinstance(stream, KeptFrames) else None,
        )


def embed_sequences(bundle: ModelBundle, descriptors: np.ndarray, device: str | torch.device = "cpu",
                    use_tca: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """V sequences of one video's backbone descriptors [V, T, D] (its inner pictures, or its
    query variants) -> (frame embeddings float32 [V, T, d], video vectors float32 [V, d]),
    each sequence embedded like a whole video's frames (`embed_sequence`, `use_tca` alike)."""
    descriptors = np.asarray(descriptors, np.float32)
    out = [embed_sequence(bundle, d, device, use_tca)[:2] for d in descriptors]
    if not out:
        dim = bundle.dim or descriptors.shape[2]
        return np.zeros((0, descriptors.shape[1], dim), np.float32), np.zeros((0, dim), np.float32)
    return np.stack([f for f, _ in out]), np.stack([v for _, v in out])


def embed_pictures(bundle: ModelBundle, descriptors: np.ndarray, device: str | torch.device = "cpu",
                   use_tca: bool = True) -> np.ndarray:
    """Inner pictures' backbone descriptors [V, T, D] -> frame embeddings float32 [V, T, d]."""
    return embed_sequences(bundle, descriptors, device, use_tca)[0]


@torch.inference_mode()
def embed_sequence(
    bundle: ModelBundle, descriptors: np.ndarray, device: str | torch.device = "cpu", use_tca: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One video's frame descriptors -> (frames [T, d], video [d], attention [T]), float32.

    descriptors [T, D]: the backbone's raw ones (D = the PCA's input size), or ones already
    whitened to the model's size (the paper's released features), which skip the PCA; for a
    model with a layout (`engine.layout`), each followed by the frame's thumbnail, and d
    counts the layout too. use_tca=False gives the model's no-TCA baseline (mean pooling)."""
    x = np.asarray(descriptors, np.float32)
    thumbs = None
    if bundle.layout is not None:
        x, thumbs = x[:, : x.shape[1] - bundle.layout_dim], x[:, x.shape[1] - bundle.layout_dim :]
    if bundle.pca is not None and x.shape[1] == bundle.pca.dim_in:
        x = bundle.pca.apply(x)
    else:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    h = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(0).to(device)
    mask = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
    tca = bundle.tca if use_tca else None
    out = tca(h, mask) if tca is not None else aggregate(h, mask)
    frames, video = out.frames[0].float().cpu().numpy(), out.video[0].float().cpu().numpy()
    if thumbs is not None:
        frames, video = with_layout(frames, video, thumbs, bundle.layout)
    return frames, video, out.attention[0].float().cpu().numpy()
