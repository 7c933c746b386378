"""Demo timings: `python -m app.bench [--clip FILE] [--runs 3]`.

Prints app start-up (building the Service and the page, then launching), the page's
first render in headless chromium (navigation to the collection map drawn), and the time
from request to results for a clip, through the API (gradio_client) and through the page
(click Search -> heat strips and matrix drawn).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from engine import ASSETS

DEFAULT_CLIP = ASSETS / "demo" / "videos" / "sources" / "vtest.mp4"  # 30 s of real footage


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--port", type=int, default=7870)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args(argv)

    from gradio_client import Client, handle_file

    from .launch import create, launch_kwargs

    t0 = time.perf_counter()
    demo, service = create()
    built = time.perf_counter() - t0
    demo.launch(prevent_thread_lock=True, server_port=args.port, quiet=True, **launch_kwargs())
    started = time.perf_counter() - t0
    url = f"http://127.0.0.1:{args.port}/"
    print(f"start-up: {started:.2f} s (service + page built in {built:.2f} s)")
    try:
        print(f"clip: {args.clip} ({service.engine.probe(args.clip).duration:.1f} s)")
        client = Client(url, verbose=False)
        api = []
        for _ in range(args.runs):
            t = time.perf_counter()
            out = client.predict(handle_file(str(args.clip)), "chamfer", 10, api_name="/search")
            api.append(time.perf_counter() - t)
        print(f"API request -> JSON results (top 10 + figure data): median {statistics.median(api):.2f} s "
              f"of {args.runs} (server-side search {out['seconds']:.2f} s)")
        if Path(args.chromium).exists():
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("#search-button")
                shell = time.perf_counter() - t
                page.wait_for_selector("#collection-map svg circle", timeout=120_000)
                print(f"first render: page usable {shell:.2f} s, collection map drawn {time.perf_counter() - t:.2f} s")
                ui = []
                for i in range(args.runs):
                    if i:  # a fresh page each run, so the timed wait sees new results
                        page.reload()
                        page.wait_for_selector("#collection-map svg circle", timeout=120_000)
                    page.set_input_files("#query-video input[type=file]", str(args.clip))
                    page.wait_for_selector("#query-video video", timeout=60_000)
                    t = time.perf_counter()
                    page.click("#search-button")
                    page.wait_for_selector("#heat-strips .cell", timeout=120_000)
                    page.wait_for_selector("#matrix .js-plotly-plot .heatmaplayer", timeout=60_000)
                    ui.append(time.perf_counter() - t)
                print(f"page: click Search -> results, strips and matrix drawn: median {statistics.median(ui):.2f} s "
                      f"of {args.runs} (first {ui[0]:.2f} s: previews and thumbnails not cached yet)")
                browser.close()
        else:
            print(f"{args.chromium} not found: page timings skipped")
    finally:
        demo.close()
        service.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
