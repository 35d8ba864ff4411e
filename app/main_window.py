"""The main window: query bar on top, what the model heard in the middle, results grid and preview below.
It talks only to the SearchService it is given (DESIGN rule 10); all work runs through app.operations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from app import file_choosers, library_status
from app import operations as ops
from app.accessibility import install_accessibility
from app.audio_source import AudioSource, SoundDeviceSource, list_input_devices
from app.desktop import copy_path, open_file, reveal_file
from app.dialogs.about_dialog import AboutDialog
from app.dialogs.library_dialog import LibraryDialog
from app.dialogs.settings_dialog import SettingsDialog
from app.file_choosers import dropped_kind, pictures_dir, remember_index_dir
from app.library_controller import LibraryController
from app.model_loader import load_service, plain_reason
from app.models import ResultsModel
from app.push_to_talk import PushToTalk
from app.search_controller import SearchController
from app.settings import AppSettings, load_window_state, save_settings, save_window_state, start_dir
from app.shortcuts import install_shortcuts
from app.text_setting import apply_text_setting, sync_text_setting, text_languages_of
from app.whisper_compare import WhisperCompare
from app.widgets.cif_plot import CifPlot
from app.widgets.keyword_chips import KeywordChips
from app.widgets.message_bar import MessageBar
from app.widgets.preview import PreviewPane
from app.widgets.record_panel import RecordPanel, sample_queries
from app.widgets.results_grid import ResultsGrid
from app.widgets.transcript_row import TranscriptRow
from app.window_menu import build_menu
from core.paths import demo_photos_dir, demo_queries_dir, missing_resources

logger = logging.getLogger(__name__)

NO_MODEL_HINT = ("Choose a model folder in File → Settings (Ctrl+,), or build the embedded default model into "
                 "resources/models/default with the trainer (`python -m trainer export`, see the README).")
SETTINGS_HINT = "Choose another model folder, or the embedded default model, in File → Settings (Ctrl+,)."
NO_RESOURCES_HINT = "Or choose a model folder in File → Settings (Ctrl+,)."  # after missing_resources()' fix


class MainWindow(QMainWindow):
    def __init__(self, service: Any = None, settings: AppSettings | None = None, *,
                 source_factory: Callable[[str], AudioSource] | None = None,
                 service_factory: Callable[[AppSettings, bool], Any] | None = None,
                 settings_file: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Spoken Image Search")
        self.setAcceptDrops(True)
        self.service: Any = None
        self.settings = settings or AppSettings()
        self.settings_file = settings_file
        self.service_factory = service_factory
        self.load_gates: list[Any] = []  # the model loads running (app.model_loader.LoadGate)
        self.no_model_hint = NO_MODEL_HINT
        self.devices = list_input_devices()
        self._build(source_factory or (lambda name: SoundDeviceSource(name)))
        self.ptt = PushToTalk(self, self.search, self.panel.record_button)  # hold Space to talk
        build_menu(self)
        self.announcer = install_accessibility(self)  # status, messages and results, for screen readers
        install_shortcuts(self)  # Escape, and Down from the typed query (app.shortcuts.KEYS)
        self._restore_geometry()
        self.grid.view.setFocus()  # so that Space is push-to-talk from the start
        self.ptt.install()
        if service is not None:
            self.set_service(service)
        else:
            self.set_no_model("")

    # ---- layout ------------------------------------------------------------------------------------
    def _build(self, source_factory: Callable[[str], AudioSource]) -> None:
        self.message_bar = MessageBar()
        self.panel = RecordPanel()
        self.panel.set_devices(self.devices, self.settings.microphone)
        self.panel.set_samples(sample_queries(demo_queries_dir()))
        self.plot = CifPlot()
        self.chips = KeywordChips()
        self.results = ResultsModel(self)
        self.grid = ResultsGrid(self.results)
        self.grid.set_controls(self.settings.top_k, self.settings.min_score, self.settings.sort)
        self.preview = PreviewPane()
        self.search = SearchController(self, self.panel, self.plot, self.chips, self.results, self.grid,
                                       source_factory)
        self.transcript_row = TranscriptRow()  # Whisper's reading beside the model's (only when set in Settings)
        self.whisper = WhisperCompare(self, self.transcript_row)
        self.library = LibraryController(self)
        self.library.watch.set_videos(self.settings.index_videos)
        self.library.watch.set_enabled(self.settings.watch_folders)
        self.library.changed.connect(self._on_changes)

        bottom_split = QSplitter(Qt.Orientation.Horizontal)
        bottom_split.addWidget(self.grid)
        bottom_split.addWidget(self.preview)
        bottom_split.setStretchFactor(0, 3)
        bottom_split.setStretchFactor(1, 1)
        bottom_split.setSizes([900, 340])
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(self.chips)
        bl.addWidget(self.transcript_row)
        bl.addWidget(bottom_split, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.plot)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([270, 480])
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(8, 6, 8, 4)
        lay.addWidget(self.message_bar)
        lay.addWidget(self.panel)
        lay.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self.model_label, self.device_label, self.photos_label = QLabel(), QLabel(), QLabel()
        sb = self.statusBar()
        sb.addPermanentWidget(self.library.status_label)
        for w in (self.model_label, self.device_label, self.photos_label):
            sb.addPermanentWidget(w)

        p = self.panel
        p.record_clicked.connect(self.search.toggle_recording)
        p.text_submitted.connect(self.search.search_text)
        p.open_file_clicked.connect(self.choose_audio_file)
        p.sample_chosen.connect(self.search.open_audio_file)
        p.microphone_changed.connect(self._mic_changed)
        g = self.grid
        g.current_changed.connect(lambda hit: self.preview.show_hit(hit, self.results.text_words))
        for sig_owner in (g, self.preview):
            sig_owner.open_requested.connect(lambda h: open_file(self, h))
            sig_owner.reveal_requested.connect(lambda h: reveal_file(self, h))
            sig_owner.copy_requested.connect(lambda h: copy_path(self, h))
            sig_owner.similar_requested.connect(self.search.search_similar)
        g.sort.currentIndexChanged.connect(self._sort_changed)

    def _restore_geometry(self) -> None:
        geo = load_window_state("geometry", self.settings_file)
        if geo is None or not self.restoreGeometry(geo):
            screen = QGuiApplication.primaryScreen().availableGeometry()
            self.resize(min(1280, int(screen.width() * 0.92)), min(820, int(screen.height() * 0.9)))

    # ---- service lifecycle -------------------------------------------------------------------------
    def set_service(self, service: Any) -> None:
        """Use a loaded SearchService: enable searching, refresh the status, start the library work."""
        if service is not self.service:
            self.clear_results()
        self.service = service
        self.whisper.refresh()
        if hasattr(service, "index_videos"):
            service.index_videos = self.settings.index_videos
        sync_text_setting(self)  # on the library lane: before the start-up re-scan
        self.preview.text_of = getattr(service, "text_of", None)
        self.results.service = service
        self.results.invalidate_thumbnails()
        self.panel.set_search_enabled(True)
        if not self.devices:
            self.panel.record_button.setEnabled(False)
            self.panel.record_button.setToolTip("No microphone found: open an audio file or type instead")
        self.hide_message()
        self.plot.clear_all("Hold Space and speak, or pick a sample query" if self.devices else
                            "Open a recording (Ctrl+O), type (Ctrl+F), or pick a sample query")
        self.refresh_stats()
        self.refresh_years()
        first = not self.settings.first_run_done
        self.library.start_up(first, demo_photos_dir())
        if first:
            self.settings.first_run_done = True
            self.save_settings()

    def clear_results(self) -> None:
        """Forget the shown query: results, preview (and its actions), keywords, summary and plot."""
        self.search.forget_query()
        self.results.clear()  # the grid's reset empties the preview and disables its buttons
        self.preview.show_hit(None)
        self.chips.set_keywords([])
        self.whisper.clear()
        self.grid.set_summary("")
        self.plot.clear_all()

    def set_no_model(self, reason: str) -> None:
        """No service (loading, or it failed): nothing of the old model's results stays on screen."""
        self.service = None
        self.library.watch.set_roots([])
        self.clear_results()
        self.results.service = None
        self.preview.text_of = None
        self.panel.set_search_enabled(False, "No model is loaded")
        self.model_label.setText("No model")
        self.device_label.setText("")
        self.photos_label.setText("")
        if reason:
            hint = (SETTINGS_HINT if self.settings.model != "default" else
                    NO_RESOURCES_HINT if missing_resources() else NO_MODEL_HINT)
            self.show_message(f"No model is loaded: {plain_reason(reason)}. {hint}", "error",
                              ("Settings…", self.show_settings))
            self.plot.clear_all("No model loaded")
        else:
            self.hide_message()  # a message about the previous model is stale now
            self.plot.clear_all("Loading the model…")
            self.model_label.setText("Loading model…")

    def load_service(self, *, reindex: bool = False, previous: AppSettings | None = None) -> None:
        """(Re)build the service from the settings in the background (app.model_loader)."""
        load_service(self, reindex=reindex, previous=previous)

    def refresh_years(self, then: Callable[[], None] = lambda: None) -> None:
        library_status.refresh_years(self, then)

    def refresh_stats(self, then: Callable[[], None] = lambda: None) -> None:
        library_status.refresh_stats(self, then)

    def _on_changes(self, changes: ops.Changes) -> None:
        """After a library operation: refresh the status, the years the date filter offers, and the results
        when they may be stale: once, after the filters took the new folders, years and kinds (one of them may
        fall back, its folder, year or last video gone)."""
        stale = self.search.last_query is not None and not self.search.searching and bool(
            changes.images_removed or (changes.images_added and self.results.rowCount() == 0))
        self.search.hold_rerun(2, rerun=stale)
        self.refresh_stats(then=self.search.release_rerun)
        self.refresh_years(then=self.search.release_rerun)

    # ---- messages ----------------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info", action: tuple[str, Callable[[], None]] | None = None,
                     topic: str = "", *, lasting: bool = False) -> None:
        """`topic`: what the message is about ("missing-file", "offline-folder"), so that the action that
        resolves it hides it (hide_message(topic)); `lasting`: a search does not settle it (hide_message with
        `searched`), e.g. a Whisper that cannot run."""
        if shiboken6.isValid(self):
            self.message_bar.show_message(text, level, action, topic, lasting=lasting)

    def hide_message(self, *topics: str, searched: bool = False) -> None:
        """Hide the message strip; with `topics`, only when it shows a message about one of them. `searched`: the
        user searched (or started recording): the messages from before are done, except the lasting ones."""
        if searched and self.message_bar.lasting:
            return
        if not topics or self.message_bar.topic in topics:
            self.message_bar.hide()

    # ---- actions -----------------------------------------------------------------------------------
    def focus_text_query(self) -> None:
        self.panel.text_edit.setFocus()
        self.panel.text_edit.selectAll()

    def choose_audio_file(self) -> None:
        file_choosers.choose_audio_file(self)

    def choose_image_file(self) -> None:
        file_choosers.choose_image_file(self)

    def choose_folder_to_index(self) -> None:
        file_choosers.choose_folder_to_index(self)

    def show_library_dialog(self) -> None:
        if self.service is None:
            self.show_message("Load a model first. " + NO_MODEL_HINT, "warning")
            return
        stats = getattr(self, "library_stats", None)
        roots = [Path(r) for r in getattr(stats, "roots", [])]
        dlg = LibraryDialog(roots, int(getattr(stats, "photos", 0)), self, videos=int(getattr(stats, "videos", 0) or 0))
        dlg.start_dir = start_dir(self.settings.last_index_dir, pictures_dir())
        dlg.add_requested.connect(lambda p: (remember_index_dir(self, p), self.library.index_folders([p])))
        dlg.remove_requested.connect(self.library.remove_folder)
        dlg.rescan_requested.connect(lambda: self.library.index_folders(None))
        dlg.refresh_wanted.connect(lambda: self.service is not None and ops.get_stats(dlg, self.service)
                                   .success(lambda st: dlg.set_roots([Path(r) for r in st.roots], st.photos,
                                                                     int(getattr(st, "videos", 0) or 0))).run())
        self.library.changed.connect(dlg.library_changed)  # disconnected when the dialog is deleted
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()

    def show_settings(self) -> None:
        dlg = SettingsDialog(self.settings, self.devices, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.accepted.connect(lambda: self.apply_settings(dlg.result_settings()))
        dlg.open()

    def apply_settings(self, new: AppSettings) -> None:
        reload = (new.model, new.device) != (self.settings.model, self.settings.device)
        old = self.settings
        self.settings = new
        self.save_settings()
        self.whisper.settings_changed(old, new)
        self.grid.set_controls(new.top_k, new.min_score, new.sort)
        self.panel.set_devices(self.devices, new.microphone)
        self.library.watch.set_videos(new.index_videos)
        self.library.watch.set_enabled(new.watch_folders)
        if reload or self.service is None:  # (a new service takes the videos and text settings as it starts)
            if reload:
                self.load_service(previous=old)
            return
        videos = new.index_videos != old.index_videos
        if videos and hasattr(self.service, "index_videos"):
            self.service.index_videos = new.index_videos
        languages = text_languages_of(new)
        if languages != text_languages_of(old):  # the photos already there are read by a quiet re-scan
            apply_text_setting(self, languages, rescan=bool(languages) or videos)
        elif videos:
            self.library.index_folders(None, quiet=True)  # the library's videos come in, or leave

    def show_about(self) -> None:
        def show(card_and_text: Any) -> None:
            card, markdown = card_and_text
            dlg = AboutDialog(card, self, markdown=markdown)
            dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dlg.open()

        if self.service is None:
            show((None, None))
            return
        service = self.service

        def read(_cancel: Any) -> tuple[Any, str | None]:
            text = service.model_card_markdown() if hasattr(service, "model_card_markdown") else None
            return service.model_card(), text

        ops.Op(self, read, lane="query", what="Reading the model card").success(show).run()

    def save_settings(self) -> None:
        save_settings(self.settings, self.settings_file)

    def _mic_changed(self, name: str) -> None:
        self.settings.microphone = name
        self.save_settings()

    def _sort_changed(self) -> None:
        self.settings.sort = str(self.grid.sort.currentData())
        self.save_settings()

    # ---- drag and drop, closing ------------------------------------------------------
    def _space_is_ours(self) -> bool:
        return self.ptt.space_is_ours()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and dropped_kind(Path(urls[0].toLocalFile())):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """An audio file is a spoken query; a photo or a video finds the library's photos like it."""
        url: QUrl = event.mimeData().urls()[0]
        path = Path(url.toLocalFile())
        if dropped_kind(path) == "image":
            self.search.search_image_file(path)
        else:
            self.search.open_audio_file(path)
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        save_window_state("geometry", bytes(self.saveGeometry()), self.settings_file)
        self.ptt.release.stop()
        self.search.recorder.stop("closing")
        self.search.live.stop()
        self.library.cancel()
        self.library.watch.stop()
        self.ptt.remove()
        super().closeEvent(event)
