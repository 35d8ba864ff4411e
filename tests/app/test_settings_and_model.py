"""Settings persist; a missing model is said plainly in the window; switching models; About box."""

from __future__ import annotations

import pytest

from app.settings import AppSettings, load_settings, save_settings, settings_path

pytestmark = pytest.mark.qt


def test_settings_round_trip_under_data_dir(app_dirs):
    s = AppSettings(model="/models/mine", device="cpu", microphone="USB Mic", top_k=17, min_score=0.25,
                    sort="date", first_run_done=True, watch_folders=False)
    save_settings(s)
    assert settings_path().parent == app_dirs / "data"
    assert load_settings() == s


def test_malformed_settings_fall_back(app_dirs):
    path = settings_path()
    path.write_text("[General]\ntop_k=lots\ndevice=quantum\n")
    assert load_settings() == AppSettings()
    path.write_text("[General]\ndevice=quantum\nsort=random\ntop_k=5\n")
    s = load_settings()
    assert (s.device, s.sort, s.top_k) == ("auto", "score", 5)


def test_settings_dialog_changes_are_persisted_and_reload_the_model(qtbot, make_window, fake_service):
    built: list[tuple[str, str, bool]] = []

    def factory(settings, reindex):  # noqa: ANN001
        built.append((settings.model, settings.device, reindex))
        return fake_service

    w = make_window(fake_service, settings=AppSettings(first_run_done=True), service_factory=factory)
    w.show_settings()
    from app.dialogs.settings_dialog import SettingsDialog

    dlg = w.findChild(SettingsDialog)
    dlg.device_combo.setCurrentIndex(dlg.device_combo.findData("cpu"))
    dlg.top_k.setValue(7)
    assert dlg.watch_folders.isChecked()
    dlg.watch_folders.setChecked(False)
    dlg.accept()
    qtbot.waitUntil(lambda: w.service is not None and bool(built), timeout=5_000)
    assert built == [("default", "cpu", False)]
    assert "close" in fake_service.calls  # the old service is closed before the new one opens
    saved = load_settings()
    assert (saved.device, saved.top_k, saved.watch_folders) == ("cpu", 7, False)
    assert w.grid.top_k.value() == 7


def test_microphone_choice_is_remembered(qtbot, make_window, fake_service):
    from app.audio_source import InputDevice

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.devices = [InputDevice(0, "Built-in", 48000), InputDevice(3, "USB Mic", 16000)]
    w.panel.set_devices(w.devices, "")
    w.panel.mic_combo.setCurrentIndex(w.panel.mic_combo.findData("USB Mic"))
    assert load_settings().microphone == "USB Mic"
    w.panel.set_devices(w.devices, load_settings().microphone)
    assert w.panel.mic_combo.currentData() == "USB Mic"


def test_missing_model_is_said_in_the_window(qtbot, make_window):
    from core.errors import ModelNotFoundError

    def factory(settings, reindex):  # noqa: ANN001
        raise ModelNotFoundError("resources/models/default does not exist")

    w = make_window(None, settings=AppSettings(first_run_done=True), service_factory=factory)
    w.load_service()
    qtbot.waitUntil(lambda: w.message_bar.isVisible(), timeout=5_000)
    text = w.message_bar.text()
    assert "No model is loaded" in text and "resources/models/default" in text and "Settings" in text
    assert w.message_bar.action.isVisible()
    assert not w.panel.record_button.isEnabled() and not w.panel.search_button.isEnabled()
    assert w.model_label.text() == "No model"
    w.search.search_text("dog")  # nothing crashes without a service


def test_an_install_without_resources_is_not_told_to_train_one(qtbot, make_window, monkeypatch):
    import app.main_window as mw
    from core.errors import ModelNotFoundError

    said = "the resources of spoken-image-search are not installed: /x/core/_resources is missing; reinstall"
    monkeypatch.setattr(mw, "missing_resources", lambda: said)

    def factory(settings, reindex):  # noqa: ANN001
        raise ModelNotFoundError(f"no model folder at /x/core/_resources/models/default: {said}")

    w = make_window(None, settings=AppSettings(first_run_done=True), service_factory=factory)
    w.load_service()
    qtbot.waitUntil(lambda: w.message_bar.isVisible(), timeout=5_000)
    text = w.message_bar.text()
    assert "reinstall" in text and mw.NO_RESOURCES_HINT in text and "trainer export" not in text
    w.show_about()


