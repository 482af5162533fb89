"""A labelled parameter control: a QSlider and a QDoubleSpinBox kept in sync, emitting one float signal."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSlider, QWidget


class ParamSlider(QWidget):
    """``name`` [----slider----] [spin]: a float in [low, high] on a grid of ``step``; ``valueChanged(float)``.

    Dragging the slider or typing in the field emits ``valueChanged`` once per change; ``set_value(v, emit=False)``
    moves both silently.
    """

    valueChanged = Signal(float)

    def __init__(
        self,
        name: str,
        low: float,
        high: float,
        step: float = 0.05,
        value: float = 0.0,
        tooltip: str = "",
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.low, self.high, self.step = float(low), float(high), float(step)
        self.label = QLabel(name)
        self.label.setMinimumWidth(34)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, round((self.high - self.low) / self.step))
        self.slider.setSingleStep(1)
        self.slider.setPageStep(10)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(self.low, self.high)
        self.spin.setSingleStep(self.step)
        self.spin.setDecimals(2)
        self.spin.setKeyboardTracking(False)
        self.spin.setFixedWidth(68)
        self.setToolTip(tooltip)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.label)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self._value = float("nan")
        self.set_value(value)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def value(self) -> float:
        return self._value

    def set_value(self, value: float, emit: bool = False) -> None:
        value = min(self.high, max(self.low, float(value)))
        changed = value != self._value
        self._value = value
        for w in (self.slider, self.spin):
            w.blockSignals(True)
        self.slider.setValue(round((value - self.low) / self.step))
        self.spin.setValue(value)
        for w in (self.slider, self.spin):
            w.blockSignals(False)
        if emit and changed:
            self.valueChanged.emit(value)

    def _from_slider(self, i: int) -> None:
        value = self.low + i * self.step
        self._value = value
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        self.valueChanged.emit(value)

    def _from_spin(self, value: float) -> None:
        self.set_value(value, emit=True)
