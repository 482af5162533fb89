"""Slides and figures: a lab's history as an animated GIF or a PNG sequence (File → Export animation…), and the
view as a PNG of a chosen pixel size (File → Export view as PNG…).

A lab provides frames through ``LabView.animation_problem`` / ``animation_frame_count`` / ``animation_frames`` (an
iterator that puts the display at each history entry in turn and yields a caption). ``AnimationExport`` steps it one
frame per turn of the event loop (a single-shot ``QTimer``: the window stays responsive, the status bar shows how far
it is and a Cancel button stops it), renders the lab's ``export_widget`` into a frame of the chosen size with the
caption under it, and hands the frames to ``lvm.animation``'s writers (Pillow's GIF encoder, or PNG files renamed
into place): the file appears whole at the end, or not at all. Closing the iterator returns the lab's display to
where the user had it. While it runs, mouse and key input to the lab is held back (it would change what is drawn).

Frames are painted with ``QWidget.render`` through a scaled ``QPainter``, not grabbed and resized: text and lines
stay sharp at any size. Each frame carries its caption and "i / n", so consecutive frames always differ (Pillow
merges identical frames of a GIF into one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from lvm.animation import FPS_RANGE, SIDE_RANGE, AnimationWriter, ExportError, open_writer
from lvm.errors import LVMError

FORMATS = {"gif": "Animated GIF (.gif)", "png": "PNG sequence (a folder of frame_0001.png …)"}
DEFAULT_WIDTH, DEFAULT_FPS = 960, 4.0
EXPORT_CHANNEL = "export/animation"  # the worker channel that encodes and writes the file
SCREEN_DPI = 96.0  # what a scale of 1 means in the PNG's resolution field
SCALE_RANGE = (0.25, 8.0)
BLOCKED_INPUT = {
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseButtonRelease,
    QEvent.Type.MouseButtonDblClick,
    QEvent.Type.MouseMove,
    QEvent.Type.Wheel,
    QEvent.Type.KeyPress,
    QEvent.Type.KeyRelease,
    QEvent.Type.ContextMenu,
}


# -- painting a widget at a chosen size -------------------------------------------------------------------------------
def settle_layout(widget: QWidget) -> None:
    """Apply pending layout changes now: a widget changed a moment ago keeps its old size until the event loop lays
    it out, and one not shown yet (a tab just opened) has none. ``QWidget.grab`` lays out even a hidden widget as it
    would be shown; ``render`` does not, so a one-pixel grab does it first."""
    QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
    if not widget.isVisible():
        widget.grab(QRect(0, 0, 1, 1))


def render_widget(widget: QWidget, size: QSize, background=Qt.GlobalColor.white) -> QImage:
    """``widget`` painted into an image of exactly ``size`` pixels: scaled uniformly to fit (a vector rendering:
    text and lines stay sharp), centred, the rest ``background``."""
    image = QImage(size, QImage.Format.Format_RGB32)
    image.fill(background)
    w, h = max(widget.width(), 1), max(widget.height(), 1)
    scale = min(size.width() / w, size.height() / h)
    painter = QPainter(image)
    for hint in (
        QPainter.RenderHint.Antialiasing,
        QPainter.RenderHint.TextAntialiasing,
        QPainter.RenderHint.SmoothPixmapTransform,
    ):
        painter.setRenderHint(hint)
    painter.translate((size.width() - w * scale) / 2, (size.height() - h * scale) / 2)
    painter.scale(scale, scale)
    try:
        widget.render(painter, QPoint())
    finally:
        painter.end()
    return image


def figure_image(widget: QWidget, scale: float) -> QImage:
    """The view as a figure ``scale`` times its size on screen, its resolution field set to 96 dpi x ``scale`` (so
    it prints as large as it shows)."""
    lo, hi = SCALE_RANGE
    if not lo <= scale <= hi:
        raise ExportError(f"the scale must be from {lo:g} to {hi:g}; got {scale:g}")
    settle_layout(widget)
    size = QSize(max(1, round(widget.width() * scale)), max(1, round(widget.height() * scale)))
    image = render_widget(widget, size)
    dots_per_metre = round(SCREEN_DPI * scale / 0.0254)
    image.setDotsPerMeterX(dots_per_metre)
    image.setDotsPerMeterY(dots_per_metre)
    return image


def caption_height(size: QSize) -> int:
    """Pixels of the caption strip under each frame."""
    return max(14, min(40, round(size.height() * 0.05)))


def compose_frame(widget: QWidget, size: QSize, caption: str, index: int, count: int) -> QImage:
    """One frame: ``widget`` above, and under it a strip with the caption, "index / count" and a progress line."""
    settle_layout(widget)
    strip = caption_height(size)
    image = QImage(size, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.white)
    view = render_widget(widget, QSize(size.width(), size.height() - strip))
    painter = QPainter(image)
    try:
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        painter.drawImage(0, 0, view)
        top = size.height() - strip
        painter.fillRect(0, top, size.width(), strip, QColor(240, 240, 240))
        bar = max(2, strip // 8)
        done = round(size.width() * (index + 1) / max(count, 1))
        painter.fillRect(0, size.height() - bar, done, bar, QColor(0, 114, 178))
        font = QFont(painter.font())
        font.setPixelSize(max(9, round((strip - bar) * 0.62)))
        painter.setFont(font)
        painter.setPen(QColor(30, 30, 30))
        counter = f"{index + 1} / {count}"
        metrics = QFontMetrics(font)
        pad = max(3, strip // 4)
        counter_w = metrics.horizontalAdvance(counter)
        text_rect = QRectF(pad, top, size.width() - counter_w - 3 * pad, strip - bar)
        elided = metrics.elidedText(caption, Qt.TextElideMode.ElideRight, int(text_rect.width()))
        align = Qt.AlignmentFlag.AlignVCenter
        painter.drawText(text_rect, align | Qt.AlignmentFlag.AlignLeft, elided)
        counter_rect = QRectF(size.width() - counter_w - pad, top, counter_w, strip - bar)
        painter.drawText(counter_rect, align | Qt.AlignmentFlag.AlignRight, counter)
    finally:
        painter.end()
    return image


def to_pil(image: QImage) -> Image.Image:
    """A QImage as an RGB PIL image (a copy)."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = rgb.width(), rgb.height()
    data = bytes(rgb.constBits())
    return Image.frombuffer("RGB", (w, h), data, "raw", "RGB", rgb.bytesPerLine(), 1).copy()


