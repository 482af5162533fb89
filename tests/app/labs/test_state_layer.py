"""Every lab's Qt-free layer (its state object, jobs and display rules) imports without Qt, transitively: it runs and
is tested without a display. (import-linter's contract in pyproject.toml checks the direct imports.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
STATE_LAYERS = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts)
    for p in (REPO / "app" / "labs").glob("*/*.py")
    if p.stem in ("state", "engine", "digits_fit", "compute", "images", "display", "readouts", "train_job")
)


def test_every_lab_has_a_state_module():
    labs = {p.name for p in (REPO / "app" / "labs").iterdir() if (p / "__init__.py").exists()}
    assert labs and {m.split(".")[2] for m in STATE_LAYERS if m.endswith(".state")} == labs


@pytest.mark.parametrize("module", STATE_LAYERS)
def test_the_module_loads_no_qt(module):
    code = (
        f"import sys; import {module}; "
        "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'shiboken6'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
