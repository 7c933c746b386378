"""Text on the frames (`engine.text`): read by Tesseract, compared as bigram sketches, and
the frame matches of two frames whose texts disagree lowered."""
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from engine import text
from engine.similarity import chamfer_many, frame_similarity, lower_disagreeing, text_deciding_frames
from engine.video import iter_frames, write_video

needs_ocr = pytest.mark.skipif(not text.available(), reason="no Tesseract (pip install -r requirements.txt)")


def slide(title: str, bullets: list[str], size=(320, 180)) -> np.ndarray:
    """A slide of one template (a title bar, bullets, a footer), as a channel's uploads show them."""
    w, h = size
    img = Image.new("RGB", size, (250, 200, 230))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, w, int(h * 0.2)), fill=(60, 30, 70))
    d.text((8, 8), title, font=ImageFont.load_default(size=18), fill=(255, 255, 255))
    for k, line in enumerate(bullets):
        d.text((16, int(h * 0.3) + 24 * k), line, font=ImageFont.load_default(size=13), fill=(30, 30, 30))
    d.rectangle((0, int(h * 0.9), w, h), fill=(160, 60, 140))
    return np.asarray(img)


A = slide("Method Client Sales", ["update graph water quality", "search graph client model", "result scene method"])
B = slide("Report System Signal", ["water cloud vector design", "update server signal", "server object update"])


def test_bigrams_pair_confident_words_of_one_line():
    words = [("Method", 95.0, True), ("Client", 91.0, False), ("Sales,", 88.0, False),
             ("update", 90.0, True), ("gr@ph", 40.0, False), ("water", 90.0, False), ("quality", 92.0, False)]
    assert text.bigrams(words) == {"method client", "client sales", "water quality"}
    sketch = text.bigram_sketch(words)
    assert sketch.shape == (text.SKETCH,) and np.isfinite(sketch).sum() == 3
    assert np.all(np.diff(sketch[:3]) > 0) and sketch[:3].max() < 2**24
    assert np.isnan(text.bigram_sketch([("one", 99.0, True)])).all()  # a single word is no bigram


def test_disagreement_needs_text_on_both_frames():
    nan = np.nan
    q = np.array([[1, 2, 3, 4, nan], [nan] * 5, [7, 8, nan, nan, nan]], np.float32)
    t = np.array([[1, 2, 3, 9, nan], [5, 6, nan, nan, nan], [nan] * 5, [8, 20, 30, 40, 50]], np.float32)
    got = text.disagreement(q, t)
    # frame 0 shares 3 of 4 with target 0; no text never disagrees; 1 of 2 shared is half
    assert got.tolist() == [[False, True, False, True], [False] * 4, [True, True, False, False]]
    assert text.disagreement(q, t, threshold=0.6)[2, 3]


def test_disagreement_counts_shared_hashes_as_sets_do():
    """The sparse product gives what comparing every pair's sketches as sets gives, on
    sketches of 0-8 hashes drawn from a small vocabulary (so that many pairs share some)."""
    rng = np.random.default_rng(1)

    def sketches(n: int) -> np.ndarray:
        out = np.full((n, text.SKETCH), np.nan, np.float32)
        for row in out:
            k = rng.integers(0, text.SKETCH + 1)
            vocabulary = 2**24 - 1 if rng.random() < 0.2 else 12
            row[:k] = np.sort(rng.choice(vocabulary, size=k, replace=False))
        return out

    q, t = sketches(40), sketches(70)
    sets = lambda x: [set(r[np.isfinite(r)].tolist()) for r in x]  # noqa: E731
    for threshold in (0.2, 0.5, 1.0):
        want = [[bool(a and b and len(a & b) < threshold * min(len(a), len(b))) for b in sets(t)]
                for a in sets(q)]
        assert 0 < np.sum(want) < np.size(want)  # some pairs agree, some disagree
        assert text.disagreement(q, t, threshold).tolist() == want


@needs_ocr
def test_a_copy_of_a_slide_agrees_and_a_look_alike_disagrees(tmp_path):
    """The same slide after an H.264 encode and decode reads the same; the template's other
    slide, and a frame without text, do not pass for it."""
    path = tmp_path / "slides.mp4"
    write_video(path, [A] * 8 + [B] * 8, fps=8.0, crf=38)
    decoded = [img for _, img in iter_frames(path, 1.0, short_side=text.READ_SIDE, crop=None)]
    with text.TextReader() as reader:
        assert "method client" in text.bigrams(reader.words(A))
        clean = reader.sketches([A, B, np.full((180, 320, 3), 90, np.uint8)])
        copies = reader.sketches([decoded[0], decoded[-1]])
    assert np.isfinite(clean[:2]).all(axis=1).any() and np.isnan(clean[2]).all()
    dis = text.disagreement(copies, clean)
    assert dis.tolist() == [[False, True, False], [True, False, False]]