def test_model_mismatch_asks_before_reindexing(qtbot, make_window, fake_service):
    from PySide6.QtWidgets import QMessageBox

    from core.errors import ModelMismatchError

    calls: list[bool] = []

    def factory(settings, reindex):  # noqa: ANN001
        calls.append(reindex)
        if not reindex:
            raise ModelMismatchError("the library was indexed with another CLIP tower")
        return fake_service

    w = make_window(None, settings=AppSettings(first_run_done=True), service_factory=factory)
    w.load_service()
    qtbot.waitUntil(lambda: getattr(w, "reindex_box", None) is not None and w.reindex_box.isVisible(), timeout=5_000)
    assert "another CLIP tower" in w.reindex_box.text()
    w.reindex_box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: w.service is fake_service, timeout=5_000)
    assert calls == [False, True]


def test_reindex_question_is_worded_for_users_not_for_the_command_line() -> None:
    from app.model_loader import reindex_question
    from core.errors import ModelMismatchError

    exc = ModelMismatchError("... `python -m core index DIR... --model MODEL --reindex` ...", stored_identity="a" * 64,
                             identity="b" * 64, roots=["/home/u/Pictures", "/media/usb/photos"],
                             indexed_with="/home/u/models/speechclip-plus-base")
    text = reindex_question(exc)
    assert "python -m" not in text and "--reindex" not in text
    assert "“speechclip-plus-base”" in text and "2 folders: Pictures, photos" in text
    assert "python -m" in reindex_question(ModelMismatchError("python -m core ..."))  # no fields: the text as it is


def test_unreadable_library_offers_a_new_one_and_keeps_the_old_file(qtbot, make_window, fake_service, tmp_path):
    from core.library import Library

    data = tmp_path / "library"
    data.mkdir()
    (data / "library.sqlite3").write_bytes(b"not a database" * 100)

    def factory(settings, reindex):  # noqa: ANN001
        Library(data, "tower-1", dim=4, cache_dir=tmp_path / "cache").close()  # what the real service opens
        return fake_service

    w = make_window(None, settings=AppSettings(first_run_done=True), service_factory=factory)
    w.load_service()
    qtbot.waitUntil(lambda: w.message_bar.isVisible(), timeout=5_000)
    text = w.message_bar.text()
    assert "photo library cannot be opened" in text and "library.sqlite3" in text and "No model" not in text
    assert w.message_bar.action.text() == "Start a new library"
    w.message_bar.action.click()
    qtbot.waitUntil(lambda: w.service is fake_service, timeout=5_000)
    kept = [p for p in data.iterdir() if ".unreadable-" in p.name]
    assert len(kept) == 1 and kept[0].read_bytes() == b"not a database" * 100


def test_about_shows_the_model_card(qtbot, make_window, fake_service):
    from app.dialogs.about_dialog import AboutDialog

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.show_about()
    qtbot.waitUntil(lambda: w.findChild(AboutDialog) is not None, timeout=5_000)
    html = w.findChild(AboutDialog).browser.toPlainText()
    assert "energy rule" in html and "Model card" in html


def _model_folders(tmp_path):  # noqa: ANN001, ANN202
    import shutil

    from core.paths import default_model_dir

    good = tmp_path / "models" / "good"
    good.mkdir(parents=True)
    shutil.copy(default_model_dir() / "config.json", good / "config.json")
    (good / "model.safetensors").write_bytes(b"weights are only read when the model loads")
    empty = tmp_path / "models" / "empty_dir"
    empty.mkdir()
    bad_json = tmp_path / "models" / "bad_json"
    bad_json.mkdir()
    (bad_json / "config.json").write_text('{"format_version": 1, "model_cfg": {')
    (bad_json / "model.safetensors").write_bytes(b"x")
    no_weights = tmp_path / "models" / "no_weights"
    no_weights.mkdir()
    shutil.copy(good / "config.json", no_weights / "config.json")
    run = tmp_path / "runs" / "ft1"  # a training run: a trainer config.json, checkpoints/ beside it
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text('{"model": "default-small", "run_dir": "runs/ft1", "max_steps": 10}')
    return good, {"empty_dir": ("no config.json", empty), "bad_json": ("damaged", bad_json),
                  "no_weights": ("weights (model.safetensors) are missing", no_weights),
                  "run": ("is a training run, not a model. Export a model from it first (python -m trainer "
                          f"export --run \"{run}\" --out NEW_FOLDER)", run),
                  "gone": ("is not a folder", tmp_path / "models" / "gone")}


