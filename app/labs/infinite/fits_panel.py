"""The "finite vs infinite" panel of the infinite mixture lab: the same 2-D data fitted four ways, side by side.

Exact maximum likelihood for the lecture VAE's theta, the ELBO with an amortised encoder, an MLP decoder VAE, and a
K-component Gaussian mixture. Each fit runs in the lab's worker channel ``infinite/fit-<method>``, one after the
other (a queue), with progress and cancel; the densities and exact train/test log-likelihoods land in the cells.
The panel's seed (shown beside the data) draws the toy data and seeds every fit (``app.labs.infinite.state``).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.blas import single_thread_blas
from app.labs.infinite.state import K_RANGE, METHODS, SEED_RANGE, FitSettings, fit_figures, fit_job
from app.widgets.density_plot import DensityPlot
from app.widgets.flow_layout import flow, group
from lvm.data.toy import TOY_SETS
from lvm.density_fits import FitSnapshot, train_test_toy
from lvm.models.lecture_vae import LectureVAE, OutputRanges, density_on_grid

TITLES = {
    "exact": "Lecture VAE, exact max-likelihood",
    "elbo": "Lecture VAE, ELBO (amortised q)",
    "gmm": "Finite mixture: GMM, K = {k}",
    "mlp": "VAE with MLP μθ, Σθ (2-D z)",
}
LECTURE_POINT = (
    "A finite mixture adds K Gaussians; the VAE adds infinitely many, one per z, whose means and "
    "covariances move smoothly with z: even though p(x|z) is simple, p(x) is very complex."
)
GRID_N = 80


class FitCell(QWidget):
    """Title, density heatmap (with the training points), progress bar and the exact log-likelihoods."""

    def __init__(self, method: str, parent=None):
        super().__init__(parent)
        self.method = method
        self.title = QLabel()
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        self.plot = DensityPlot(point_size=2, point_color=(217, 95, 2, 110))
        self.plot.setMinimumSize(120, 90)  # (at 1280 x 720 the cells get about 190 px: the text must not overlap it)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(6)
        self.figures = QLabel("not fitted yet")
        self.figures.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.figures.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.figures)
        self.result: FitSnapshot | None = None
        self.model_info: tuple[OutputRanges, int] | None = None  # (ranges, latent_dim) of a lecture-model fit

    def set_title(self, text: str) -> None:
        self.title.setText(f"<b>{text}</b>")


class FitComparison(QWidget):
    """Dataset and K controls, fit buttons, and the 4 cells. ``theta_fitted(theta, ranges, latent_dim)`` is emitted
    when the user asks to load the exact fit into the sliders."""

    theta_fitted = Signal(object, object, int)

    def __init__(self, lab, parent=None):
        super().__init__(parent)
        self.lab = lab
        self.runner = lab.runner
        self._queue: list[str] = []
        self._exact_fit: tuple | None = None
        defaults = FitSettings()

        self.dataset_combo = QComboBox()
        self.dataset_combo.addItems(list(TOY_SETS))
        self.dataset_combo.setCurrentText(defaults.dataset)
        self.dataset_combo.setToolTip("2-D toy data: 1000 training and 1000 independent test points")
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("infinite-fit-seed")
        self.seed_spin.setRange(*SEED_RANGE)
        self.seed_spin.setValue(defaults.seed)
        self.seed_spin.setPrefix("seed ")
        self.seed_spin.setMaximumWidth(self.seed_spin.fontMetrics().horizontalAdvance("seed 2147483647") + 40)
        self.seed_spin.setKeyboardTracking(False)
        self.seed_spin.setToolTip(
            "seed of the toy data (training points: seed, test points: seed + 1) and of every fit (random start, "
            "quadrature shifts, minibatches, noise, EM's initialisation); a new seed draws new data"
        )
        self.k_spin = QSpinBox()
        self.k_spin.setRange(*K_RANGE)
        self.k_spin.setValue(defaults.k)
        self.k_spin.setPrefix("K = ")
        self.k_spin.setToolTip("number of Gaussians in the finite mixture")
        self.stretch = QCheckBox("stretch μ, Σ ranges to the data")
        self.stretch.setChecked(defaults.stretch)
        self.stretch.setToolTip(
            "off: the lecture's exact ranges, μ ∈ (0,1)², σ² ∈ (1, e), which cannot resolve "
            "data finer than a unit-variance blob; on: the same formula with μ spanning the "
            "data's bounding box and log σ² spanning its scales"
        )
        self.buttons = {
            m: QPushButton(t)
            for m, t in (("exact", "Fit exact"), ("elbo", "Fit ELBO"), ("gmm", "Fit GMM"), ("mlp", "Fit MLP decoder"))
        }
        self.all_button = QPushButton("Fit all")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.use_button = QPushButton("Exact θ → sliders")
        self.use_button.setToolTip("load the exact fit's θ (and its ranges and latent dimension) into the sliders")
        self.use_button.setEnabled(False)

        # the settings and the buttons wrap (FlowLayout): in one row they made the lab 950 px wide, too wide beside
        # a lesson panel on a 1280 px screen
        for m in METHODS:
            self.buttons[m].clicked.connect(lambda checked=False, m=m: self.start([m]))
        top = flow(
            group(QLabel("Data:"), self.dataset_combo, self.seed_spin, self.k_spin, self.stretch),
            group(*(self.buttons[m] for m in METHODS)),
            group(self.all_button, self.cancel_button, self.use_button),
        )

        self.cells = {m: FitCell(m) for m in METHODS}
        grid = QGridLayout()
        grid.setSpacing(4)
        for i, m in enumerate(METHODS):
            grid.addWidget(self.cells[m], 0, i)
            grid.setColumnStretch(i, 1)
        self.point = QLabel(f"<b>The point:</b> {LECTURE_POINT}")
        self.point.setWordWrap(True)
        self.point.setStyleSheet("QLabel { background: #fff7e6; border: 1px solid #e0c080; padding: 4px; }")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(3)
        layout.addWidget(top)
        layout.addLayout(grid, 1)
        layout.addWidget(self.point)

        self.all_button.clicked.connect(lambda: self.start(list(METHODS)))
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button.clicked.connect(self._use_exact)
        self.runner.busy_changed.connect(lambda _: self._update_buttons())  # cancelled jobs end without callbacks
        self.dataset_combo.currentTextChanged.connect(lambda _: self.load_data())
        self.seed_spin.valueChanged.connect(lambda _: self.load_data())
        self.k_spin.valueChanged.connect(lambda _: self._retitle())
        self.load_data()

    # -- data ------------------------------------------------------------------------------------------------------
    def load_data(self) -> None:
        """Fresh train/test draws of the chosen toy set; previous fits are cleared (they belonged to other data)."""
        self.cancel()
        self.x_train, self.x_test = train_test_toy(
            self.dataset_combo.currentText(), n=1000, seed=self.seed_spin.value()
        )
        lo, hi = self.x_train.min(0), self.x_train.max(0)
        pad = 0.2 * (hi - lo).max()
        centre, half = (lo + hi) / 2, (hi - lo).max() / 2 + pad
        self.xs = np.linspace(centre[0] - half, centre[0] + half, GRID_N)
        self.ys = np.linspace(centre[1] - half, centre[1] + half, GRID_N)
        for cell in self.cells.values():
            cell.result = None
            cell.plot.set_density(None)
            cell.plot.set_points(self.x_train)
            cell.plot.set_range(self.xs, self.ys)
            cell.progress.setValue(0)
            cell.figures.setText(f"not fitted yet (seed {self.seed_spin.value()})")
        self._exact_fit = None
        self.use_button.setEnabled(False)
        self._retitle()

    def ranges(self) -> OutputRanges:
        return OutputRanges.for_data(self.x_train) if self.stretch.isChecked() else OutputRanges()

    def _retitle(self) -> None:
        dz = self.lab.latent_dim
        for m, cell in self.cells.items():
            t = TITLES[m].format(k=self.k_spin.value())
            if m in ("exact", "elbo"):
                t += f" ({dz}-D z)"
            cell.set_title(t)

    # -- fits ------------------------------------------------------------------------------------------------------
    def start(self, methods: list[str]) -> None:
        """Queue ``methods`` (run one after the other: the CPU is shared)."""
        for m in methods:
            if m not in self._queue and not self.runner.is_busy(self.lab.channel(f"fit-{m}")):
                self._queue.append(m)
        if not any(self.runner.is_busy(self.lab.channel(f"fit-{m}")) for m in METHODS):
            self._next()
        self._update_buttons()

    def _next(self) -> None:
        if not self._queue:
            self._update_buttons()
            return
        m = self._queue.pop(0)
        cell = self.cells[m]
        cell.progress.setValue(0)
        cell.figures.setText("fitting…")
        settings = self.settings()
        fn, cell.model_info = fit_job(
            m,
            self.x_train,
            self.x_test,
            (self.xs, self.ys),
            self.lab.latent_dim,
            self.ranges(),
            settings.k,
            settings.seed,
        )
        self.runner.submit(
            self.lab.channel(f"fit-{m}"),
            fn,
            on_snapshot=lambda s, m=m: self._on_snapshot(m, s),
            on_error=lambda msg, m=m: self._on_error(m, msg),
            on_finished=self._next,
        )
        self._update_buttons()

    def _on_snapshot(self, m: str, s: FitSnapshot) -> None:
        cell = self.cells[m]
        cell.progress.setValue(int(1000 * s.progress))
        if s.density is not None:
            cell.plot.set_density(s.density, self.xs, self.ys)
        elif s.theta is not None:  # live: the lecture model is cheap to draw on the GUI thread
            assert cell.model_info is not None
            ranges, dz = cell.model_info
            live = LectureVAE(dz, ranges=ranges, theta=s.theta)
            with single_thread_blas():
                dens = density_on_grid(live, self.xs, self.ys, n_z=24 if dz == 1 else 12)
            cell.plot.set_density(dens, self.xs, self.ys)
        cell.figures.setText(fit_figures(m, s))
        if s.done:
            cell.result = s
            cell.figures.setToolTip(
                f"mean exact log-likelihood per point (quadrature over z for the VAEs); seed {self.seed_spin.value()}"
            )
            if m == "exact" and cell.model_info is not None:
                self._exact_fit = (s.theta, *cell.model_info)
                self.use_button.setEnabled(True)

    def _on_error(self, m: str, message: str) -> None:
        self.cells[m].figures.setText(f"<span style='color:#b00'>failed: {message}</span>")
        self.cells[m].progress.setValue(0)

    def cancel(self) -> None:
        self._queue.clear()
        for m in METHODS:
            if self.runner.is_busy(self.lab.channel(f"fit-{m}")):
                self.cells[m].figures.setText("cancelled")
                self.cells[m].progress.setValue(0)
        self.runner.cancel(self.lab.channel("fit-"))
        self._update_buttons()

    def is_fitting(self) -> bool:
        return bool(self._queue) or self.runner.is_busy(self.lab.channel("fit-"))

    def _update_buttons(self) -> None:
        self.cancel_button.setEnabled(self.is_fitting())

    def _use_exact(self) -> None:
        if self._exact_fit is not None:
            theta, ranges, dz = self._exact_fit
            self.theta_fitted.emit(theta, ranges, dz)

    # -- state -----------------------------------------------------------------------------------------------------
    def settings(self) -> FitSettings:
        return FitSettings(
            dataset=self.dataset_combo.currentText(),
            k=self.k_spin.value(),
            stretch=self.stretch.isChecked(),
            seed=self.seed_spin.value(),
        )

    def restore(self, settings: FitSettings) -> None:
        """Show ``settings``; new data is drawn (once) when the dataset or seed changes."""
        for w in (self.dataset_combo, self.seed_spin):
            w.blockSignals(True)
        changed = (self.dataset_combo.currentText(), self.seed_spin.value()) != (settings.dataset, settings.seed)
        self.dataset_combo.setCurrentText(settings.dataset)
        self.seed_spin.setValue(settings.seed)
        for w in (self.dataset_combo, self.seed_spin):
            w.blockSignals(False)
        self.k_spin.setValue(settings.k)
        self.stretch.setChecked(settings.stretch)
        if changed:
            self.load_data()
