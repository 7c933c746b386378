"""Figures and HTML fragments of the demo, from plain data (no engine internals).

- `similarity_figure`: the chamfer frame-to-frame similarity matrix (plotly heatmap),
  row-wise maxima marked, every copied segment drawn.
- `heat_strip`: attention received per sampled frame as a row of coloured cells (as the
  TCA paper's figure 5), thumbnail + time on hover, the matched span outlined.
- `collection_map`: the UMAP map as inline SVG; points carry `data-id` so the page's
  script can report clicks; hover shows the id and a thumbnail.
- `poster_store`: the map's hover thumbnails, sent once per page (not with every redraw
  of the map); the map's script looks them up by id.
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from PIL import Image

from engine import clock

COLORSCALE = "Viridis"
MAX_THUMB_CELLS = 240  # longer strips keep the colours but drop the hover thumbnails


def data_uri(img: np.ndarray, quality: int = 70) -> str:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


# ---------------------------------------------------------------------- similarity matrix
def similarity_figure(similarity: np.ndarray, query_times: np.ndarray, times: np.ndarray,
                      row_best: np.ndarray, span: dict | None, title: str = "",
                      segments: list[dict] | None = None, normalized: bool = False) -> go.Figure:
    """Heatmap of similarity [Tq, Tt]: y = query time (s), x = match time (s). Every copied
    segment is outlined (the best one solid, the others dashed) and numbered as listed.
    normalized: the matrix is cosine minus each frame's background, with its temporal
    support (what the ranking used)."""
    fig = go.Figure()
    fig.add_trace(go.Heatmap(
        z=similarity, x=times, y=query_times, colorscale=COLORSCALE,
        zmin=-0.3 if normalized else -0.2, zmax=0.6 if normalized else 1.0,
        colorbar=dict(title="cosine − background" if normalized else "cosine", thickness=12),
        hovertemplate="query %{y:.1f} s · match %{x:.1f} s<br>similarity %{z:.3f}<extra></extra>",
    ))
    if len(row_best):
        fig.add_trace(go.Scatter(
            x=times[row_best], y=query_times, mode="markers", name="row maxima (what chamfer averages)",
            marker=dict(symbol="circle-open", size=7, color="#ff3b30", line=dict(width=2)),
            hovertemplate="query %{y:.1f} s → best match frame %{x:.1f} s<extra></extra>",
        ))
    # Cells are centred on frame times and a span runs from a frame's start to the end
    # of its last frame: shift by half a step so the boxes follow the cell edges.
    def half(t: np.ndarray) -> float:
        return float(np.median(np.diff(t))) / 2 if len(t) > 1 else 0.5

    hx, hy = half(np.asarray(times)), half(np.asarray(query_times))
    boxes = list(segments or ([span] if span else []))
    for n, seg in enumerate(boxes, 1):
        best = span is not None and all(abs(seg[k] - span[k]) < 1e-6 for k in ("start", "end", "query_start"))
        fig.add_shape(type="rect", x0=seg["start"] - hx, x1=seg["end"] - hx, y0=seg["query_start"] - hy,
                      y1=seg["query_end"] - hy, line=dict(color="white", width=2, dash="solid" if best else "dash"))
        if len(boxes) > 1:
            fig.add_annotation(x=seg["start"] - hx, y=seg["query_start"] - hy, text=str(n), showarrow=False,
                               xanchor="left", yanchor="top", font=dict(color="white", size=12))
    fig.update_layout(
        title=dict(text=title, font=dict(size=13)), height=440, margin=dict(l=60, r=20, t=40, b=50),
        xaxis_title="match time (s)", yaxis_title="query time (s)",
        legend=dict(orientation="h", yanchor="bottom", y=-0.32, x=0),
    )
    fig.update_yaxes(autorange="reversed")
    return fig


# ---------------------------------------------------------------------- heat strips
STRIP_WORDS = {"attention": "of the attention", "distinctiveness": "of the video vector"}


def heat_strip(label: str, times: np.ndarray, attention: np.ndarray, duration: float,
               thumbs: list[np.ndarray], span: tuple[float, float] | None = None,
               kind: str = "attention") -> str:
    """HTML: one cell per sampled frame, colour = its share [T] (summing to 1) from the
    video's least to its largest. kind: what the shares are, "attention" (TCA's) or
    "distinctiveness" (each frame's weight in a video vector pooled by it)."""
    a = np.asarray(attention, np.float64)
    norm = normalise_attention(a)
    colours = sample_colorscale(COLORSCALE, norm.tolist()) if len(a) else []
    show_thumbs = len(thumbs) == len(times) and len(times) <= MAX_THUMB_CELLS
    cells = []
    for i, (t, c) in enumerate(zip(times, colours)):
        tip = f"{clock(t)} ({t:.1f} s) · {100 * a[i]:.2f}% {STRIP_WORDS[kind]}"
        img = f'<img src="{data_uri(thumbs[i])}" alt="">' if show_thumbs else ""
        cells.append(f'<div class="cell" style="background:{c}" data-time="{t:.2f}" title="{tip}">'
                     f'<span class="tip">{img}<span>{tip}</span></span></div>')
    box = ""
    if span is not None and duration > 0:
        left = 100 * max(span[0], 0) / duration
        width = 100 * max(min(span[1], duration) - max(span[0], 0), 0) / duration
        box = (f'<div class="span-box" style="left:{left:.2f}%;width:{width:.2f}%" '
               f'title="matched span {clock(span[0])}–{clock(span[1])}"></div>')
    spread = (f"{kind} {100 * a.min():.2f}–{100 * a.max():.2f}% per frame, uniform would be "
              f"{100 / len(a):.2f}%") if len(a) else "no frames"
    return (f'<div class="strip"><div class="strip-label">{html.escape(label)} '
            f'<small>{len(times)} frames, {clock(duration)}; {spread}</small></div>'
            f'<div class="cells">{"".join(cells)}{box}</div></div>')


def normalise_attention(a: np.ndarray) -> np.ndarray:
    """Attention shares -> [0, 1]: the video's least attended frame 0, its most attended 1.

    Min-max rather than divide-by-max: shares hover around 1/T, and dividing by the max
    would paint every frame the same colour. A video whose frames all get the same share
    (within 0.1%) is drawn uniformly in the middle of the scale.
    """
    a = np.asarray(a, np.float64)
    if len(a) == 0:
        return a
    lo, hi = a.min(), a.max()
    if hi - lo <= 1e-3 * max(hi, 1e-12):
        return np.full_like(a, 0.5)
    return (a - lo) / (hi - lo)


STRIP_CSS = """
.strip { margin: 6px 0 14px 0; font-family: var(--font, sans-serif); }
.strip-label { font-size: 13px; margin-bottom: 3px; }
.strip-label small { opacity: .7; }
.cells { position: relative; display: flex; height: 34px; border-radius: 4px; }
.cell { flex: 1 1 0; min-width: 1px; position: relative; }
.cell .tip { display: none; position: absolute; bottom: 38px; left: -40px; z-index: 20;
  background: #111; color: #fff; padding: 4px; border-radius: 4px; font-size: 11px;
  white-space: nowrap; pointer-events: none; }
.cell .tip img { display: block; height: 72px; margin-bottom: 2px; }
.cell:hover .tip { display: block; }
.cell:hover { outline: 2px solid #fff; z-index: 10; }
.span-box { position: absolute; top: -3px; bottom: -3px; border: 3px solid #ff3b30;
  border-radius: 4px; pointer-events: none; box-sizing: border-box; }
.legend { font-size: 12px; opacity: .8; }
"""


LEGENDS = {
    "attention": "Colour: attention each frame receives from the others in TCA, "
                 "from the video's least (dark) to its most attended frame (yellow).",
    "distinctiveness": "Colour: how distinctive each frame is in this collection (1 − its background, "
                       "cubed), from the video's most common frame (dark: intros, end cards, black "
                       "gaps that many videos share) to its most distinctive (yellow).",
}


def heat_strips(query: str | None, match: str, kind: str = "attention") -> str:
    """The query's strip over the match's, with a one-line legend (kind: see heat_strip)."""
    legend = f'<div class="legend">{LEGENDS[kind]} Red box: matched span. Hover a cell for its frame.</div>'
    return f'<div class="strips">{query or ""}{match}{legend}</div>'


# ---------------------------------------------------------------------- collection map
def poster_store(posters: dict[str, str]) -> str:
    """Hidden <img data-id=...> elements (JPEG data URIs) for the map's hover thumbnails."""
    imgs = "".join(f'<img data-id="{html.escape(vid)}" src="{uri}" alt="">' for vid, uri in posters.items())
    return f'<div class="poster-store" style="display:none">{imgs}</div>'


def collection_map(ids: list[str], coords: np.ndarray,
                   query: np.ndarray | None = None, ranks: dict[str, int] | None = None,
                   selected: str | None = None) -> str:
    """SVG map: grey points, the top matches numbered, the query a red star."""
    ranks = ranks or {}
    w, h, pad = 1000, 560, 30

    def xy(p: np.ndarray) -> tuple[float, float]:
        return pad + float(p[0]) * (w - 2 * pad), pad + (1 - float(p[1])) * (h - 2 * pad)

    dots, labels = [], []
    order = sorted(range(len(ids)), key=lambda i: ranks.get(ids[i], 10**9), reverse=True)
    for i in order:
        vid = ids[i]
        x, y = xy(coords[i])
        rank = ranks.get(vid)
        cls = "pt match" if rank else "pt"
        if vid == selected:
            cls += " selected"
        r = 9 if rank else 6
        dots.append(f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="{r}" data-id="{html.escape(vid)}" '
                    f'data-label="{html.escape(vid)}{f" · rank {rank}" if rank else ""}"></circle>')
        if rank and rank <= 10:
            labels.append(f'<text class="rank" x="{x:.1f}" y="{y + 3.5:.1f}">{rank}</text>')
    star = ""
    if query is not None:
        x, y = xy(query)
        pts = []
        for k in range(10):
            rad = 16 if k % 2 == 0 else 7
            ang = np.pi / 2 + k * np.pi / 5
            pts.append(f"{x + rad * np.cos(ang):.1f},{y - rad * np.sin(ang):.1f}")
        star = f'<polygon class="query" points="{" ".join(pts)}"><title>your query</title></polygon>'
    return (f'<div class="map-wrap"><svg class="map" viewBox="0 0 {w} {h}" role="img" '
            f'aria-label="map of the indexed collection">{"".join(dots)}{"".join(labels)}{star}</svg>'
            '<div class="map-tip"></div>'
            '<div class="legend">Each point is a video of the index (UMAP of TCA video embeddings). '
            'Red star: your query; numbered: its top matches. Click a point to open it.</div></div>')


MAP_CSS = """
.map-wrap { position: relative; }
.map { width: 100%; height: auto; background: var(--block-background-fill, #fafafa);
  border-radius: 6px; }
.map .pt { fill: #9aa5b1; stroke: #fff; stroke-width: 1.5; cursor: pointer; }
.map .pt.match { fill: #ff9500; }
.map .pt.selected { stroke: #ff3b30; stroke-width: 4; }
.map .pt:hover { stroke: #111; stroke-width: 3; }
.map .rank { font-size: 10px; text-anchor: middle; fill: #111; pointer-events: none; font-weight: 700; }
.map .query { fill: #ff3b30; stroke: #fff; stroke-width: 2; }
.map-tip { display: none; position: absolute; background: #111; color: #fff; font-size: 12px;
  padding: 4px; border-radius: 4px; pointer-events: none; z-index: 30; max-width: 260px; }
.map-tip img { display: block; max-height: 90px; margin-bottom: 2px; }
.legend { font-size: 12px; opacity: .8; }
"""

# Runs once per page load; listeners sit on the component's root, so they survive the
# re-render each new search causes.
MAP_JS = """
const tip = () => element.querySelector('.map-tip');
element.addEventListener('click', (e) => {
  const pt = e.target.closest('[data-id]');
  if (pt) trigger('click', {video: pt.dataset.id});
});
element.addEventListener('mouseover', (e) => {
  const pt = e.target.closest('[data-id]');
  const t = tip();
  if (!pt || !t) return;
  const poster = Array.from(document.querySelectorAll('.poster-store img'))
    .find((img) => img.dataset.id === pt.dataset.id);
  t.innerHTML = (poster ? '<img src="' + poster.src + '">' : '') + '<span></span>';
  t.querySelector('span').textContent = pt.dataset.label;
  const box = element.getBoundingClientRect(), p = pt.getBoundingClientRect();
  t.style.left = (p.left - box.left + 14) + 'px';
  t.style.top = (p.top - box.top + 14) + 'px';
  t.style.display = 'block';
});
element.addEventListener('mouseout', (e) => {
  if (e.target.closest('[data-id]') && tip()) tip().style.display = 'none';
});
"""