def test_settings_refuse_a_model_folder_that_cannot_load(qtbot, make_window, fake_service, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from app.dialogs.settings_dialog import SettingsDialog

    good, bad = _model_folders(tmp_path)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.show_settings()
    dlg = w.findChild(SettingsDialog)
    for name, (words, folder) in bad.items():
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, f=folder, **k: str(f))
        dlg._browse()
        assert dlg.model_combo.currentData() == "default", name  # the working choice stays selected
        assert dlg.model_problem.isVisibleTo(dlg) and words in dlg.model_problem.text(), name
        assert "save_model" not in dlg.model_problem.text()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(good))
    dlg._browse()
    assert dlg.model_combo.currentData() == str(good) and not dlg.model_problem.isVisibleTo(dlg)
    # a broken folder remembered from before cannot be accepted either
    dlg2 = SettingsDialog(AppSettings(model=str(bad["empty_dir"][1])), [], w)
    qtbot.addWidget(dlg2)
    dlg2.open()
    dlg2.accept()
    assert dlg2.isVisible() and "no config.json" in dlg2.model_problem.text()


def test_settings_say_why_the_saved_model_is_unusable_as_soon_as_they_open(qtbot, make_window, fake_service,
                                                                          tmp_path):
    from app.dialogs.settings_dialog import SettingsDialog

    good, bad = _model_folders(tmp_path)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    for name, (words, folder) in bad.items():  # e.g. a folder moved away since it was chosen
        w.settings.model = str(folder)
        w.show_settings()
        dlg = w.findChildren(SettingsDialog)[-1]
        assert dlg.model_combo.currentData() == str(folder), name
        assert dlg.model_problem.isVisibleTo(dlg) and words in dlg.model_problem.text(), name  # before any OK
        dlg.reject()
    w.settings.model = str(good)
    w.show_settings()
    dlg = w.findChildren(SettingsDialog)[-1]
    assert not dlg.model_problem.isVisibleTo(dlg) and dlg.model_problem.text() == ""
    dlg.reject()


def test_a_model_that_fails_to_load_gives_back_the_previous_one(qtbot, make_window, fake_service, tmp_path):
    from dataclasses import replace

    from core.errors import CheckpointError

    built: list[str] = []

    def factory(settings, reindex):  # noqa: ANN001
        built.append(settings.model)
        if settings.model != "default":
            raise CheckpointError(f"{settings.model}/model.safetensors is not a readable safetensors file "
                                  "(truncated); re-export or re-copy the model folder")
        return fake_service

    w = make_window(fake_service, settings=AppSettings(first_run_done=True), service_factory=factory)
    broken = str(tmp_path / "models" / "truncated")
    w.apply_settings(replace(w.settings, model=broken, top_k=9))
    qtbot.waitUntil(lambda: w.service is fake_service and w.message_bar.isVisible(), timeout=5_000)
    assert built == [broken, "default"]
    text = w.message_bar.text()
    assert text.startswith("Could not load “truncated” (") and "still using the embedded default model" in text
    assert "not a readable safetensors file" in text and "save_model" not in text
    assert w.message_bar.level == "warning"
    saved = load_settings()
    assert saved.model == "default" and saved.top_k == 9  # the failing choice is not kept, the rest is
    assert w.settings.model == "default" and w.panel.search_button.isEnabled()


def test_no_model_message_is_worded_for_users(qtbot, make_window, tmp_path):
    from core.errors import ModelNotFoundError

    folder = tmp_path / "empty_dir"

    def factory(settings, reindex):  # noqa: ANN001
        raise ModelNotFoundError(f"no model folder at {folder} (config.json missing): pass a folder written by "
                                 "save_model / `python -m trainer export` (model configs without weights: "
                                 "['default-small', 'tiny-test'])")

    w = make_window(None, settings=AppSettings(first_run_done=True, model=str(folder)), service_factory=factory)
    w.load_service()
    qtbot.waitUntil(lambda: w.message_bar.isVisible(), timeout=5_000)
    text = w.message_bar.text()
    assert str(folder) in text and "config.json missing" in text
    for internal in ("save_model", "tiny-test", "python -m trainer"):
        assert internal not in text
    assert "Settings" in text


