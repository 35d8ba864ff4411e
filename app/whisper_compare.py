"""The Whisper baseline beside SpeechCLIP+ (SearchService.transcribe, the cascade a reviewer compares with): with a
Whisper model set in Settings, each spoken query is also transcribed and the transcript shown under the keywords
the model heard, with a button that searches its words as typed text (and one back to the voice results).

The transcript is asked for once the spoken query's results are shown, on the "asr" lane: the speech model's
search and its time are not slowed by Whisper. A Whisper that cannot run is said in the row until a spoken query
tries it again (other searches leave it), and once in the message strip, where it stays until the Whisper setting
changes, a transcript works, or the user closes it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from app import operations as ops
from app.settings import AppSettings
from app.widgets.transcript_row import TranscriptRow
from core.errors import Cancelled

logger = logging.getLogger(__name__)

WHISPER_TOPIC = "whisper"  # the message strip's topic for "Whisper did not run"


def whisper_of(s: AppSettings) -> tuple[str, str | None, bool] | None:
    """(model, language or None, translate) of the Whisper to compare with; None when off."""
    model = s.whisper_model.strip()
    return (model, s.whisper_language.strip() or None, s.whisper_translate) if model else None


class WhisperCompare(QObject):
    """Follows the window's searches (SearchController.result_shown) and keeps the TranscriptRow up to date."""

    def __init__(self, window: Any, row: TranscriptRow) -> None:
        super().__init__(window)
        self.window, self.row = window, row
        self.wav: Any = None  # the spoken query transcribed (by identity), None when the row is empty
        self.spoken: tuple[str, Any, list[str]] | None = None  # its label, SpeechQuery and text words, to go back
        self.worker: Any = None  # the transcription asked for last
        self.said: set[str] = set()  # the failures said in the message strip (once each)
        self.problem = ""  # why the last spoken query was not transcribed, while the row says it
        window.search.result_shown.connect(self._on_result)
        row.search_requested.connect(self.search_transcript)
        row.back_requested.connect(self.back_to_spoken)
        self.clear()

    def active(self) -> tuple[str, str | None, bool] | None:
        """The Whisper to use: set in Settings, and the service can transcribe (the test fakes cannot)."""
        service = self.window.service
        return whisper_of(self.window.settings) if service is not None and hasattr(service, "transcribe") else None

    def clear(self) -> None:
        """No transcript (another kind of query, another service); the row only shows when Whisper is on."""
        self.wav, self.spoken, self.problem = None, None, ""
        if self.worker is not None:
            self.worker.cancel()  # not yet started: it does not run
        self.row.show_note("")
        self.refresh()

    def refresh(self) -> None:
        """The row shows while Whisper is on and the service can transcribe (after a service or settings change)."""
        whisper = self.active()
        self.row.setVisible(whisper is not None)
        self.row.title.setToolTip(f"The Whisper model {whisper[0]} (Settings)" if whisper else "")

    def settings_changed(self, old: AppSettings, new: AppSettings) -> None:
        """Another Whisper (or language, translation, or none): its failures may be said again, and the spoken query
        on screen is transcribed by it."""
        if whisper_of(old) == whisper_of(new):
            return
        self.said.clear()
        self.window.hide_message(WHISPER_TOPIC)
        wav, spoken = self.wav, self.spoken
        self.clear()
        if wav is not None and self.active():
            self.spoken = spoken
            self._transcribe(wav)

    def _on_result(self, result: Any) -> None:
        search = self.window.search
        kind, value = search.last_query or ("", None)
        if kind == "audio" and value is self.wav and self.wav is not None:  # the same query (re-ranked, or back)
            self.row.set_searched(False)
        elif kind == "text" and self.row.text and value == self.row.text:  # its transcript, searched
            self.row.set_searched(True)
        elif kind != "audio" and self.problem:  # why Whisper did not run stays said until a spoken query tries it
            self.wav, self.spoken = None, None
        else:
            self.clear()
            if kind == "audio" and self.active():
                query = getattr(result, "query", None) or search.last_speech
                self.spoken = (search.last_label, query, list(getattr(result, "text_words", None) or []))
                self._transcribe(value)

    def _transcribe(self, wav: Any) -> None:
        whisper, service = self.active(), self.window.service
        if whisper is None:
            return
        self.wav = wav
        self.row.show_note(f"transcribing with {Path(whisper[0]).name or whisper[0]}…")

        def heard(transcript: Any) -> None:
            if self.wav is wav and service is self.window.service:
                self.row.show_transcript(transcript)
                self.row.set_searched(False)
                self.said.clear()  # Whisper works (a folder filled meanwhile): its warning is out of date
                self.window.hide_message(WHISPER_TOPIC)

        def failed(exc: BaseException) -> None:
            if self.wav is wav and service is self.window.service and not isinstance(exc, Cancelled):
                self._say(whisper, exc)

        op = ops.transcribe(self.window, service, wav, *whisper)
        self.worker = op.success(heard).failure(failed).run()

    def _say(self, whisper: tuple[str, str | None, bool], exc: BaseException) -> None:
        """Why Whisper did not run: in the row each time, in the message strip once (unless a warning is up)."""
        problem = str(exc).strip().rstrip(".") or type(exc).__name__
        self.problem = problem
        self.row.show_note(f"did not run: {problem}", tip=problem)
        bar = self.window.message_bar
        if problem in self.said or not (bar.isHidden() or bar.level == "info" or bar.topic == WHISPER_TOPIC):
            return
        self.said.add(problem)
        logger.info("whisper %s did not run: %s", whisper[0], problem)
        self.window.show_message(f"No Whisper transcript to compare with: {problem}.", "warning",
                                 ("Settings…", self.window.show_settings), topic=WHISPER_TOPIC, lasting=True)

    def search_transcript(self, text: str) -> None:
        """Whisper's words as a typed query (the text search's own path), in the query field for editing."""
        self.window.panel.text_edit.setText(text)
        self.window.search.search_text(text)

    def back_to_spoken(self) -> None:
        if self.wav is not None and self.spoken is not None:
            self.window.search.show_spoken(self.wav, *self.spoken)
