"""Everything that can go wrong with audio gives a message in the window, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from app.audio_source import ArraySource, InputDevice, NoInputDeviceError, SoundDeviceSource
from app.recorder import level_of
from app.settings import AppSettings
from tests.app.conftest import speech_like

pytestmark = pytest.mark.qt


class NoDevice(ArraySource):
    def start(self, chunks):  # noqa: ANN001
        raise NoInputDeviceError("No microphone was found. Plug one in, or search from an audio file (Ctrl+O).")


def ready_window(qtbot, make_window, fake_service, photos, **kw):
    w = make_window(fake_service, settings=AppSettings(first_run_done=True), **kw)
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    return w


def test_no_input_device_shows_message_and_file_route_works(qtbot, make_window, fake_service, photos, speech_wav):
    w = ready_window(qtbot, make_window, fake_service, photos, source_factory=lambda name: NoDevice(np.zeros(1)))
    w.search.start_recording()
    assert not w.search.recorder.recording and not w.panel.record_button.isChecked()
    assert w.message_bar.isVisible() and w.message_bar.level == "error"
    assert "No microphone" in w.message_bar.text() and "Ctrl+O" in w.message_bar.text()
    # the file route still works (core.audio decodes and resamples any rate / channel count)
    stereo_44k = tmp = speech_wav.with_name("stereo.flac")
    x = speech_like(sr=44100)
    sf.write(tmp, np.stack([x, x * 0.5], axis=1), 44100)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.open_audio_file(stereo_44k)
    assert w.results.rowCount() > 0 and w.chips.texts()
    assert abs(len(w.search.query_wav) / 16000 - len(x) / 44100) < 0.01


@pytest.mark.parametrize(("devices", "hint"), [
    ([], "Open a recording (Ctrl+O), type (Ctrl+F), or pick a sample query"),
    ([InputDevice(0, "USB mic", 48000)], "Hold Space and speak, or pick a sample query"),
])
def test_the_empty_plot_offers_only_the_routes_this_machine_has(qtbot, make_window, fake_service, monkeypatch,
                                                                devices, hint):
    monkeypatch.setattr("app.main_window.list_input_devices", lambda: devices)
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    assert w.plot.message.toPlainText() == hint
    assert w.panel.record_button.isEnabled() is bool(devices)


def test_real_microphone_class_without_devices(monkeypatch):
    import app.audio_source as src

    monkeypatch.setattr(src, "list_input_devices", lambda: [])
    with pytest.raises(NoInputDeviceError, match="No microphone was found"):
        SoundDeviceSource("").start(None)


def test_device_failing_mid_recording(qtbot, make_window, fake_service, photos):
    w = ready_window(qtbot, make_window, fake_service, photos,
                     source_factory=lambda name: ArraySource(speech_like(), speed=4.0, fail_after_s=0.5, name="USB mic"))
    w.search.start_recording()
    qtbot.waitUntil(lambda: not w.search.recorder.recording, timeout=5_000)
    assert w.message_bar.level == "error"
    assert "USB mic" in w.message_bar.text() and "stopped" in w.message_bar.text()
    assert not w.panel.record_button.isChecked()
    assert w.panel.meter.level == 0.0
    # and recording again works
    w.search.source_factory = lambda name: ArraySource(speech_like(), speed=4.0)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.start_recording()


def test_silence_stops_with_a_message(qtbot, make_window, fake_service, photos):
    w = ready_window(qtbot, make_window, fake_service, photos,
                     source_factory=lambda name: ArraySource(np.zeros(16000, np.float32), speed=8.0))
    w.search.recorder.no_speech_stop_s = 1.5
    w.search.start_recording()
    qtbot.waitUntil(lambda: not w.search.recorder.recording, timeout=5_000)
    assert "Only silence" in w.message_bar.text()
    assert "search_audio" not in fake_service.calls


def test_too_short_clip_and_silent_file(qtbot, make_window, fake_service, photos, tmp_path):
    w = ready_window(qtbot, make_window, fake_service, photos)
    w.search.search_wav(speech_like()[:1600])
    assert "too short" in w.message_bar.text()
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    w.hide_message()
    w.search.open_audio_file(silent)
    qtbot.waitUntil(lambda: w.message_bar.isVisible(), timeout=5_000)
    assert "silent" in w.message_bar.text().lower()


def test_unreadable_file_is_a_message(qtbot, make_window, fake_service, photos, tmp_path):
    w = ready_window(qtbot, make_window, fake_service, photos)
    bad = tmp_path / "notaudio.wav"
    bad.write_bytes(b"this is not a wav file")
    w.hide_message()
    w.search.open_audio_file(bad)
    qtbot.waitUntil(lambda: w.message_bar.isVisible(), timeout=5_000)
    assert w.message_bar.level == "error" and "notaudio.wav" in w.message_bar.text()


def test_length_limit_stops_recording(qtbot, make_window, fake_service, photos):
    loud = np.tile(speech_like(gap_s=0.0), 10)
    w = ready_window(qtbot, make_window, fake_service, photos,
                     source_factory=lambda name: ArraySource(loud, speed=10.0))
    w.search.recorder.max_s = 2.0
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.start_recording()
    assert 2.0 <= len(w.search.query_wav) / 16000 < 2.6


def test_push_to_talk_with_space(qtbot, make_window, fake_service, photos):
    from PySide6.QtCore import Qt

    w = ready_window(qtbot, make_window, fake_service, photos,
                     source_factory=lambda name: ArraySource(speech_like(), speed=1.0))
    w.activateWindow()
    w.grid.view.setFocus()
    qtbot.waitUntil(lambda: w.isActiveWindow(), timeout=2_000)
    qtbot.keyPress(w.grid.view, Qt.Key.Key_Space)
    assert w.search.recorder.recording
    qtbot.wait(500)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        qtbot.keyRelease(w.grid.view, Qt.Key.Key_Space)
    assert not w.search.recorder.recording
    # in the text box, Space types a space
    w.panel.text_edit.setFocus()
    qtbot.keyClick(w.panel.text_edit, Qt.Key.Key_Space)
    assert not w.search.recorder.recording and w.panel.text_edit.text() == " "


def test_level_meter_scale():
    assert level_of(np.zeros(100, np.float32)) == 0.0
    assert level_of(np.ones(100, np.float32)) == pytest.approx(1.0)
    assert 0.4 < level_of(np.full(100, 0.03, np.float32)) < 0.6


def test_a_48k_microphone_is_resampled_to_16k(qtbot, make_window, fake_service, photos):
    from core.audio import resample

    x16 = speech_like()
    x48 = resample(x16, 16000, 48000)
    w = ready_window(qtbot, make_window, fake_service, photos,
                     source_factory=lambda name: ArraySource(x48, 48000, speed=4.0))
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.start_recording()
    from app.recorder import TRAIL_KEEP_S
    from core.audio import trim_silence

    recorded = w.search.recorder.wav16k()  # the whole recording, resampled; searched without its trailing silence
    assert abs(len(recorded) / 16000 - w.search.recorder.duration_s) < 0.01
    # resampled chunk by chunk as it arrived, and equal to resampling the whole recording at once
    np.testing.assert_array_equal(recorded, resample(w.search.recorder.raw(), 48000))
    n = len(w.search.query_wav)
    assert n >= len(x16) and n == len(trim_silence(recorded, leading=False, pad_s=TRAIL_KEEP_S))
    assert w.search.recorder.sample_rate == 48000
    assert w.chips.texts()[:2] == ["red", "car"]


def test_sample_queries_are_listed_and_searchable(qtbot, make_window, fake_service, photos, tmp_path, monkeypatch):
    import app.main_window as mw

    qdir = tmp_path / "queries"
    qdir.mkdir()
    sf.write(qdir / "query_01.wav", speech_like(), 16000)
    (qdir / "query_01.txt").write_text("a red car\n")
    sf.write(qdir / "query_02.wav", speech_like(), 16000)  # no transcript: the file name is shown
    monkeypatch.setattr(mw, "demo_queries_dir", lambda: qdir)
    w = ready_window(qtbot, make_window, fake_service, photos)
    combo = w.panel.samples_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["Sample queries…", "“a red car”", "“query 02”"]
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        combo.activated.emit(1)
    assert w.results.rowCount() == 6 and "query_01.wav" in w.grid.summary_text()
    assert combo.currentIndex() == 0  # ready for the next pick


def _snapshot(w):  # noqa: ANN001, ANN202
    return (w.results.image_ids(), w.chips.texts(), w.plot.query, w.plot._duration, w.search.last_query,
            id(w.search.query_wav), w.grid.summary_text())


@pytest.mark.parametrize("kind", ["short", "silent", "dc", "nan", "long"])
def test_a_rejected_file_leaves_the_previous_query_on_screen(qtbot, make_window, fake_service, photos, tmp_path,
                                                              kind):
    from core.audio import MAX_QUERY_S

    w = ready_window(qtbot, make_window, fake_service, photos)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_wav(speech_like(), "first.wav")
    before = _snapshot(w)
    assert before[0] and before[1]
    path = tmp_path / f"{kind}.wav"
    loud = np.tile(speech_like(gap_s=0.0), int(MAX_QUERY_S / 1.2) + 3)  # just over the limit
    data = {"short": speech_like()[:1600], "silent": np.zeros(48000, np.float32),
            "dc": np.full(48000, 0.25, np.float32), "nan": np.full(48000, np.nan, np.float32),
            "long": loud}[kind]
    sf.write(path, data, 16000, subtype="FLOAT")
    w.hide_message()
    calls = len(fake_service.calls)
    w.search.open_audio_file(path)
    qtbot.waitUntil(lambda: w.message_bar.isVisible(), timeout=5_000)
    text = w.message_bar.text()
    expected = {"short": "too short", "silent": "silent", "dc": "silent", "nan": "NaN",
                "long": f"above the {MAX_QUERY_S:.0f} s"}[kind]
    assert expected in text and w.message_bar.level == "warning"
    assert _snapshot(w) == before  # nothing of the old view was replaced
    assert fake_service.calls[calls:] == []  # and the model never ran


def test_nan_waveform_is_drawn_without_raising(qtbot):
    from app.widgets.cif_plot import CifPlot

    plot = CifPlot()
    qtbot.addWidget(plot)
    plot.set_waveform(np.full(1600, np.nan, np.float32))
    plot.set_waveform(np.array([0.5, np.inf, -np.inf, np.nan], np.float32))
    lo, hi = plot.wave_plot.viewRange()[1]
    assert np.isfinite(lo) and np.isfinite(hi)


@pytest.mark.qt_no_exception_capture
def test_an_error_in_a_gui_callback_is_logged_and_shown(qtbot, make_window, fake_service, monkeypatch, caplog):
    import sys

    from PySide6.QtCore import QTimer

    from app.errors import install_excepthook

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    hook = install_excepthook(w)
    assert sys.excepthook is hook

    def broken() -> None:
        raise ValueError("boom in a slot")

    with caplog.at_level("CRITICAL", logger="app.errors"):
        QTimer.singleShot(0, broken)
        qtbot.waitUntil(lambda: w.message_bar.isVisible(), timeout=3_000)
    assert "ValueError: boom in a slot" in w.message_bar.text() and w.message_bar.level == "error"
    assert "app.log" in w.message_bar.text()
    assert any(r.exc_info and "boom in a slot" in str(r.exc_info[1]) for r in caplog.records)
    assert w.isVisible()  # the app goes on


def test_a_five_minute_file_is_refused_from_its_header(qtbot, make_window, fake_service, photos, tmp_path,
                                                       monkeypatch):
    def no_decoding(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a file over the query limit must not be decoded")

    w = ready_window(qtbot, make_window, fake_service, photos)
    assert w.plot.message.toPlainText().endswith("or pick a sample query")  # the idle hint
    path = tmp_path / "long300s.wav"
    with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as f:  # 300 s written in pieces
        for _ in range(25):
            f.write(np.tile(speech_like(gap_s=0.0), 10))
    monkeypatch.setattr(sf, "read", no_decoding)
    w.search.open_audio_file(path)
    qtbot.waitUntil(lambda: w.message_bar.isVisible() and w.message_bar.level == "warning", timeout=5_000)
    assert "long300s.wav is 300 s long" in w.message_bar.text() and "30 s" in w.message_bar.text()
    assert fake_service.calls == [] and w.search.last_query is None and w.search.searching == 0
    assert len(w.plot.wave_curve.getData()[0] or []) == 0  # no waveform drawn under the idle overlay


def test_a_recording_is_searched_without_its_trailing_silence(qtbot, make_window, fake_service, photos):
    speech = speech_like(gap_s=0.0)  # sound up to its last sample (1.2 s)
    clip = np.concatenate([speech, np.zeros(32000, np.float32)])  # then 2 s of silence: auto-stop after 1.2 s
    w = ready_window(qtbot, make_window, fake_service, photos,
                     source_factory=lambda name: ArraySource(clip, speed=4.0))
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.start_recording()
    assert w.search.recorder.duration_s >= 2.3  # what was recorded, silence included
    dur = len(w.search.query_wav) / 16000
    assert len(speech) / 16000 <= dur <= len(speech) / 16000 + 0.2 + 0.03  # ~0.2 s of silence kept
    assert w.plot.query.segments[-1].end_s <= dur + 1e-6


def test_push_to_talk_release_and_press_at_once_is_one_utterance(qtbot, make_window, fake_service, photos):
    from PySide6.QtCore import Qt

    w = ready_window(qtbot, make_window, fake_service, photos,
                     source_factory=lambda name: ArraySource(speech_like(), speed=1.0))
    starts: list[int] = []
    w.search.recorder.started.connect(lambda: starts.append(1))
    w.activateWindow()
    w.grid.view.setFocus()
    qtbot.waitUntil(lambda: w.isActiveWindow(), timeout=2_000)
    qtbot.keyPress(w.grid.view, Qt.Key.Key_Space)
    qtbot.wait(300)
    qtbot.keyRelease(w.grid.view, Qt.Key.Key_Space)  # a spurious release / press pair (another X client)
    qtbot.keyPress(w.grid.view, Qt.Key.Key_Space)
    qtbot.wait(150)
    assert w.search.recorder.recording and starts == [1] and w.search.searching == 0
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        qtbot.keyRelease(w.grid.view, Qt.Key.Key_Space)
    assert not w.search.recorder.recording and starts == [1]
