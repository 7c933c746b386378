"""The demo's figures and HTML, built from plain data without a browser."""
from __future__ import annotations

import re

import numpy as np

from app import figures
from app.ui import results_markdown
from engine import clock, span_text


def test_similarity_figure_marks_row_maxima_and_the_span():
    sim = np.random.default_rng(0).uniform(-0.1, 0.3, (4, 6)).astype(np.float32)
    fig = figures.similarity_figure(sim, np.arange(4.0), np.arange(6.0), sim.argmax(1),
                                    {"query_start": 1, "query_end": 3, "start": 2, "end": 4}, "t")
    heat, dots = fig.data
    assert np.asarray(heat.z).shape == (4, 6)
    assert list(dots.x) == list(np.arange(6.0)[sim.argmax(1)])
    (box,) = fig.layout.shapes
    assert (box.x0, box.x1, box.y0, box.y1) == (1.5, 3.5, 0.5, 2.5)  # on the cells' edges


def test_heat_strip_has_a_cell_per_frame_and_the_span_box():
    att = np.array([0.1, 0.2, 0.3, 0.4])
    thumbs = [np.zeros((8, 8, 3), np.uint8)] * 4
    html = figures.heat_strip("query", np.arange(4.0), att, 4.0, thumbs, (1.0, 3.0))
    assert html.count('class="cell"') == 4 and html.count("<img") == 4
    assert 'left:25.00%;width:50.00%' in html
    assert "attention 10.00–40.00% per frame, uniform would be 25.00%" in html
    assert figures.normalise_attention(np.full(5, 0.2)).tolist() == [0.5] * 5
    np.testing.assert_allclose(figures.normalise_attention(att), [0, 1 / 3, 2 / 3, 1])
    html = figures.heat_strip("query", np.arange(4.0), att, 4.0, thumbs, None, "distinctiveness")
    assert "distinctiveness 10.00–40.00% per frame" in html and "40.00% of the video vector" in html
    assert "how distinctive" in figures.heat_strips(None, html, "distinctiveness")


def test_map_is_light_and_posters_go_separately():
    ids = [f"v{i}" for i in range(5)]
    coords = np.random.default_rng(1).random((5, 2)).astype(np.float32)
    html = figures.collection_map(ids, coords, np.array([0.5, 0.5]), {"v1": 1, "v3": 2}, "v1")
    assert html.count("<circle") == 5 and html.count('class="pt match') == 2
    assert 'class="pt match selected"' in html and 'class="query"' in html
    assert "data:image" not in html  # thumbnails are not re-sent with every redraw
    store = figures.poster_store({v: figures.data_uri(np.zeros((8, 8, 3), np.uint8)) for v in ids})
    assert len(re.findall(r'<img data-id="v\d"', store)) == 5


def test_clock_and_span_text():
    assert [clock(t) for t in (0, 3.4, 62, 3730)] == ["0:00", "0:03", "1:02", "1:02:10"]
    assert clock(59.96, 1) == "1:00.0" and clock(-2) == "0:00"
    assert span_text(3, 11, 62, 70) == "query 0:03–0:11 ↔ 1:02–1:10"


def test_about_tables_come_from_the_results_file():
    results = {
        "quality": {"demo": {"models": {
            "TCA": {"model": "m", "command": "python -m engine evaluate demo x",
                    "metrics": {"chamfer": {"mAP_all": 0.97, "mAP_test": 0.95}}},
            "no TCA": {"model": "m", "command": "python -m engine evaluate demo x --no-tca",
                       "metrics": {"chamfer": {"mAP_all": 0.94, "mAP_test": 0.966}}}}}},
        "speed": {"command": "python -m engine.bench", "machine": "2 CPU threads", "query": "q.mp4",
                  "rows": [{"stage": "pure decode", "ms": 3166.0, "ratio": 1.0, "note": ""}],
                  "other": [{"what": "storage", "result": "62 KiB"}]},
    }
    md = results_markdown(results)
    assert "| no TCA | chamfer | 0.940 | 0.966 |" in md and "| TCA | chamfer | 0.970 | 0.950 |" in md
    assert md.index("no TCA |") < md.index("| TCA |")
    assert "| pure decode | 3166 ms  | 1.00 |" in md and "| storage | 62 KiB | |" in md
    assert "`python -m engine.bench`" in md and "--no-tca`" in md
    assert results_markdown({}) == ""
