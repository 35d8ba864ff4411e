"""Text in photos (OCR): what is stored (schema v5, FTS5), when it is read again, how a search lists the photos
that show the query's words, the indexer's "text" phase with the real Tesseract, and the CLI."""

from __future__ import annotations

import json
import sqlite3
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from libfakes import FakeEmbedder, drain, make_image
from PIL import Image, ImageDraw, ImageFont

from core.errors import Cancelled, SpokenSearchError
from core.library import Library, index_library
from core.library import ocr as ocr_mod
from core.library.library import EmbeddedImage
from core.library.ocr import OcrUnavailableError, TextReader, check_languages, clean_words, merge_texts
from core.search import SearchEngine
from core.text_match import match_words

DIM = 8
tesseract = pytest.mark.skipif(not (ocr_mod.ocr_engine_available() and ocr_mod.find_tessdata("eng")),
                               reason="needs tesserocr and tesseract-ocr-eng (scripts/setup.sh installs both)")


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def embedded(path: str, seed: int, content: str | None = None, row_id: int | None = None, **kw) -> EmbeddedImage:
    return EmbeddedImage(path, "/p", 1.0, 10, content or f"hash-{path}", 8, 8, None, unit(seed), row_id, **kw)


@pytest.fixture
def lib(tmp_path):
    library = Library(tmp_path / "d", "tower", dim=DIM, cache_dir=tmp_path / "c")
    yield library
    library.close()


def write_sign(path, lines, size=(900, 420)):
    """A photo of a sign: dark words on a light board."""
    im = Image.new("RGB", size, (235, 232, 220))
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=52)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 90 * i), line, fill=(25, 25, 30), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def reading_library(tmp_path, count: int, size=(64, 48), languages: str | None = "eng"):  # noqa: ANN001, ANN201
    """`count` photos in tmp_path/photos and a library (FakeEmbedder's tower) that reads text in `languages`."""
    photos = tmp_path / "photos"
    for i in range(count):
        make_image(photos / f"{i:02d}.jpg", i, size=size)
    lib = Library(tmp_path / "d", "fake-tower-1", dim=16, cache_dir=tmp_path / "c")
    lib.set_text_languages(languages)
    return photos, lib


# ---- the store ----------------------------------------------------------------------------------------------
def test_words_match_stemmed_accent_folded_all_required_and_never_as_operators(lib):
    ids = lib.write_embedded([embedded(f"/p/{i}.jpg", i) for i in range(4)])
    lib.write_texts([(ids[0], "Café Central receipt Total EUR 7.40"), (ids[1], "BOARDING PASS gate B22"),
                     (ids[2], "cats OR dogs"), (ids[3], "")], "eng")
    assert list(lib.ids_with_words(["receipts"])) == [ids[0]]  # Porter stems: receipts ~ receipt
    assert list(lib.ids_with_words(["cafe"])) == [ids[0]]  # accents folded
    assert list(lib.ids_with_words(["boarding", "pass"])) == [ids[1]]
    assert lib.ids_with_words(["boarding", "receipt"]) == []  # every word must be there
    assert list(lib.ids_with_words(["or"])) == [ids[2]]  # a word, not FTS5's operator
    assert lib.ids_with_words(['"', "*"]) == []  # what a user types cannot break the query
    assert lib.text_snippets(["pass"], ids) == {ids[1]: "BOARDING PASS gate B22"}  # the text around the match
    assert (lib.text_of(ids[3]), lib.text_of(ids[0])[:4]) == ("", "Café")
    assert lib.text_counts() == (4, 3)


