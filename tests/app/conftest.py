"""Fixtures of the GUI tests: offscreen Qt, app data under tmp_path, a photo folder, a speech-like WAV."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from PIL import Image  # noqa: E402

from tests.app.fake_service import FakeService  # noqa: E402


@pytest.fixture(autouse=True)
def app_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every GUI test gets its own data and cache dirs (settings, logs, library, thumbnails)."""
    monkeypatch.setenv("SPOKENSEARCH_DATADIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPOKENSEARCH_CACHEDIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(autouse=True)
def no_folder_watching(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The library watcher would re-index a folder a test changes on purpose (a photo deleted to see it reported
    missing): off, except in the tests that ask for `watching`."""
    from app.library_watch import LibraryWatch

    if "watching" not in request.fixturenames:
        monkeypatch.setattr(LibraryWatch, "allowed", False)


@pytest.fixture
def watching(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folder watching on, settling after 0.3 s (instead of 2 s)."""
    from core.library import watch

    monkeypatch.setattr(watch, "SETTLE_S", 0.3)


def make_photos(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"photo_{i:02d}.jpg", quality=80)
    return folder


def speech_like(seconds_on: float = 1.2, gap_s: float = 0.15, sr: int = 16000) -> np.ndarray:
    """Three voiced bursts (harmonic tone with noise) separated by short gaps, then 0.1 s of silence."""
    rng = np.random.default_rng(1)
    parts = []
    for f0 in (140.0, 180.0, 120.0):
        t = np.arange(int(sr * seconds_on / 3)) / sr
        burst = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)) * 0.2
        burst = burst * np.hanning(len(t)) ** 0.3 + rng.standard_normal(len(t)) * 0.01
        parts += [burst.astype(np.float32), np.zeros(int(sr * gap_s), np.float32)]
    return np.concatenate(parts)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return make_photos(tmp_path / "photos")


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    path = tmp_path / "query.wav"
    sf.write(path, speech_like(), 16000)
    return path


@pytest.fixture
def fake_service(tmp_path: Path) -> FakeService:
    return FakeService(tmp_path / "thumbs")


@pytest.fixture
def make_window(qtbot) -> Iterator[Callable[..., object]]:
    """Build a MainWindow (settings file under the test's data dir); closes it and drains the lanes after."""
    from app.main_window import MainWindow
    from app.workers import wait_all

    windows = []

    def make(service: object = None, **kw: object) -> MainWindow:
        w = MainWindow(service, **kw)
        qtbot.addWidget(w)
        w.resize(1366, 768)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()
    assert wait_all(10_000)
