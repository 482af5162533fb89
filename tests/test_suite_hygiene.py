"""The suite itself: it cannot hang, it never touches the user's settings, and it can run on a loaded machine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG_DIR = Path(os.environ["XDG_CONFIG_HOME"])  # set by tests/conftest.py, a fresh folder per run


def test_the_app_settings_are_the_runs_own_file(qapp):
    assert TEST_CONFIG_DIR.name.startswith("lvm-test-config-")
    from PySide6.QtCore import QSettings

    from app.core.settings import app_settings

    assert Path(app_settings().fileName()).is_relative_to(TEST_CONFIG_DIR)
    # and what would be the user's file (no LVM_EXPLORER_SETTINGS) lies under this run's XDG_CONFIG_HOME too
    native = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "LVM Explorer", "lvm-explorer")
    assert Path(native.fileName()).is_relative_to(TEST_CONFIG_DIR)


def test_a_test_hung_inside_the_qt_event_loop_is_ended_with_its_stack(tmp_path):
    """pytest-timeout's thread method (pyproject.toml) fires inside ``app.exec()``: the run ends, printing where."""
    hung = tmp_path / "test_hangs.py"
    hung.write_text(
        textwrap.dedent("""
        def test_forever(qapp):
            qapp.exec()  # nothing ever quits this loop
    """)
    )
    start = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(hung),
            "-q",
            "-p",
            "no:cacheprovider",
            "--timeout",
            "3",
            "-c",
            str(REPO / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode != 0
    assert time.monotonic() - start < 90
    text = out.stdout + out.stderr
    assert "Timeout" in text and "test_forever" in text and "exec" in text, text[-3000:]


def test_load_mode_runs_busy_processes_beside_the_suite():
    """``LVM_TEST_LOAD=2`` starts two busy loops for the run (checked from inside a run started that way)."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_suite_hygiene.py", "-q", "-k", "reports_load"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "LVM_TEST_LOAD": "2", "LVM_TEST_EXPECT_LOAD": "2"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "1 passed" in out.stdout and "2 busy-loop processes" in out.stdout


@pytest.mark.skipif("LVM_TEST_EXPECT_LOAD" not in os.environ, reason="run by test_load_mode_runs_busy_processes")
def test_reports_load():
    pids = [int(pid) for pid in os.environ.get("LVM_TEST_LOAD_PIDS", "").split()]
    assert len(pids) == int(os.environ["LVM_TEST_EXPECT_LOAD"])
    for pid in pids:
        os.kill(pid, 0)  # alive (raises ProcessLookupError otherwise)
        assert Path(f"/proc/{pid}/stat").read_text().split()[2] in "RS"
