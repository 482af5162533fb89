"""Every save is atomic: a session or checkpoint save killed midway (SIGKILL) leaves the previous file intact.

A child process saves over an existing file with its writes slowed down (half the bytes written, then it hangs, or
all written and it hangs in fsync before the rename); the parent kills it with SIGKILL at that moment and checks that
the target still holds the previous, loadable content and that the only thing left besides it is the hidden
``.NAME.*.tmp`` temporary file of the killed write (never a half-written target, never other litter).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import os, pathlib, sys, time
    kind, stage, target = sys.argv[1], sys.argv[2], sys.argv[3]

    def hang():
        print("HANGING", flush=True)
        time.sleep(600)

    if stage == "write":
        real = pathlib.Path.write_bytes
        def slow_write(self, data):
            with open(self, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
                os.fsync(fh.fileno())
            hang()
        pathlib.Path.write_bytes = slow_write
    else:
        os.fsync = lambda fd: hang()

    if kind == "session":
        from app.core.workspace import Workspace
        ws = Workspace(device="cpu")
        ws.dataset_spec, ws.split, ws.current_view = "moons", "train", "mixture"
        ws.seeds["global"] = 99
        ws.save_session(target)
    else:
        import torch
        from lvm.checkpoint import save_model
        from lvm.models.vae import VAE
        torch.manual_seed(1)
        save_model(VAE(data_dim=16, latent_dim=2, hidden=(32,), image_shape=(4, 4)), target, {"new": True})
    print("SAVED", flush=True)
""")


def _previous(kind: str, path: Path) -> None:
    if kind == "session":
        from app.core.workspace import Workspace

        ws = Workspace(device="cpu")
        ws.dataset_spec, ws.split, ws.current_view = "digits", "test", "latent"
        ws.save_session(path)
    else:
        import torch

        from lvm.checkpoint import save_model
        from lvm.models.vae import VAE

        torch.manual_seed(0)
        save_model(VAE(data_dim=16, latent_dim=2, hidden=(8,), image_shape=(4, 4)), path, {"old": True})


def _check_loads(kind: str, path: Path) -> None:
    if kind == "session":
        from app.core.workspace import read_session

        assert read_session(path)["dataset"] == "digits"
    else:
        from lvm.checkpoint import load_model

        model, info = load_model(path)
        assert info == {"old": True} and model.config.hidden == (8,)


@pytest.mark.parametrize("stage", ["write", "fsync"])
@pytest.mark.parametrize("kind", ["session", "checkpoint"])
def test_save_killed_midway_keeps_the_previous_file(tmp_path, kind, stage):
    target = tmp_path / ("lesson.lvmsession" if kind == "session" else "model.safetensors")
    _previous(kind, target)
    before = target.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, stage, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if line.strip() in ("HANGING", "SAVED") or not line:
                break
        assert line.strip() == "HANGING", f"the child did not reach the slow write: {line!r} {child.stderr.read()}"
        temps = [p for p in tmp_path.iterdir() if p != target]
        assert len(temps) == 1 and temps[0].name.startswith(f".{target.name}.") and temps[0].suffix == ".tmp"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == before, "the previous file was changed by a killed save"
    _check_loads(kind, target)
    left = sorted(p.name for p in tmp_path.iterdir() if p != target)
    assert len(left) == 1 and left[0].startswith(f".{target.name}.") and left[0].endswith(".tmp"), left
    # the next save goes through and leaves no further litter
    _previous(kind, target)
    _check_loads(kind, target)
    assert sorted(p.name for p in tmp_path.iterdir() if p != target) == left