def test_text_is_read_again_only_when_the_content_or_the_languages_change(lib):
    a, b, c = lib.write_embedded([embedded("/p/a.jpg", 0), embedded("/p/b.jpg", 1), embedded("/p/c.jpg", 2)])
    lib.write_embedded([embedded("/p/v.mp4", 3, frames=np.stack([unit(3), unit(4)]),
                                 frame_times=np.array([1.0, 2.0], np.float32))])
    assert [i for i, _ in lib.texts_to_read(None, "eng")] == [a, b, c]  # videos are not read
    lib.write_texts([(a, "stop"), (b, "exit"), (c, "")], "eng")
    assert lib.texts_to_read(None, "eng") == []
    lib.write_embedded([embedded("/p/a.jpg", 5, row_id=a)])  # embedded again, same content (a model change)
    lib.write_embedded([embedded("/p/b.jpg", 6, content="edited", row_id=b)])  # new content
    assert lib.text_of(a) == "stop" and lib.text_of(b) is None
    assert [i for i, _ in lib.texts_to_read(["/p"], "eng")] == [b]
    assert lib.ids_with_words(["exit"]) == []  # the old text is gone from the index too
    assert [i for i, _ in lib.texts_to_read(None, "eng+deu")] == [a, b, c]
    assert lib.texts_to_read(["/elsewhere"], "eng") == []


def test_moved_photos_keep_their_text_and_removed_folders_leave_the_index(lib, tmp_path):
    from core.library.library import Move

    root = tmp_path / "p"
    root.mkdir()
    (a,) = lib.write_embedded([embedded(f"{root}/a.jpg", 0)])
    lib.write_texts([(a, "parking level 3")], "eng")
    lib.apply_changes([Move(a, f"{root}/sub/a.jpg", str(root), 1.0, 10)], [])
    assert lib.text_of(a) == "parking level 3" and list(lib.ids_with_words(["parking"])) == [a]
    lib.add_root(root)
    lib.remove_root(root)
    assert lib.ids_with_words(["parking"]) == [] and lib.text_counts() == (0, 0)
    lib.write_texts([(a, "gone")], "eng")  # a photo removed meanwhile is left out
    assert lib.text_of(a) is None


def test_a_version_4_library_gains_the_text_tables_and_keeps_its_photos(tmp_path):
    lib = Library(tmp_path / "d", "tower", dim=DIM)
    lib.write_embedded([embedded("/p/a.jpg", 0)])
    lib.close()
    con = sqlite3.connect(tmp_path / "d" / "library.sqlite3")
    for name in ("texts_added", "texts_removed", "texts_changed"):
        con.execute(f"DROP TRIGGER {name}")
    con.execute("DROP TABLE texts_fts")
    con.execute("DROP TABLE texts")
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    lib = Library(tmp_path / "d", "tower", dim=DIM)
    try:
        assert len(lib) == 1 and lib.text_languages() is None
        lib.write_texts([(1, "hello world")], "eng")
        assert list(lib.ids_with_words(["world"])) == [1]
    finally:
        lib.close()


# ---- searching ------------------------------------------------------------------------------------------------
class VocabModel:
    """A model that reads only `known` words; its query vector is `vec`."""

    def __init__(self, vec, known=("red", "a")):
        self.vec, self.known = vec, set(known)
        self.clip = SimpleNamespace(encode_text=lambda texts: np.stack([vec for _ in texts]),
                                    unread_words=lambda t: [w for w in t.split() if w.lower() not in self.known],
                                    known_words=lambda: sorted(self.known))

    def infer(self, wav):
        return SimpleNamespace(query_vector=self.vec, keywords=[SimpleNamespace(text="gate"),
                                                                SimpleNamespace(text="the")], segments=[])


