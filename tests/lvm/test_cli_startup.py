"""The command line answers --help and argument errors without importing torch (issue 19: <= 0.3 s)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lvm.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from lvm.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # argparse: --help exits 0, a bad argument exits 2
    code = exc.code
heavy = sorted(m for m in ("torch", "PySide6", "pyqtgraph", "scipy", "sklearn") if m in sys.modules)
print("HEAVY", ",".join(heavy) or "none")
sys.exit(code)
"""


def _probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        *((name, "--help") for name in COMMANDS),
        ("eval", "--no-such-flag"),
        ("train-vae", "--epochs", "many"),
        ("nonsense",),
    ],
)
def test_help_and_argument_errors_import_no_torch(args):
    out = _probe(*args)
    assert out.returncode in (0, 2), out.stderr[-2000:]
    assert "HEAVY none" in out.stdout, f"{args}: {out.stdout.splitlines()[-1]}"


def test_literals_kept_for_fast_parsing_match_the_library():
    from lvm.cli import inpaint, train_vae
    from lvm.inpainting.posterior import DEFAULT_SIZE
    from lvm.models.vae import ACTIVATIONS

    assert inpaint.DEFAULT_SIZE == DEFAULT_SIZE
    assert train_vae.ACTIVATION_NAMES == tuple(sorted(ACTIVATIONS))