def default_size(widget: QWidget, width: int = DEFAULT_WIDTH) -> tuple[int, int]:
    """A frame ``width`` wide with the widget's aspect ratio, plus the caption strip (within ``SIDE_RANGE``)."""
    lo, hi = SIDE_RANGE
    w = min(max(width, lo), hi)
    view_h = round(w * max(widget.height(), 1) / max(widget.width(), 1))
    h = view_h + caption_height(QSize(w, view_h))
    return w, min(max(h, lo), hi)


# -- the export -------------------------------------------------------------------------------------------------------
class _InputGuard(QObject):
    """Holds back mouse and key input to one widget and its children (an export is drawing it)."""

    def __init__(self, widget: QWidget):
        super().__init__(widget)
        self.widget = widget

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() in BLOCKED_INPUT and isinstance(obj, QWidget):
            return obj is self.widget or self.widget.isAncestorOf(obj)
        return False


class AnimationExport(QObject):
    """Exports ``lab``'s history to ``path`` (``.gif`` or a folder), one frame per turn of the event loop.

    Everything is checked when it is made (``ExportError``: a bad size, frame rate or place, or a lab with no
    history), before the lab's display moves. ``start()`` begins; ``progress(done, total)`` follows each frame;
    ``finished(ok, message)`` ends it (written, cancelled, or why it failed: nothing is then written)."""

    progress = Signal(int, int)
    finished = Signal(bool, str)

    def __init__(self, lab, path: str | os.PathLike[str], size: tuple[int, int], fps: float, parent=None):
        super().__init__(parent)
        problem = lab.animation_problem()
        if problem:
            raise ExportError(problem)
        self.lab = lab
        self.writer: AnimationWriter = open_writer(path, size, fps)
        self.size = QSize(*self.writer.size)
        self.total = int(lab.animation_frame_count())
        self.done = 0
        self.running = False
        self.finishing = False  # every frame made, the file being written
        self.message = ""
        self._frames: Iterator[str] | None = None
        self._caption: str | None = None  # the frame on display, rendered at the next turn
        self._guard = _InputGuard(lab)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._tick)

    @property
    def target(self) -> Path:
        return self.writer.target

    def start(self) -> None:
        if self.running or self.writer.done:
            return
        self.running = True
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self._guard)
            app.aboutToQuit.connect(self.cancel)  # (quitting midway leaves no temporary frames behind)
        self._frames = iter(self.lab.animation_frames())
        self._timer.start()

    def cancel(self) -> None:
        """Stop now; nothing is written and the lab shows what it showed before. (Once every frame is made, the
        file is being written in a worker and is finished.)"""
        if self.running and not self.finishing:
            self._end(False, f"animation export cancelled; {self.target} was not written")

    def _tick(self) -> None:
        if not self.running or self.finishing:
            return
        try:
            if self._caption is not None:
                problem = self._interruption()
                if problem:
                    self._end(False, f"animation export stopped ({problem}); {self.target} was not written")
                    return
                frame = compose_frame(self.lab.export_widget(), self.size, self._caption, self.done, self.total)
                self.writer.add(to_pil(frame))
                self.done += 1
                self.progress.emit(self.done, self.total)
            assert self._frames is not None
            self._caption = next(self._frames)
        except StopIteration:
            self._finish()
            return
        except (OSError, LVMError) as exc:
            self._end(False, _failure(self.target, exc))
            return
        except BaseException:
            self._end(False, f"animation export failed; {self.target} was not written")
            raise
        self._timer.start()

    def _finish(self) -> None:
        """Every frame is made: the lab gets its display (and input) back, and the file is encoded and written in a
        worker (a GIF of a few hundred frames takes a second), then ``finished`` says so."""
        self.finishing = True
        self._release_lab()
        writer, target = self.writer, self.target
        outcome: list[tuple[bool, str]] = []

        def write() -> tuple[bool, str]:
            try:
                writer.finish()
            except (OSError, LVMError) as exc:
                return False, _failure(target, exc)
            kind = "GIF" if target.suffix.lower() == ".gif" else "PNG sequence"
            return True, f"wrote {writer.count} frames to {target} ({kind})"

        def done() -> None:
            self.finishing = False
            if outcome:
                self._end(*outcome[0])
            elif writer.written:  # (the job's result was not delivered: the runner was cancelled meanwhile)
                self._end(True, f"wrote {writer.count} frames to {target}")
            else:
                self._end(False, f"animation export stopped; {target} was not written")

        runner = getattr(self.lab, "runner", None)
        if runner is None:
            outcome.append(write())
            done()
            return
        runner.submit(EXPORT_CHANNEL, write, on_result=outcome.append, on_done=done)

    def _interruption(self) -> str | None:
        """Why the export cannot go on (the lab was hidden, or its history started changing)."""
        if not self.lab.isVisible():
            return "the lab was hidden"
        return self.lab.animation_problem()

    def _release_lab(self) -> None:
        """Input to the lab flows again, and its display goes back to what the user had (closing the frames)."""
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self._guard)
        frames, self._frames = self._frames, None
        close = getattr(frames, "close", None)
        if close is not None:
            close()

    def _end(self, ok: bool, message: str) -> None:
        self.running = False
        self._timer.stop()
        app = QApplication.instance()
        if app is not None:
            try:
                app.aboutToQuit.disconnect(self.cancel)
            except (RuntimeError, TypeError):
                pass
        try:
            self._release_lab()
        finally:
            if not ok:
                self.writer.abort()
            self.message = message
            self.finished.emit(ok, message)