def test_a_model_change_clears_the_old_results_and_drops_their_late_answers(qtbot, make_window, photos, tmp_path):
    from dataclasses import replace

    from tests.app.conftest import speech_like
    from tests.app.fake_service import FakeService

    old = FakeService(tmp_path / "t1", search_delay_s=0.6)
    new = FakeService(tmp_path / "t2")
    w = make_window(old, settings=AppSettings(first_run_done=True), service_factory=lambda s, r: new)
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("a dog")
    assert w.results.rowCount() and w.preview.buttons["similar"].isEnabled()
    w.show_message("Something about the old model", "error")
    w.search.search_wav(speech_like(), "slow.wav")  # still running on the old service when it is replaced
    qtbot.waitUntil(lambda: "search_audio" in old.calls, timeout=3_000)
    w.apply_settings(replace(w.settings, device="cpu"))
    assert w.results.rowCount() == 0 and w.chips.texts() == [] and w.grid.summary_text() == ""
    assert w.preview.hit is None and not any(b.isEnabled() for b in w.preview.buttons.values())
    assert not w.message_bar.isVisible()  # the old model's message is gone while the new one loads
    assert w.plot.query is None and w.search.last_query is None
    qtbot.waitUntil(lambda: w.service is new, timeout=5_000)
    shown: list[object] = []
    w.search.result_shown.connect(shown.append)
    qtbot.waitUntil(lambda: w.search.searching == 0, timeout=5_000)
    qtbot.wait(50)
    assert shown == [] and w.results.rowCount() == 0 and w.plot.query is None  # the late answer was dropped


def test_more_like_this_without_a_model_says_so(qtbot, make_window):
    w = make_window(None, settings=AppSettings(first_run_done=True))
    w.search.search_similar(object())
    assert w.message_bar.isVisible() and "No model is loaded" in w.message_bar.text()


def test_about_model_card_keeps_keys_whole_and_fits_the_dialog(qtbot):
    from app.dialogs.about_dialog import AboutDialog

    card = {"name": "default-small", "architecture": "SpeechCLIP+ hybrid",
            "training": {"dataset": "synthetic shapes " * 4, "steps": 1200, "notes": "x" * 30 + " long words " * 20},
            "model_cfg_hash": "ab" * 40}
    dlg = AboutDialog(card)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    doc = dlg.browser.document()
    block = doc.begin()
    lines = {}
    while block.isValid():
        if block.text() in card:
            lines[block.text()] = block.layout().lineCount()
        block = block.next()
    assert lines == {k: 1 for k in card}  # every key on one line
    assert dlg.browser.horizontalScrollBar().maximum() <= 0  # nothing forces a horizontal scroll


def test_about_summarises_big_nested_values_and_opens_fast(qtbot):
    """A trainer's model_card.json holds every metric (the default's is ~400 KB): dumped as JSON it froze the
    window for over a second on F1 and could not be read. Nested values over a line are summarised."""
    from app.dialogs.about_dialog import AboutDialog

    metrics = {f"split{i}": {f"r@{k}": 0.123456 + i + k for k in range(200)} for i in range(40)}
    card = {"name": "default-small", "step": 400, "best_val_metric": {"name": "recall_mean", "value": 0.97},
            "metrics": metrics, "train_voices": [f"espeak:voice{i}" for i in range(300)]}
    dlg = AboutDialog(card)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    text = dlg.browser.toPlainText()
    assert len(text) < 3000, len(text)  # not the ~200 KB of JSON
    assert "40 entries (split0, split1" in text and "see model_card.json" in text
    assert "a list of 300 items" in text and "espeak:voice7" not in text
    assert '"recall_mean"' in text and "400" in text  # short values are shown as they are


def test_about_shows_model_card_md_under_the_plain_facts(qtbot, make_window, fake_service):
    from app.dialogs.about_dialog import AboutDialog

    fake_service.card_markdown = ("# Model card: fake\n\n- Data: four TTS engines\n\n"
                                  "| metric | value |\n|---|---|\n| speech→image R@1 | 0.607 |\n")
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.show_about()
    qtbot.waitUntil(lambda: w.findChild(AboutDialog) is not None, timeout=5_000)
    dlg = w.findChild(AboutDialog)
    text = dlg.browser.toPlainText()
    assert "Model card: fake" in text and "four TTS engines" in text and "0.607" in text
    assert "energy rule" in text  # the facts table
    assert "# Model card" not in text and "|---|" not in text  # rendered as Markdown, not shown as source
    tables = [f for f in dlg.browser.document().rootFrame().childFrames() if f.__class__.__name__ == "QTextTable"]
    assert len(tables) == 2  # the facts and the card's metric table


