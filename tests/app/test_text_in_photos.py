"""Text in photos (OCR) in the window: the setting and what is missing for it, the indexing step, the photos
found by their words first in the grid (marked, with the words in their tooltip), the preview's "Text in photo",
the summary, and a service without text reading."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.settings import AppSettings, load_settings, save_settings
from app.text_setting import text_languages_of
from tests.app.conftest import make_photos
from tests.app.fake_service import Hit, IndexProgress, TextFakeService

pytestmark = pytest.mark.qt

NO_TESSERACT = "reading text in photos needs tesserocr: pip install tesserocr"


@pytest.fixture
def texts(tmp_path: Path) -> TextFakeService:
    service = TextFakeService(tmp_path / "thumbs")
    service.photo_texts = {"photo_02.jpg": "BOARDING PASS gate B22 <script>", "photo_04.jpg": "Boarding pass",
                           "photo_05.jpg": "menu of the day"}
    return service


def write_sign(path: Path, lines: list[str]) -> Path:
    """A photo of a sign: dark words on a light board (legible to Tesseract)."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.new("RGB", (900, 100 + 90 * len(lines)), (235, 232, 220))
    draw = ImageDraw.Draw(im)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 90 * i), line, fill=(25, 25, 30), font=ImageFont.load_default(size=52))
    im.save(path)
    return path


def index(qtbot, w, folder: Path):  # noqa: ANN001, ANN201
    # a run going on (the quiet re-scan a setting starts) would take this request into its queue and its end
    # would be taken for this one's: a loaded machine made that race visible
    qtbot.waitUntil(lambda: not w.library.indexing, timeout=10_000)
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000) as done:
        w.library.index_folders([folder], show_dialog=False)
    return done.args[0]


def search(qtbot, w, text: str) -> None:  # noqa: ANN001
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text(text)


def names(w) -> list[str]:  # noqa: ANN001
    return [Path(w.results.hit(r).path).name for r in range(w.results.rowCount())]


def test_the_setting_is_remembered_and_names_the_languages_only_when_on(app_dirs):
    s = AppSettings(read_text=True, text_languages="eng+deu")
    save_settings(s)
    assert load_settings() == s and text_languages_of(s) == "eng+deu"
    assert AppSettings().read_text is False and AppSettings().text_languages == "eng"
    assert text_languages_of(replace(s, read_text=False)) is None
    assert text_languages_of(replace(s, text_languages=" ")) == "eng"