def _failure(target: Path, exc: BaseException) -> str:
    if isinstance(exc, LVMError):
        return f"animation not written: {exc}"
    why = getattr(exc, "strerror", None) or str(exc)
    return f"could not write {target}: {why}; choose another place"


class ExportProgress(QWidget):
    """The status bar's view of a running export: what, how far, and Cancel."""

    def __init__(self, export: AnimationExport, parent=None):
        super().__init__(parent)
        self.setObjectName("animation-export-progress")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(f"exporting {export.target.name}")
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(120)
        self.bar.setRange(0, max(export.total, 1))
        self.cancel_button = QPushButton("Cancel export")
        self.cancel_button.clicked.connect(export.cancel)
        for w in (self.label, self.bar, self.cancel_button):
            layout.addWidget(w)
        export.progress.connect(lambda done, total: self.bar.setValue(done))


def start_animation_export(window, lab, path: str, size: tuple[int, int], fps: float) -> AnimationExport | None:
    """Export ``lab``'s history from the main window: progress and Cancel in its status bar, the outcome said there
    (an error through ``window.show_error``). None when the settings or the place are refused (said why)."""
    try:
        export = AnimationExport(lab, path, size, fps, parent=window)
    except (OSError, LVMError) as exc:
        window.show_error(_failure(Path(path), exc))
        return None
    bar = window.statusBar()
    progress = ExportProgress(export)
    bar.addPermanentWidget(progress)

    def ended(ok: bool, message: str) -> None:
        bar.removeWidget(progress)
        progress.deleteLater()
        export.deleteLater()
        if ok:
            bar.showMessage(message, 10000)
        else:
            window.show_error(message)

    export.finished.connect(ended)
    window.animation_export = export  # (tests and the window reach the export in progress)
    export.start()
    return export


