"""One app per data dir (app.instance_lock, taken in app.__main__.main): a second start says so and exits;
a lock left by a crashed process does not block."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env(data: Path) -> dict[str, str]:
    env = dict(os.environ, SPOKENSEARCH_DATADIR=str(data), QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def test_second_lock_on_the_same_folder_is_refused_with_the_pid(tmp_path):
    from app.instance_lock import lock_instance

    first, why = lock_instance(tmp_path / "data")
    assert first is not None and why == ""
    second, why = lock_instance(tmp_path / "data")
    assert second is None
    assert f"Spoken Image Search is already running with this library (PID {os.getpid()})" in why
    other, _ = lock_instance(tmp_path / "other")  # another data dir is another library
    assert other is not None
    first.unlock()
    again, _ = lock_instance(tmp_path / "data")
    assert again is not None
    again.unlock()
    other.unlock()


def test_a_lock_left_by_a_crashed_process_does_not_block(tmp_path):
    from app.instance_lock import LOCK_NAME, lock_instance

    crash = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from app.instance_lock import lock_instance
        lock, why = lock_instance(Path({str(tmp_path / 'data')!r}))
        assert lock is not None, why
        os._exit(0)  # no unlock: the lock file stays, as after a crash
    """)
    subprocess.run([sys.executable, "-c", crash], env=_env(tmp_path / "data"), check=True, timeout=60)
    assert (tmp_path / "data" / LOCK_NAME).is_file()
    lock, why = lock_instance(tmp_path / "data")
    assert lock is not None, why
    lock.unlock()


def test_main_refuses_a_second_start_on_the_same_library(tmp_path):
    from app.instance_lock import lock_instance

    held, _ = lock_instance(tmp_path / "data")
    assert held is not None
    second = textwrap.dedent("""
        import sys
        from PySide6.QtWidgets import QMessageBox
        QMessageBox.critical = staticmethod(lambda parent, title, text, *a: print("BOX:", text))
        import app.__main__ as m
        sys.exit(m.main([]))
    """)
    try:
        run = subprocess.run([sys.executable, "-c", second], env=_env(tmp_path / "data"), capture_output=True,
                             text=True, timeout=60)
    finally:
        held.unlock()
    line = f"Spoken Image Search is already running with this library (PID {os.getpid()})"
    assert run.returncode == 1
    assert line in run.stderr and "BOX: " + line in run.stdout
