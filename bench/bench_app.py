"""Benchmark of the desktop app (issue #5): the real window, the real SearchService, a spoken query streamed
in real time through the recorder (app.audio_source.ArraySource stands in for the microphone).

Prints:
  * model load (cold start of the service) and indexing of the photo folder;
  * live view while recording: model runs drawn per second, time per live run, ticks skipped;
  * end of speech -> filled grid (results model set, summary shown), and -> visible thumbnails painted,
    for push-to-talk (stop when the speech ends) and for auto-stop (plus the recorder's silence wait);
  * the same with N extra photos (random unit vectors inserted straight into the library: no image files
    are decoded for them; their rows point at hard links of the real photos so thumbnails are real work);
  * the app's memory (RSS) at each stage.

    python bench/bench_app.py                       # default model + demo library + a bundled sample query
    python bench/bench_app.py --extra 100000 --runs 5
    python bench/bench_app.py --screenshot docs/screenshot.png --query resources/demo/queries/x.wav
    python bench/bench_app.py --tiny                # a tiny random model: checks the script, not the figures
    python bench/bench_app.py --random-config default-small --overrides-from resources/configs/train/default.json
                                                    # the default's architecture, untrained weights
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_until(app, pred, timeout_s: float = 120.0) -> bool:  # noqa: ANN001
    t_end = time.perf_counter() + timeout_s
    while time.perf_counter() < t_end:
        app.processEvents()
        if pred():
            return True
        time.sleep(0.002)
    return False


def make_random_model(folder: Path, config: str, overrides_from: Path | None = None) -> str:
    """A randomly initialised model of a shipped config (same compute as the trained one), optionally with
    the `model_overrides` of a train config (what the trainer applies to build the default)."""
    import torch

    from core.factory import create_model, save_model
    from core.model.config import get_model_config

    cfg = get_model_config(config)
    if overrides_from is not None:
        cfg = cfg.replace(**json.loads(overrides_from.read_text()).get("model_overrides", {}))
    torch.manual_seed(0)
    save_model(create_model(cfg), folder)
    return str(folder)


def insert_synthetic(service, n: int, photos: list[Path], tmp: Path) -> float:  # noqa: ANN001
    """n random unit vectors as library rows whose paths are hard links of the real photos. Returns seconds."""
    from core.library.library import EmbeddedImage

    root = tmp / "synthetic"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    dim = service.embedder.dim
    t0 = time.perf_counter()
    batch: list[EmbeddedImage] = []
    for i in range(n):
        src = photos[i % len(photos)]
        dst = root / f"s{i:07d}{src.suffix}"
        try:
            os.link(src, dst)
        except OSError:
            dst.symlink_to(src)
        v = rng.standard_normal(dim).astype(np.float32)
        batch.append(EmbeddedImage(str(dst), str(root), time.time(), src.stat().st_size, f"{i:032x}", None, None,
                                   None, v / np.linalg.norm(v)))
        if len(batch) == 5000:
            service.library.write_embedded(batch)
            batch = []
    if batch:
        service.library.write_embedded(batch)
    service.library.add_root(root)
    return time.perf_counter() - t0


class LoopProbe:
    """Measures how late a 10 ms GUI timer fires: the event loop's responsiveness while work runs."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1000)
        self._last = now

    def start(self) -> None:
        self.gaps, self._last = [], time.perf_counter()
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        g = np.array(self.gaps or [0.0])
        return {"loop_gap_p50_ms": float(np.percentile(g, 50)), "loop_gap_p99_ms": float(np.percentile(g, 99)),
                "loop_gap_max_ms": float(g.max())}


