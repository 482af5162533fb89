"""The Inference lab: the KL gap explorer (real mouse drags of the q ellipse), buttons, best-Gaussian optimisation,
the scatter's click-to-select, estimator convergence, Jensen, the 1-D picture, and the maths behind them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.views.inference_compute import (LatentContext, encoder_q, params_to_tril, posterior_picture,  # noqa: E402
                                         tril_to_params)
from app.widgets.gaussian_ellipse_roi import gaussian_to_roi_state, roi_state_to_gaussian  # noqa: E402

N_DATA = 300


@pytest.fixture(scope="module")
def small_data():
    from lvm.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def lab(qtbot, tiny_vae, small_data):
    from app.state import Workspace
    from app.views.inference import InferenceLab
    from app.workers import TaskRunner

    ws = Workspace(device="cpu")
    runner = TaskRunner()
    ws.set_dataset(small_data, "digits")
    ws.set_model(tiny_vae)
    lab = InferenceLab(ws, runner)
    qtbot.addWidget(lab)
    lab.resize(1300, 820)
    lab.show()
    lab.activate()
    qtbot.waitUntil(lambda: lab.picture is not None, timeout=60000)
    yield lab
    runner.shutdown(10000)


def viewport_point(plot_widget, x: float, y: float) -> QPoint:
    scene = plot_widget.getViewBox().mapViewToScene(QPointF(x, y))
    return plot_widget.mapFromScene(scene)


def drag(widget, start: QPoint, end: QPoint, steps: int = 8) -> None:
    """A real left-button drag on ``widget`` (a plot's viewport): press, moves with the button held, release."""
    QTest.mousePress(widget, Qt.LeftButton, Qt.NoModifier, start)
    for i in range(1, steps + 1):
        p = start + (end - start) * (i / steps)
        ev = QMouseEvent(QEvent.MouseMove, QPointF(p), QPointF(widget.mapToGlobal(p)), Qt.NoButton, Qt.LeftButton,
                         Qt.NoModifier)
        QApplication.sendEvent(widget, ev)
        QTest.qWait(5)
    QTest.mouseRelease(widget, Qt.LeftButton, Qt.NoModifier, end)


# -- maths -------------------------------------------------------------------------------------------------------------
def test_gaussian_roi_geometry_roundtrip():
    mean = np.array([0.3, -1.2])
    cov = np.array([[0.5, 0.2], [0.2, 0.3]])
    st = gaussian_to_roi_state(mean, cov, 2.0)
    m2, c2 = roi_state_to_gaussian(st["pos"], st["size"], st["angle"], 2.0)
    np.testing.assert_allclose(m2, mean, atol=1e-12)
    np.testing.assert_allclose(c2, cov, atol=1e-12)
    m, L = params_to_tril(0.1, 0.2, 0.3, 0.4, -0.5)
    np.testing.assert_allclose(tril_to_params(m, L), (0.1, 0.2, 0.3, 0.4, -0.5), atol=1e-12)


def test_posterior_picture_matches_dense_quadrature(tiny_vae, small_data):
    from lvm.estimators import LatentGrid, log_marginal

    ctx = LatentContext.build(tiny_vae, small_data.split().x[:200], size=64)
    x = small_data.split().x[5]
    pic = posterior_picture(ctx, x, 5)
    dense = log_marginal(LatentGrid.build(tiny_vae, size=256, box=torch.as_tensor(ctx.box)), torch.as_tensor(x)[None])
    assert abs(pic.log_px - float(dense[0])) < 1e-3
    assert pic.levels[0] > pic.levels[1] > pic.levels[2] > 0


# -- the KL gap explorer -----------------------------------------------------------------------------------------------
def test_drag_ellipse_changes_mu_and_readout(lab, qtbot):
    from lvm.estimators import LatentGrid, kl_q_posterior

    kl = lab.kl
    assert lab.workspace.selected_index == 0
    mean0, elbo0 = kl.mean.copy(), kl.bar.elbo
    plot = kl.plot
    start = viewport_point(plot, *mean0)
    end = start + QPoint(45, -30)
    drag(plot.viewport(), start, end)
    qtbot.waitUntil(lambda: not np.allclose(kl.mean, mean0), timeout=3000)
    moved = kl.mean - mean0
    assert moved[0] > 0 and moved[1] > 0  # right and up on screen
    assert kl.bar.elbo != pytest.approx(elbo0)
    np.testing.assert_allclose(lab.workspace.q.mean, kl.mean)
    assert kl.fields["mu1"].value() == pytest.approx(kl.mean[0], abs=1e-4)
    # the readout's identity, and its KL against direct quadrature of q log(q / p(z|x))
    bar = kl.bar
    assert bar.elbo + bar.kl == pytest.approx(bar.log_px, abs=1e-3)
    assert bar.log_px == pytest.approx(lab.picture.log_px)
    q = torch.distributions.MultivariateNormal(torch.tensor(kl.mean, dtype=torch.float32),
                                               scale_tril=torch.tensor(kl.tril, dtype=torch.float32))
    grid = LatentGrid.build(lab.workspace.model, size=256, box=torch.tensor([[-6.0, 6.0], [-6.0, 6.0]]))
    direct = float(kl_q_posterior(grid, torch.as_tensor(lab.workspace.selected_x)[None], q)[0])
    assert direct == pytest.approx(bar.kl, abs=0.05)
    assert kl.update_ms, "update times are recorded"


def test_drag_handle_scales(lab, qtbot):
    kl = lab.kl
    kl.set_q(kl.mean, np.diag([0.5, 0.3]))
    kl.fit_view()
    QTest.qWait(50)
    h = kl.roi.getHandles()[0]  # the axis-1 handle at one end of the major (z1) axis
    start = kl.plot.mapFromScene(h.mapToScene(QPointF(0, 0)))
    centre = viewport_point(kl.plot, *kl.mean)
    out = start - centre
    drag(kl.plot.viewport(), start, start + QPoint(int(out.x() * 0.4), int(out.y() * 0.4)))
    qtbot.waitUntil(lambda: tril_to_params(kl.mean, kl.tril)[2] > 0.5 * 1.1, timeout=3000)
    assert tril_to_params(kl.mean, kl.tril)[3] == pytest.approx(0.3, rel=0.05)  # the other axis kept its scale


def test_buttons_set_q(lab):
    kl, ws = lab.kl, lab.workspace
    kl.prior_button.click()
    np.testing.assert_allclose(ws.q.mean, [0, 0])
    np.testing.assert_allclose(ws.q.scale_tril, np.eye(2))
    kl.enc_button.click()
    m, L = encoder_q(ws.model, ws.selected_x)
    np.testing.assert_allclose(ws.q.mean, m, atol=1e-6)
    np.testing.assert_allclose(ws.q.scale_tril, L, atol=1e-6)
    kl.fields["mu1"].setValue(0.25)
    assert ws.q.mean[0] == pytest.approx(0.25)


def test_best_gaussian_raises_elbo_and_can_be_cancelled(lab, qtbot):
    kl = lab.kl
    kl.prior_button.click()
    elbo_prior = kl.bar.elbo
    kl.optimise(steps=60, lr=0.1)
    assert kl.is_optimising()
    qtbot.waitUntil(lambda: not kl.is_optimising(), timeout=60000)
    assert kl.bar.elbo > elbo_prior + 1e-3
    assert kl.bar.kl >= -1e-3
    # cancel: the button stops a running optimisation
    kl.prior_button.click()
    kl.best_button.click()
    assert kl.is_optimising()
    kl.best_button.click()
    qtbot.waitUntil(lambda: not kl.is_optimising(), timeout=10000)
    assert kl.best_button.text().startswith("q = best Gaussian")


def test_selection_refreshes_picture(lab, qtbot):
    ws = lab.workspace
    ws.select(7)
    assert lab.picture is None
    qtbot.waitUntil(lambda: lab.picture is not None and lab.picture.index == 7, timeout=20000)
    assert lab.refresh_ms
    m, _ = encoder_q(ws.model, ws.selected_x)
    np.testing.assert_allclose(lab.kl.mean, m, atol=1e-6)


# -- other panels ------------------------------------------------------------------------------------------------------
def test_scatter_click_selects(lab, qtbot):
    sc = lab.scatter
    sc.n.setValue(25)
    lab.set_panel("scatter")
    qtbot.waitUntil(lambda: sc.snap is not None and sc.snap.done == 25, timeout=60000)
    assert np.all(sc.snap.elbo <= sc.snap.log_px + 1e-2)
    sc.plot.getViewBox().autoRange()
    QTest.qWait(50)
    target = int(sc.snap.indices[len(sc.snap.indices) // 2])
    assert target != lab.workspace.selected_index
    pt = viewport_point(sc.plot, *sc.point_position(target))
    QTest.mouseClick(sc.plot.viewport(), Qt.LeftButton, Qt.NoModifier, pt)
    qtbot.waitUntil(lambda: lab.workspace.selected_index == target, timeout=3000)
    assert len(sc.sel.data) == 1


def test_convergence_panel_computes_and_shows_lines(lab, qtbot, tmp_path):
    cp = lab.convergence
    cp.kmax.setValue(200)
    cp.repeats.setValue(3)
    lab.set_panel("convergence")
    qtbot.waitUntil(lambda: cp.snapshot is not None and cp.snapshot.done == 3, timeout=60000)
    ks = cp.ks()
    assert ks[-1] == 200
    for name, curve in cp.curves.items():
        x, y = curve.getData()
        assert len(x) == len(ks) and np.all(np.isfinite(y))
    _, y = cp.exact_line.getData()
    assert y[0] == pytest.approx(lab.picture.log_px)
    iw = cp.snapshot.stats["iwae"][0]
    assert iw[-1] >= iw[0] - 1e-6  # L_k rises with k
    assert iw[-1] <= lab.picture.log_px + 0.5
    assert "seed 0" in cp.status.text()
    path = tmp_path / "lk.csv"
    lab.export_csv(str(path))
    assert path.read_text().startswith("estimator,k,")


def test_jensen_panel(lab, qtbot):
    jp = lab.jensen
    jp.repeats.setValue(300)
    jp.k.setValue(3)
    lab.set_panel("jensen")
    qtbot.waitUntil(lambda: jp.values is not None, timeout=60000)
    d = jp.values - jp.log_px
    assert d.mean() < 0  # Jensen: E log p_hat <= log p(x)
    assert "mean p<sub>est</sub>/p(x)" in jp.status.text()


def test_onedim_presets_and_mode_seeking(lab, qtbot):
    od = lab.onedim
    od.param_combo.setCurrentIndex(0)
    od.apply_preset(1)
    assert od.mu == pytest.approx(-4.0) and od.sigma == pytest.approx(math.sqrt(0.75))
    e, k = od.elbo_kl(od.mu, od.sigma)
    assert e + k == pytest.approx(od.post.log_px)
    assert k > 0
    od.optimise(steps=150, lr=0.1)
    qtbot.waitUntil(lambda: not od.is_optimising(), timeout=60000)
    mode = float(od.post.z[np.argmax(np.where(od.post.z < 0, od.post.density, 0))])
    assert od.mu < 0 and abs(od.mu - mode) < 0.6  # locked onto the left mode
    assert od.elbo_kl(od.mu, od.sigma)[1] < k


def test_view_state_and_screenshot(lab, qtbot):
    lab.set_panel("onedim")
    st = lab.view_state()
    assert st["panel"] == "onedim"
    lab.set_panel("kl")
    lab.restore_view_state(st)
    assert lab.current_panel_name() == "onedim"
    lab.restore_view_state({"panel": 3, "jensen": {"k": "x"}})  # tolerates junk
    lab.set_panel("kl")
    QTest.qWait(50)
    img = lab.grab().toImage()
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    assert len(colours) > 50
