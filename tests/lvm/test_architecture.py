"""The library is Qt-free: nothing under lvm/ imports PySide6, pyqtgraph or app (import-linter contract)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("PySide6", "pyqtgraph", "shiboken6", "app")


def test_lvm_sources_import_no_qt_or_app():
    offenders = []
    for path in (REPO / "lvm").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_importing_lvm_loads_no_qt():
    code = (
        "import sys, lvm, lvm.data, lvm.models, lvm.estimators, lvm.inpainting, lvm.cli, lvm.checkpoint, "
        "lvm.training; bad=[m for m in sys.modules if m.split('.')[0] in ('PySide6','pyqtgraph','app')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_import_linter_contract():
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.skip("import-linter not installed")
    out = subprocess.run(
        [str(lint), "--config", str(REPO / "pyproject.toml")], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
