"""The thumbnail cache follows the library: thumbnails of content that left it are deleted after a grace period,
at most once a day, from a finished index run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from libfakes import drain, make_image

from core.factory import create_model
from core.library.thumb_prune import MARKER, prune_if_due, prune_thumbnails
from core.model.config import get_model_config
from core.service import SearchService

DAY = 24 * 3600.0


def thumb(root: Path, key: str, age_s: float, size: int = 256, suffix: str = ".jpg") -> Path:
    p = root / str(size) / key[:2] / f"{key}{suffix}"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\xff\xd8" + b"x" * 100)
    t = time.time() - age_s
    os.utime(p, (t, t))
    return p


def test_old_orphans_go_live_and_young_ones_stay(tmp_path):
    live, dead = "aa" + "1" * 30, "bb" + "2" * 30
    keep = [thumb(tmp_path, live, 9 * DAY), thumb(tmp_path, f"{live}@12.500", 9 * DAY, size=512),
            thumb(tmp_path, "ff" + "6" * 30, 3600)]  # an orphan of the last hour: maybe a photo being indexed elsewhere
    gone = [thumb(tmp_path, dead, 2 * DAY), thumb(tmp_path, f"{dead}@3.000", 2 * DAY),
            thumb(tmp_path, "cc" + "3" * 30, 2 * DAY, suffix=".tmp")]  # a crash's half-written file
    young_tmp = thumb(tmp_path, "dd" + "4" * 30, 60, suffix=".tmp")  # being written now
    other = tmp_path / "256" / "aa" / "notes.txt"
    other.write_text("not ours")
    report = prune_thumbnails(tmp_path, {live})
    assert all(p.exists() for p in [*keep, young_tmp, other])
    assert not any(p.exists() for p in gone)
    assert report.files == 3 and report.bytes == 3 * 102 and report.kept == 4


def test_pruning_is_due_once_a_day_and_never_fails_the_caller(tmp_path):
    dead = thumb(tmp_path, "ee" + "5" * 30, 2 * DAY)
    calls = []

    def live():
        calls.append(1)
        return set()

    assert prune_if_due(tmp_path, live).files == 1 and not dead.exists()
    assert (tmp_path / MARKER).is_file()
    dead = thumb(tmp_path, "ee" + "5" * 30, 2 * DAY)
    assert prune_if_due(tmp_path, live) is None and dead.exists() and len(calls) == 1  # not due: not even asked
    assert prune_if_due(tmp_path, live, now=time.time() + DAY + 1).files == 1
    assert prune_if_due(tmp_path / "missing", live) is None  # no cache yet

    def broken():
        raise OSError("disk gone")

    assert prune_if_due(tmp_path, broken, now=time.time() + 3 * DAY) is None


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model(get_model_config("tiny-test")).eval()


def test_an_index_run_prunes_the_thumbnails_of_deleted_photos(tiny, tmp_path):
    photos = tmp_path / "photos"
    for i in range(4):
        make_image(photos / f"p{i}.jpg", i, size=(64, 48))
    svc = SearchService(tiny, data_dir=tmp_path / "lib", device="cpu", cache_dir=tmp_path / "cache")
    try:
        drain(svc.index([photos]))
        root = svc.thumbnails.root
        kept = {p.stem: p for p in root.rglob("*.jpg")}
        assert len(kept) == 4
        gone_hash = svc.library.row_by_path(photos / "p0.jpg").content_hash
        (photos / "p0.jpg").unlink()
        old = time.time() - 2 * DAY
        for p in kept.values():
            os.utime(p, (old, old))
        os.utime(root / MARKER, (old, old))  # the last prune was two days ago
        drain(svc.index([photos]))
        assert not kept[gone_hash].exists()
        assert all(p.exists() for h, p in kept.items() if h != gone_hash)
        assert svc.thumbnail(svc.library.row_by_path(photos / "p1.jpg").id).is_file()
    finally:
        svc.close()