def test_file_dialogs_start_in_the_last_folder_used(qtbot, make_window, fake_service, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from core.paths import demo_queries_dir

    home = tmp_path / "home"
    (home / "Pictures").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)  # no user-dirs.dirs: Pictures is ~/Pictures
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    opened, indexed, starts = [], [], []
    monkeypatch.setattr(w.search, "open_audio_file", opened.append)
    monkeypatch.setattr(w.library, "index_folders", indexed.append)
    audio = tmp_path / "recordings"
    audio.mkdir()
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda _p, _t, d, *a, **k: (starts.append(d), (str(audio / "q.wav"), ""))[1])
    w.choose_audio_file()
    w.choose_audio_file()
    assert starts == [str(demo_queries_dir()), str(audio)]  # first the demo queries, then where the user was
    photos = tmp_path / "pictures" / "2024"
    photos.mkdir(parents=True)
    starts.clear()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda _p, _t, d="", *a, **k: (starts.append(d),
                                                                                            str(photos))[1])
    w.choose_folder_to_index()
    w.choose_folder_to_index()
    assert starts == [str(home / "Pictures"), str(photos.parent)]  # first the Pictures, then beside the last one
    assert indexed == [[photos], [photos]] and len(opened) == 2
    saved = load_settings()  # remembered across runs, in the settings file
    assert (saved.last_audio_dir, saved.last_index_dir) == (str(audio), str(photos.parent))
    w.show_library_dialog()
    from app.dialogs.library_dialog import LibraryDialog

    assert w.findChild(LibraryDialog).start_dir == str(photos.parent)
    saved.last_audio_dir = str(tmp_path / "gone")  # a remembered folder that no longer exists is not used
    w.settings = saved
    starts.clear()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda _p, _t, d, *a, **k: (starts.append(d), ("", ""))[1])
    w.choose_audio_file()
    assert starts == [str(demo_queries_dir())]
    w.settings.last_index_dir = ""  # nothing remembered: a photo is looked for in the Pictures, else at home
    starts.clear()
    w.choose_image_file()
    (home / "Pictures").rmdir()
    w.choose_image_file()
    assert starts == [str(home / "Pictures"), str(home)]  # not the folder the app was started from


def test_return_after_choose_folder_presses_ok_not_the_chooser(qtbot, make_window, fake_service, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog

    from app.dialogs.settings_dialog import SettingsDialog

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    w.show_settings()
    dlg = w.findChild(SettingsDialog)
    qtbot.waitExposed(dlg)
    asked: list[str] = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: asked.append("folder") or "")
    dlg.activateWindow()
    dlg.browse_button.setFocus()
    qtbot.mouseClick(dlg.browse_button, Qt.MouseButton.LeftButton)  # the chooser is cancelled: focus stays there
    assert asked == ["folder"]
    with qtbot.waitSignal(dlg.accepted, timeout=2_000):
        qtbot.keyClick(dlg.browse_button, Qt.Key.Key_Return)
    assert asked == ["folder"]  # Return pressed OK; it did not open the chooser again


def test_an_updated_built_in_model_reindexes_without_asking(qtbot, make_window, fake_service):
    """The library was indexed by an older built-in default: there is no previous model to keep, so the app
    re-indexes with the new one and says why, instead of asking."""
    from core.errors import ModelMismatchError

    calls: list[bool] = []

    def factory(settings, reindex):  # noqa: ANN001
        calls.append(reindex)
        if not reindex:
            raise ModelMismatchError("indexed with another CLIP tower", stored_identity="a" * 64,
                                     identity="b" * 64, indexed_with="default", roots=["/home/u/Pictures"])
        return fake_service

    w = make_window(None, settings=AppSettings(first_run_done=True), service_factory=factory)
    w.load_service()
    qtbot.waitUntil(lambda: w.service is fake_service, timeout=5_000)
    assert calls == [False, True] and getattr(w, "reindex_box", None) is None
    qtbot.waitUntil(lambda: "built-in model was updated" in w.message_bar.text(), timeout=5_000)