def test_photos_found_by_their_words_come_first_marked_and_previewed_with_the_words(qtbot, make_window, texts,
                                                                                    tmp_path, monkeypatch):
    import app.library_controller as lc
    from app.models import ScoreRole

    headings: list[str] = []
    real = lc.read_progress
    monkeypatch.setattr(lc, "read_progress", lambda item, steps: headings.append(real(item, steps).heading)
                        or real(item, steps))
    photos = make_photos(tmp_path / "photos")
    w = make_window(texts, settings=AppSettings(first_run_done=True, read_text=True, top_k=4))
    qtbot.waitUntil(lambda: texts.read_text_calls == ["eng"], timeout=5_000)
    report = index(qtbot, w, photos)
    assert (report.texts_read, report.texts_found) == (6, 3)
    assert "Step 4 of 5: reading text in photos" in headings and "Step 3 of 5: reading new photos" in headings
    assert "text read in 6 photos (3 with text)" in w.statusBar().currentMessage()
    qtbot.waitUntil(lambda: w.photos_label.toolTip() == "Text read in 6 photos, 3 of them show some", timeout=5_000)

    search(qtbot, w, "boarding pass")
    assert names(w)[:2] == ["photo_02.jpg", "photo_04.jpg"] and w.results.rowCount() == 4
    scores = [w.results.data(w.results.index(r), ScoreRole) for r in range(4)]
    assert max(scores[:2]) < min(scores[2:])  # first for their words, whatever their score
    assert "(2 show “boarding pass”)" in w.grid.summary_text()
    tip = w.results.data(w.results.index(0), Qt.ItemDataRole.ToolTipRole)
    assert str(photos / "photo_02.jpg") in tip and "Shows “boarding pass”: <b>BOARDING</b> <b>PASS</b> gate" in tip
    assert w.results.data(w.results.index(2), Qt.ItemDataRole.ToolTipRole) == str(w.results.hit(2).path)
    for key in ("date", "score"):  # newest first mixes them in; best match first puts them first again
        w.grid.sort.setCurrentIndex(w.grid.sort.findData(key))
    assert names(w)[:2] == ["photo_02.jpg", "photo_04.jpg"]
    w.grid.view.setCurrentIndex(w.results.index(0))
    qtbot.waitUntil(lambda: w.preview.text_label.isVisible(), timeout=5_000)
    shown = w.preview.text_label.text()
    assert "Text in photo:" in shown and "<b>BOARDING</b> <b>PASS</b> gate B22 &lt;script&gt;" in shown
    assert "<script>" not in shown
    plain = next(r for r in (2, 3) if names(w)[r] != "photo_05.jpg")  # found by its looks, no text in it
    w.grid.view.setCurrentIndex(w.results.index(plain))
    assert w.preview.hit is w.results.hit(plain)
    qtbot.wait(300)  # its text read (none)
    assert w.preview.text_label.isHidden()

    w.grid.top_k.setValue(2)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.controls_edited()
    assert w.grid.summary_text().startswith("2 photos show “boarding pass” in ")  # only the text answered

    # a photo shown for its looks whose text was read: the preview says what it shows
    menu = next(i for i, p in texts._images.items() if p.name == "photo_05.jpg")
    w.results.set_hits([Hit(menu, texts._images[menu], 0.5, 0.0)])
    qtbot.waitUntil(lambda: w.preview.text_label.isVisible(), timeout=5_000)
    assert w.preview.text_label.text().endswith("</span> menu of the day")  # no word looked for: none in bold


def test_turning_it_on_reads_the_photos_already_there_other_languages_read_them_again_off_reads_none(
        qtbot, make_window, texts, tmp_path):
    photos = make_photos(tmp_path / "photos")
    w = make_window(texts, settings=AppSettings(first_run_done=True))
    index(qtbot, w, photos)
    assert texts.read_text_calls == [] and texts.stats().texts_read == 0  # off here and in the library: untouched
    search(qtbot, w, "boarding pass")
    assert not any(w.results.hit(r).text for r in range(w.results.rowCount()))
    runs: list[object] = []
    w.library.indexing_finished.connect(runs.append)
    w.apply_settings(replace(w.settings, read_text=True))
    qtbot.waitUntil(lambda: len(runs) == 1 and not w.library.indexing, timeout=10_000)
    assert texts.read_text_calls[-1] == "eng" and runs[0].texts_read == 6  # a quiet re-scan read them
    assert w.message_bar.text() == "Text read in 3 photos since this search."  # the results stay as they were
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.message_bar.action.click()
    assert names(w)[:2] == ["photo_02.jpg", "photo_04.jpg"]
    assert load_settings().read_text is True
    w.apply_settings(replace(w.settings, top_k=7))  # nothing about text changed: nothing read again
    w.apply_settings(replace(w.settings, text_languages="eng+deu"))
    qtbot.waitUntil(lambda: len(runs) == 2 and not w.library.indexing, timeout=10_000)
    assert texts.read_text_calls == ["eng", "eng+deu"] and runs[1].texts_read == 6
    w.apply_settings(replace(w.settings, read_text=False))
    qtbot.waitUntil(lambda: texts.read_text_calls[-1] is None, timeout=5_000)
    qtbot.wait(300)
    assert len(runs) == 2 and not w.library.indexing  # turned off: no re-scan (what was read stays searchable)
    search(qtbot, w, "boarding pass")
    assert names(w)[0] == "photo_02.jpg"