def test_photos_showing_the_words_come_first_whatever_their_score_and_the_cut_off(lib):
    q = unit(100)
    near = [embedded(f"/p/near{i}.jpg", 0) for i in range(3)]
    near = [EmbeddedImage(**{**e.__dict__, "vector": q + 0.01 * unit(i)}) for i, e in enumerate(near)]
    ids = lib.write_embedded(near + [embedded("/p/sign.jpg", 7), embedded("/q/sign2.jpg", 8)])
    sign, sign2 = ids[3], ids[4]
    lib.write_texts([(sign, "Gate B22 to Lisbon"), (sign2, "red gate")], "eng")
    engine = SearchEngine(VocabModel(q), lib)
    res = engine.search_text("red gate", top_k=3, min_score=0.9)
    assert res.text_words == ["red", "gate"]
    assert [h.image_id for h in res.hits][:1] == [sign2] and res.hits[0].text == "red gate"
    assert res.hits[0].score < 0.9  # listed for its words, below the cut-off
    assert len(res.hits) == 3 and all(h.text is None for h in res.hits[1:])
    assert abs(res.hits[0].score - float(lib.vectors_of([sign2])[sign2].astype(np.float32) @ q)) < 1e-2
    # "the" is filler: a spoken query's heard words are matched without it
    spoken = engine.search_audio(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1, top_k=5)
    assert spoken.text_words == ["gate"] and {h.image_id for h in spoken.hits if h.text} == {sign, sign2}
    by_words = [h.score for h in spoken.hits if h.text]
    assert by_words == sorted(by_words, reverse=True)  # among the photos that show the words: the nearest first
    # the filters hold for text matches too
    only_q = engine.search_text("gate", top_k=5, roots=["/q"])
    assert [h.image_id for h in only_q.hits if h.text] == [sign2]
    assert all(h.text is None for h in engine.search_text("gate", top_k=5, kind="video").hits)
    by_date = engine.search_text("gate", top_k=5, sort="date")
    assert {h.image_id for h in by_date.hits if h.text} == {sign, sign2}


def test_a_query_the_model_cannot_read_still_finds_the_photos_that_show_it(lib):
    (sign,) = lib.write_embedded([embedded("/p/sign.jpg", 7)])
    lib.write_embedded([embedded("/p/other.jpg", 8)])
    lib.write_texts([(sign, "Boarding pass")], "eng")
    engine = SearchEngine(VocabModel(unit(1)), lib)
    res = engine.search_text("boarding pass", top_k=5)
    assert [h.image_id for h in res.hits] == [sign] and res.hits[0].score == 0.0
    (weak,) = lib.write_embedded([embedded("/p/weak.jpg", 9)])
    lib.write_texts([(weak, "pass " + "filler " * 30 + "boarding")], "eng")
    assert [h.image_id for h in engine.search_text("boarding pass", top_k=5).hits] == [sign, weak]  # by bm25
    assert res.unread_words == ["boarding", "pass"]
    with pytest.raises(SpokenSearchError, match="no photo's text holds these words"):
        engine.search_text("xylophone", top_k=5)


def test_a_library_without_text_searches_as_before(lib):
    lib.write_embedded([embedded(f"/p/{i}.jpg", i) for i in range(4)])
    engine = SearchEngine(VocabModel(unit(1)), lib)
    res = engine.search_text("red", top_k=3)
    assert len(res.hits) == 3 and all(h.text is None for h in res.hits)
    with pytest.raises(SpokenSearchError, match="vocabulary") as err:
        engine.search_text("xylophone", top_k=5)
    assert "text" not in str(err.value)


def test_query_words():
    assert match_words("A photo of the boarding pass!") == ["boarding", "pass"]
    assert match_words("the") == ["the"]  # nothing but filler: kept
    assert match_words("Straße straße") == ["straße"]


# ---- reading (real Tesseract) -----------------------------------------------------------------------------------
def test_confident_words_only():
    assert clean_words([("Exit", 95.0), ("l", 99.0), ("~~", 90.0), ("ee", 30.0), ("B22", 80.0)]) == "Exit B22"
    assert clean_words([("y~", 79.0), ("to", 96.0), ("Lisbon", 96.0)]) == "to Lisbon"
    assert merge_texts(["to the park to the sea", "PARK Exit", ""]) == "to the park to the sea Exit"
    assert clean_words([("Ov", 94.0)]) == "" and clean_words([("Ol", 89.0), ("y~", 90.0)]) == ""  # shapes, not text


@tesseract
def test_reader_reads_a_sign_and_nothing_in_noise_or_a_tiny_image(tmp_path):
    reader = TextReader("eng")
    try:
        sign = Image.open(write_sign(tmp_path / "s.png", ["BOARDING PASS", "Gate to Lisbon"]))
        assert reader.read(sign) == "BOARDING PASS Gate to Lisbon"
        noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8))
        assert reader.read(noise) == ""
        assert reader.read(Image.new("RGBA", (20, 900))) == ""
        big = sign.resize((5400, 2520))  # read at OCR_MAX_PIXELS
        assert "Lisbon" in reader.read(big)
    finally:
        reader.close()


