"""File → Open model with a user's Python file: the consent question (once per content), failures keep the current
model, sessions naming a .py model, and ``app.explore`` on a live model without blocking."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def window(qtbot):
    from app.main_window import MainWindow
    from lvm.models.vae import VAE

    w = MainWindow()
    qtbot.addWidget(w)
    torch.manual_seed(0)
    w.workspace.set_model(VAE(data_dim=784, latent_dim=2, hidden=(8,)).eval(), "current.safetensors", {})
    yield w
    w.runner.shutdown(5000)


@pytest.fixture
def answers(monkeypatch):
    """The consent question, answered from a list (True: run it); the files it was asked about are recorded."""
    from app.widgets import code_consent

    state: dict = {"answer": True, "asked": []}

    def ask(parent, path):
        state["asked"].append(Path(path))
        return state["answer"]

    monkeypatch.setattr(code_consent, "ask_to_run_code", ask)
    return state


def unique_copy(tmp_path: Path, example: str) -> Path:
    """The example with a comment naming this test's folder: a content never consented to before."""
    path = tmp_path / example
    path.write_text(f"# {tmp_path}\n" + (EXAMPLES / example).read_text())
    return path


def test_open_model_asks_once_per_content(qtbot, window, answers, tmp_path):
    path = unique_copy(tmp_path, "gaussian_decoder.py")
    with qtbot.waitSignal(window.loading_finished, timeout=30000):
        assert window.open_model(str(path))
    assert answers["asked"] == [path]
    ws = window.workspace
    assert type(ws.model).__name__ == "GaussianDecoder" and ws.model_path == str(path)
    assert "gaussian_decoder.py (latent 2-D, gaussian)" in window.model_label.text()
    with qtbot.waitSignal(window.loading_finished, timeout=30000):
        assert window.open_model(str(path))  # the same content: remembered, not asked again
    assert answers["asked"] == [path]
    path.write_text(path.read_text() + "\n# edited\n")  # another content: asked again
    answers["answer"] = False
    before = ws.model
    assert not window.open_model(str(path))
    assert answers["asked"] == [path, path] and ws.model is before
    assert "was not run" in window.statusBar().currentMessage()


def test_refused_consent_keeps_the_model_and_runs_nothing(window, answers, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "side_effect.py"
    path.write_text(f"open({str(marker)!r}, 'w').close()\n")
    answers["answer"] = False
    before = window.workspace.model
    assert not window.open_model(str(path))
    assert not window.is_loading() and window.workspace.model is before and not marker.exists()


def test_a_checkpoint_is_not_asked_about(qtbot, window, answers, tmp_path):
    from lvm.checkpoint import save_model
    from lvm.models.vae import VAE

    path = tmp_path / "m.safetensors"
    save_model(VAE(data_dim=784, latent_dim=1, hidden=(4,)), path)
    with qtbot.waitSignal(window.loading_finished, timeout=30000):
        window.open_model(str(path))
    assert answers["asked"] == [] and window.workspace.model.latent_dim == 1


@pytest.mark.parametrize(
    "source, expected",
    [
        ("def make_model(:\n    pass\n", "line 1"),
        ("def make_model():\n    return 42\n", "`latent_dim`"),
        ("import torch\n\ndef make_model():\n    raise FileNotFoundError('weights.safetensors')\n", "line 4"),
    ],
    ids=["syntax", "not-a-model", "raises"],
)
def test_a_failing_file_shows_the_error_and_keeps_the_model(qtbot, window, answers, tmp_path, source, expected):
    path = tmp_path / "homework.py"
    path.write_text(source)
    ws = window.workspace
    before = (ws.model, ws.model_path, window.model_label.text())
    with qtbot.waitSignal(window.loading_finished, timeout=30000):
        assert window.open_model(str(path))
    assert (ws.model, ws.model_path, window.model_label.text()) == before
    assert "homework.py" in window.last_error and expected in window.last_error


def _session(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "s.lvmsession"
    path.write_text(json.dumps({"format": "lvm-explorer-session", "version": 2, "dataset": "digits", "model": model}))
    return path


def test_a_session_naming_a_python_model(qtbot, window, answers, tmp_path):
    model_file = unique_copy(tmp_path, "conv_decoder.py")
    ws = window.workspace
    before = ws.model
    answers["answer"] = False  # not agreed: the session is not opened, and says why
    window.open_session(str(_session(tmp_path, "conv_decoder.py:make_model")))
    assert ws.model is before and not window.is_loading()
    assert "conv_decoder.py" in window.last_error and "did not agree" in window.last_error
    answers["answer"] = True  # agreed (and remembered): the file beside the session loads, with its factory
    with qtbot.waitSignal(window.loading_finished, timeout=60000):
        window.open_session(str(_session(tmp_path, "conv_decoder.py:make_model")))
    assert type(ws.model).__name__ == "ConvVAE" and ws.model_path == f"{model_file}:make_model"
    asked = len(answers["asked"])
    with qtbot.waitSignal(window.loading_finished, timeout=60000):
        window.open_session(str(_session(tmp_path, "conv_decoder.py:make_model")))
    assert len(answers["asked"]) == asked  # the content was agreed to before: not asked again


class _Shell:
    active_eventloop = "qt"


def test_explore_returns_at_once_where_ipython_runs_qt(qtbot, monkeypatch):
    from app import explore

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: _Shell()))
    import importlib.util

    spec = importlib.util.spec_from_file_location("explore_example", EXAMPLES / "gaussian_decoder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.make_model()
    data = np.random.default_rng(0).random((50, 784), dtype=np.float32)
    window = explore(model, data, view="mixture")
    qtbot.addWidget(window)
    assert window.isVisible() and window.workspace.model is model
    assert window.workspace.data.x.shape == (50, 784)
    assert "GaussianDecoder (from Python)" in window.model_label.text()
    losses, model_data = window.session_losses()
    assert model_data is None and any("from Python" in text for text in losses)
    window.runner.shutdown(5000)


def test_explore_blocks_without_an_event_loop_and_checks_its_input(qtbot, monkeypatch):
    from PySide6.QtWidgets import QApplication

    from app import explore
    from lvm.errors import DatasetError, ModelInputError

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    with pytest.raises(ModelInputError, match="log_likelihood"):
        explore(object())
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ModelInputError, match="not a latent model"):
        explore(model)
    from lvm.models.linear_gaussian import LinearGaussianModel

    lg = LinearGaussianModel.random(data_dim=4, latent_dim=2, dtype=torch.float32)
    with pytest.raises(DatasetError, match="NaN"):
        explore(lg, np.full((3, 4), np.nan))
    with pytest.raises(ModelInputError, match="data_dim = 4"):
        explore(lg, np.zeros((3, 5)))
    from app.main_window import MainWindow

    shown = []

    def fake_exec(self):  # the blocking call: which main windows are shown when the loop would run
        shown.append([w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()])
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    window = explore(lg, np.zeros((3, 4), dtype=np.float32), view="mixture")
    qtbot.addWidget(window)
    assert len(shown) == 1 and window in shown[0] and window.workspace.model is lg
    window.runner.shutdown(5000)


