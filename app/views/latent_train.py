"""The Latent lab's train panel: settings (from scratch / continue, epochs, lr, seed), buttons and live ELBO curves.

It only shows things; the lab runs the training (``LatentLab.start_training``) and feeds snapshots back here.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSpinBox, QVBoxLayout)

from app.widgets.axes import readable_axes
from app.widgets.grid_lines import GridLines


class TrainPanel(QGroupBox):
    def __init__(self, parent=None):
        super().__init__("Train (maximise the ELBO)", parent)
        self.setObjectName("latent-train")
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.mode = QComboBox()
        self.mode.addItems(["continue the current model", "new model from scratch"])
        self.mode.setToolTip("continue: start from the current weights; new: a fresh 2-D VAE with the layers below")
        self.hidden = QLineEdit("512,512,512")
        self.hidden.setToolTip("hidden layer sizes of a new model (encoder; the decoder mirrors them)")
        self.decoder = QComboBox()
        self.decoder.addItems(["bernoulli", "gaussian"])
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(5)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1e-1)
        self.lr.setSingleStep(5e-4)
        self.lr.setValue(1e-3)  # 2e-3 diverged twice on the 3 x 512 model (resources/README.md)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2 ** 31 - 1)
        form.addRow("start", self.mode)
        row = QHBoxLayout()
        row.addWidget(self.hidden, 2)
        row.addWidget(self.decoder, 1)
        form.addRow("layers", row)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("epochs"))
        row2.addWidget(self.epochs)
        row2.addWidget(QLabel("lr"))
        row2.addWidget(self.lr)
        row2.addWidget(QLabel("seed"))
        row2.addWidget(self.seed)
        layout.addLayout(form)
        layout.addLayout(row2)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("stop training; the weights trained so far are kept")
        self.save_button = QPushButton("Save model…")
        for b in (self.train_button, self.cancel_button, self.save_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setMinimumWidth(50)
        layout.addWidget(self.status)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(130)
        self.plot.setLabel("bottom", "epoch")
        readable_axes(self.plot, integer=("bottom",))
        self.plot.setLabel("left", "ELBO (nats)")
        self.plot.addLegend(offset=(-5, -5), labelTextSize="8pt")
        self.grid_lines = GridLines(self.plot, alpha=0.25)
        self.train_curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=2), name="train")
        self.valid_curve = self.plot.plot([], [], pen=pg.mkPen("#d62728", width=2), symbol="o", symbolSize=6,
                                          symbolBrush="#d62728", name="validation")
        layout.addWidget(self.plot, 1)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._mode_changed()
        self.set_running(False)
        self.reset()

    def _mode_changed(self, *args) -> None:
        scratch = self.from_scratch
        self.hidden.setEnabled(scratch)
        self.decoder.setEnabled(scratch)

    @property
    def from_scratch(self) -> bool:
        return self.mode.currentIndex() == 1

    def hidden_sizes(self) -> tuple[int, ...]:
        try:
            sizes = tuple(int(s) for s in self.hidden.text().replace(" ", "").split(",") if s)
        except ValueError:
            sizes = ()
        if not sizes or any(s < 1 or s > 8192 for s in sizes):
            raise ValueError(f"layers {self.hidden.text()!r}: give comma-separated sizes, e.g. 512,512")
        return sizes

    def set_running(self, running: bool) -> None:
        self.train_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for w in (self.mode, self.epochs, self.lr, self.seed):
            w.setEnabled(not running)
        self.hidden.setEnabled(not running and self.from_scratch)
        self.decoder.setEnabled(not running and self.from_scratch)

    def reset(self) -> None:
        self._tx, self._ty, self._vx, self._vy = [], [], [], []
        self.train_curve.setData([], [])
        self.valid_curve.setData([], [])

    def add_snapshot(self, snap, epoch_offset: float = 0.0) -> None:
        if np.isfinite(snap.train_elbo):
            self._tx.append(epoch_offset + float(snap.epoch))
            self._ty.append(float(snap.train_elbo))
            self.train_curve.setData(self._tx, self._ty)
        if snap.valid_elbo is not None and float(snap.epoch).is_integer() and np.isfinite(snap.valid_elbo) and \
                (not self._vx or self._vx[-1] != epoch_offset + snap.epoch):
            self._vx.append(epoch_offset + float(snap.epoch))
            self._vy.append(float(snap.valid_elbo))
            self.valid_curve.setData(self._vx, self._vy)
        val = "" if snap.valid_elbo is None else f", validation {snap.valid_elbo:.1f}"
        self.status.setText(f"epoch {snap.epoch:.2f}: train ELBO {snap.train_elbo:.1f}{val} nats "
                            f"({snap.images_per_s:.0f} images/s)")