def test_turning_it_off_while_the_text_is_read_stops_the_reading_at_once(qtbot, make_window, texts, tmp_path):
    photos = make_photos(tmp_path / "photos")
    texts.text_delay_s = 0.6  # a photo's text takes a while to read
    w = make_window(texts, settings=AppSettings(first_run_done=True, read_text=True))
    qtbot.waitUntil(lambda: texts.read_text_calls == ["eng"], timeout=5_000)
    runs: list[object] = []
    w.library.indexing_finished.connect(runs.append)
    w.library.index_folders([photos], show_dialog=False)
    qtbot.waitUntil(lambda: "reading text in photos" in w.library.status_label.text(), timeout=10_000)
    w.apply_settings(replace(w.settings, read_text=False))
    qtbot.waitUntil(lambda: texts.read_text_calls[-1] is None, timeout=1_000)  # not once the run has read them all
    qtbot.waitUntil(lambda: bool(runs), timeout=5_000)
    assert 1 <= runs[0].texts_read < 6 and not runs[0].cancelled  # the run ends as usual, its text phase cut short


def test_missing_tesseract_is_said_with_what_to_install(qtbot, make_window, texts, tmp_path):
    photos = make_photos(tmp_path / "photos")
    texts.ocr_problem = NO_TESSERACT
    w = make_window(texts, settings=AppSettings(first_run_done=True, read_text=True))
    qtbot.waitUntil(lambda: NO_TESSERACT in w.message_bar.text(), timeout=5_000)
    assert w.message_bar.level == "warning" and w.message_bar.text().startswith("The text in photos is not read")
    texts.ocr_problem = None  # installed: ticked again in the settings, the message goes
    w.settings.read_text = False
    w.apply_settings(replace(w.settings, read_text=True))
    qtbot.waitUntil(lambda: w.message_bar.isHidden(), timeout=5_000)
    index(qtbot, w, photos)
    texts.ocr_problem = NO_TESSERACT  # gone again while the library reads text: the run says why, once
    report = index(qtbot, w, photos)
    assert report.text_problem == NO_TESSERACT and "was not read: " + NO_TESSERACT in w.message_bar.text()
    w.hide_message()
    index(qtbot, w, photos)
    assert w.message_bar.isHidden()  # every quiet re-scan meets it: not said again in this session


def test_why_the_text_is_not_read_stays_said_through_searches_until_text_is_read(qtbot, make_window, texts,
                                                                                  tmp_path):
    """Tesseract missing is a settings problem a search does not settle: the warning outlasts the next searches
    (as Whisper's does); a run that reads text again, the setting or the close button take it away."""
    photos = make_photos(tmp_path / "photos")
    texts.ocr_problem = NO_TESSERACT
    w = make_window(texts, settings=AppSettings(first_run_done=True, read_text=True))
    bar = w.message_bar
    qtbot.waitUntil(lambda: NO_TESSERACT in bar.text(), timeout=5_000)
    index(qtbot, w, photos)
    search(qtbot, w, "a red car")
    assert bar.isVisible() and bar.topic == "text-in-photos"  # the search does not hide why text is not read
    texts.languages, texts.ocr_problem = "eng", None  # installed meanwhile, the library reads text again
    with qtbot.waitSignal(w.library.indexing_finished, timeout=10_000):
        w.library.index_folders(None, quiet=True)
    assert bar.isHidden()  # text was read: its warning went with the problem


def test_a_service_without_text_reading_still_searches_and_previews(qtbot, make_window, fake_service, photos):
    assert not hasattr(fake_service, "read_text")
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, read_text=True))
    index(qtbot, w, photos)
    search(qtbot, w, "a red car")
    assert w.results.rowCount() == 6 and "show" not in w.grid.summary_text()
    qtbot.waitUntil(lambda: w.preview._pixmap is not None, timeout=5_000)
    assert w.preview.text_label.isHidden() and w.preview.text_of is None
    runs: list[object] = []
    w.library.indexing_finished.connect(runs.append)
    w.apply_settings(replace(w.settings, read_text=False, index_videos=False))  # videos alone re-scan
    qtbot.waitUntil(lambda: len(runs) == 1, timeout=10_000)
    assert w.message_bar.isHidden() or w.message_bar.level == "info"


