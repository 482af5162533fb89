"""The app on a real X server (Xvfb, Qt's xcb plugin): seeded random input from xdotool, then Ctrl+Q quits cleanly.

``packaging/xvfb_monkey.sh`` does the work (see its header); this runs it with 400 events and skips where Xvfb or
xdotool is missing (``.ci/run`` installs both). A longer run: ``bash packaging/xvfb_monkey.sh 3000 7``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")), reason="needs Xvfb and xdotool")
@pytest.mark.timeout(420)
def test_random_input_on_xvfb_then_ctrl_q_quits_with_exit_code_0():
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY")}
    env["PYTHON"] = sys.executable
    out = subprocess.run(
        ["bash", str(REPO / "packaging" / "xvfb_monkey.sh"), "400", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    if out.returncode == 77:
        pytest.skip(out.stdout.strip())
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "ok: 400 random events" in out.stdout