def spoken_run(app, window, wav: np.ndarray, *, push_to_talk: bool) -> dict:  # noqa: ANN001
    """Stream `wav` through the recorder at real time; returns the live and latency figures of one query."""
    from PySide6.QtCore import QTimer

    from app.audio_source import ArraySource

    search = window.search
    window.results.clear()
    window.results.invalidate_thumbnails()
    search.source_factory = lambda name: ArraySource(wav, 16000, speed=1.0)
    shown: list[float] = []
    search.result_shown.connect(lambda _r: shown.append(time.perf_counter()))
    loaded0 = window.results.thumbs_loaded
    waves0 = window.plot.wave_updates
    probe = LoopProbe()
    probe.start()
    t_start = time.perf_counter()
    search.start_recording()
    if push_to_talk:
        QTimer.singleShot(int(len(wav) / 16000 * 1000), search.stop_recording)
    if not wait_until(app, lambda: bool(shown), 120):
        raise RuntimeError(f"no result; message: {window.message_bar.text()}")
    stop_t = shown[0] - search.last_latency_s
    rows = window.results.rowCount()
    view = window.grid.view
    visible = sum(1 for r in range(rows) if view.visualRect(window.results.index(r)).intersects(view.viewport().rect()))
    wait_until(app, lambda: window.results.thumbs_loaded - loaded0 >= visible, 60)
    t_thumbs = time.perf_counter()
    loop = probe.stop()
    live = search.live
    rec_s = stop_t - t_start
    return loop | {
        "wave_redraws_per_s": (window.plot.wave_updates - waves0) / rec_s if rec_s > 0 else 0.0,
        "latency_grid_ms": search.last_latency_s * 1000,
        "latency_thumbs_ms": (t_thumbs - stop_t) * 1000,
        "visible_thumbs": visible,
        "rows": rows,
        "recorded_s": rec_s,
        "live_runs": live.runs,
        "live_per_s": live.runs / rec_s if rec_s > 0 else 0.0,
        "live_run_ms": 1000 * statistics.median(live.run_seconds) if live.run_seconds else float("nan"),
        "live_skipped_ticks": live.skipped,
        "silence_wait_s": 0.0 if push_to_talk else search.recorder.silence_stop_s,
    }


