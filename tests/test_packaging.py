"""Packaging: the icon, the .desktop entry, resource lookup (checkout, wheel, PyInstaller bundle) and the wheel.

The bundle itself is built and run by ``packaging/check.sh`` (minutes; not part of pytest).
"""

from __future__ import annotations

import configparser
import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ICONS = REPO / "resources" / "icons"
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)


def test_icon_svg_and_pngs():
    from PySide6.QtGui import QImage
    from PySide6.QtSvg import QSvgRenderer

    assert QSvgRenderer(str(ICONS / "lvm-explorer.svg")).isValid()
    for size in ICON_SIZES:
        img = QImage(str(ICONS / f"lvm-explorer-{size}.png"))
        assert (img.width(), img.height()) == (size, size), size
        assert img.hasAlphaChannel()


def test_main_window_has_the_icon(qtbot):
    from app.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    assert not window.windowIcon().isNull()


def test_desktop_entry():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(REPO / "packaging" / "lvm-explorer.desktop")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Name"] == "LVM Explorer"
    assert d["Exec"].split()[0] == "lvm-explorer" and d["Icon"] == "lvm-explorer"
    assert set(d["Categories"].rstrip(";").split(";")) >= {"Education", "Science"}
    assert d["Terminal"] == "false"


def test_resources_dir_in_checkout_and_in_a_bundle(monkeypatch, tmp_path):
    from app.core import workspace as state
    from lvm.data import datasets
    from lvm.resources import resources_dir

    assert resources_dir() == REPO / "resources"
    assert (resources_dir() / "data" / "t10k-images-idx3-ubyte.gz").is_file()
    assert state.RESOURCES == resources_dir() and datasets.RESOURCE_DATA == resources_dir() / "data"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources_dir() == tmp_path / "resources"


def test_gui_arguments_need_no_torch():
    from app import main
    from lvm import device

    assert main.DEVICE_CHOICES == device.DEVICE_CHOICES
    code = (
        "import sys; from app.main import build_parser; build_parser().parse_args(['--device', 'cpu']); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_spec_carries_resources_and_the_labs():
    text = (REPO / "packaging" / "lvm-explorer.spec").read_text()
    compile(text, "lvm-explorer.spec", "exec")
    assert '"resources"' in text and 'collect_submodules("app")' in text
    for script in ("build.sh", "check.sh"):
        out = subprocess.run(
            ["bash", "-n", str(REPO / "packaging" / script)], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr


def _copy_project(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("app", "lvm", "resources"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dest / name)
    return dest


def _build_wheel(tmp_path: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the project (no stale in-tree build/); offline when setuptools is here."""
    src = _copy_project(tmp_path / "src")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheels"), str(src)]
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        major = 0
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"][0]
    if major >= int(requires.split(">=")[1].split(".")[0]):
        cmd.insert(4, "--no-build-isolation")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "wheels").glob("lvm_explorer-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_contains_resources_and_both_entry_points(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (ep_name,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        ep = configparser.ConfigParser()
        ep.read_string(zf.read(ep_name).decode())
    shipped = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "resources").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert shipped - names == set()  # data, icons, and the pretrained weights in resources/models when present
    assert "resources/data/t10k-images-idx3-ubyte.gz" in names and "resources/icons/lvm-explorer.svg" in names
    assert not any("__pycache__" in n for n in names)
    assert ep["console_scripts"]["lvm"].strip() == "lvm.cli:console_main"
    assert ep["gui_scripts"]["lvm-explorer"].strip() == "app.main:console_main"


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_starts(wheel, tmp_path):
    """A venv without system site-packages: torch 2.13.0 (CPU) first, then the wheel; ``lvm-explorer --smoke``."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, timeout=900)
    subprocess.run([*pip, str(wheel)], check=True, timeout=900)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "QT_QPA_PLATFORM": "offscreen",
        "LVM_EXPLORER_SETTINGS": str(tmp_path / "settings.ini"),
    }
    out = subprocess.run(
        [str(venv / "bin" / "lvm-explorer"), "--smoke"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "smoke ok" in out.stdout and "dataset digits" in out.stdout
    out = subprocess.run([str(venv / "bin" / "lvm"), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
