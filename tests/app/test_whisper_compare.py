"""The Whisper baseline in the window: a spoken query's transcript shown under the model's keywords, its words
searched as typed text and back, a Whisper that cannot run said once, nothing at all when it is off."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from PySide6.QtCore import Qt

from app.settings import AppSettings
from core.asr import Transcript
from core.errors import ModelNotFoundError
from tests.app.conftest import speech_like
from tests.app.fake_service import FakeService

pytestmark = pytest.mark.qt

WHISPER = "/models/whisper-small"


class WhisperFakeService(FakeService):
    """FakeService with SearchService.transcribe: hears `said` (or raises `problem`) after `delay_s`."""

    def __init__(self, *args, said: str = "a red dog", problem: Exception | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.said, self.problem, self.delay_s = said, problem, 0.0
        self.transcribed: list[tuple] = []  # (samples, whisper, language[, "translate"])
        self.lock = threading.Lock()

    def transcribe(self, wav, whisper, language=None, translate=False) -> Transcript:  # noqa: ANN001
        time.sleep(self.delay_s)
        with self.lock:
            self.transcribed.append((len(wav), str(whisper), language) + (("translate",) if translate else ()))
        if self.problem is not None:
            raise self.problem
        return Transcript(self.said, language or "en", 12.3, translated=translate)


@pytest.fixture
def whisper_service(tmp_path, photos) -> WhisperFakeService:
    service = WhisperFakeService(tmp_path / "thumbs")
    service.add_root(photos)
    list(service.index([photos]))
    return service


def spoken(qtbot, w, seconds: float = 1.2) -> None:  # noqa: ANN001
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_wav(speech_like(seconds), "query_01.wav")


def test_a_spoken_query_shows_what_whisper_heard_and_searches_its_words(qtbot, make_window, whisper_service):
    w = make_window(whisper_service, settings=AppSettings(first_run_done=True, top_k=4, whisper_model=WHISPER))
    row = w.transcript_row
    assert row.isVisible() and "transcript appears here" in row.words.full and row.button.isHidden()
    spoken(qtbot, w)
    keywords = w.chips.texts()
    qtbot.waitUntil(lambda: row.text == "a red dog", timeout=5_000)
    assert whisper_service.transcribed == [(len(w.search.query_wav), WHISPER, None)]
    assert row.words.full == "“a red dog”" and row.meta.text() == "12 ms · en"
    assert row.button.isVisible() and row.button.text() == "Search these words" and keywords  # both readings shown
    assert WHISPER in row.title.toolTip()

    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        qtbot.mouseClick(row.button, Qt.MouseButton.LeftButton)
    assert w._space_is_ours()  # the click left Space to push-to-talk
    assert w.search.last_query == ("text", "a red dog") and whisper_service.calls[-1] == "search_text"
    assert w.panel.text_edit.text() == "a red dog" and "for “a red dog”" in w.grid.summary_text()
    assert row.text == "a red dog" and row.button.text() == "Back to the voice results"

    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        row.button.click()  # the voice results again: re-ranked, the speech model not run again
    assert w.search.last_query[0] == "audio" and whisper_service.calls[-1] == "search_vector"
    assert w.chips.texts() == keywords and w.plot.query is not None
    assert row.button.text() == "Search these words" and len(whisper_service.transcribed) == 1

    w.search.search_text("a beach")  # another query: the transcript is not about it
    qtbot.waitUntil(lambda: row.text == "", timeout=5_000)
    assert row.isVisible() and row.button.isHidden()


def test_the_language_setting_goes_to_whisper_and_another_whisper_hears_the_query_again(qtbot, make_window,
                                                                                       whisper_service):
    w = make_window(whisper_service, settings=AppSettings(first_run_done=True, whisper_model=WHISPER,
                                                          whisper_language="de"))
    spoken(qtbot, w)
    qtbot.waitUntil(lambda: w.transcript_row.text == "a red dog", timeout=5_000)
    assert whisper_service.transcribed[-1][1:] == (WHISPER, "de") and w.transcript_row.meta.text() == "12 ms · de"
    whisper_service.said = "a red cat"
    w.apply_settings(replace(w.settings, whisper_model="/models/whisper-large", whisper_language=""))
    qtbot.waitUntil(lambda: w.transcript_row.text == "a red cat", timeout=5_000)
    assert whisper_service.transcribed[-1][1:] == ("/models/whisper-large", None)


def test_a_query_spoken_in_german_is_translated_by_whisper_and_its_english_words_searched(qtbot, make_window,
                                                                                          whisper_service):
    whisper_service.said = "a red dog"  # what a multilingual Whisper writes for "ein roter Hund"
    w = make_window(whisper_service, settings=AppSettings(first_run_done=True, whisper_model=WHISPER,
                                                          whisper_language="de", whisper_translate=True))
    spoken(qtbot, w)
    row = w.transcript_row
    qtbot.waitUntil(lambda: row.text == "a red dog", timeout=5_000)
    assert whisper_service.transcribed[-1][1:] == (WHISPER, "de", "translate")
    assert row.meta.text() == "12 ms · de → en" and "translated into English" in row.meta.toolTip()
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        row.button.click()
    assert w.search.last_query == ("text", "a red dog")
    w.apply_settings(replace(w.settings, whisper_translate=False))  # the same query, heard again as spoken
    qtbot.waitUntil(lambda: len(whisper_service.transcribed) == 2, timeout=5_000)
    assert whisper_service.transcribed[-1][1:] == (WHISPER, "de")


def test_only_the_latest_spoken_query_is_transcribed_and_shown(qtbot, make_window, whisper_service):
    whisper_service.delay_s = 0.3
    w = make_window(whisper_service, settings=AppSettings(first_run_done=True, whisper_model=WHISPER))
    spoken(qtbot, w, 1.2)
    whisper_service.said = "the second one"
    spoken(qtbot, w, 1.5)  # while the first is being transcribed
    qtbot.waitUntil(lambda: w.transcript_row.text == "the second one", timeout=5_000)
    qtbot.wait(400)
    assert w.transcript_row.text == "the second one"
    assert whisper_service.transcribed[-1][0] == len(w.search.query_wav)


def test_a_whisper_that_cannot_run_is_said_once_with_the_way_to_settings(qtbot, make_window, whisper_service):
    whisper_service.problem = ModelNotFoundError(f"no Whisper model in {WHISPER} (no download is done): fill that "
                                                 "folder once with `huggingface-cli download openai/whisper-small`")
    w = make_window(whisper_service, settings=AppSettings(first_run_done=True, whisper_model=WHISPER))
    said: list[str] = []
    shown = w.show_message
    w.show_message = lambda text, *a, **k: (said.append(text), shown(text, *a, **k))  # type: ignore[method-assign]
    spoken(qtbot, w)
    qtbot.waitUntil(lambda: bool(said), timeout=5_000)
    bar = w.message_bar
    assert said == [f"No Whisper transcript to compare with: {whisper_service.problem}."]
    assert bar.level == "warning" and bar.action.text() == "Settings…" and bar.topic == "whisper"
    assert "did not run: no Whisper model" in w.transcript_row.words.full
    assert w.results.rowCount() > 0  # the voice search itself worked
    for seconds in (1.5, 1.8):  # later queries: tried again (a folder filled meanwhile works), not said again
        n = len(whisper_service.transcribed)
        spoken(qtbot, w, seconds)
        qtbot.waitUntil(lambda n=n: len(whisper_service.transcribed) > n, timeout=5_000)
    qtbot.wait(200)
    assert len(said) == 1 and "did not run" in w.transcript_row.words.full
    assert bar.isVisible() and bar.topic == "whisper"  # still up: the searches that worked did not settle it

    w.apply_settings(replace(w.settings, whisper_model="/models/another"))  # another choice may be said again
    qtbot.waitUntil(lambda: len(said) == 2, timeout=5_000)
    whisper_service.problem = None
    w.apply_settings(replace(w.settings, whisper_model=WHISPER))
    qtbot.waitUntil(lambda: w.transcript_row.text == "a red dog", timeout=5_000)
    assert bar.isHidden()  # its warning went with the choice


def test_whisper_off_or_a_service_without_it_transcribes_nothing(qtbot, make_window, whisper_service, fake_service,
                                                                 photos):
    w = make_window(whisper_service, settings=AppSettings(first_run_done=True))
    assert w.transcript_row.isHidden()
    spoken(qtbot, w)
    qtbot.wait(200)
    assert whisper_service.transcribed == [] and w.transcript_row.isHidden()

    assert not hasattr(fake_service, "transcribe")  # the plain fake (an older core): searches as before
    fake_service.add_root(photos)
    list(fake_service.index([photos]))
    w = make_window(fake_service, settings=AppSettings(first_run_done=True, whisper_model=WHISPER))
    spoken(qtbot, w)
    assert w.transcript_row.isHidden() and w.results.rowCount() > 0 and w.message_bar.isHidden()


def test_the_real_service_transcribes_with_a_tiny_whisper_folder_and_names_a_missing_one(qtbot, make_window,
                                                                                        model_dir, tmp_path):
    from core.service import SearchService
    from tests.app.conftest import make_photos
    from tests.core.whisperfakes import make_tiny_whisper

    whisper = make_tiny_whisper(tmp_path / "tiny-whisper")  # random weights: its words are random characters
    service = SearchService(model=str(model_dir), device="cpu")
    try:
        w = make_window(service, settings=AppSettings(first_run_done=True, top_k=3, whisper_model=str(whisper)))
        with qtbot.waitSignal(w.library.indexing_finished, timeout=20_000):
            w.library.index_folders([make_photos(tmp_path / "photos", n=3)], show_dialog=False)
        spoken(qtbot, w)
        row = w.transcript_row
        qtbot.waitUntil(lambda: row.meta.text().endswith(" ms") or "nothing" in row.words.full, timeout=20_000)
        assert service._whisper is not None and w.message_bar.isHidden()
        if row.text:  # random characters: photos found, or its words named as outside the model's vocabulary
            shown: list = []
            w.search.result_shown.connect(shown.append)
            row.button.click()
            assert w.search.last_query == ("text", row.text)
            qtbot.waitUntil(lambda: bool(shown) or w.message_bar.isVisible(), timeout=10_000)
            w.message_bar.hide()

        w.apply_settings(replace(w.settings, whisper_model=str(tmp_path / "nowhere")))
        spoken(qtbot, w, 1.5)
        qtbot.waitUntil(lambda: w.message_bar.topic == "whisper", timeout=10_000)
        assert f"huggingface-cli download openai/whisper-small --local-dir {tmp_path / 'nowhere'}" \
            in w.message_bar.text()
    finally:
        w.close()
        from app.workers import wait_all

        assert wait_all(10_000)
        service.close()


def test_a_whisper_failure_stays_said_until_a_spoken_query_tries_whisper_again(qtbot, make_window, whisper_service):
    """Other searches (a re-run for more results, a typed query) do not take away why Whisper did not run: the
    row and the strip keep saying it; the next spoken query's own transcript replaces it, and a working Whisper
    takes the warning away."""
    whisper_service.problem = ModelNotFoundError(f"no Whisper model in {WHISPER} (no download is done)")
    w = make_window(whisper_service, settings=AppSettings(first_run_done=True, top_k=4, whisper_model=WHISPER))
    row, bar = w.transcript_row, w.message_bar
    spoken(qtbot, w)
    qtbot.waitUntil(lambda: bar.topic == "whisper" and bar.isVisible(), timeout=5_000)
    assert row.words.full == f"did not run: no Whisper model in {WHISPER} (no download is done)"
    failure = row.words.full
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.grid.top_k.setValue(6)  # the user asks for more results: the spoken query is re-ranked
        w.search.controls_edited()
    assert w.results.rowCount() == 6 and row.words.full == failure
    assert bar.isVisible() and bar.topic == "whisper"  # a search that worked does not settle Whisper's problem
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a beach")
    assert row.words.full == failure and bar.isVisible() and bar.topic == "whisper"
    whisper_service.problem = None  # the folder was filled meanwhile
    spoken(qtbot, w, 1.5)
    qtbot.waitUntil(lambda: row.text == "a red dog", timeout=5_000)
    assert bar.isHidden()  # its warning went with the problem
