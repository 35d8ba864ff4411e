"""From a query to the screen: recording (or a file, a sample, typed text, a photo) -> live plot ->
search -> keyword chips, final plot and the results grid."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from app import operations as ops
from app.audio_source import AudioSource
from app.errors import show_error
from app.live import LiveAnalyzer
from app.models import ResultsModel
from app.photo_text import found_by_text, quoted
from app.playback import PlaybackError, play_segment
from app.recorder import SAMPLE_RATE, TRAIL_KEEP_S, Recorder
from app.widgets.cif_plot import CifPlot
from app.widgets.keyword_chips import KeywordChips
from app.widgets.record_panel import RecordPanel
from app.widgets.results_grid import ResultsGrid
from core.audio import trim_silence
from core.errors import AudioDecodeError, AudioTooLongError
from core.library.video import clock, is_video
from core.wording import plural

logger = logging.getLogger(__name__)

MIN_QUERY_S = 0.3  # a spoken query shorter than this is refused with a message
WAVE_REDRAW_MS = 100  # waveform redraw throttle while recording


def clip_problem(wav: np.ndarray, name: str = "") -> str:
    """Why `wav` (S,) at 16 kHz cannot be searched (core.audio.check_speech: empty, NaN, too short, longer
    than core.audio.MAX_QUERY_S, silent), as a message for the user; "" when it can."""
    from core.audio import check_speech

    try:
        check_speech(wav, SAMPLE_RATE, name=name or "the recording")
    except AudioDecodeError as exc:
        if wav.size and np.all(np.isfinite(wav)) and wav.size < MIN_QUERY_S * SAMPLE_RATE:
            return (f"The clip is too short ({wav.size / SAMPLE_RATE:.2f} s; at least {MIN_QUERY_S} s is "
                    "needed). Hold Space a little longer while speaking, or record with Ctrl+R.")
        return f"Nothing was searched: {str(exc).rstrip('.')}."
    return ""


class SearchController(QObject):
    """Owns the recorder and the live analyzer; runs searches on the query lane."""

    result_shown = Signal(object)  # the SearchResult, after the grid was filled

    def __init__(self, window: Any, panel: RecordPanel, plot: CifPlot, chips: KeywordChips,
                 results: ResultsModel, grid: ResultsGrid, source_factory: Callable[[str], AudioSource]) -> None:
        super().__init__(window)
        self.window = window
        self.panel, self.plot, self.chips, self.results, self.grid = panel, plot, chips, results, grid
        self.source_factory = source_factory
        self.recorder = Recorder(self)
        self.live = LiveAnalyzer(self.recorder, lambda: self.window.service, self)
        self.query_wav = np.zeros(0, np.float32)
        self.last_query: tuple[str, Any] | None = None
        self.last_label = ""  # how the last query is named in the summary ("query_03.wav", "“a dog”")
        self.last_speech: Any = None  # the SpeechQuery of the last spoken query's result (its vector is reused)
        self.last_text_words: list[str] = []  # and the words it looked for in the photos' text
        self.searching = 0  # searches in flight
        self.generation = 0  # +1 whenever the service is replaced: results of the old one are dropped
        self.speech_end_t: float | None = None  # perf_counter when the last spoken query ended
        self.last_latency_s: float | None = None  # from then to a filled grid (model + search + set_hits)
        self._last_redraw = 0.0
        self._held = 0  # library refreshes whose filter updates a re-run waits for (hold_rerun)
        self._held_rerun = False  # and whether one is wanted when they are all in
        self.recorder.started.connect(self._on_started)
        self.recorder.grew.connect(self._on_grew)
        self.recorder.level_changed.connect(panel.meter.set_level)
        self.recorder.stopped.connect(self._on_stopped)
        self.recorder.failed.connect(self._on_failed)
        self.live.analysed.connect(self._on_live)
        chips.play_requested.connect(self.replay)
        plot.play_requested.connect(self.replay)
        grid.controls_changed.connect(self.controls_edited)
        for chosen in (grid.when, grid.where, grid.kind):
            chosen.changed.connect(self._filter_changed)

    # ---- recording ---------------------------------------------------------------------------------
    def toggle_recording(self) -> None:
        if self.recorder.recording:
            self.stop_recording()
        else:
            self.start_recording()

    def start_recording(self) -> None:
        if self.window.service is None:
            self.window.show_message("No model is loaded, so nothing can be searched yet. " + self.window.no_model_hint,
                                     "warning")
            self.panel.set_recording(False)
            return
        if self.recorder.recording:
            return
        self.recorder.start(self.source_factory(self.window.settings.microphone))

    def stop_recording(self) -> None:
        self.recorder.stop("user")

    def cancel_recording(self) -> None:
        """Stop and throw the recording away: nothing is searched (Escape)."""
        self.recorder.stop("cancelled")

    def _on_started(self) -> None:
        self.panel.set_recording(True)
        self.window.hide_message(searched=True)
        self.plot.clear_all("Listening…")
        self.chips.set_keywords([], note="Listening…")
        self.live.start()
        self.window.statusBar().showMessage("Recording… release Space or press Ctrl+R to stop", 3000)

    def _on_grew(self) -> None:
        now = time.perf_counter()
        if now - self._last_redraw >= WAVE_REDRAW_MS / 1000:
            self._last_redraw = now
            self.plot.set_waveform(self.recorder.raw(), self.recorder.sample_rate, follow=True)

    def _on_live(self, query: Any) -> None:
        if not self.recorder.recording or query is None:
            return
        self.plot.set_query(query, fit=False)
        self.chips.set_keywords(list(query.keywords), playable=False, note="Listening…")

    def _on_stopped(self, wav: np.ndarray, reason: str) -> None:
        self.live.stop()
        self.panel.set_recording(False)
        self.window.statusBar().clearMessage()
        if reason == "closing":
            return
        if reason == "cancelled":
            self.plot.clear_all("Recording cancelled: nothing was searched")
            self.chips.set_keywords([])
            self.window.statusBar().showMessage("Recording cancelled", 3000)
            return
        self.speech_end_t = time.perf_counter()
        self.plot.set_waveform(wav, SAMPLE_RATE, follow=True)
        if reason == "no-speech" or not self.recorder.heard_speech:
            self.plot.show_message("Only silence was heard")
            self.window.show_message(
                f"Only silence was heard in {len(wav) / SAMPLE_RATE:.1f} s of recording. Check that the right "
                "microphone is selected and not muted, speak closer to it, or open an audio file (Ctrl+O).",
                "warning")
            return
        if reason == "limit":
            self.window.statusBar().showMessage(f"Stopped at the {self.recorder.max_s:.0f} s limit", 4000)
        # the auto-stop's trailing silence would be searched and absorbed by the last keyword's segment (the
        # start is kept: times stay those of the recording)
        self.search_wav(trim_silence(wav, SAMPLE_RATE, leading=False, pad_s=TRAIL_KEEP_S), recorded=True)

    def _on_failed(self, message: str) -> None:
        self.live.stop()
        self.panel.set_recording(False)
        self.panel.meter.set_level(0.0)
        self.window.show_message(message, "error")

    # ---- searching ---------------------------------------------------------------------------------
    def search_wav(self, wav: np.ndarray, label: str = "", *, recorded: bool = False, automatic: bool = False
                   ) -> None:
        """Search with a 16 kHz mono clip (S,). A clip that cannot be a spoken query (too short or long,
        silent, NaN) is refused with a message before any state changes."""
        service = self.window.service
        if service is None:
            self.window.show_message("No model is loaded. " + self.window.no_model_hint, "warning")
            return
        wav = np.asarray(wav, np.float32)
        problem = clip_problem(wav, label)
        if problem:  # refused before anything changes: the previous query stays on screen, whole
            self.window.show_message(problem, "warning")
            return
        self.query_wav = wav
        self._forget_typed(automatic)
        if not recorded:  # a recording's own live view stays until its final result replaces it
            self.plot.clear_all()
        self.plot.set_waveform(self.query_wav, SAMPLE_RATE, follow=True)
        self.plot.show_message("Searching…")
        self.last_query = ("audio", self.query_wav)
        self.last_label, self.last_speech = label or "your query", None
        if self.speech_end_t is None:
            self.speech_end_t = time.perf_counter()
        s = self.window.settings
        self._run(ops.search_audio(self.window, service, self.query_wav, s.top_k, s.min_score, self.filters()),
                  self.last_label, source=self.query_wav, automatic=automatic)

    def search_text(self, text: str, *, automatic: bool = False) -> None:
        if self.window.service is None:
            self.window.show_message("No model is loaded. " + self.window.no_model_hint, "warning")
            return
        self.last_query = ("text", text)
        self.last_label, self.last_speech = f"“{text}”", None
        self.speech_end_t = time.perf_counter()
        s = self.window.settings
        self._run(ops.search_text(self.window, self.window.service, text, s.top_k, s.min_score, self.filters()),
                  self.last_label, automatic=automatic)

    def search_similar(self, hit: Any, *, automatic: bool = False) -> None:
        if self.window.service is None:
            self.window.show_message("No model is loaded, so there is nothing to compare photos with. "
                                     + self.window.no_model_hint, "warning")
            return
        if hit is None:
            self.window.statusBar().showMessage("Select a photo first, then ask for more like it", 4000)
            return
        self.last_query = ("similar", hit)
        self._forget_typed(automatic)
        at_s = getattr(hit, "at_s", None)  # a video found at a moment: like that moment, not the whole clip
        moment = f" at {clock(at_s)}" if at_s is not None else ""
        self.last_label, self.last_speech = Path(str(hit.path)).name + moment, None
        self.speech_end_t = time.perf_counter()
        s = self.window.settings
        self._run(ops.search_similar(self.window, self.window.service, int(hit.image_id), s.top_k, s.min_score,
                                     self.filters(), file=str(hit.path), at_s=at_s), self.last_label,
                  automatic=automatic)

    def search_image_file(self, path: Path, *, automatic: bool = False) -> None:
        """Photos like an image file (in the library or not): the photo's CLIP vector is the query."""
        if self.window.service is None:
            self.window.show_message("No model is loaded, so there is nothing to compare photos with. "
                                     + self.window.no_model_hint, "warning")
            return
        self.last_query = ("image", Path(path))
        self._forget_typed(automatic)
        self.last_label, self.last_speech = Path(path).name, None
        self.speech_end_t = time.perf_counter()
        s = self.window.settings
        self._run(ops.search_similar(self.window, self.window.service, str(path), s.top_k, s.min_score,
                                     self.filters()), self.last_label, automatic=automatic)

    def _forget_typed(self, automatic: bool) -> None:
        """A new query of another kind empties the typed-query box: words left there read as what was searched."""
        if not automatic:
            self.panel.text_edit.clear()

    def open_audio_file(self, path: Path) -> None:
        if self.window.service is None:
            self.window.show_message("No model is loaded. " + self.window.no_model_hint, "warning")
            return
        self.speech_end_t = None

        def failed(exc: BaseException) -> None:
            if isinstance(exc, AudioTooLongError):  # refused like any clip that cannot be a query: nothing changes
                self.window.show_message(f"Nothing was searched: {str(exc).rstrip('.')}.", "warning")
            else:
                show_error(self.window, exc, f"Reading {Path(path).name}")

        (ops.load_audio_file(self.window, path)
         .success(lambda wav: self.search_wav(wav, Path(path).name))
         .failure(failed).run())

    def controls_edited(self) -> None:
        """Show / min score left or confirmed: save and re-run the last query only when a value changed
        (editingFinished also fires when the focus merely passes through)."""
        s = self.window.settings
        top_k, min_score = int(self.grid.top_k.value()), float(self.grid.min_score.value())
        if top_k == s.top_k and round(min_score, 2) == round(s.min_score, 2):
            return
        s.top_k, s.min_score = top_k, min_score
        self.window.save_settings()
        self.rerun()

    def filters(self) -> ops.SearchFilters:
        """The results' Where, When and What, as they are set now."""
        return ops.SearchFilters(self.grid.where.current_roots(), self.grid.when.current_range(),
                                 self.grid.kind.current_kind())

    def forget_query(self) -> None:
        """The service changed: the last query (its vector belongs to the old model) and any search still
        running on the old service are forgotten; the view is cleared by the window."""
        self.generation += 1
        self.last_query, self.last_label, self.last_speech = None, "", None
        self.query_wav = np.zeros(0, np.float32)

    def show_spoken(self, wav: np.ndarray, label: str, speech: Any, text_words: list[str]) -> None:
        """Back to a spoken query after another search (its Whisper transcript's): its keywords and plot shown
        again and its vector re-ranked (`speech`: its SpeechQuery; the speech model does not run again)."""
        self.query_wav = wav
        self.last_query = ("audio", wav)
        self.last_label, self.last_speech, self.last_text_words = label, speech, list(text_words)
        self.plot.set_waveform(wav, SAMPLE_RATE, follow=True)
        self.rerun()

    def rerun(self, *, automatic: bool = False) -> None:
        """Run the last query again with the current top-k / cut-off. A spoken query re-ranks its vector
        (the speech model does not run again) and keeps its name, keywords and plot. `automatic`: the
        library changed (not the user's doing), so the message strip is left as it is."""
        kind, value = self.last_query or ("", None)
        self.speech_end_t = None
        service = self.window.service
        if kind == "audio" and self.last_speech is not None and service is not None \
                and ops.can_search_vector(service):
            s = self.window.settings
            self._run(ops.search_vector(self.window, service, self.last_speech.query_vector, s.top_k, s.min_score,
                                        self.filters(), text_words=self.last_text_words),
                      self.last_label, speech=self.last_speech, source=value, automatic=automatic)
        elif kind == "audio":
            self.search_wav(value, self.last_label, automatic=automatic)
        elif kind == "text":
            self.search_text(value, automatic=automatic)
        elif kind == "similar":
            self.search_similar(value, automatic=automatic)
        elif kind == "image":
            self.search_image_file(value, automatic=automatic)

    def hold_rerun(self, refreshes: int, *, rerun: bool) -> None:
        """The library changed: its re-run (`rerun`: the results may be stale) waits until the `refreshes` of what
        the Where, When and What filters offer are in (release_rerun, once each). A filter that falls back meanwhile
        (its folder, year or last video gone) folds into that one re-run, which then searches as the filters are
        after the change."""
        self._held += refreshes
        self._held_rerun = self._held_rerun or rerun

    def release_rerun(self) -> None:
        """One refresh held for is in (applied, or failed)."""
        self._held = max(0, self._held - 1)
        if self._held == 0 and self._held_rerun:
            self._held_rerun = False
            self.rerun(automatic=True)

    def _filter_changed(self) -> None:
        if self._held:
            self._held_rerun = True
        else:
            self.rerun()

    def _run(self, op: Any, label: str, *, speech: Any = None, source: Any = None, automatic: bool = False
             ) -> None:
        """Run a search op; `searching` counts it until its result or error arrives. `speech`: the
        SpeechQuery a vector-only re-run belongs to (shown again with its results); `source`: the clip a
        spoken query was made from; `automatic`: not the user's search (its success keeps the message strip)."""
        self.searching += 1
        gen = self.generation

        def done() -> None:
            self.searching -= 1

        def shown(result: Any) -> None:
            if gen == self.generation:  # else it came from a service (model) replaced meanwhile
                if not automatic:  # a search that worked: warnings from before (no microphone, welcome) are done
                    self.window.hide_message(searched=True)
                self._show(result, label, speech, source)

        def failed(exc: BaseException) -> None:
            if gen == self.generation:
                self._search_failed(exc)

        op.success(shown).failure(failed).finally_(done).run()

    def _search_failed(self, exc: BaseException) -> None:
        self.plot.show_message("")
        show_error(self.window, exc, "Search")

    def _show(self, result: Any, label: str, speech: Any = None, source: Any = None) -> None:
        query = getattr(result, "query", None) or speech
        text_words = list(getattr(result, "text_words", None) or [])
        if query is not None and source is not None and self.last_query is not None \
                and self.last_query[1] is source:
            self.last_speech = query  # a later change of Show / min score re-ranks this vector
            self.last_text_words = text_words  # ... and looks for the same words in the photos' text
        hits = list(getattr(result, "hits", []) or [])
        if query is not None:
            self.plot.set_query(query, playable=bool(len(self.query_wav)))
            self.chips.set_keywords(list(query.keywords), playable=bool(len(self.query_wav)))
        else:
            self.plot.clear_all("Typed, photo or video query: no speech to show")
            self.chips.set_keywords([], note=f"No speech in this query: results for {label}")
        self.results.set_hits(hits, text_words)
        self.last_latency_s = None if self.speech_end_t is None else time.perf_counter() - self.speech_end_t
        self.speech_end_t = None
        heard = " ".join(k.text for k in query.keywords) if query is not None else ""
        words = f" — heard “{heard}”" if heard else ""
        ms = f" in {self.last_latency_s * 1000:.0f} ms" if self.last_latency_s is not None else ""
        span = "".join(f" {d}" for d in (self.grid.where.describe(), self.grid.when.describe()) if d)
        videos = sum(1 for h in hits if is_video(h.path))  # results all of one kind are named by it ("1 video")
        noun = self.grid.kind.describe(len(hits), videos)  # "photos", "photos and videos", "photos only"…
        shown = sum(1 for h in hits if found_by_text(h))  # photos found by the words they show (listed first)
        says = f"{plural(shown, 'shows', 'show')} {quoted(text_words)}"
        only_text = bool(hits) and shown == len(hits) and query is None  # a typed query the photos' text answered
        unread = list(getattr(result, "unread_words", []) or [])  # typed words the model cannot read
        notes = [f"not in the model's vocabulary: {' '.join(unread)}"] if unread else []
        notes += [f"{shown} {says}"] if shown and not only_text else []
        words += f" ({'; '.join(notes)})" if notes else ""
        head = f"{shown} {noun}{span} {says}" if only_text else f"{len(hits)} {noun}{span} for {label}"
        hint = ("Choose another folder, time or kind, lower the min score" if span or self.grid.kind.current_kind()
                else "Lower the min score")
        self.grid.set_summary(f"{head}{words}{ms}" if hits else
                              f"No {noun}{span} matched {label}{words}. {hint}, or index more folders.")
        self.result_shown.emit(result)

    def replay(self, start_s: float, end_s: float) -> None:
        try:
            play_segment(self.query_wav, start_s, end_s, SAMPLE_RATE)
        except PlaybackError as exc:
            self.window.show_message(str(exc), "warning")