def test_a_spoken_query_run_again_with_other_controls_keeps_the_photos_that_show_its_words(qtbot, make_window,
                                                                                          texts, tmp_path):
    from tests.app.conftest import speech_like

    texts.photo_texts = {"photo_03.jpg": "Red car on a road, for sale"}  # the fake hears "red car on a road"
    photos = make_photos(tmp_path / "photos")
    w = make_window(texts, settings=AppSettings(first_run_done=True, read_text=True, top_k=5))
    qtbot.waitUntil(lambda: texts.read_text_calls == ["eng"], timeout=5_000)
    index(qtbot, w, photos)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_wav(speech_like(), "q.wav")
    assert names(w)[0] == "photo_03.jpg" and "(1 shows “red car on a road”)" in w.grid.summary_text()
    calls = len(texts.calls)
    w.grid.top_k.setValue(3)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.controls_edited()
    assert texts.calls[calls:] == ["search_vector"]  # the vector ranked again, not the speech model run again
    assert names(w)[0] == "photo_03.jpg" and w.results.rowCount() == 3


def test_settings_offer_reading_text_and_name_what_is_missing(qtbot, monkeypatch):
    from app.dialogs import settings_dialog as sd
    from core.library import ocr

    monkeypatch.setattr(ocr, "ocr_engine_available", lambda: True)
    monkeypatch.setattr(ocr, "find_tessdata", lambda langs="eng": None if "klingon" in langs else Path("/td"))
    monkeypatch.setattr(ocr, "installed_languages", lambda: ["deu", "eng"])
    monkeypatch.setattr(sd, "ocr_engine_available", lambda: True)
    monkeypatch.setattr(sd, "installed_languages", lambda: ["deu", "eng"])

    def dialog(settings: AppSettings) -> sd.SettingsDialog:
        dlg = sd.SettingsDialog(settings, [])
        qtbot.addWidget(dlg)
        return dlg

    dlg = dialog(AppSettings())
    assert not dlg.read_text.isChecked() and dlg.read_text.isEnabled() and not dlg.text_languages.isEnabled()
    assert dlg.text_languages.text() == "eng" and "installed: deu, eng" in dlg.text_languages.toolTip()
    dlg.read_text.setChecked(True)
    assert dlg.text_languages.isEnabled() and dlg.text_problem.isHidden()
    dlg.text_languages.setText("eng+klingon")
    assert "apt install tesseract-ocr-eng tesseract-ocr-klingon" in dlg.text_problem.text()
    assert not dlg.text_problem.isHidden() and dlg.text_problem.text()[0] == "N"  # a sentence
    with qtbot.assertNotEmitted(dlg.accepted):  # languages that cannot be read are not saved
        dlg.accept()
    dlg.text_languages.setText(" eng+deu ")
    assert dlg.text_problem.isHidden()
    with qtbot.waitSignal(dlg.accepted):
        dlg.accept()
    s = dlg.result_settings()
    assert (s.read_text, s.text_languages) == (True, "eng+deu")

    monkeypatch.setattr(ocr, "ocr_engine_available", lambda: False)  # tesserocr not installed
    monkeypatch.setattr(sd, "ocr_engine_available", lambda: False)
    dlg = dialog(AppSettings())
    assert not dlg.read_text.isEnabled() and "pip install tesserocr" in dlg.read_text.toolTip()
    dlg = dialog(AppSettings(read_text=True))  # ticked before it went: it can still be turned off
    assert dlg.read_text.isEnabled() and "pip install tesserocr" in dlg.text_problem.text()
    dlg.read_text.setChecked(False)
    assert dlg.text_problem.isHidden()
    with qtbot.waitSignal(dlg.accepted):
        dlg.accept()
    assert dlg.result_settings().read_text is False


