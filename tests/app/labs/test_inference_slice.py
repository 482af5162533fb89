"""The Inference lab for a latent space of more than two dimensions: a slice through the posterior, a d-dimensional q
dragged in it, log p(x) by AIS (issue 15). The maths is tested in tests/lvm/test_posterior_slice.py and test_ais.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint  # noqa: E402

from tests.app.labs.test_inference_lab import drag, viewport_point  # noqa: E402


@pytest.fixture
def vae5():
    from lvm.models.vae import VAE

    torch.manual_seed(0)
    return VAE(data_dim=784, latent_dim=5, hidden=(64,), decoder="bernoulli").eval()


@pytest.fixture
def sliced_lab(qtbot, vae5):
    from app.core.workers import TaskRunner
    from app.core.workspace import Workspace
    from app.labs.inference.view import InferenceLab
    from lvm.data import load_dataset

    ws = Workspace(device="cpu")
    runner = TaskRunner()
    ws.set_dataset(load_dataset("digits"), "digits")
    ws.set_model(vae5)
    lab = InferenceLab(ws, runner)
    lab.reference_options = {"vi_steps": 100, "chains": 8, "steps": 200}
    qtbot.addWidget(lab)
    lab.resize(1280, 760)
    lab.show()
    lab.activate()
    qtbot.waitUntil(lambda: lab.reference is not None and lab.reference.stage == "done", timeout=60000)
    yield lab
    runner.shutdown(10000)


def test_a_5d_model_gets_the_slice_panel_with_log_px_by_ais_and_a_draggable_q(sliced_lab, qtbot):
    from lvm.estimators.ais import ais

    lab = sliced_lab
    tabs = lab.tabs
    assert tabs.isTabVisible(tabs.indexOf(lab.slice)) and not tabs.isTabVisible(tabs.indexOf(lab.kl))
    assert tabs.currentWidget() is lab.slice  # (the KL explorer's place)
    panel = lab.slice
    ref = lab.reference
    assert "AIS estimate ±" in panel.bar.label.text() and "AIS estimate" in panel.info.text()
    assert panel.bar.log_px == pytest.approx(ref.log_px)
    # an independent AIS run from the prior agrees with the lab's (from q*) within their errors
    x = torch.as_tensor(lab.workspace.selected_x, dtype=torch.float32)[None]
    other = ais(lab.workspace.model, x, chains=16, steps=500, seed=7)
    assert abs(float(other.log_px[0]) - ref.log_px) < 4 * (float(other.stderr[0]) + ref.log_px_se) + 0.05
    qtbot.waitUntil(lambda: panel.img.image is not None, timeout=10000)  # the slice is drawn
    assert panel.plot.getAxis("bottom").labelText == "principal axis 1"
    # drag q's ellipse: its mean moves in the plane, q stays 5-D, and the readout keeps log p = ELBO + KL
    panel.set_best()
    mean0, elbo0 = panel.mean.copy(), panel.elbo
    assert mean0.shape == (5,)
    a0 = panel.plane.coordinates(mean0)
    start = viewport_point(panel.plot, *a0)
    drag(panel.plot.viewport(), start, start + QPoint(40, -25))
    qtbot.waitUntil(lambda: not np.allclose(panel.mean, mean0), timeout=3000)
    moved = panel.plane.coordinates(panel.mean) - a0
    assert moved[0] > 0 and moved[1] > 0
    np.testing.assert_allclose(panel.plane.complement.T @ (panel.mean - mean0), 0.0, atol=1e-9)  # only in-plane
    assert panel.elbo < elbo0 + 4 * panel.elbo_se  # q* was (near) the best Gaussian
    assert panel.bar.elbo + panel.bar.kl == pytest.approx(panel.bar.log_px)
    assert panel.update_ms and min(panel.update_ms) < 200


def test_choosing_two_axes_shows_that_plane_and_a_new_x_starts_again(sliced_lab, qtbot):
    lab = sliced_lab
    panel = lab.slice
    panel.plane_choice.setCurrentIndex(1)
    panel.axis_i.setValue(2)
    panel.axis_j.setValue(4)
    assert panel.plane.axes == (1, 3)
    assert panel.plot.getAxis("left").labelText == "z4"
    ws = lab.workspace
    ws.select(5)
    assert lab.reference is None and panel.img.image is None  # nothing of the old x is shown
    qtbot.waitUntil(lambda: lab.reference is not None and lab.reference.index == 5, timeout=60000)


def test_the_estimator_panels_converge_to_the_ais_value(sliced_lab, qtbot):
    lab = sliced_lab
    lab.state.convergence.kmax = 200
    lab.state.convergence.repeats = 2
    lab.set_panel("convergence")
    panel = lab.convergence
    qtbot.waitUntil(lambda: panel.snapshot is not None and panel.snapshot.done == 2, timeout=30000)
    legend = panel.plot.getPlotItem().legend.getLabel(panel.exact_line)
    assert "AIS estimate" in legend.text
    assert panel.log_px == pytest.approx(lab.reference.log_px)
    lab.set_panel("scatter")
    lab.scatter.run()
    assert "5-D" in lab.scatter.status.text()
