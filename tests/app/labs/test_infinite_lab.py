"""The infinite mixture lab: real slider input changes the heatmap fast; fits run, report and can be cancelled."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt

from app.core.workers import TaskRunner
from app.core.workspace import Workspace


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def lab(qtbot):
    from app.labs.infinite.view import InfiniteMixtureLab

    runner = TaskRunner()
    view = InfiniteMixtureLab(Workspace(device="cpu"), runner)
    qtbot.addWidget(view)
    view.resize(1300, 820)
    view.show()
    qtbot.waitExposed(view)
    yield view
    view.fits.cancel()
    runner.shutdown(10000)


def test_keyboard_and_mouse_on_a_slider_change_the_heatmap(lab, qtbot):
    slider = lab.sliders[("A", 0, 0)].slider
    before = lab.density.copy()
    a_before = lab.model.theta()["A"][0, 0]
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key_PageUp)
    assert lab.model.theta()["A"][0, 0] == pytest.approx(a_before + 10 * 0.05)
    assert not np.allclose(lab.density, before)
    after_key = lab.density.copy()
    # a mouse click on the groove left of the handle pages the value down
    from PySide6.QtWidgets import QStyle, QStyleOptionSlider

    opt = QStyleOptionSlider()
    slider.initStyleOption(opt)
    handle = slider.style().subControlRect(
        QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, slider
    )
    assert handle.left() > 4, f"the handle {handle} leaves no groove to click on its left (slider {slider.size()})"
    at = QPoint(handle.left() // 2, slider.height() // 2)
    qtbot.mouseRelease(slider, Qt.LeftButton, pos=at)  # (QTest's button state: an earlier test may have left it down)
    qtbot.mouseClick(slider, Qt.LeftButton, pos=at)
    assert lab.model.theta()["A"][0, 0] < a_before + 0.5
    assert not np.allclose(lab.density, after_key)
    assert lab.sliders[("A", 0, 0)].spin.value() == pytest.approx(lab.model.theta()["A"][0, 0])


@pytest.mark.parametrize("dz", [1, 2])
def test_slider_redraw_time(lab, qtbot, dz):
    lab.set_latent_dim(dz)
    slider = lab.sliders[("c", 1)].slider
    slider.setFocus()
    times = []
    lab.redraw_times = []
    for i in range(30):
        before = lab.density.copy()
        t0 = time.perf_counter()
        qtbot.keyClick(slider, Qt.Key_Right if i % 2 else Qt.Key_Left)
        lab.plot.repaint()
        times.append((time.perf_counter() - t0) * 1000)
        # each key step redraws the density once, at once (no timer, no worker to wait for), and it changed
        assert len(lab.redraw_times) == i + 1
        assert not np.array_equal(lab.density, before)
    med = float(np.median(times))
    # the time is printed for the record, not asserted (a loaded machine is slower): ``lvm bench gui`` measures it
    print(
        f"\nslider redraw ({dz}-D z, {lab.n_z}^{dz} nodes, 100x100 grid): median {med:.1f} ms incl. repaint, "
        f"compute-only median {np.median(lab.redraw_times[-30:]):.1f} ms"
    )


def test_latent_dim_toggle_ranges_and_state_roundtrip(lab, qtbot, tmp_path):
    qtbot.mouseClick(lab.dim_buttons[2], Qt.LeftButton)
    assert lab.latent_dim == 2 and lab.model.A.shape == (2, 2)
    assert lab.sliders[("A", 0, 1)].isVisibleTo(lab)
    lab.sliders[("B", 1, 1)].set_value(1.25, emit=True)
    lab.range_combo.setCurrentIndex(lab.range_combo.findData("lecture"))
    state = lab.view_state()
    assert state["latent_dim"] == 2 and state["theta"]["B"][1][1] == 1.25 and state["ranges"] == "lecture"
    lab.set_latent_dim(1)
    lab.restore_view_state(state)
    assert lab.latent_dim == 2 and lab.model.theta()["B"][1, 1] == 1.25
    lab.restore_view_state({"latent_dim": 7, "theta": "junk", "show": 3})  # tolerated
    path = tmp_path / "density.csv"
    lab.export_csv(str(path))
    rows = path.read_text().splitlines()
    assert rows[0] == "x1,x2,density" and len(rows) == 1 + 100 * 100


def test_fit_can_be_cancelled(lab, qtbot):
    cell = lab.fits.cells["exact"]
    qtbot.mouseClick(lab.fits.buttons["exact"], Qt.LeftButton)
    assert lab.is_busy() and lab.fits.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: cell.progress.value() > 0, timeout=60000)
    qtbot.mouseClick(lab.fits.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=30000)
    assert cell.result is None and "cancelled" in cell.figures.text()
    assert not lab.fits.cancel_button.isEnabled()


def test_fits_report_exact_log_likelihoods(lab, qtbot, monkeypatch):
    import app.labs.infinite.state as fits_module
    from lvm.density_fits import fit_elbo, fit_exact

    monkeypatch.setattr(fits_module, "fit_exact", functools.partial(fit_exact, steps=40, report_every=10))
    monkeypatch.setattr(fits_module, "fit_elbo", functools.partial(fit_elbo, steps=40, report_every=10))
    methods = ["exact", "elbo"]
    try:
        from lvm.models import GaussianMixture  # noqa: F401

        methods.append("gmm")
    except ImportError:
        pass
    lab.fits.start(methods)
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=120000)
    for m in methods:
        r = lab.fits.cells[m].result
        assert r is not None and r.done and np.isfinite(r.train_log_lik) and np.isfinite(r.test_log_lik), m
        assert lab.fits.cells[m].plot.density is not None
    assert lab.fits.use_button.isEnabled()
    qtbot.mouseClick(lab.fits.use_button, Qt.LeftButton)
    assert lab.range_preset == "fitted"
    np.testing.assert_allclose(lab.model.theta()["A"], lab.fits.cells["exact"].result.theta["A"])


def test_every_random_draw_shows_its_seed_and_takes_a_new_one(lab, qtbot):
    """Issue 19: the samples (dots) and the toy data / fits drew random numbers without showing a seed. The samples'
    seed is shown beside them and in the legend; typing another one redraws the dots. The fit panel's seed draws
    the data (train: seed, test: seed + 1) and seeds the fits; typing another one draws other data."""
    from lvm.density_fits import train_test_toy

    lab.fits.cancel()
    spin = lab.sample_seed
    assert spin.isVisibleTo(lab) and spin.value() == lab.workspace.seed("infinite") == 0
    assert "samples, seed 0" in lab.legend.text()
    noise = lab.noise_z.copy()
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "7")
    qtbot.keyClick(spin, Qt.Key_Return)
    assert lab.workspace.seed("infinite") == 7 and "samples, seed 7" in lab.legend.text()
    assert not np.array_equal(lab.noise_z, noise)
    expected = np.random.default_rng(7).standard_normal((400, 1))
    np.testing.assert_array_equal(lab.noise_z, expected)

    fits = lab.fits
    fit_seed = fits.seed_spin
    assert fit_seed.isVisibleTo(lab) and fit_seed.value() == 0
    np.testing.assert_array_equal(fits.x_train, train_test_toy("moons", 1000, seed=0)[0])
    fit_seed.setFocus()
    fit_seed.selectAll()
    qtbot.keyClicks(fit_seed, "3")
    qtbot.keyClick(fit_seed, Qt.Key_Return)
    train, test = train_test_toy("moons", 1000, seed=3)
    np.testing.assert_array_equal(fits.x_train, train)
    np.testing.assert_array_equal(fits.x_test, test)
    assert "seed 3" in fits.cells["exact"].figures.text()
    assert lab.view_state()["fits"]["seed"] == 3


def test_the_state_round_trips_through_view_state(lab):
    lab.set_latent_dim(2)
    lab.sliders[("A", 1, 0)].set_value(-1.5, emit=True)
    lab.fits.seed_spin.setValue(11)
    lab.show_boxes["curve"].setChecked(False)
    state = lab.view_state()
    lab.set_latent_dim(1)
    lab.fits.seed_spin.setValue(0)
    lab.show_boxes["curve"].setChecked(True)
    lab.restore_view_state(state)
    assert lab.latent_dim == 2 and lab.model.theta()["A"][1, 0] == -1.5
    assert lab.fits.seed_spin.value() == 11 and not lab.show_boxes["curve"].isChecked()
    assert lab.view_state() == state