def test_chamfer_lowers_frames_whose_texts_disagree():
    """Two videos with the same frames: the one whose frames' text disagrees with the
    query's loses that evidence (chamfer_many), and only that cell (lower_disagreeing)."""
    rng = np.random.default_rng(0)
    q = rng.normal(size=(3, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    frames = np.concatenate([q, q])  # video 0 and video 1, the same pictures
    offsets = np.array([0, 3, 6])
    nan = np.nan
    q_text = np.array([[1, 2, nan], [nan] * 3, [nan] * 3], np.float32)  # the query's first frame has text
    rows = np.array([[1, 2, nan], [nan] * 3, [nan] * 3, [5, 6, nan], [nan] * 3, [nan] * 3], np.float32)
    plain = chamfer_many(q, frames, offsets)
    lowered = chamfer_many(q, frames, offsets, text=(q_text, rows))
    assert plain[0] == pytest.approx(plain[1]) and lowered[0] == pytest.approx(plain[0])
    # frame 0 of video 1 says other words: the query's first frame keeps only its best other match
    assert lowered[1] < plain[1] - 0.2
    sim = lower_disagreeing(frame_similarity(q, frames[3:]), q_text, rows[3:])
    assert sim[0, 0] == pytest.approx(1.0 - text.PENALTY, abs=1e-5) and sim[1, 1] == pytest.approx(1.0, abs=1e-5)
    assert (sim[0, 1:] == frame_similarity(q, frames[3:])[0, 1:]).all()


def test_a_search_reads_only_the_frames_whose_text_can_change_it():
    """`text_deciding_frames`: the query frames whose best cell in some video is a row with
    text; reading only those gives the scores of reading every frame."""
    rng = np.random.default_rng(1)
    q = rng.normal(size=(2, 12, 16)).astype(np.float32)  # two looks
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    frames = rng.normal(size=(40, 16)).astype(np.float32)
    frames /= np.linalg.norm(frames, axis=1, keepdims=True)
    offsets, views = np.array([0, 10, 30, 40]), np.array([1, 2, 1])
    sketches = rng.integers(0, 6, size=(52, 2)).astype(np.float32)  # 6 possible texts
    sketches[rng.random(52) < 0.5] = np.nan  # half the frames have none
    q_text, rows_text = sketches[:12], sketches[12:]
    for bg in (None, rng.uniform(0, 0.2, 40).astype(np.float32)):
        need = text_deciding_frames(q, frames, offsets, np.isfinite(rows_text).any(axis=1), background=bg,
                                    views=views)
        assert 0 < need.sum() < 12
        partial = np.where(need[:, None], q_text, np.nan)
        full = chamfer_many(q, frames, offsets, background=bg, views=views, text=(q_text, rows_text))
        assert np.array_equal(chamfer_many(q, frames, offsets, background=bg, views=views,
                                           text=(partial, rows_text)), full)


def test_a_template_frame_is_as_common_as_its_words():
    """`frame_background` with text: a slide whose template four other videos share, with
    other words, is measured against cells lowered as the ranking lowers them, so its
    background falls; a frame without text keeps its own."""
    from engine.background import frame_background

    rng = np.random.default_rng(2)
    template = rng.normal(size=16).astype(np.float32)
    frames = template + 0.05 * rng.normal(size=(5, 16)).astype(np.float32)  # five videos, one frame each
    frames[4] = rng.normal(size=16)
    frames /= np.linalg.norm(frames, axis=1, keepdims=True)
    offsets = np.arange(6)
    words = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [np.nan, np.nan]], np.float32)  # other words on each
    plain = frame_background(frames, offsets, k=2, skip=0)
    read = frame_background(frames, offsets, k=2, skip=0, text=words)
    assert plain[0] > 0.9 and read[0] < plain[0] - 0.5
    assert read[4] == pytest.approx(plain[4])  # no text: nothing it is compared with is lowered
    same = np.tile([[1, 2]], (5, 1)).astype(np.float32)  # the same words everywhere: as without text
    assert np.allclose(frame_background(frames, offsets, k=2, skip=0, text=same), plain)


def test_a_reader_without_its_model_says_where_it_looked(monkeypatch, tmp_path):
    pytest.importorskip("tesserocr")
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    with pytest.raises(text.TextUnavailable, match=f"{tmp_path}: no eng.traineddata"):
        text.TextReader()
    assert not text.available() and text.model_identity() is None
    monkeypatch.delenv("TESSDATA_PREFIX")
    assert text.tessdata_dir() == text.ASSETS / "tessdata"  # the model shipped with the engine


