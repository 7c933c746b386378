"""Starting the demo: command-line flags, the Service, the Blocks, launch settings."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="TCA video retrieval demo (Gradio)")
    p.add_argument("--index", help="index folder or hf://owner/repo on the Hugging Face Hub (default: assets/index)")
    p.add_argument("--model", help="model bundle (.safetensors) or hf://owner/repo (default: the index's own)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:0 ... (default: cuda when present)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    return p.parse_args(argv)


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def create(index: str | None = None, model: str | None = None, device: str = "auto"):
    """(Blocks, Service) ready to launch; the caller closes the service's temp folder."""
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "numba-cache"))
    from .service import Service
    from .ui import build

    service = Service(index=index, model=model, device=pick_device(device))
    demo = build(service)
    # Each event takes one request at a time (the others wait in the queue); Service's lock
    # keeps different events off the engine at once: torch's thread pool is process-wide.
    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo, service


def launch_kwargs() -> dict:
    from .ui import CSS, EXAMPLES_DIR

    return dict(
        ssr_mode=False,
        allowed_paths=[str(EXAMPLES_DIR)],
        max_file_size="200mb",
        css=CSS,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from engine import UserError

    try:
        demo, service = create(args.index, args.model, args.device)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_kwargs())
    finally:
        service.close()
    return 0

