"""The Gradio page: upload a clip, browse its matches, see why they match.

Layout: query + options | ranked results; then the selected match (preview, attention
heat strips, chamfer matrix) and the collection map; an About panel. Handlers turn the
Service's plain data into components; they never touch model internals.
"""
from __future__ import annotations

import gradio as gr
import numpy as np

from engine import ASSETS, Comparison, Measure, UnknownVideoError, clock, load_results, span_text

from . import figures
from .service import MAX_TOP_K, Explanation, Search, Service, UserInputError

EXAMPLES_DIR = ASSETS / "demo" / "examples"
MAX_MAP_POSTERS = 2000  # hover thumbnails beyond this many videos are left out
MEASURES = [
    ("chamfer (TCA_f, frame level)", Measure.CHAMFER.value),
    ("symmetric chamfer (TCA_sym)", Measure.SYMMETRIC_CHAMFER.value),
    ("cosine (TCA_c, video level)", Measure.COSINE.value),
]
# The matrix the ranking used (cosine minus each indexed frame's background, with its
# temporal support), or raw cosine.
MATRIX_VIEWS = ["as ranked (minus background, with temporal support)", "raw cosine"]
CSS = figures.STRIP_CSS + """
#status { min-height: 1.5em; }
"""


def example_clips() -> list[str]:
    return sorted(str(p) for p in EXAMPLES_DIR.glob("*.mp4")) if EXAMPLES_DIR.is_dir() else []


def _num(x) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) else "–"


def results_markdown(results: dict) -> str:
    """The quality and speed tables from the results file (assets/results.json), with the
    commands that produced them."""
    out = []
    for bench, q in sorted(results.get("quality", {}).items()):
        models = q.get("models", {})
        keys = {k for m in models.values() for r in m["metrics"].values() for k in r}
        splits = sorted({k.removeprefix("mAP_") for k in keys if k.startswith("mAP_") and k.count("_") == 1},
                        key=lambda k: (k != "all", k))
        extra = [k for k in ("intrusion_test", "span_F1_test") if k in keys]  # the collection benchmark's
        out.append(f"**Quality, {bench} benchmark** (mAP; {', '.join(splits)} queries)\n")
        out.append("| model | measure | " + " | ".join(splits + extra) + " |")
        out.append("|---|---|" + "---:|" * len(splits + extra))
        for label in sorted(models, key=lambda x: (x != "no TCA", x)):
            for measure, r in models[label]["metrics"].items():
                cells = [r.get(f"mAP_{k}") for k in splits] + [r.get(k) for k in extra]
                out.append(f"| {label} | {measure} | " + " | ".join(_num(c) for c in cells) + " |")
        cmds = sorted({m.get("command", "") for m in models.values()} - {""})
        out += ["", "Made by: " + "; ".join(f"`{c}`" for c in cmds), ""]
    speed = results.get("speed")
    if speed:
        out.append(f"**Speed** ({speed.get('machine', '')}; query: {speed.get('query', '')})\n")
        out += ["| stage | time | × pure decode |", "|---|---:|---:|"]
        out += [f"| {r['stage']} | {r['ms']:.0f} ms {r.get('note', '')} | {r['ratio']:.2f} |" for r in speed["rows"]]
        out += [f"| {r['what']} | {r['result']} | |" for r in speed.get("other", [])]
        out += ["", f"Made by: `{speed.get('command', 'python -m engine.bench')}`"]
    return "\n".join(out)