@needs_ocr
def test_a_stream_reads_beside_the_decode_and_a_still_frame_once(monkeypatch):
    """`TextStream` gives what a reader gives, frame by frame; a frame that repeats the last
    one read is not read again; an error in its thread comes out of `sketches`."""
    with text.TextReader() as reader:
        expected = reader.sketches([A, B, np.full((180, 320, 3), 90, np.uint8)])
    reads = []
    words = text.TextReader.words
    monkeypatch.setattr(text.TextReader, "words", lambda self, img: reads.append(1) or words(self, img))
    stream = text.TextStream(depth=2)
    for img in (A, A, B, np.full((180, 320, 3), 90, np.uint8)):
        stream.add(img)
    got = stream.sketches()
    assert len(reads) == 3 and np.array_equal(got[[0, 2, 3]], expected, equal_nan=True)
    assert np.array_equal(got[1], got[0], equal_nan=True)
    broken = text.TextStream()
    broken.add(np.zeros((0, 0, 3), np.uint8))  # no pixels: Tesseract cannot read it
    broken.add(A)  # taken and dropped, not left blocking the decoder
    with pytest.raises(Exception):
        broken.sketches()


DECK = [slide(t, b) for t, b in (
    ("Method Client Sales", ["update graph water quality", "search graph client model"]),
    ("Quarterly Results Review", ["revenue grew across regions", "costs fell slightly"]),
    ("Next Steps Planning", ["hire two engineers", "ship the mobile release"]))]
OTHERS = [slide(t, b) for t, b in (
    ("Report System Signal", ["water cloud vector design", "update server signal"]),
    ("Annual Budget Summary", ["travel spending doubled", "office rent unchanged"]),
    ("Open Questions Today", ["who owns the backlog", "when is the launch"]))]


@needs_ocr
def test_search_reads_the_query_and_a_look_alike_slide_deck_loses(tmp_path):
    """An index built with text keeps each frame's sketch; a search reads the query's and a
    deck of the same template with other words stops counting as a copy; an engine that
    reads no text (or another model) ranks as before, and says why where it could not."""
    from engine import Engine

    folder = tmp_path / "videos"
    write_video(folder / "deck.mp4", [f for img in DECK for f in [img] * 16], fps=8.0)
    write_video(folder / "look-alike.mp4", [f for img in OTHERS for f in [img] * 16], fps=8.0)
    query = tmp_path / "reupload.mp4"
    write_video(query, [f for img in DECK for f in [img] * 16], fps=8.0, crf=36)
    eng = Engine(backbone="efficientnet-lite0", variants="none")
    # whole frames only: the template's body is found as an inner picture, whose words are not read
    eng.build_index(folder, tmp_path / "idx", progress=False, inner_pictures=False)
    assert eng.index.text_model == text.model_identity()
    deck = eng.index.position("deck.mp4")
    stored = eng.index.video_text(deck)
    assert stored.shape == (6, text.SKETCH) and np.isfinite(stored).any()
    # raw cosine: two videos are each other's whole background
    found = eng.search(query, k=2, normalize=False)
    with_text = {m.id: m for m in found.matches}
    # the query's frames kept, and those whose text could change the ranking read: all
    # here (each one's best match in the look-alike is a slide); the same scores as reading
    # every frame before the search
    kept = found.query.text_frames
    assert kept is not None and np.isfinite(kept.known()).any(axis=1).all()
    q = eng.embed(query)
    every = q.text_frames.read(np.ones(len(q.times), bool))
    eager = eng.index.search(*q.looks, 2, "chamfer", normalize=False, query_text=every)
    assert {eng.index.records[h.position].id: h.score for h in eager} == pytest.approx(
        {m.id: m.score for m in found.matches})
    blind = Engine(index=tmp_path / "idx", backbone="efficientnet-lite0", variants="none", text=False)
    without = {m.id: m for m in blind.search(query, k=2, normalize=False).matches}
    assert with_text["deck.mp4"].rank == 1 and without["deck.mp4"].rank == 1
    assert with_text["deck.mp4"].score == pytest.approx(without["deck.mp4"].score, abs=0.02)
    assert with_text["look-alike.mp4"].score < without["look-alike.mp4"].score - 0.1
    # the demo's matrix shows what the ranking used: the look-alike's cells lowered
    cmp = with_text["look-alike.mp4"].comparison
    assert cmp.chamfer == pytest.approx(with_text["look-alike.mp4"].score, abs=1e-4)
    assert (cmp.similarity < without["look-alike.mp4"].comparison.similarity - 0.5).any()
    eng.index.manifest["text_model"] = "0123456789abcdef"  # frames read with another model
    other = eng.search(query, k=2, normalize=False)
    assert other.query.text_frames is None and any("another text model" in w for w in other.query.warnings)
    assert {m.id: m.score for m in other.matches} == pytest.approx({k: m.score for k, m in without.items()})