def summarise(runs: list[dict]) -> dict:
    keys = ("latency_grid_ms", "latency_thumbs_ms", "live_per_s", "live_run_ms", "live_runs", "live_skipped_ticks",
            "wave_redraws_per_s", "loop_gap_p50_ms", "loop_gap_p99_ms", "loop_gap_max_ms")
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {"runs": len(runs), "rows": runs[0]["rows"],
                                                                     "visible_thumbs": runs[0]["visible_thumbs"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--tiny", action="store_true", help="use a tiny random model (script check only)")
    ap.add_argument("--random-config", default=None,
                    help="a randomly initialised model of this config (timings without the trained weights)")
    ap.add_argument("--overrides-from", type=Path, default=None,
                    help="apply this train config's model_overrides to --random-config")
    ap.add_argument("--photos", type=Path, default=ROOT / "resources" / "demo" / "photos")
    ap.add_argument("--query", type=Path, default=None, help="a spoken query file (default: first bundled sample)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--extra", type=int, default=0, help="insert this many random vectors, then measure again")
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--screenshot", type=Path, default=None, help="save the window after the first query")
    ap.add_argument("--size", default="1366x768", help="window size for the runs and the screenshot")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench_app_"))
    atexit.register(shutil.rmtree, tmp, True)  # its library (100k links with --extra), database and index
    os.environ["SPOKENSEARCH_DATADIR"] = str(tmp / "data")
    os.environ["SPOKENSEARCH_CACHEDIR"] = str(tmp / "cache")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import torch

    torch.set_num_threads(args.threads)
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.settings import AppSettings
    from core.audio import load_audio
    from core.service import SearchService

    app = QApplication.instance() or QApplication([])
    out: dict = {"rss_mb_start": rss_mb()}
    config = "tiny-test" if args.tiny else args.random_config
    model = make_random_model(tmp / f"random-{config}", config, args.overrides_from) if config else args.model
    out["model"] = (f"random {config}" + (f" + {args.overrides_from.name} overrides" if args.overrides_from else "")
                    if config else args.model)
    t0 = time.perf_counter()
    service = SearchService(model=model, device="cpu")
    out["model_load_s"] = time.perf_counter() - t0
    out["rss_mb_model_loaded"] = rss_mb()

    from core.library.scan import image_extensions

    exts = image_extensions()  # what the indexer takes (HEIC and camera raw files included when installed)
    photos = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in exts) if args.photos.is_dir() else []
    if not photos:
        from PIL import Image

        args.photos = tmp / "photos"
        args.photos.mkdir()
        rng = np.random.default_rng(0)
        for i in range(24):
            Image.fromarray((rng.random((96, 128, 3)) * 255).astype(np.uint8)).save(args.photos / f"p{i}.jpg")
        photos = sorted(args.photos.glob("*.jpg"))
        out["photos_note"] = "demo library missing: 24 random images"
    queries = sorted((ROOT / "resources" / "demo" / "queries").glob("*.wav"))
    query_path = args.query or (queries[0] if queries else None)
    if query_path is not None:
        wav = load_audio(query_path)
        out["query"] = str(query_path.relative_to(ROOT) if query_path.is_relative_to(ROOT) else query_path)
        txt = query_path.with_suffix(".txt")
        out["query_text"] = txt.read_text().strip() if txt.is_file() else ""
    else:
        from tests.app.conftest import speech_like

        wav = speech_like()
        out["query"] = "synthetic harmonic bursts (no bundled sample query yet)"

    w, h = (int(v) for v in args.size.split("x"))
    window = MainWindow(service, AppSettings(first_run_done=True, top_k=args.top_k))
    window.resize(w, h)
    window.show()
    finished: list[object] = []
    window.library.indexing_finished.connect(finished.append)
    t0 = time.perf_counter()
    window.library.index_folders([args.photos], show_dialog=False)
    wait_until(app, lambda: bool(finished), 1800)
    out["index_s"] = time.perf_counter() - t0
    out["photos"] = service.stats().photos
    out["rss_mb_indexed"] = rss_mb()

    spoken_run(app, window, wav, push_to_talk=True)  # warm-up (first inference allocates)
    if args.screenshot is not None:
        wait_until(app, lambda: False, 0.5)
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(args.screenshot))
        out["screenshot"] = str(args.screenshot)
    out["demo_push_to_talk"] = summarise([spoken_run(app, window, wav, push_to_talk=True) for _ in range(args.runs)])
    out["demo_auto_stop"] = summarise([spoken_run(app, window, wav, push_to_talk=False) for _ in range(2)])
    out["demo_auto_stop"]["silence_wait_s"] = window.search.recorder.silence_stop_s
    out["rss_mb_after_queries"] = rss_mb()

    if args.extra:
        out["extra_insert_s"] = insert_synthetic(service, args.extra, photos, tmp)
        t0 = time.perf_counter()
        ann = service.library.ann()
        out["extra_ann_build_s"] = time.perf_counter() - t0
        out["extra_ann"] = ann is not None
        out["extra_photos"] = service.stats().photos
        out["rss_mb_extra"] = rss_mb()
        out["extra_push_to_talk"] = summarise([spoken_run(app, window, wav, push_to_talk=True)
                                               for _ in range(args.runs)])
        out["rss_mb_extra_after_queries"] = rss_mb()

    window.close()
    service.close()
    if args.json:
        print(json.dumps(out, indent=1, default=str))
    else:
        for k, v in out.items():
            if isinstance(v, dict):
                print(f"{k}:")
                for kk, vv in v.items():
                    print(f"    {kk:22s} {vv:.1f}" if isinstance(vv, float) else f"    {kk:22s} {vv}")
            else:
                print(f"{k:26s} {v:.2f}" if isinstance(v, float) else f"{k:26s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