def about_markdown(service: Service) -> str:
    a = service.engine.info()
    text_line = ("the words on each frame are read (Tesseract) when it is indexed and when it is searched; "
                 "two frames that both carry text and whose words disagree (a slide or terminal of the same "
                 "template with other words) are no evidence of a copy, and their cell in the matrix is "
                 "lowered by 1" if a.text else a.text_note or "not read (the index was built without it)")
    info = a.model_info or {}
    trained = ""
    if info.get("trained_by"):
        trained = (f" Trained by `{info['trained_by']}` on {info.get('videos', '?')} videos, "
                   f"{info.get('steps_done', '?')} steps.")
    elif info.get("made_by"):
        trained = f" Made by `{info['made_by']}` ({info.get('pca_frames', '?')} frames)."
    return f"""
**TCA (Temporal Context Aggregation, WACV 2021)** turns every sampled frame ({a.fps:g} per
second) into a CNN descriptor (ImageNet's EfficientNet-Lite0; the default model's last
stages tuned for copies), whitens it (the default model keeps the frame's
grey 8x8 thumbnail beside it: where light and dark lie survives re-encodes and colour
edits), and lets a small transformer layer re-describe each frame in the context of the
whole video. Videos are
compared frame by frame: **chamfer similarity** averages, over the query's frames, the
best similarity in the other video. With a TCA model the heat strips show how much
attention each frame receives from the others (frames that say a lot about the video get more);
without TCA, how distinctive each frame is in this collection (1 − its background, cubed):
intros, end cards and black gaps that many videos share are dark, and the video vector
(cosine measure) is the frames weighted by it, one for the whole frames, one for each
8-s window of them (a copy inside a longer video or a compilation) and one for each inner
picture (a picture-in-picture box, a side-by-side half), the best counting.

- Model: `{a.model}` (backbone {a.backbone}, {'with' if a.tca else 'without'} TCA).{trained}
- Index: {a.videos} videos, {a.frames} frames, {a.dim}-d embeddings, on {a.device} ({a.precision}).
- Search: each query frame fetches its nearest indexed frames (FAISS), the videos they belong
  to are the candidates, then chamfer re-ranking of the candidates' frames, each
  frame-to-frame similarity less the indexed frame's background and averaged with its
  best neighbours one frame before and after (a copied stretch matches its neighbours too).
- Text: {text_line}

Read the numbers below honestly: the default model is a CNN whose last stages were tuned to
find heavily edited copies among a channel's other uploads (`python -m engine tune-cnn`, on a
procedural training collection), PCA whitening, no TCA (its video
vectors pool the frames by their distinctiveness in the collection); the whitening (1024-d) was fitted on training footage only (590 videos of a
procedural training collection and 93 of real footage from package registries) and learned
from that collection's copies and edited versions of its frames, none of it in the demo or a
benchmark. The TCA trained on the demo's 9 short
videos (`assets/model-tca.safetensors`, with its own 512-d whitening) is
far ahead on copies of that footage (train) but does not beat mean pooling on footage it
never saw at the frame level (chamfer: level on the demo's test split, behind on the
collection benchmark). To see TCA's attention, index with it (`python -m engine index assets/demo/videos
tca-index --model assets/model-tca.safetensors`) and run `python app.py --index tca-index`.

{results_markdown(load_results())}
"""


def _segment_label(n: int, s) -> str:
    return f"{n}. {span_text(s.query_start, s.query_end, s.start, s.end)} · {s.score:.2f}"


def _match_caption(m) -> str:
    s = m.span
    return (f"{m.rank}. {m.id} · {m.score:.3f} · {clock(m.duration)}\n"
            f"{span_text(s.query_start, s.query_end, s.start, s.end)}")


def _rounded(values, digits: int) -> list:
    """A float array (any shape) as nested lists of Python floats, rounded for JSON."""
    return np.round(np.asarray(values, np.float64), digits).tolist()


def search_json(search: Search) -> dict:
    """The API's answer: ranked matches plus what the figures are drawn from (each match
    carries its frame times, attention and similarity matrix from the search itself)."""
    q = search.query
    out = search.result.as_dict()
    out["query"] = {
        "duration": round(float(q.duration), 3),
        "times": _rounded(q.times, 3),
        "attention": _rounded(q.attention, 5),
        **({"distinctiveness": _rounded(search.result.query_distinctiveness, 5)}
           if search.result.query_distinctiveness is not None else {}),
        "map": _rounded(search.map_position, 4),
        "warnings": list(q.warnings),
    }
    out["seconds"] = round(search.seconds, 3)
    for item, m in zip(out["results"], search.result.matches):
        item["duration"] = round(float(m.duration), 3)
        item["times"] = _rounded(m.video.times, 3)
        item["attention"] = _rounded(m.video.attention, 5)
        if m.video.distinctiveness is not None:
            item["distinctiveness"] = _rounded(m.video.distinctiveness, 5)
        item["similarity"] = _rounded(m.comparison.similarity, 4)  # what the ranking used
        item["background"] = _rounded(m.comparison.background, 4)  # each indexed frame's
        if m.comparison.normalized:  # the plain cosine (raw, it is `similarity` itself)
            item["raw"] = _rounded(m.comparison.raw, 4)
        item["row_best"] = m.comparison.row_best.tolist()
    return out