def test_missing_engine_or_language_data_is_named(monkeypatch, tmp_path):
    with pytest.raises(OcrUnavailableError, match="not a list of Tesseract languages"):
        check_languages("eng; rm -rf")
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    monkeypatch.setattr(ocr_mod, "_TESSDATA_GLOBS", ())
    if ocr_mod.ocr_engine_available():
        with pytest.raises(OcrUnavailableError, match="apt install tesseract-ocr-klingon"):
            check_languages("klingon")
    monkeypatch.setattr(ocr_mod, "ocr_engine_available", lambda: False)
    with pytest.raises(OcrUnavailableError, match="pip install tesserocr"):
        TextReader("eng")


@tesseract
def test_indexing_reads_the_text_after_embedding_and_only_once(tmp_path):
    photos = tmp_path / "photos"
    for i in range(5):
        make_image(photos / f"{i}.jpg", i, size=(320, 240))
    write_sign(photos / "sign.png", ["NO PARKING", "Tow away zone"])
    lib = Library(tmp_path / "d", "fake-tower-1", dim=16, cache_dir=tmp_path / "c")
    try:
        plain = drain(index_library(lib, [photos], FakeEmbedder()))  # a library that does not read text
        assert plain.texts_read == 0 and lib.text_counts() == (0, 0)
        lib.set_text_languages("eng")
        phases = []
        gen = index_library(lib, [photos], FakeEmbedder())
        while True:
            try:
                phases.append(next(gen).phase)
            except StopIteration as stop:
                report = stop.value
                break
        assert "text" in phases and (report.texts_read, report.texts_found) == (6, 1)
        (sign,) = lib.ids_with_words(["parking"])
        assert lib.row_by_path(photos / "sign.png").id == sign
        again = drain(index_library(lib, [photos], FakeEmbedder()))
        assert again.texts_read == 0  # nothing new to read
        lib.set_text_languages(None)  # stopped: what was read stays searchable
        assert list(lib.ids_with_words(["tow"])) == [sign]
    finally:
        lib.close()


@tesseract
def test_a_cancelled_text_phase_keeps_what_it_read(tmp_path):
    from core.library import text_pass

    photos, lib = reading_library(tmp_path, 40, size=(200, 150), languages=None)
    try:
        drain(index_library(lib, [photos], FakeEmbedder()))
        reader = TextReader("eng")
        cancel = threading.Event()
        gen = text_pass.read_texts(lib, None, reader, workers=1, cancel=cancel)
        while next(gen)[0] < text_pass.TEXT_BATCH:  # one batch committed
            pass
        cancel.set()
        with pytest.raises(Cancelled):
            while True:
                next(gen)
        reader.close()
        read, _ = lib.text_counts()
        assert text_pass.TEXT_BATCH <= read < 40
        assert len(lib.texts_to_read(None, "eng")) == 40 - read  # the next run reads only the rest
    finally:
        lib.close()