def test_the_text_step_is_counted_in_its_place_when_the_library_reads_text():
    from app.dialogs.index_progress import read_progress, run_steps

    def heading(phase: str, reads_text: bool | None) -> str:
        item = IndexProgress(2, 6, "", phase=phase)
        return (read_progress(item) if reads_text is None else read_progress(item, run_steps(reads_text))).heading

    assert run_steps(True) == ("scan", "hash", "embed", "text", "ann")
    assert heading("text", True) == "Step 4 of 5: reading text in photos"
    assert heading("ann", True) == "Step 5 of 5: building the search index"
    assert heading("ann", False) == heading("ann", None) == "Step 4 of 4: building the search index"
    assert heading("text", False) == "Reading text in photos"  # read although not asked here (the command line)


def test_the_words_are_bold_escaped_and_the_text_cut_at_a_word():
    from app.photo_text import elide, hit_tooltip, marked_html, score_text

    assert marked_html("Receipt <b>Total</b> & RECEIPTS", ["receipts", "total"]) == \
        "<b>Receipt</b> &lt;b&gt;<b>Total</b>&lt;/b&gt; &amp; <b>RECEIPTS</b>"
    assert marked_html("Café passage", ["cafe", "pass"]) == "<b>Café</b> passage"  # accents folded; not a prefix
    assert elide("one two three four", 12) == "one two…" and elide("  a\n b ") == "a b"
    assert marked_html("word " * 100, ["word"], limit=20).endswith("…")
    hit = Hit(1, Path("/p/<a>.jpg"), 0.1, 0.0, text="gate B22")
    tip = hit_tooltip(hit, ["gate"])
    assert "&lt;a&gt;.jpg</p>" in tip and "Shows “gate”: <b>gate</b> B22" in tip
    assert hit_tooltip(Hit(1, Path("/p/a.jpg"), 0.1, 0.0), ["gate"]) == "/p/a.jpg"  # plain, as before
    # a photo found only by its text, for a query the model cannot read (core scores it 0.0), says so
    assert [score_text(Hit(1, Path("a"), s, 0.0, text=t)) for s, t in ((0.0, "x"), (0.25, "x"), (0.0, None))] \
        == ["text match", "0.250", "0.000"]


def test_a_photo_found_by_its_words_is_marked_on_its_thumbnail(qtbot):
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QColor, QImage, QPainter

    from app.widgets.results_grid import paint_text_badge

    canvas = QImage(160, 120, QImage.Format.Format_RGB32)
    canvas.fill(QColor(255, 255, 255))
    p = QPainter(canvas)
    font = p.font()
    paint_text_badge(p, QRect(0, 0, 160, 120))
    assert p.font() == font  # the score under the thumbnail is written as before
    p.end()
    assert canvas.pixelColor(5, 5).lightness() == 255 and canvas.pixelColor(5, 110).lightness() == 255
    dark = [canvas.pixelColor(x, 110).lightness() < 160 for x in range(130, 158)]
    assert sum(dark) > 10  # the dark tag in the lower-right corner


def test_at_start_a_library_that_reads_text_shows_it_and_the_setting_turns_a_new_library_on(qtbot, make_window,
                                                                                           texts, app_dirs):
    texts.languages = "eng+deu"  # `core index --read-text eng+deu` turned it on
    w = make_window(texts, settings=AppSettings(first_run_done=True))
    qtbot.waitUntil(lambda: w.settings.read_text, timeout=5_000)
    assert w.settings.text_languages == "eng+deu" and texts.read_text_calls == []  # adopted, not turned off
    assert load_settings().read_text is True
    fresh = TextFakeService(texts.cache_dir)  # a new library (the old one was damaged and put aside)
    w2 = make_window(fresh, settings=AppSettings(first_run_done=True, read_text=True, text_languages="deu"))
    qtbot.waitUntil(lambda: fresh.read_text_calls == ["deu"], timeout=5_000)
    assert fresh.text_languages() == "deu" and w2.settings.text_languages == "deu"