def test_a_model_that_is_no_torch_module_stays_on_its_device():
    from app.core.workspace import Workspace
    from lvm.errors import ModelInputError
    from lvm.models.linear_gaussian import LinearGaussianModel

    ws = Workspace(device="cpu")
    ws.set_model(LinearGaussianModel.random(data_dim=3, latent_dim=2), None, {"source": "explore"})
    ws.set_device("auto" if not torch.cuda.is_available() else "cpu")  # the same device: nothing to move
    if torch.cuda.is_available():
        with pytest.raises(ModelInputError, match="not a torch module"):
            ws.set_device("cuda")
        assert ws.device.type == "cpu"


@pytest.mark.slow
def test_lvm_explorer_opens_a_python_model_named_on_the_command_line(tmp_path):
    """`lvm-explorer --model FILE.py` is consent: no question, the model loads (a subprocess, offscreen)."""
    import os
    import subprocess

    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "LVM_EXPLORER_SETTINGS": str(tmp_path / "settings.ini"),  # (nothing consented to in it)
    }
    out = subprocess.run(
        [sys.executable, "-m", "app", "--model", str(EXAMPLES / "conv_decoder.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=EXAMPLES.parent,
    )
    assert out.returncode == 0, out.stderr
    assert "smoke ok" in out.stdout and "conv_decoder.py" in out.stdout


def test_file_open_model_offers_python_files(qtbot, window, answers, tmp_path, monkeypatch):
    from app import main_window

    path = unique_copy(tmp_path, "bernoulli_vae.py")
    filters = []

    def choose(parent, title, folder, filter_text):
        filters.append(filter_text)
        return str(path), ""

    monkeypatch.setattr(main_window.QFileDialog, "getOpenFileName", choose)
    monkeypatch.setattr(window, "_remember_dir", lambda p: None)
    with qtbot.waitSignal(window.loading_finished, timeout=30000):
        window._ask_model()
    assert "*.py" in filters[0] and "*.safetensors" in filters[0] and answers["asked"] == [path]
    assert type(window.workspace.model).__name__ == "BernoulliVAE"


def test_the_bundled_10d_model_opens_from_the_file_menu(qtbot, window, answers):
    from lvm.resources import pretrained_model_path

    if not pretrained_model_path("vae10d").exists():
        pytest.skip("the 10-D model is not bundled in this tree")
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    bundled = next(a.menu() for a in file_menu.actions() if a.text() == "Bundled models")
    texts = [a.text() for a in bundled.actions()]
    assert texts == ["2-D latent VAE (exact log p(x) by quadrature)", "10-D latent VAE (log p(x) by AIS)"]
    with qtbot.waitSignal(window.loading_finished, timeout=30000):
        bundled.actions()[1].trigger()
    assert window.workspace.model.latent_dim == 10 and answers["asked"] == []  # a checkpoint runs no code
    assert "latent 10-D" in window.model_label.text()