def test_missing_tesseract_leaves_the_photos_indexed_and_says_why(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    make_image(photos / "a.jpg", 0)
    monkeypatch.setattr(ocr_mod, "ocr_engine_available", lambda: False)
    lib = Library(tmp_path / "d", "fake-tower-1", dim=16, cache_dir=tmp_path / "c")
    try:
        lib.set_text_languages("eng")
        report = drain(index_library(lib, [photos], FakeEmbedder()))
        assert report.added == 1 and len(lib) == 1
        assert "pip install tesserocr" in report.text_problem and report.texts_read == 0
    finally:
        lib.close()


def test_language_data_tesseract_cannot_load_leaves_the_photos_indexed_and_says_why(tmp_path, monkeypatch):
    class DamagedData:  # as TextReader over a truncated .traineddata: each thread's engine fails to load
        languages = "eng"

        def __init__(self, languages: str) -> None:
            pass

        def read(self, image):
            raise OcrUnavailableError("Tesseract cannot load eng from /td: Failed to init API")

        def close(self) -> None:
            pass

    monkeypatch.setattr(ocr_mod, "TextReader", DamagedData)
    photos, lib = reading_library(tmp_path, 2)
    try:
        report = drain(index_library(lib, [photos], FakeEmbedder()))  # not a failed run
        assert report.added == 2 and len(lib) == 2 and lib.unfinished_roots() == []
        assert "cannot load eng" in report.text_problem and report.texts_read == 0
        assert len(lib.texts_to_read(None, "eng")) == 2  # read once the data is mended
    finally:
        lib.close()


@tesseract
def test_cli_reads_text_and_search_shows_the_words(tmp_path, model_dir, capsys, monkeypatch):
    from core.__main__ import main

    monkeypatch.setenv("SPOKENSEARCH_DATADIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPOKENSEARCH_CACHEDIR", str(tmp_path / "cache"))
    photos = tmp_path / "photos"
    for i in range(3):
        make_image(photos / f"{i}.jpg", i)
    write_sign(photos / "wifi.png", ["WiFi password", "sunflower"])
    assert main(["index", str(photos), "--model", model_dir, "--no-progress", "--read-text"]) == 0
    out = capsys.readouterr().out
    assert "text read in 4 photos (1 shows some)" in out
    assert main(["search", "--text", "password", "--model", model_dir]) == 0
    out = capsys.readouterr()
    first = out.out.splitlines()[0]
    assert "wifi.png" in first and "[shows “WiFi password sunflower”]" in first
    assert "password (matched against the text in photos only)" in out.err
    assert main(["search", "--text", "wifi", "--model", model_dir, "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["text"] == "WiFi password sunflower" and all("text" not in h for h in hits[1:])
    assert main(["stats", "--model", model_dir, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["text_languages"], stats["texts_read"], stats["with_text"]) == ("eng", 4, 1)
    assert main(["index", str(photos), "--model", model_dir, "--no-progress", "--read-text", "klingon"]) == 1
    assert "tesseract-ocr-klingon" in capsys.readouterr().err


def test_script_detection_is_no_language_and_an_empty_one_does_not_turn_reading_off(tmp_path, model_dir, capsys,
                                                                                   monkeypatch):
    for languages in ("osd", "eng+equ"):  # Tesseract's files beside the languages: garbage if read with
        with pytest.raises(OcrUnavailableError, match="not a language to read"):
            check_languages(languages)
    from core.__main__ import main

    monkeypatch.setenv("SPOKENSEARCH_DATADIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPOKENSEARCH_CACHEDIR", str(tmp_path / "cache"))
    photos = tmp_path / "photos"
    make_image(photos / "a.jpg", 0)
    lib = Library(tmp_path / "data" / "library", None, cache_dir=tmp_path / "cache")
    lib.set_text_languages("eng")  # `index --read-text` before
    lib.close()
    # `--read-text "$LANGS"` with LANGS unset: an error, not reading turned off
    assert main(["index", str(photos), "--model", model_dir, "--no-progress", "--read-text", ""]) == 1
    assert "'' is not a list of Tesseract languages" in capsys.readouterr().err
    lib = Library(tmp_path / "data" / "library", None, cache_dir=tmp_path / "cache")
    assert lib.text_languages() == "eng"
    lib.close()


class FakeReader:
    """A TextReader stand-in: the text is "word<width>"; a 64x49 image is refused as Tesseract refuses one."""

    def __init__(self, languages: str = "eng") -> None:
        self.languages = languages

    def read(self, image):
        if image.size == (64, 49):
            raise RuntimeError("Image too small to scale")
        return "" if image.size[0] % 16 == 8 else f"word{image.size[0]}"  # 72, 88, ... px wide: nothing legible

    def close(self) -> None:
        pass


def test_the_text_phase_says_it_has_begun_and_moves_with_each_photo(tmp_path, monkeypatch):
    monkeypatch.setattr(ocr_mod, "TextReader", FakeReader)
    photos, lib = reading_library(tmp_path, 20)
    try:
        steps, gen = [], index_library(lib, [photos], FakeEmbedder())
        while True:
            try:
                p = next(gen)
            except StopIteration:
                break
            if p.phase == "text":
                steps.append((p.done, p.total))
        # at once (a 12 MP photo takes ~0.4 s, a long screenshot seconds: not "embed 20/20" for a batch's time)
        assert steps == [(n, 20) for n in range(21)]
    finally:
        lib.close()


@pytest.mark.parametrize("then", [None, "eng+deu"])
def test_the_text_phase_stops_when_the_library_stops_reading_text_or_changes_its_languages(tmp_path, then):
    from core.library import text_pass

    photos, lib = reading_library(tmp_path, 40, size=(200, 150), languages=None)
    try:
        drain(index_library(lib, [photos], FakeEmbedder()))
        lib.set_text_languages("eng")
        gen = text_pass.read_texts(lib, None, FakeReader("eng"), workers=1)
        next(gen)  # reading
        lib.set_text_languages(then)  # the app's setting turned off (or to other languages) meanwhile
        read, _ = drain(gen)  # not Cancelled: the run goes on to its end
        assert text_pass.TEXT_BATCH <= read < 40 and lib.text_counts()[0] == read
    finally:
        lib.close()


def test_a_cancel_while_a_photo_is_read_starts_no_other(tmp_path):
    from core.library import text_pass

    class Slow(FakeReader):  # the first photo takes long (a long screenshot: seconds)
        def __init__(self) -> None:
            super().__init__()
            self.started, self.reading, self.release = 0, threading.Event(), threading.Event()

        def read(self, image):
            self.started += 1
            if self.started == 1:
                self.reading.set()
                self.release.wait(5)
            return super().read(image)

    photos, lib = reading_library(tmp_path, 6, languages=None)
    try:
        drain(index_library(lib, [photos], FakeEmbedder()))
        reader, cancel = Slow(), threading.Event()
        gen = text_pass.read_texts(lib, None, reader, workers=1, cancel=cancel)
        next(gen)  # begun
        threading.Thread(target=lambda: (reader.reading.wait(5), cancel.set(),
                                         threading.Timer(0.5, reader.release.set).start())).start()
        with pytest.raises(Cancelled):
            drain(gen)
        assert reader.started == 1  # the photo queued behind it was not read once the cancel came
    finally:
        reader.release.set()
        lib.close()


def test_a_photo_gone_is_read_next_run_and_one_tesseract_refuses_is_not_read_again(tmp_path):
    from core.library import text_pass

    photos = tmp_path / "photos"
    for i in range(3):
        make_image(photos / f"{i}.jpg", i, size=(64 + i * 8, 48))
    make_image(photos / "odd.jpg", 9, size=(64, 49))
    lib = Library(tmp_path / "d", "fake-tower-1", dim=16, cache_dir=tmp_path / "c")
    try:
        drain(index_library(lib, [photos], FakeEmbedder()))
        (photos / "1.jpg").unlink()  # gone since it was embedded
        read, found = drain(text_pass.read_texts(lib, [str(photos)], FakeReader(), workers=2))
        assert (read, found) == (3, 2)  # the one gone is not counted
        assert lib.text_of(lib.row_by_path(photos / "odd.jpg").id) == ""  # refused: stored as no text
        assert [p for _, p in lib.texts_to_read(None, "eng")] == [str(photos / "1.jpg")]  # tried again next run
        assert list(lib.ids_with_words(["word80"])) == [lib.row_by_path(photos / "2.jpg").id]
    finally:
        lib.close()


def test_a_long_screenshot_is_read_at_a_size_where_its_text_stays_legible(tmp_path):
    from core.library import text_pass

    class Sizes(FakeReader):
        def __init__(self) -> None:
            super().__init__()
            self.sizes: dict[int, tuple[int, int]] = {}

        def read(self, image):
            self.sizes[image.size[1]] = image.size  # by height: no two photos here share one
            return ""

    photos = tmp_path / "photos"
    make_image(photos / "scroll.jpg", 0, size=(1170, 7000))  # a phone's scrolling screenshot
    make_image(photos / "photo.jpg", 1, size=(4000, 3000))  # 12 MP
    make_image(photos / "shot.png", 2, size=(1170, 2532))  # a phone's screenshot
    lib = Library(tmp_path / "d", "fake-tower-1", dim=16, cache_dir=tmp_path / "c")
    try:
        drain(index_library(lib, [photos], FakeEmbedder()))
        reader = Sizes()
        drain(text_pass.read_texts(lib, None, reader, workers=1))
        scroll = next(size for h, size in reader.sizes.items() if h > 3000)
        assert scroll[0] >= 700  # its lines at 60 % (a 2000 px cap on the long side: 334 px wide, 29 %)
        assert scroll[0] * scroll[1] <= ocr_mod.OCR_MAX_PIXELS + max(scroll)
        assert reader.sizes[1500] == (2000, 1500) and reader.sizes[2532] == (1170, 2532)  # as it is
    finally:
        lib.close()


@tesseract
def test_the_reader_keeps_a_long_screenshot_legible():
    reader = TextReader("eng")
    try:
        page = Image.new("RGB", (1170, 8000), "white")
        draw, font = ImageDraw.Draw(page), ImageFont.load_default(size=40)
        for i, words in enumerate(["boarding pass", "gate to Lisbon", "seat window"] * 8):
            draw.text((60, 300 * i + 40), words, fill=(20, 20, 20), font=font)
        text = reader.read(page).lower()
        assert text.count("lisbon") >= 6 and text.count("window") >= 6
    finally:
        reader.close()


def test_a_run_stopped_in_its_text_phase_counts_what_it_read_and_leaves_every_photo_searchable(tmp_path,
                                                                                              monkeypatch):
    from argparse import Namespace

    from core.cli_index import unsearchable_note
    from core.library import text_pass

    photos = tmp_path / "photos"
    for i in range(40):
        make_image(photos / f"{i:02d}.jpg", i, size=(64 + 8 * (i % 2), 48))  # half of them show some text
    monkeypatch.setattr(ocr_mod, "TextReader", FakeReader)
    lib = Library(tmp_path / "d", "fake-tower-1", dim=16, cache_dir=tmp_path / "c")
    try:
        lib.set_text_languages("eng")
        cancel = threading.Event()
        gen = index_library(lib, [photos], FakeEmbedder(), cancel=cancel, workers=1)
        with pytest.raises(Cancelled) as stopped:
            while True:
                p = next(gen)
                if p.phase == "text" and p.done > text_pass.TEXT_BATCH:  # Ctrl+C after the first batch of text
                    cancel.set()
        report = stopped.value.report
        read, with_text = lib.text_counts()
        assert report.cancelled and 0 < read < 40 and 0 < with_text < read
        assert (report.texts_read, report.texts_found) == (read, with_text)  # as committed
        assert len(lib) == 40 and lib.unfinished_roots() == []  # every photo was searchable before the text phase
        note = unsearchable_note(lib, None, Namespace(model="default", data_dir=None))
        assert f"the text of {40 - read} photos in {photos} is not read yet" in note
        assert "not searchable" not in note and "did not finish" not in note
    finally:
        lib.close()


def test_an_unfinished_run_says_how_many_photos_text_is_not_read_yet(tmp_path):
    from argparse import Namespace

    from core.cli_index import unsearchable_note

    photos, lib = reading_library(tmp_path, 3, languages=None)
    try:
        drain(index_library(lib, [photos], FakeEmbedder()))
        lib.set_text_languages("eng")
        lib.mark_indexed([str(photos)], done=False)  # as a run stopped in its text phase leaves it
        args = Namespace(model="default", data_dir=None)
        assert f"the text of 3 photos in {photos} is not read yet" in unsearchable_note(lib, None, args)
        lib.set_text_languages(None)
        assert "text" not in unsearchable_note(lib, None, args)
    finally:
        lib.close()