class DemoUI:
    """Builds the Blocks and holds the handlers (bound to one Service)."""

    def __init__(self, service: Service):
        self.service = service
        self._posters_html: str | None = None
        # What the heat strips show: TCA's attention, or (a model without TCA) each frame's
        # distinctiveness in the collection, by which its video vector is pooled.
        self.strip_kind = "distinctiveness" if service.engine.info().distinctive else "attention"

    # ------------------------------------------------------------------ helpers
    def posters(self) -> str:
        """The map's hover thumbnails, made once and sent once per page load."""
        if self._posters_html is None:
            uris = {}
            for vid in self.service.engine.collection_map().ids[:MAX_MAP_POSTERS]:
                img = self.service.poster(vid)
                if img is not None:
                    uris[vid] = figures.data_uri(img, quality=60)
            self._posters_html = figures.poster_store(uris)
        return self._posters_html

    def map_html(self, search: Search | None = None, selected: str | None = None) -> str:
        cm = self.service.engine.collection_map()
        ranks = {m.id: m.rank for m in search.result.matches} if search else None
        return figures.collection_map(cm.ids, cm.coords, search.map_position if search else None, ranks, selected)

    def detail(self, exp: Explanation, view: str = MATRIX_VIEWS[0]) -> tuple:
        """(preview, caption, heat strips, similarity figure, segment list, selected id) for
        one explained video; `view` picks the matrix: what the ranking used, or raw cosine."""
        span, video = exp.span, exp.video
        start = float(span.start) if span else 0.0
        preview = gr.Video(value=str(exp.preview) if exp.preview else None, playback_position=start)
        lines = [f"### {video.id}"]
        if exp.rank:
            lines.append(f"rank {exp.rank} · score {exp.score:.3f} · {clock(video.duration)}")
        elif exp.score is not None:
            lines.append(f"not in the top results · chamfer {exp.score:.3f} · {clock(video.duration)}")
        if span:
            lines.append(f"matched span: {span_text(span.query_start, span.query_end, span.start, span.end)}")
        lines += [f"*{n}*" for n in exp.notes]
        query_strip = None
        if exp.query is not None:
            q = exp.query
            query_strip = figures.heat_strip("query", q.times, self._shares(q.attention, exp.query_distinctiveness),
                                             q.duration, exp.query_thumbs,
                                             (span.query_start, span.query_end) if span else None, self.strip_kind)
        match_strip = figures.heat_strip(video.id, video.times, self._shares(video.attention, video.distinctiveness),
                                         video.duration, exp.video_thumbs, (span.start, span.end) if span else None,
                                         self.strip_kind)
        strips = figures.heat_strips(query_strip, match_strip, self.strip_kind)
        fig, segments = None, gr.Radio(choices=[], value=None, visible=False)
        if exp.comparison is not None:
            c = exp.comparison
            fig = self.matrix(c, video.id, view)
            choices = [(_segment_label(n, s), n - 1) for n, s in enumerate(c.segments, 1)]
            segments = gr.Radio(choices=choices, value=None, visible=bool(choices),
                                label=f"{len(choices)} copied segment{'s' if len(choices) != 1 else ''} (click to play)")
        return preview, "\n\n".join(lines), strips, fig, segments, video.id

    def _shares(self, attention: np.ndarray, distinctiveness: np.ndarray | None) -> np.ndarray:
        if self.strip_kind == "distinctiveness" and distinctiveness is not None:
            return distinctiveness
        return attention

    @staticmethod
    def matrix(c: Comparison, video_id: str, view: str):
        """The similarity figure of one comparison: as ranked, or as raw cosine (`view`)."""
        raw = view == MATRIX_VIEWS[1] or not c.normalized
        sim = c.raw if raw else c.similarity
        return figures.similarity_figure(
            sim, c.query_times, c.times, sim.argmax(axis=1), c.span.as_dict(),
            title=f"frame similarity{' (raw cosine)' if raw else ''}: query × {video_id}",
            segments=[s.as_dict() for s in c.segments], normalized=not raw)

    def empty_detail(self) -> tuple:
        return gr.Video(value=None), "", "", None, gr.Radio(choices=[], value=None, visible=False), None

    # ------------------------------------------------------------------ handlers
    def on_search(self, video, measure, k, view, progress=gr.Progress()):
        try:
            search = self.service.search(video, measure, int(k), progress)
        except UserInputError as err:
            gr.Warning(str(err))
            return (f"⚠️ {err}", [], None, self.map_html(), *self.empty_detail())
        matches = search.result.matches
        q = search.query
        status = (f"{len(matches)} matches for a {clock(q.duration)} clip "
                  f"({q.num_frames} frames) in {search.seconds:.2f} s.")
        if q.warnings:
            status += " " + " ".join(f"⚠️ {w}" for w in q.warnings)
        gallery = []
        for m in matches:
            img = self.service.poster(m.id)
            if img is not None:
                gallery.append((img, _match_caption(m)))
        progress(0.9, desc="explaining the top match")
        detail = self.detail(self.service.explain(search, matches[0].id), view) if matches else self.empty_detail()
        return (status, gallery, search, self.map_html(search, matches[0].id if matches else None), *detail)

    def on_select(self, search: Search | None, view: str, evt: gr.SelectData):
        if search is None or evt.index is None or evt.index >= len(search.result.matches):
            return (self.map_html(search), *self.empty_detail())
        vid = search.result.matches[evt.index].id
        return (self.map_html(search, vid), *self.detail(self.service.explain(search, vid), view))

    def on_map_click(self, search: Search | None, view: str, evt: gr.EventData):
        vid = getattr(evt, "video", None)  # sent by figures.MAP_JS: trigger('click', {video: id})
        try:
            exp = self.service.explain(search, vid)
        except UnknownVideoError:
            gr.Warning(f"{vid}: not in the index")
            return (self.map_html(search), *self.empty_detail())
        return (self.map_html(search, vid), *self.detail(exp, view))

    def on_view(self, search: Search | None, selected: str | None, view: str):
        """Redraw the matrix of the selected video as the ranking saw it, or as raw cosine."""
        if search is None or not selected:
            return gr.Plot()
        match = search.match(selected)
        comparison = match.comparison if match is not None else self.service.explain(search, selected).comparison
        return self.matrix(comparison, selected, view)

    def on_segment(self, search: Search | None, selected: str | None, index: int | None):
        """Play the selected video from the start of the clicked segment."""
        match = search.match(selected) if search is not None and selected else None
        if match is None or index is None or index >= len(match.segments):
            return gr.Video()
        preview = self.service.preview(match.id, match.path)  # made (and cached) when the match was opened
        return gr.Video(value=str(preview) if preview else None, playback_position=float(match.segments[index].start))

    def api_search(self, video, measure: str = Measure.CHAMFER.value, k: float = 10) -> dict:
        """JSON for gradio_client: {"query", "measure", "results": [...], ...} or {"error"}."""
        try:
            search = self.service.search(video, measure, int(k))
        except UserInputError as err:
            return {"error": str(err)}
        return search_json(search)

    # ------------------------------------------------------------------ layout
    def build(self) -> gr.Blocks:
        # Uploads and Gradio's copies of outputs are deleted after an hour (checked hourly).
        with gr.Blocks(title="TCA video retrieval", delete_cache=(3600, 3600)) as demo:
            gr.Markdown("# TCA video retrieval\nUpload a clip (or pick an example) and find the "
                        "videos of the collection that contain the same footage, with why they match.")
            state = gr.State(None)
            with gr.Row():
                with gr.Column(scale=2, min_width=300):
                    video = gr.Video(label="Query clip", sources=["upload", "webcam"], height=260,
                                     elem_id="query-video")
                    measure = gr.Radio(MEASURES, value=Measure.CHAMFER.value, label="Similarity")
                    k = gr.Slider(1, MAX_TOP_K, value=10, step=1, label="Results")
                    button = gr.Button("Search", variant="primary", elem_id="search-button")
                    examples = example_clips()
                    if examples:
                        gr.Examples(examples, inputs=video, label="Example clips (copies of indexed videos)",
                                    cache_examples=False)
                with gr.Column(scale=3, min_width=400):
                    status = gr.Markdown(elem_id="status")
                    gallery = gr.Gallery(label="Matches (click one)", columns=4, height=330,
                                         allow_preview=False, object_fit="contain", elem_id="results")
            with gr.Row():
                with gr.Column(scale=2, min_width=300):
                    preview = gr.Video(label="Match preview (starts at the matched span)", height=260,
                                       interactive=False, elem_id="preview")
                    caption = gr.Markdown(elem_id="match-caption")
                with gr.Column(scale=3, min_width=400):
                    strips = gr.HTML(elem_id="heat-strips")
                    matrix = gr.Plot(label="Chamfer similarity matrix", elem_id="matrix")
                    with gr.Row():
                        view = gr.Radio(MATRIX_VIEWS, value=MATRIX_VIEWS[0], label="Matrix", elem_id="matrix-view")
                        segments = gr.Radio(choices=[], visible=False, elem_id="segments", type="value")
                    selected = gr.State(None)
            gr.Markdown("### The collection")
            cmap = gr.HTML("", css_template=figures.MAP_CSS, js_on_load=figures.MAP_JS,
                           elem_id="collection-map", min_height=300)
            posters = gr.HTML("", elem_id="map-posters", padding=False)
            with gr.Accordion("About", open=False):
                gr.Markdown(about_markdown(self.service))

            detail = [preview, caption, strips, matrix, segments, selected]
            button.click(self.on_search, [video, measure, k, view], [status, gallery, state, cmap, *detail],
                         api_visibility="private", show_progress="full")
            gallery.select(self.on_select, [state, view], [cmap, *detail], api_visibility="private")
            cmap.click(self.on_map_click, [state, view], [cmap, *detail], api_visibility="private")
            view.change(self.on_view, [state, selected, view], matrix, api_visibility="private")
            segments.select(self.on_segment, [state, selected, segments], preview, api_visibility="private")
            demo.load(self.map_html, None, cmap, api_visibility="private")
            demo.load(self.posters, None, posters, api_visibility="private")
            api_out = gr.JSON(visible=False)
            api_button = gr.Button(visible=False)
            api_button.click(self.api_search, [video, measure, k], api_out, api_name="search")
        return demo


def build(service: Service) -> gr.Blocks:
    return DemoUI(service).build()