# -- dialogs ----------------------------------------------------------------------------------------------------------
class AnimationDialog(QDialog):
    """Format (GIF / PNG sequence), frame size in pixels and frames per second."""

    def __init__(self, lab, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Export animation — {lab.title}")
        self.setObjectName("animation-dialog")
        form = QFormLayout(self)
        form.addRow(QLabel(f"{lab.animation_frame_count()} frames, one per step of the {lab.title}'s history."))
        self.format_combo = QComboBox()
        for key, text in FORMATS.items():
            self.format_combo.addItem(text, key)
        form.addRow("Format", self.format_combo)
        lo, hi = SIDE_RANGE
        w, h = default_size(lab.export_widget())
        self.width_spin, self.height_spin = QSpinBox(), QSpinBox()
        for spin, value in ((self.width_spin, w), (self.height_spin, h)):
            spin.setRange(lo, hi)
            spin.setValue(value)
            spin.setSuffix(" px")
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_spin)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height_spin)
        form.addRow("Size", size_row)
        self.fps_spin = QDoubleSpinBox()
        self.fps_spin.setRange(*FPS_RANGE)
        self.fps_spin.setDecimals(1)
        self.fps_spin.setValue(DEFAULT_FPS)
        self.fps_spin.setSuffix(" frames/s")
        form.addRow("Frame rate", self.fps_spin)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def settings(self) -> tuple[str, tuple[int, int], float]:
        """(format key, (width, height), fps)."""
        return (
            self.format_combo.currentData(),
            (self.width_spin.value(), self.height_spin.value()),
            self.fps_spin.value(),
        )


def ask_animation_export(window, lab, directory: str = "") -> AnimationExport | None:
    """File → Export animation…: says why when the lab has nothing to animate, else asks format, size and frame rate,
    then where, and starts the export."""
    problem = lab.animation_problem()
    if problem:
        box = QMessageBox(
            QMessageBox.Icon.Information, "Export animation", f"Nothing to export: {problem}.", parent=window
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return None
    dialog = AnimationDialog(lab, window)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    kind, size, fps = dialog.settings()
    if kind == "gif":
        path, _ = QFileDialog.getSaveFileName(window, "Export animation as GIF", directory, "GIF animations (*.gif)")
        if path and not path.lower().endswith(".gif"):
            path += ".gif"
    else:
        path = QFileDialog.getExistingDirectory(window, "Folder for the PNG sequence (empty or new)", directory)
        path = path and path.rstrip("/\\") + "/"
    if not path:
        return None
    return start_animation_export(window, lab, path, size, fps)


class FigureDialog(QDialog):
    """The PNG's size: a scale of the view on screen, or the width in pixels (the height follows)."""

    def __init__(self, widget: QWidget, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export view as PNG")
        self.setObjectName("figure-dialog")
        self.base = QSize(max(widget.width(), 1), max(widget.height(), 1))
        form = QFormLayout(self)
        self.scale_spin = QDoubleSpinBox()
        self.scale_spin.setRange(*SCALE_RANGE)
        self.scale_spin.setDecimals(2)
        self.scale_spin.setSingleStep(0.5)
        self.scale_spin.setValue(2.0)
        self.scale_spin.setSuffix(" ×")
        self.width_spin = QSpinBox()
        self.width_spin.setRange(round(self.base.width() * SCALE_RANGE[0]), round(self.base.width() * SCALE_RANGE[1]))
        self.width_spin.setSuffix(" px")
        self.result_label = QLabel()
        form.addRow("Scale", self.scale_spin)
        form.addRow("Width", self.width_spin)
        form.addRow("Image", self.result_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.scale_spin.valueChanged.connect(self._scale_changed)
        self.width_spin.valueChanged.connect(self._width_changed)
        self._scale_changed(self.scale_spin.value())

    def scale(self) -> float:
        return float(self.scale_spin.value())

    def _scale_changed(self, scale: float) -> None:
        self.width_spin.blockSignals(True)
        self.width_spin.setValue(round(self.base.width() * scale))
        self.width_spin.blockSignals(False)
        self._show_result()

    def _width_changed(self, width: int) -> None:
        self.scale_spin.blockSignals(True)
        self.scale_spin.setValue(width / self.base.width())
        self.scale_spin.blockSignals(False)
        self._show_result()

    def _show_result(self) -> None:
        s = self.scale()
        w, h = round(self.base.width() * s), round(self.base.height() * s)
        self.result_label.setText(f"{w} × {h} px, {SCREEN_DPI * s:.0f} dpi")


def ask_figure_scale(window, widget: QWidget) -> float | None:
    """The scale chosen for "Export view as PNG" (None: cancelled)."""
    dialog = FigureDialog(widget, window)
    return dialog.scale() if dialog.exec() == QDialog.DialogCode.Accepted else None
