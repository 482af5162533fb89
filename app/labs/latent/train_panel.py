"""The Latent lab's train panel: settings (continue / from scratch, layers, epochs, lr, seed), buttons and live ELBO
curves. It only shows things: its settings are a ``TrainSettings`` (``settings()`` / ``show_settings()``), the lab
runs the training and hands it the run (``show_run``).

Nothing in it changes size while training: the status line has a fixed height of two lines (its text changing
from empty to a line, or from one line to two, moved the Train and Stop buttons by 22 px and a Stop click missed).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.labs.latent.state import (
    DECODERS,
    EPOCHS_RANGE,
    LR_RANGE,
    MODES,
    SEED_RANGE,
    SUBSET_RANGE,
    TrainingRun,
    TrainSettings,
)
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
        self.mode.addItems(list(MODES))
        self.mode.setToolTip(
            "continue: the current model, from where its learning-rate schedule ended (the ELBO before the first "
            "step is epoch 0; the best model seen is kept); new: a fresh 2-D VAE with the layers below"
        )
        self.hidden = QLineEdit(TrainSettings.hidden)
        self.hidden.setToolTip("hidden layer sizes of a new model (encoder; the decoder mirrors them)")
        self.decoder = QComboBox()
        self.decoder.addItems(list(DECODERS))
        self.decoder.setToolTip(
            "p(x|z) of a new model: bernoulli and gaussian factorise over the pixels; autoregressive predicts each "
            "pixel from z and the pixels before it (MADE-style masked layers): strong enough to ignore z"
        )
        self.epochs = QSpinBox()
        self.epochs.setRange(*EPOCHS_RANGE)
        self.epochs.setValue(TrainSettings.epochs)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(*LR_RANGE)
        self.lr.setSingleStep(5e-4)
        self.lr.setValue(TrainSettings.lr)
        self.lr.setToolTip("peak learning rate of a new model's one-cycle schedule")
        self.seed = QSpinBox()
        self.seed.setRange(*SEED_RANGE)
        self.seed.setToolTip("seed of a new model's weights, the held-out split, the batches and the noise")
        self.subset = QSpinBox()
        self.subset.setObjectName("latent-train-subset")
        self.subset.setRange(*SUBSET_RANGE)
        self.subset.setSingleStep(1000)
        self.subset.setSpecialValueText("all")
        self.subset.setToolTip("train on a random subset of this many images (drawn with the seed); all: every image")
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
        row2.addWidget(QLabel("images"))
        row2.addWidget(self.subset)
        layout.addLayout(form)
        layout.addLayout(row2)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("stop training; the best model seen so far is kept")
        self.save_button = QPushButton("Save model…")
        for button in (self.train_button, self.cancel_button):
            # a click does not take the focus: Train (disabled when training starts) would hand it on, and the
            # lab's scrolling right column would scroll to the new focus, moving Stop from under the mouse
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        for b in (self.train_button, self.cancel_button, self.save_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.status = QLabel("")
        self.status.setObjectName("latent-train-status")
        self.status.setWordWrap(True)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.status.setMinimumWidth(50)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.status.setFixedHeight(2 * self.status.fontMetrics().lineSpacing() + 2)  # two lines, whatever it says
        layout.addWidget(self.status)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(130)
        self.plot.setLabel("bottom", "epoch")
        readable_axes(self.plot, integer=("bottom",))
        self.plot.setLabel("left", "ELBO (nats)")
        self.plot.addLegend(offset=(-5, -5), labelTextSize="8pt")
        self.grid_lines = GridLines(self.plot, alpha=0.25)
        self.train_curve = self.plot.plot(
            [], [], pen=pg.mkPen("#1f77b4", width=2), symbol="o", symbolSize=4, symbolBrush="#1f77b4", name="train"
        )
        self.valid_curve = self.plot.plot(
            [], [], pen=pg.mkPen("#d62728", width=2), symbol="o", symbolSize=6, symbolBrush="#d62728", name="held-out"
        )
        layout.addWidget(self.plot, 1)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._running = False
        self._tx: list[float] = []  # the train curve shown
        self._ty: list[float] = []
        self._mode_changed()
        self.set_running(False)

    # -- settings --------------------------------------------------------------------------------------------------
    def settings(self) -> TrainSettings:
        return TrainSettings(
            mode=self.mode.currentText(),
            hidden=self.hidden.text(),
            decoder=self.decoder.currentText(),
            epochs=self.epochs.value(),
            lr=self.lr.value(),
            seed=self.seed.value(),
            subset=self.subset.value(),
        )

    def show_settings(self, s: TrainSettings) -> None:
        self.mode.setCurrentText(s.mode)
        self.hidden.setText(s.hidden)
        self.decoder.setCurrentText(s.decoder)
        self.epochs.setValue(s.epochs)
        self.lr.setValue(s.lr)
        self.seed.setValue(s.seed)
        self.subset.setValue(s.subset)

    @property
    def from_scratch(self) -> bool:
        return self.mode.currentText() == MODES[1]

    def _mode_changed(self, *args) -> None:
        self.set_running(self._running)

    def set_running(self, running: bool) -> None:
        self._running = running
        self.train_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        widgets: tuple[QWidget, ...] = (self.mode, self.epochs, self.seed, self.subset)
        for widget in widgets:
            widget.setEnabled(not running)
        widgets = (self.hidden, self.decoder, self.lr)
        for widget in widgets:  # a new model's; continuing uses its own schedule
            widget.setEnabled(not running and self.from_scratch)

    # -- the run ---------------------------------------------------------------------------------------------------
    def show_run(self, run: TrainingRun) -> None:
        """The run's curves (reused items: setData)."""
        self._tx, self._ty = [p[0] for p in run.train_points], [p[1] for p in run.train_points]
        self.train_curve.setData(self._tx, self._ty)
        self.valid_curve.setData([p[0] for p in run.valid_points], [p[1] for p in run.valid_points])
