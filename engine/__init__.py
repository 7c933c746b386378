"""TCA video retrieval engine. Its public API (the `Engine` facade and the plain data it
returns) is importable from here; submodules load on first use, so `import engine` and
`python -m engine --help` stay cheap (no torch, FAISS or PyAV until needed).

    from engine import Engine
    eng = Engine(index="my_index")
    result = eng.search("clip.mp4", k=5)

The runtime lives at this level; the lab (training, evaluation, corpus builders) lives in
`engine.training` and `engine.evaluation`, which the runtime never imports.
"""
from __future__ import annotations

import importlib
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
# The default: PCA whitening without TCA, which on footage it was not trained on does not
# beat mean pooling at the frame level (notebooks/RESULTS.md, round 12). The same PCA with
# the TCA trained on the demo footage is TCA_MODEL (`--model assets/model-tca.safetensors`).
DEFAULT_MODEL = ASSETS / "model.safetensors"
TCA_MODEL = ASSETS / "model-tca.safetensors"
DEFAULT_INDEX = ASSETS / "index"

# name -> submodule that defines it
_EXPORTS = {
    "Engine": "api", "Match": "api", "SearchResult": "api", "Comparison": "api", "IndexedVideo": "api",
    "CollectionMap": "api", "EngineInfo": "api", "resolve_model": "api",
    "VideoEmbedding": "embedding", "BuildReport": "indexing",
    "Measure": "similarity", "frame_similarity": "similarity", "chamfer": "similarity",
    "Span": "spans", "matched_span": "spans", "Segment": "spans", "matched_segments": "spans",
    "Backbone": "backbone", "Pooling": "backbone", "VideoInfo": "video",
    "UserError": "errors", "UnknownVideoError": "errors", "VideoError": "video", "ModelError": "model",
    "BackboneError": "backbone", "IndexFileError": "index", "IndexMismatchError": "index",
    "clock": "timefmt", "span_text": "timefmt", "load_results": "results",
}

__all__ = ["ASSETS", "DEFAULT_MODEL", "TCA_MODEL", "DEFAULT_INDEX", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
