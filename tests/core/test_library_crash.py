"""kill -9 in the middle of indexing, then a clean resume: the database ends equal to a clean run's."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from libfakes import FakeEmbedder, make_image

from core.library import Library, index_library

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
N_IMAGES = 240

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{here!r}, {repo!r}]
    from libfakes import FakeEmbedder
    from core.library import Library, index_library
    emb = FakeEmbedder(delay_s=0.05)
    lib = Library(sys.argv[1], emb.identity, dim=emb.dim, cache_dir=sys.argv[3])
    for _ in index_library(lib, [sys.argv[2]], emb, batch_size=8, workers=2):
        pass
    """
)


def live_rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return con.execute("SELECT path, root, mtime, size, content_hash, width, height, vector FROM images "
                           "WHERE deleted = 0 ORDER BY path").fetchall()
    finally:
        con.close()


def committed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM images WHERE vector IS NOT NULL").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def test_kill_minus_9_then_resume_equals_clean_run(tmp_path):
    photos = tmp_path / "photos"
    for i in range(N_IMAGES):
        make_image(photos / f"d{i % 5}" / f"{i:04d}.png", i, size=(16, 16))
    data = tmp_path / "killed"
    script = tmp_path / "index_slowly.py"
    script.write_text(SCRIPT.format(here=str(HERE), repo=str(REPO)))
    proc = subprocess.Popen([sys.executable, str(script), str(data), str(photos), str(tmp_path / "cache")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = data / "library.sqlite3"
    deadline = time.monotonic() + 60
    while committed(db) < 24 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = committed(db)
    assert 24 <= partial < N_IMAGES, partial  # killed mid-way, with several batches committed
    assert partial % 8 == 0  # whole batches only: the batch in flight was lost, nothing half-written

    emb = FakeEmbedder()
    lib = Library(data, emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    for _ in index_library(lib, [photos], emb, batch_size=32):
        pass
    lib.close()
    assert emb.images == N_IMAGES - partial  # resumed: committed work was not redone

    clean = Library(tmp_path / "clean", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache2")
    for _ in index_library(clean, [photos], FakeEmbedder(), batch_size=32):
        pass
    clean.close()
    resumed_rows, clean_rows = live_rows(db), live_rows(tmp_path / "clean" / "library.sqlite3")
    assert len(resumed_rows) == N_IMAGES
    assert [r[:-1] for r in resumed_rows] == [r[:-1] for r in clean_rows]  # paths, mtime, size, hash, dims
    vec = np.array([np.frombuffer(r[-1], "<f2") for r in resumed_rows], np.float32)
    ref = np.array([np.frombuffer(r[-1], "<f2") for r in clean_rows], np.float32)
    np.testing.assert_allclose(vec, ref, atol=2e-3)  # same vectors (BLAS may round differently per batch size)


def test_temp_files_of_a_save_killed_midway_are_removed(tmp_path):
    """A process killed while it saves the hnswlib index leaves a temp file as large as the index: the next
    save (or load) removes it once its process is gone, and keeps a running process's."""
    from core.library.ann import AnnIndex, AnnStamp

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((50, 8)).astype(np.float32)
    ann = AnnIndex.build(np.arange(50), vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
    path = tmp_path / "ann" / "uuid1.hnsw"
    path.parent.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    killed = [path.parent / f"uuid1.hnsw.{dead_pid}-7.tmp", path.parent / f"uuid1.json.{dead_pid}-7.tmp",
              path.parent / "tmpa6fv96up.tmp"]  # the last: an older version's random name
    running = [path.parent / f"uuid1.hnsw.{os.getppid()}-7.tmp", path.parent / "tmpfresh.tmp"]
    for f in killed + running:
        f.write_bytes(b"half an index")
    os.utime(killed[-1], (time.time() - 2 * 86400,) * 2)  # not written for two days
    stamp = AnnStamp("uuid1", 1, 50, 8, "model")
    ann.save(path, stamp)
    assert sorted(f.name for f in path.parent.iterdir()) == sorted(["uuid1.hnsw", "uuid1.json"] +
                                                                   [f.name for f in running])
    assert AnnIndex.load(path, stamp) is not None
