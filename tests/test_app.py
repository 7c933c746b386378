"""The demo, end to end: a launched server driven through gradio_client, and a real
headless browser (Debian's chromium via Playwright) clicking through the page."""
from __future__ import annotations

import concurrent.futures
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from media import real_frames, write_audio_only, write_video, write_zero_frames

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from app.launch import create, launch_kwargs  # noqa: E402
from engine import ASSETS  # noqa: E402

EXAMPLES = ASSETS / "demo" / "examples"
CUP = EXAMPLES / "cup-crop+text-none.mp4"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    demo, service = create()
    port = _free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True, **launch_kwargs())
    url = f"http://127.0.0.1:{port}/"
    yield {"url": url, "service": service, "client": Client(url, verbose=False)}
    demo.close()
    service.close()


def _search(server, path: Path, measure: str = "chamfer", k: int = 5) -> dict:
    return server["client"].predict(handle_file(str(path)), measure, k, api_name="/search")


def test_search_example_finds_its_source_with_figure_data(server):
    out = _search(server, CUP)
    assert "error" not in out, out
    top = out["results"][0]
    assert top["id"] in {"sources/cup.mp4"} or top["id"].startswith("copies/cup-"), out["results"]
    assert [r["rank"] for r in out["results"]] == list(range(1, 6))
    scores = [r["score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True)
    q = out["query"]
    assert 7.0 <= q["duration"] <= 9.0
    assert len(q["times"]) == len(q["attention"]) and abs(sum(q["attention"]) - 1) < 1e-3
    assert len(q["distinctiveness"]) == len(q["times"]) and abs(sum(q["distinctiveness"]) - 1) < 1e-3
    assert all(0.0 <= v <= 1.0 for v in q["map"])
    for r in out["results"]:
        sim = np.array(r["similarity"])
        assert sim.shape == (len(q["times"]), len(r["times"]))
        assert len(r["attention"]) == len(r["times"]) == len(r["distinctiveness"])
        # row_best is what chamfer averages: the argmax of each query row
        assert r["row_best"] == sim.argmax(axis=1).tolist()
        m = r["match"]
        assert 0 <= m["query_start"] < m["query_end"] <= q["duration"] + 1e-3
        assert 0 <= m["start"] < m["end"] <= r["duration"] + 1e-3
    # chamfer score of the top match is the mean of the row maxima of its matrix
    assert top["score"] == pytest.approx(np.array(top["similarity"]).max(axis=1).mean(), abs=2e-3)


def test_measures_all_rank_the_family_first(server):
    for measure in ("cosine", "symmetric_chamfer"):
        out = _search(server, CUP, measure, 3)
        assert out["measure"] == measure
        assert "cup" in out["results"][0]["id"], (measure, out["results"])


def test_bad_uploads_get_a_message_and_the_app_keeps_serving(server, tmp_path):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video\n" * 50)
    audio = write_audio_only(tmp_path / "song.m4a")
    empty = write_zero_frames(tmp_path / "empty.mp4")
    if not empty.exists():  # some FFmpeg builds write nothing for a stream without frames
        empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(CUP.read_bytes()[:1500])
    huge = write_video(tmp_path / "huge.mp4", [np.zeros((2400, 4320, 3), np.uint8)] * 2, fps=2)
    for path, words in [(not_video, "notes.mp4"), (audio, "song.m4a"), (empty, "empty.mp4"),
                        (truncated, "truncated.mp4"), (huge, "larger than")]:
        out = _search(server, path)
        assert "error" in out, (path.name, out)
        assert words in out["error"], out["error"]
        assert "Traceback" not in out["error"] and str(tmp_path) not in out["error"]
    assert "video stream" in _search(server, audio)["error"]
    # still serving
    assert _search(server, CUP)["results"][0]["id"].endswith(".mp4")


def test_long_clip_is_capped_and_told(server, tmp_path):
    frames = real_frames("bigbuckbunny", size=(96, 72), step=3)
    # Loop the footage past the demo's query cap (120 s) at 1 fps.
    long_clip = write_video(tmp_path / "long.mp4", (frames * 40)[:130], fps=1)
    out = _search(server, long_clip, k=3)
    assert "error" not in out
    assert out["query"]["duration"] <= 121
    assert any("capped" in w for w in out["query"]["warnings"])


def test_concurrent_visitors_are_queued_not_crashed(server):
    client = server["client"]
    jobs = [client.submit(handle_file(str(p)), "chamfer", 3, api_name="/search")
            for p in sorted(EXAMPLES.glob("*.mp4"))[:3]]
    with concurrent.futures.ThreadPoolExecutor() as pool:
        results = list(pool.map(lambda j: j.result(timeout=120), jobs))
    assert all("results" in r and len(r["results"]) == 3 for r in results)


def test_never_serves_files_outside_its_folders(server):
    for path in ("/etc/passwd", str(Path(__file__).resolve())):
        url = server["url"] + "gradio_api/file=" + path
        try:
            with urllib.request.urlopen(url) as resp:
                body = resp.read()
            assert b"root:" not in body and b"def test_" not in body
        except urllib.error.HTTPError as err:
            assert err.code in (403, 404)


def test_previews_are_browser_playable_and_cleaned_up(tmp_path):
    import av

    from app.service import Service

    service = Service(workdir=tmp_path / "work")
    search = service.search(CUP, "chamfer", 3)
    exp = service.explain(search, search.result.matches[0].id)
    with av.open(str(exp.preview)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
    assert len(exp.video_thumbs) == len(exp.video.times) and len(exp.query_thumbs) == len(exp.query.times)
    assert exp.comparison.similarity.shape == (len(exp.query.times), len(exp.video.times))
    # a match reuses what the search computed; another video is compared on demand
    assert exp.comparison is search.result.matches[0].comparison
    other = next(v for v in service.engine.collection_map().ids if search.match(v) is None)
    assert service.explain(search, other).rank is None
    service.close()
    assert not (tmp_path / "work").exists()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_browser_upload_search_and_explain(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server["url"])
        page.wait_for_selector("#collection-map svg circle", timeout=60_000)
        n_points = page.locator("#collection-map circle").count()
        assert n_points == len(server["service"].engine.collection_map().ids)

        page.set_input_files("#query-video input[type=file]", str(CUP))
        page.wait_for_selector("#query-video video", timeout=30_000)
        page.click("#search-button")
        page.wait_for_selector("#heat-strips .cell", timeout=90_000)
        page.wait_for_selector("#matrix .js-plotly-plot .heatmaplayer", timeout=30_000)
        assert "matches for a" in page.inner_text("#status")
        assert page.locator("#results .thumbnail-item").count() == 10
        caption = page.inner_text("#match-caption")
        assert "cup" in caption and "matched span" in caption
        # two strips (query, match), one cell per sampled frame, the matched span outlined
        assert page.locator("#heat-strips .strip").count() == 2
        assert page.locator("#heat-strips .span-box").count() == 2
        # the default model has no TCA: the strips show how distinctive each frame is
        assert "distinctive" in page.inner_text("#heat-strips .legend")
        assert page.locator("#collection-map .query").count() == 1
        assert page.locator("#collection-map .pt.match").count() == 10
        # the preview is an H.264 mp4 this browser can play
        assert page.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.42E01E\"')")
        src = page.get_attribute("#preview video", "src")
        assert src and src.endswith(".mp4")
        page.screenshot(path=str(ARTIFACTS / "app-results.png"), full_page=True)

        # every copied segment is listed; clicking one plays the match from its start
        page.wait_for_selector("#segments label", timeout=30_000)
        page.locator("#segments label").first.click()
        page.wait_for_function("() => { const v = document.querySelector('#preview video');"
                               " return v && v.currentTime >= 0 && v.src.endsWith('.mp4'); }", timeout=30_000)
        # the matrix as ranked (minus background, with temporal support) or as raw cosine
        assert "raw cosine" not in page.inner_text("#matrix")
        page.locator("#matrix-view label", has_text="raw cosine").click()
        page.wait_for_function("() => document.querySelector('#matrix').innerText.includes('raw cosine')",
                               timeout=30_000)

        # open the second match from the result list
        second = page.locator("#results .thumbnail-item").nth(1)
        second.click()
        page.wait_for_function(
            "() => document.querySelector('#match-caption').innerText.includes('rank 2')", timeout=30_000)

        # click a point on the map that is not among the matches: its view opens
        # (dispatched on the point itself: in a crowded map a neighbour may cover part of it)
        page.locator("#collection-map circle:not(.match)").first.dispatch_event("click")
        page.wait_for_function(
            "() => document.querySelector('#match-caption').innerText.includes('not in the top results')",
            timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "app-map-click.png"), full_page=True)
        browser.close()
    assert not errors, errors


def test_app_py_help_runs():
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--index" in out.stdout
    bad = subprocess.run([sys.executable, "app.py", "--index", str(root / "no-such-index")], cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no-such-index" in bad.stderr and "Traceback" not in bad.stderr
