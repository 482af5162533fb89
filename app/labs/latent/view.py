"""The Latent lab: a VAE's 2-D latent space — encoded data, q(z|x) ellipses, prior contours, the aggregate posterior
against the prior, the decoded manifold mosaic, hover previews of p(x|z), a drawing pad and training with live curves.

The view builds widgets and binds them to the Qt-free ``LatentState`` (what the user set up, what was computed) and
``TrainingRun`` (``app.labs.latent.state``); the mathematics is in ``lvm.latent_space``, the training job in
``app.labs.latent.train_job``. Computations run in workers on latest-wins channels (``latent/encode``,
``latent/grid``, ``latent/density``, ``latent/train``); only a single-image decode (hover, the drawing pad) runs on the
GUI thread (about a millisecond).

Both planes show z1 against z2 (or u1 against u2 on the quantile grid), which share units: their aspect is locked, and
the decoded grid's cells are square.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from typing import cast

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QEvent, QRectF, Qt, QTimer
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGraphicsItem,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.labs.latent import display
from app.labs.latent.explanation import EXPLANATION
from app.labs.latent.state import (
    DENSITY_GRID,
    GRID_RANGE,
    LatentState,
    TrainingRun,
    animation_rows,
    continue_lr_text,
)
from app.labs.latent.train_job import plan_training, run_plan, with_epoch_frames
from app.labs.latent.train_panel import TrainPanel
from app.widgets.axes import twin_axes
from app.widgets.click_viewbox import ClickViewBox
from app.widgets.draw_pad import DrawPad
from app.widgets.elided_label import ElidedLabel
from app.widgets.ellipses import ellipse_points
from app.widgets.flow_layout import flow, group
from app.widgets.grid_lines import GridLines
from app.widgets.image_item import ImageItem
from app.widgets.lab_view import LabView
from app.widgets.palette import follow_colours
from app.widgets.picture_clock import PaintReportingLayout, PictureClock
from app.widgets.raster_scatter import RasterScatter
from app.widgets.steady_plots import OverlayCurve, OverlayScatter, steady_label, steady_tick_column, steady_title
from lvm import latent_space as ls
from lvm.errors import LVMError
from lvm.training import schedule_state_from_info

BACKGROUNDS = [("none", "no background"), ("aggregate", "aggregate posterior q(z)"), ("ratio", "log q(z) − log p(z)")]
PLANES = [("pca", "PCA plane of μ"), ("axes", "two axes")]
MESSAGE_FILL = (255, 255, 255, 225)  # behind a message drawn in a plot (over the prior's circles)
PCA_DENSITY_GRID = 80  # cells per side of the aggregate posterior on a PCA plane (full 2 x 2 covariances: N x G terms)
THUMB_CAP = 400
STACK_BELOW_RATIO = 1.2  # canvas width / height below which the two latent planes stack (each needs about a square)
THUMB_PX = 26
SEED_MAX = 2**31 - 1


class Marker(OverlayScatter):
    """A marker that never takes clicks: they go to the view box, which picks in data space; hidden while it marks
    nothing."""

    def mouseClickEvent(self, ev):
        ev.ignore()


def _image_plot() -> tuple[pg.ViewBox, pg.ImageItem]:
    vb = pg.ViewBox(lockAspect=True, enableMouse=False, invertY=True, enableMenu=False)
    item = ImageItem(axisOrder="row-major")
    item.setLookupTable(np.linspace(255, 0, 256).astype(np.uint8)[:, None].repeat(3, 1))
    vb.addItem(item)
    return vb, item


def _wrap(text: str, width: int = 48) -> str:
    """``text`` broken into lines of about ``width`` characters (a message drawn in a plot)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) if text else ""


def _legend_html() -> str:
    """The digits 0-9, each in its colour (the user's palette)."""
    return " ".join(f"<span style='color:{h}; font-weight:bold'>{k}</span>" for k, h in enumerate(display.label_hex()))


class LatentLab(LabView):
    name = "latent"
    title = "Latent lab"
    explanation = EXPLANATION

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.state = LatentState()
        self.run = TrainingRun()
        self._build()
        ws = workspace.events
        ws.model.connect(self._on_model)
        ws.dataset.connect(self._on_dataset)
        ws.selection.connect(self._on_selection)
        ws.device.connect(self._on_device)
        ws.gmm.connect(self._on_gmm)
        ws.seeds.connect(self._on_seeds)
        follow_colours(self._on_colours)  # another palette: recolour
        if workspace.model is not None:
            self._on_model(workspace.model)

    # the state, read by tests and the session probe
    model = property(lambda self: self.state.model)
    mu = property(lambda self: self.state.mu)
    sigma = property(lambda self: self.state.sigma)
    labels = property(lambda self: self.state.labels)
    pinned = property(lambda self: self.state.pinned)
    drawn_q = property(lambda self: self.state.drawn_q)
    timings = property(lambda self: self.state.timings)
    hover_z = property(lambda self: self.state.hover)

    @property
    def trained_model(self):
        """The model the current (or last) run ends with: the one handed to the workspace, else the best copy seen,
        else the latest (``self.run`` has the details)."""
        run = self.run
        return next((m for m in (run.shown_result, run.best, run.latest) if m is not None), None)

    # -- construction ----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        st = self.state
        content = QWidget()
        outer = QHBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 4)
        left = QVBoxLayout()
        outer.addLayout(left, 3)
        self.points_box = QCheckBox("points")
        self.points_box.setChecked(st.points)
        self.thumbs_box = QCheckBox("thumbnails")
        self.thumbs_box.setToolTip(f"draw visible points as their images (at most {THUMB_CAP}, no overlaps)")
        self.background = QComboBox()
        for key, text in BACKGROUNDS:
            self.background.addItem(text, key)
        self.background.setCurrentIndex(self.background.findData(st.background))
        self.background.setToolTip("background of the left plot: the aggregate posterior, or it against the prior")
        self.grid_n = QSpinBox()
        self.grid_n.setRange(*GRID_RANGE)
        self.grid_n.setValue(st.grid_n)
        self.grid_n.setPrefix("grid ")
        self.grid_n.setToolTip("square cells along the longer side of the decoding grid")
        self.quantile_box = QCheckBox("grid on prior quantiles")
        self.quantile_box.setToolTip("decode z = Φ⁻¹(u) for a regular grid of u in (0, 1)² (axes show u)")
        self.fit_button = QPushButton("Fit view")
        # a d > 2 latent space: which plane (the encodings' PCA plane, or two axes); hidden for d = 2
        self.plane_box = QComboBox()
        self.plane_box.setObjectName("latent-plane")
        for key, text in PLANES:
            self.plane_box.addItem(text, key)
        self.plane_box.setCurrentIndex(self.plane_box.findData(st.plane_kind))
        self.plane_box.setToolTip(
            "the plane of the latent space shown: through the encodings' mean along their top-2 principal "
            "directions, or two coordinate axes through 0 (the other coordinates 0)"
        )
        self.axis_boxes = []
        for k, prefix in enumerate(("axes z", "× z")):
            box = QSpinBox()
            box.setPrefix(prefix)
            box.setRange(1, 2)
            box.setValue(st.plane_axes[k] + 1)
            box.setToolTip("the latent coordinate along this axis of the plane (1-based)")
            box.setObjectName(f"latent-axis-{k + 1}")
            self.axis_boxes.append(box)
        self.plane_controls = group(self.plane_box, *self.axis_boxes)
        self.plane_controls.setVisible(False)
        # the controls wrap onto a second line on a narrow window (the lab's minimum width is its widest control's)
        left.addWidget(
            flow(
                group(self.points_box, self.thumbs_box),
                self.background,
                self.grid_n,
                self.quantile_box,
                self.fit_button,
                self.plane_controls,
            )
        )
        self.legend = QLabel(_legend_html())

        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.vb = ClickViewBox(lockAspect=True)
        self.plot = self.canvas.addPlot(row=0, col=0, viewBox=self.vb, title="encoded data: μ<sub>φ</sub>(x)")
        self.grid_vb = ClickViewBox(lockAspect=True)
        self.grid_plot = self.canvas.addPlot(row=0, col=1, viewBox=self.grid_vb, title="decoded manifold E[x|z]")
        self.grid_lines = []
        for p in (self.plot, self.grid_plot):
            p.setLabel("bottom", "z₁")
            p.setLabel("left", "z₂")
            self.grid_lines.append(GridLines(p, alpha=0.15))
            steady_tick_column(p)  # panning and zooming do not re-lay out the two plots
        self.grid_plot.setXLink(self.plot)
        self.grid_plot.setYLink(self.plot)
        twin_axes(self.plot, self.grid_plot)  # (same ranges: a pan's second pair of axes reuses the first's ticks)
        self.plots_side_by_side = True
        self.canvas.installEventFilter(self)  # (a narrow canvas stacks the two square plots: _arrange_plots)
        left.addWidget(self.canvas, 1)
        self.status = ElidedLabel("", min_chars=8)  # long timing text elides (all of it in the tooltip)
        self.status.setObjectName("latent-status")
        self.plane_label = ElidedLabel("", min_chars=8)  # which plane of a d > 2 latent space is shown
        self.plane_label.setObjectName("latent-plane-label")
        self.plane_label.setVisible(False)
        left.addWidget(self.plane_label)
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("labels:"))
        bottom.addWidget(self.legend)
        bottom.addWidget(self.status, 1)
        left.addLayout(bottom)

        # left plot layers (z order): density -10, points 0, thumbnails 2, prior 4, ellipses 6, markers 8
        self.density_item = ImageItem(axisOrder="row-major")
        self.density_item.setZValue(-10)
        self.vb.addItem(self.density_item, ignoreBounds=True)
        self.scatter = RasterScatter(self.vb, z=0)
        self.thumbs_item = ImageItem(axisOrder="row-major")
        self.thumbs_item.setZValue(2)
        self.vb.addItem(self.thumbs_item, ignoreBounds=True)
        t = np.linspace(0, 2 * np.pi, 181)
        circles = [np.r_[r * np.cos(t), np.nan] for r in (1, 2, 3)], [np.r_[r * np.sin(t), np.nan] for r in (1, 2, 3)]
        self.prior_curves = []
        for p in (self.plot, self.grid_plot):
            c = pg.PlotCurveItem(
                np.concatenate(circles[0]),
                np.concatenate(circles[1]),
                connect="finite",
                pen=pg.mkPen((60, 60, 60, 170), width=1.2, style=Qt.PenStyle.DashLine),
            )
            c.setZValue(4)
            p.addItem(c)
            self.prior_curves.append(c)
        self.sel_curve = OverlayCurve(connect="finite", pen=pg.mkPen("k", width=2.5))
        self.sel_curve.setZValue(6)
        self.plot.addItem(self.sel_curve, ignoreBounds=True)
        self.pin_curve = OverlayCurve(connect="finite", pen=pg.mkPen((40, 40, 40), width=1.5))
        self.pin_curve.setZValue(6)
        self.plot.addItem(self.pin_curve, ignoreBounds=True)
        self.draw_curve = OverlayCurve(connect="finite", pen=pg.mkPen("#e6007e", width=3))
        self.draw_curve.setZValue(7)
        self.plot.addItem(self.draw_curve, ignoreBounds=True)
        self.sel_marker = Marker(size=13, pen=pg.mkPen("k", width=2.5), brush=None, symbol="o")
        self.sel_marker.setZValue(8)
        self.plot.addItem(self.sel_marker, ignoreBounds=True)
        self.draw_marker = Marker(size=14, pen=pg.mkPen("#e6007e", width=2), brush="#e6007e", symbol="star")
        self.draw_marker.setZValue(8)
        self.plot.addItem(self.draw_marker, ignoreBounds=True)
        self.hover_markers = []
        for p in (self.plot, self.grid_plot):
            m = Marker(size=15, pen=pg.mkPen("#e6007e", width=2), brush=None, symbol="+")
            m.setZValue(9)
            p.addItem(m, ignoreBounds=True)
            self.hover_markers.append(m)
        self.message_item = pg.TextItem("", color=(60, 60, 60), anchor=(0.5, 0.5), fill=MESSAGE_FILL)
        self.message_item.setZValue(20)
        self.vb.addItem(self.message_item, ignoreBounds=True)
        # right plot: the mosaic
        self.mosaic_item = ImageItem(axisOrder="row-major")
        self.mosaic_item.setLookupTable(np.linspace(255, 0, 256).astype(np.uint8)[:, None].repeat(3, 1))
        self.mosaic_item.setZValue(-5)
        self.grid_vb.addItem(self.mosaic_item, ignoreBounds=True)
        self.grid_message_item = pg.TextItem("", color=(60, 60, 60), anchor=(0.5, 0.5), fill=MESSAGE_FILL)
        self.grid_message_item.setZValue(20)
        self.grid_vb.addItem(self.grid_message_item, ignoreBounds=True)
        self.vb.setRange(xRange=(-3.5, 3.5), yRange=(-3.5, 3.5), padding=0)

        # right column: hover preview, drawing pad, training
        # (in a scroll area: on a 720 px screen its three panels scroll rather than make the window taller)
        right_column = QWidget()
        right = QVBoxLayout(right_column)
        right.setContentsMargins(0, 0, 0, 0)
        right_scroll = QScrollArea()
        right_scroll.setWidget(right_column)
        right_scroll.setWidgetResizable(True)
        right_scroll.setFrameShape(QFrame.Shape.NoFrame)
        right_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(right_scroll, 1)
        hover_box = QGroupBox("p(x|z) under the mouse")
        hl = QVBoxLayout(hover_box)
        self.preview = PaintReportingLayout()
        self.hover_picture = PictureClock()  # a mouse move to its decoded digits painted on screen
        self.hover_decode_ms: list[float] = []  # ... and the decode alone
        self.preview.after_paint = self.hover_picture.painted
        self.preview.setBackground("w")
        self.preview.setMinimumHeight(120)
        self.preview_items, self.preview_titles = [], []
        for i, title in enumerate(("mean", "sample", "variance")):
            self.preview_titles.append(self.preview.addLabel(title, row=0, col=i, size="8pt"))
            vb, item = _image_plot()
            self.preview.addItem(vb, row=1, col=i)
            self.preview_items.append(item)
        self.preview.ci.layout.setRowStretchFactor(1, 10)
        hl.addWidget(self.preview)
        hover_row = QHBoxLayout()
        self.hover_label = QLabel("hover over either plot")
        self.hover_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.sample_seed = QSpinBox()
        self.sample_seed.setObjectName("latent-sample-seed")
        self.sample_seed.setRange(0, SEED_MAX)
        self.sample_seed.setPrefix("seed ")
        self.sample_seed.setMaximumWidth(self.sample_seed.fontMetrics().horizontalAdvance("seed 2147483647") + 40)
        self.sample_seed.setKeyboardTracking(False)
        self.sample_seed.setToolTip("seed of the sample x ~ p(x|z) (middle): the same z and seed give the same sample")
        self.sample_seed.setValue(self.workspace.seed(self.name))
        self._show_sample_seed()
        hover_row.addWidget(self.hover_label, 1)
        hover_row.addWidget(self.sample_seed)
        hl.addLayout(hover_row)
        right.addWidget(hover_box, 2)
        pad_box = QGroupBox("Draw a digit")
        pl = QHBoxLayout(pad_box)
        self.pad = DrawPad((28, 28))
        self.pad.setFixedSize(140, 140)  # fixed: the view must not move under the pen
        pl.addWidget(self.pad)
        side = QVBoxLayout()
        self.pad_label = QLabel("its q(z|x) appears\nin magenta")
        self.pad_label.setFixedWidth(150)
        self.clear_pad = QPushButton("Clear")
        side.addWidget(self.pad_label)
        side.addWidget(self.clear_pad)
        side.addStretch(1)
        pl.addLayout(side)
        right.addWidget(pad_box, 2)
        self.train_panel = TrainPanel()
        self.train_panel.show_settings(st.train)
        right.addWidget(self.train_panel, 4)
        bar = right_scroll.verticalScrollBar().sizeHint().width()
        right_scroll.setMinimumWidth(right_column.minimumSizeHint().width() + bar)  # (never a sideways scroll)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.with_explanation(content))

        # wiring: widgets -> state, then redraw what depends on it
        self._range_timer = QTimer(self)
        self._range_timer.setSingleShot(True)
        self._range_timer.setInterval(40)
        self._range_timer.timeout.connect(self._on_range_settled)
        self.vb.sigRangeChanged.connect(lambda *a: self._range_timer.start())
        self.vb.sigResized.connect(lambda *a: self._range_timer.start())
        self.grid_vb.sigRangeChanged.connect(lambda *a: self._range_timer.start())
        self.grid_vb.sigResized.connect(lambda *a: self._range_timer.start())
        self.canvas.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.vb.clicked.connect(self._on_click)
        self.grid_vb.clicked.connect(self._on_grid_click)
        self.points_box.toggled.connect(self._on_points_toggled)
        self.thumbs_box.toggled.connect(self._on_thumbnails_toggled)
        self.background.currentIndexChanged.connect(self._on_background)
        self.grid_n.valueChanged.connect(self._on_grid_n)
        self.quantile_box.toggled.connect(self._on_quantile_toggled)
        self.fit_button.clicked.connect(self.fit_view)
        self.plane_box.currentIndexChanged.connect(self._on_plane_controls)
        for box in self.axis_boxes:
            box.valueChanged.connect(self._on_plane_controls)
        self.pad.changed.connect(self._on_drawn)
        self.clear_pad.clicked.connect(self.pad.clear_image)
        self.sample_seed.valueChanged.connect(lambda v: self.workspace.set_seed(self.name, int(v)))
        self.train_panel.mode.currentIndexChanged.connect(lambda *a: self._show_train_note())
        self.train_panel.train_button.clicked.connect(self.start_training)
        self.train_panel.cancel_button.clicked.connect(self.cancel_training)
        self.train_panel.save_button.clicked.connect(self._ask_save)

    # -- widgets -> state ------------------------------------------------------------------------------------------
    def _on_points_toggled(self, on: bool) -> None:
        self.state.points = on
        self.scatter.image.setVisible(on)

    def _on_thumbnails_toggled(self, on: bool) -> None:
        self.state.thumbnails = on
        self._update_thumbnails()

    def _on_background(self, *args) -> None:
        self.state.background = self.background.currentData()
        self._request_density()

    def _on_grid_n(self, value: int) -> None:
        self.state.grid_n = int(value)
        self._request_grid()

    def _on_quantile_toggled(self, on: bool) -> None:
        self.state.quantiles = on
        if on:
            self.grid_plot.setXLink(None)
            self.grid_plot.setYLink(None)
            self.grid_vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.01)
            self.prior_curves[1].setVisible(False)
        else:
            self.prior_curves[1].setVisible(True)
            self.grid_plot.setXLink(self.plot)
            self.grid_plot.setYLink(self.plot)
        self._show_plane_labels()
        self._request_grid()
        self._show_hover_marker()

    def _on_plane_controls(self, *args) -> None:
        """Another plane chosen (d > 2): project, redraw everything on it, and fit the view to it."""
        st = self.state
        st.plane_kind = self.plane_box.currentData()
        a, b = (box.value() - 1 for box in self.axis_boxes)
        if a == b:  # (two equal axes: the other box moves on)
            return
        st.plane_axes = (a, b)
        for box in self.axis_boxes:
            box.setEnabled(st.plane_kind == "axes" or st.encoder_problem() is not None)
        st.choose_plane()
        self._show_plane()
        self.fit_view()

    def _show_plane_controls(self) -> None:
        """The plane controls of the displayed model: shown for d > 2; PCA needs an encoder."""
        st, d = self.state, self.state.latent_dim
        self.plane_controls.setVisible(d > 2)
        if d <= 2:
            return
        has_encoder = st.caps is not None and st.caps.has_encoder
        widgets = (self.plane_box, *self.axis_boxes)
        for w in widgets:
            w.blockSignals(True)
        item = cast(QStandardItemModel, self.plane_box.model()).item(self.plane_box.findData("pca"))
        item.setEnabled(has_encoder)
        self.plane_box.setCurrentIndex(self.plane_box.findData(st.plane_kind if has_encoder else "axes"))
        self.plane_box.setToolTip(
            "" if has_encoder else "the model has no encoder: no encodings to take principal directions of"
        )
        for k, box in enumerate(self.axis_boxes):
            box.setRange(1, d)
            box.setValue(min(st.plane_axes[k], d - 1) + 1)
            box.setEnabled(st.plane_kind == "axes" or not has_encoder)
        for w in widgets:
            w.blockSignals(False)

    def _show_plane_labels(self) -> None:
        """Axis labels and titles saying which plane is shown."""
        st = self.state
        bottom, left = st.axis_labels()
        steady_label(self.plot, "bottom", bottom)
        steady_label(self.plot, "left", left)
        if st.quantiles:
            steady_label(self.grid_plot, "bottom", f"u₁ = Φ({bottom.split(':')[0]})")
            steady_label(self.grid_plot, "left", f"u₂ = Φ({left.split(':')[0]})")
        else:
            steady_label(self.grid_plot, "bottom", bottom)
            steady_label(self.grid_plot, "left", left)
        about = "" if st.plane is None else st.plane.description()
        steady_title(self.plot, "encoded data: μ<sub>φ</sub>(x)" + (" projected on the plane" if about else ""))
        steady_title(self.grid_plot, "decoded manifold E[x|z]" + (" on the plane" if about else ""))
        self.plane_label.setText(about)
        self.plane_label.setVisible(bool(about))

    def _show_plane(self) -> None:
        """Redraw everything that depends on the plane: labels, prior circles, points, q ellipses, background,
        grid, thumbnails and the hover preview."""
        st = self.state
        self._show_plane_labels()
        cx, cy = st.prior_centre
        t = np.linspace(0, 2 * np.pi, 181)
        xs = np.concatenate([np.r_[cx + r * np.cos(t), np.nan] for r in (1, 2, 3)])
        ys = np.concatenate([np.r_[cy + r * np.sin(t), np.nan] for r in (1, 2, 3)])
        for curve in self.prior_curves:
            curve.setData(xs, ys)
        self._apply_colours()
        self._update_selection()
        self._update_drawn()
        self._request_density()
        self._request_grid()
        self._update_thumbnails()
        if not st.problem():
            self.hover(st.hover)

    def _show_sample_seed(self) -> None:
        self.preview_titles[1].setText(f"sample (seed {self.workspace.seed(self.name)})", size="8pt")

    def _on_seeds(self, name) -> None:
        seed = self.workspace.seed(self.name)
        if self.sample_seed.value() != seed:
            self.sample_seed.blockSignals(True)
            self.sample_seed.setValue(seed)
            self.sample_seed.blockSignals(False)
        self._show_sample_seed()
        if self.state.problem() is None:
            self.hover(self.state.hover)

    # -- workspace events ------------------------------------------------------------------------------------------
    def _on_model(self, model) -> None:
        st = self.state
        same_weights, st.device_switched = st.device_switched, False
        ours = model is not None and model is self.run.shown_result
        self._set_display_model(model, fit=not (ours or (model is not None and same_weights)))
        if not ours:  # (after a run its panel says what it kept)
            self._show_train_note()

    def _on_dataset(self, ds) -> None:
        self.state.encoded_key = None
        self.state.pinned = []
        self._request_encode()

    def _on_device(self, device) -> None:
        # the workspace's model event follows with the same weights on the new device (Workspace.set_device): the
        # encodings and the grid are redone then, and the view is kept
        self.state.device_switched = self.workspace.model is not None

    def _on_gmm(self, gmm) -> None:
        self._apply_colours()

    def _on_selection(self, index) -> None:
        self._update_selection()

    # -- the displayed model ---------------------------------------------------------------------------------------
    def _set_display_model(self, model, fit: bool) -> None:
        st = self.state
        same_kind = st.model is not None and model is not None and st.latent_dim == int(model.latent_dim)
        st.set_model(model)
        st.encoded_key = None
        st.fit_pending = st.fit_pending or fit
        if fit or not same_kind:  # another model: nothing of the previous one stays on screen
            st.clear_encodings()
            self.mosaic_item.clear()
            self.density_item.clear()
            self.thumbs_item.setVisible(False)
            for item in self.preview_items:
                item.clear()
        self._show_plane_controls()
        self._show_plane()
        self._request_encode()  # (_show_plane drew the hover preview: it is never empty)

    def _show_message(self, text: str | None) -> None:
        self.message_item.setText(_wrap(text or ""))
        self.message_item.setVisible(bool(text))  # (its fill would show as an empty box)
        if text:
            (x0, x1), (y0, y1) = self.vb.viewRange()
            self.message_item.setPos((x0 + x1) / 2, (y0 + y1) / 2)

    def _show_grid_message(self, text: str | None) -> None:
        self.grid_message_item.setText(_wrap(text or ""))
        self.grid_message_item.setVisible(bool(text))
        if text:
            (x0, x1), (y0, y1) = self.grid_vb.viewRange()
            self.grid_message_item.setPos((x0 + x1) / 2, (y0 + y1) / 2)

    @property
    def message_text(self) -> str:
        """What the left plot says instead of the encodings (empty when it shows them)."""
        return self.message_item.textItem.toPlainText()

    @property
    def grid_message_text(self) -> str:
        """What the right plot says instead of the decoded grid (empty when it shows one)."""
        return self.grid_message_item.textItem.toPlainText()

    # -- encoding the dataset --------------------------------------------------------------------------------------
    def _request_encode(self) -> None:
        st = self.state
        problem = st.problem() or st.data_problem(self.workspace.data) or st.encoder_problem()
        self._show_message(problem)
        if problem:
            st.clear_encodings()
            self.scatter.set_data(st.plane_mu)
            self._update_thumbnails()
            self._update_selection()
            self.density_item.clear()
            return
        model, data = st.model, self.workspace.data
        key = (id(model), id(data))
        if key == st.encoded_key:
            return
        x = data.x

        def job(token):
            t0 = time.perf_counter()
            mu, sigma = ls.encode_dataset(model, x, token=token)
            return mu, sigma, time.perf_counter() - t0

        def done(result):
            if st.model is not model:
                return
            mu, sigma, seconds = result
            plane = st.plane
            st.set_encodings(mu, sigma, data.y, key)  # (a PCA plane follows the encodings)
            st.timings["encode_ms"] = seconds * 1000
            if st.fit_pending:
                st.fit_pending = False
                self.fit_view()
            if st.plane is not plane and (plane is None or plane.kind == "pca"):
                self._show_plane()
            else:
                self._apply_colours()
                self._update_selection()
                self._request_density()
                self._update_thumbnails()
            self.status.setText(st.status_text())

        self.runner.submit(self.channel("encode"), job, on_result=done)

    def _on_colours(self, _appearance=None) -> None:
        self.legend.setText(_legend_html())
        if len(self.state.mu):
            self._apply_colours()
            self._update_thumbnails()

    def _apply_colours(self) -> None:
        self.scatter.set_data(self.state.plane_mu, self.state.colours(self.workspace.gmm))

    def fit_view(self) -> None:
        """Show the encoded points (robust extent) and the prior's 3-sigma circle."""
        x_range, y_range = self.state.fit_range()
        self.vb.setRange(xRange=x_range, yRange=y_range, padding=0)

    # -- view changes ----------------------------------------------------------------------------------------------
    def _on_range_settled(self) -> None:
        self._request_grid()
        self._request_density()
        self._update_thumbnails()
        if self.message_text:
            self._show_message(self.message_text)
        if self.grid_message_text:
            self._show_grid_message(self.grid_message_text)

    # -- decoding grid ---------------------------------------------------------------------------------------------
    def _request_grid(self) -> None:
        st = self.state
        model, plane = st.model, st.plane
        problem = st.problem() or st.decoder_problem()
        self._show_grid_message(None if st.problem() else problem)
        if problem or plane is None:  # (no plane yet: a PCA plane waits for the encodings)
            self.mosaic_item.clear()
            return
        zx, zy, (left, bottom, width, height) = st.mosaic_cells(self.grid_vb.viewRange())
        rect = QRectF(left, bottom, width, height)

        def job():
            t0 = time.perf_counter()
            mosaic = ls.decode_mosaic(model, zx, zy, plane)
            return mosaic, time.perf_counter() - t0

        def done(result):
            if st.model is not model or st.plane is not plane:
                return
            mosaic, seconds = result
            st.timings.update(grid_ms=seconds * 1000, grid_nx=len(zx), grid_ny=len(zy))
            self.mosaic_item.setImage(mosaic, levels=(0, 1), autoLevels=False)
            self.mosaic_item.setRect(rect)
            self.status.setText(st.status_text())

        self.runner.submit(self.channel("grid"), job, on_result=done)

    # -- aggregate posterior ---------------------------------------------------------------------------------------
    def _request_density(self) -> None:
        mode = self.state.background
        mu, sigma, plane = self.state.mu, self.state.sigma, self.state.plane
        if mode == "none" or not len(mu) or plane is None:
            self.density_item.setVisible(False)
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        n = DENSITY_GRID if plane.kind == "axes" else PCA_DENSITY_GRID
        zx, zy = ls.cell_centres(x0, x1, n), ls.cell_centres(y0, y1, n)

        def job():
            t0 = time.perf_counter()
            q = ls.aggregate_density(mu, sigma, zx, zy, plane)
            img = display.density_rgba(q, ls.prior_density(zx, zy, plane.prior_centre), mode)
            return img, time.perf_counter() - t0

        def done(result):
            if self.state.mu is not mu or self.state.plane is not plane:
                return
            img, seconds = result
            self.state.timings["density_ms"] = seconds * 1000
            self.density_item.setImage(img, autoLevels=False, levels=(0, 255))
            self.density_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            self.density_item.setVisible(self.state.background != "none")

        self.runner.submit(self.channel("density"), job, on_result=done)

    # -- thumbnails ------------------------------------------------------------------------------------------------
    def _update_thumbnails(self) -> None:
        st, data = self.state, self.workspace.data
        shape = None if st.model is None else ls.image_shape_of(st.model)
        if not st.thumbnails or not len(st.plane_mu) or data is None or shape is None or len(data.x) != len(st.mu):
            self.thumbs_item.setVisible(False)
            return
        t0 = time.perf_counter()
        (x0, x1), (y0, y1) = self.vb.viewRange()
        w, h = max(int(self.vb.width()), 1), max(int(self.vb.height()), 1)
        px = (st.plane_mu[:, 0] - x0) / (x1 - x0) * w
        py = (st.plane_mu[:, 1] - y0) / (y1 - y0) * h
        idx = display.pick_thumbnails(px, py, w, h, THUMB_PX, THUMB_CAP)
        images = data.x[idx].reshape(-1, *shape)
        img = display.thumbnails_rgba(images, st.colours(self.workspace.gmm)[idx], px[idx], py[idx], w, h, THUMB_PX)
        self.thumbs_item.setImage(img, autoLevels=False, levels=(0, 255))
        self.thumbs_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.thumbs_item.setVisible(True)
        st.timings["thumbnails_ms"] = (time.perf_counter() - t0) * 1000
        st.timings["thumbnails"] = len(idx)

    # -- selection -------------------------------------------------------------------------------------------------
    def _on_click(self, pos, button, modifiers) -> None:
        if button != Qt.MouseButton.LeftButton:
            return
        i = self.scatter.nearest(pos.x(), pos.y(), max_pixels=15.0)
        if i is None:
            return
        if modifiers & Qt.KeyboardModifier.ShiftModifier:
            self.state.toggle_pin(i)
            self._update_selection()
        else:
            self.workspace.select(i)

    def _on_grid_click(self, pos, button, modifiers) -> None:
        """A click on the mosaic selects the data point nearest that z (in latent space)."""
        if button != Qt.MouseButton.LeftButton:
            return
        i = self.state.nearest_to_grid_point(pos.x(), pos.y())
        if i is not None:
            self.workspace.select(i)

    def _ellipse_xy(self, indices) -> tuple[np.ndarray, np.ndarray]:
        st = self.state
        parts = []
        if not len(st.plane_mu):
            return np.zeros(0), np.zeros(0)
        for i in indices:
            parts.append(ellipse_points(st.plane_mu[i], st.plane_cov(i)))
            parts.append(np.full((1, 2), np.nan))
        if not parts:
            return np.zeros(0), np.zeros(0)
        pts = np.concatenate(parts)
        return pts[:, 0], pts[:, 1]

    def _update_selection(self) -> None:
        st = self.state
        i = self.workspace.selected_index
        if i is not None and i < len(st.plane_mu):
            self.sel_curve.setData(*self._ellipse_xy([i]))
            self.sel_marker.setData([st.plane_mu[i, 0]], [st.plane_mu[i, 1]])
        else:
            self.sel_curve.setData([], [])
            self.sel_marker.setData([], [])
        st.prune_pins()
        self.pin_curve.setData(*self._ellipse_xy(st.pinned))

    # -- hover -----------------------------------------------------------------------------------------------------
    def _grid_to_z(self, x: float, y: float) -> tuple[float, float]:
        return self.state.grid_to_z(x, y)

    def _on_mouse_moved(self, scene_pos) -> None:
        if self.canvas.scene().dragButtons:  # a pan: the point under the cursor stays (the view moves after this)
            return
        moved_at = time.perf_counter()
        for vb, on_grid in ((self.vb, False), (self.grid_vb, True)):
            if vb.sceneBoundingRect().contains(scene_pos):
                p = vb.mapSceneToView(scene_pos)
                z = self.state.grid_to_z(p.x(), p.y()) if on_grid else (p.x(), p.y())
                if self.hover(z):
                    self.hover_picture.drawn(moved_at)
                return

    def hover(self, z: tuple[float, float]) -> bool:
        """Show p(x|z) at the plane point z: mean, one sample (seeded: the same z and seed give the same sample),
        per-pixel variance (decoded on the GUI thread). False when there is nothing to decode (no model or plane)."""
        st = self.state
        if st.problem() or st.plane is None:
            return False
        model, caps = st.model, st.caps
        missing = caps.missing("decoder-mean") if caps is not None else None
        if missing:
            for item in self.preview_items:
                item.clear()
            self.hover_label.setText("no decoder mean: nothing to decode here")
            self.hover_label.setToolTip(missing)
            st.hover = (float(z[0]), float(z[1]))
            self._show_hover_marker()
            return True
        t0 = time.perf_counter()
        generator = torch.Generator().manual_seed(self.workspace.seed(self.name))
        mean, sample, var = ls.decode_point(model, z, generator, st.plane)
        ms = (time.perf_counter() - t0) * 1000
        st.timings["hover_ms"] = ms
        self.hover_decode_ms.append(ms)
        del self.hover_decode_ms[:-500]
        where = "a" if st.plane.description() else "z"
        if mean.ndim == 2:
            gaussian = caps is not None and caps.decoder == "gaussian"
            vmax = 0.25 if var is None or not gaussian else max(float(var.max()), 1e-6)
            for item, img, levels in zip(
                self.preview_items, (mean, sample, var), ((0, 1), (0, 1), (0, vmax)), strict=True
            ):
                if img is None:  # (a model with only decode_mean: no sample, no variance)
                    item.clear()
                else:
                    item.setImage(img, levels=levels, autoLevels=False)
            text = f"{where} = ({z[0]:.2f}, {z[1]:.2f})  ·  decode {ms:.1f} ms"
            if sample is None:
                text += "  ·  only the mean: the model has no sampler or variance"
            self.hover_label.setText(text)
        else:
            text = f"{where} = ({z[0]:.2f}, {z[1]:.2f}) → E[x|z] = {np.array2string(mean, precision=2)}"
            if var is not None and caps is not None and caps.decoder == "gaussian":  # the decoder's diagonal Sigma(z)
                text += f", diag Σ(z) = {np.array2string(np.asarray(var), precision=3)}"
            self.hover_label.setText(text)
        self.hover_label.setToolTip(self.hover_label.text())
        st.hover = (float(z[0]), float(z[1]))
        self._show_hover_marker()
        return True

    def _show_hover_marker(self) -> None:
        z = self.state.hover
        self.hover_markers[0].setData([z[0]], [z[1]])
        g = self.state.z_to_grid(z)
        self.hover_markers[1].setData([g[0]], [g[1]])

    # -- drawing pad -----------------------------------------------------------------------------------------------
    def _on_drawn(self, image) -> None:
        self.state.drawn = image if image is not None and image.size and image.any() else None
        self._update_drawn()

    def _update_drawn(self) -> None:
        st = self.state
        image = st.drawn
        no_encoder = st.encoder_problem() is not None
        caps = st.caps
        fits = caps is not None and caps.data_dim in (None, image.size if image is not None else -1)
        if image is None or st.problem() or no_encoder or not fits or st.plane is None:
            st.drawn_q = None
            self.draw_curve.setData([], [])
            self.draw_marker.setData([], [])
            self.pad_label.setText(
                "no encoder:\nno q(z|x) to show"
                if no_encoder and not st.problem()
                else "its q(z|x) appears\nin magenta"
            )
            return
        mu_full, sigma_full = ls.encode_dataset(st.model, image[None].astype(np.float32))
        mu, cov = st.plane.project(mu_full[0]), st.plane.project_cov(sigma_full[0])
        sigma = np.sqrt(np.diag(cov))
        st.drawn_q = (mu, sigma)
        pts = ellipse_points(mu, cov)
        self.draw_curve.setData(pts[:, 0], pts[:, 1])
        self.draw_marker.setData([mu[0]], [mu[1]])
        self.pad_label.setText(f"q(z|x): μ = ({mu[0]:.2f}, {mu[1]:.2f})\nσ = ({sigma[0]:.2f}, {sigma[1]:.2f})")

    # -- training --------------------------------------------------------------------------------------------------
    def _show_train_note(self) -> None:
        """Idle: what 'Train' will do (continuing: at which learning rate, and why)."""
        if self.run.running:
            return
        panel, ws = self.train_panel, self.workspace
        if panel.from_scratch or ws.model is None:
            panel.status.setText("a new 2-D VAE: one-cycle schedule to the lr above")
            panel.status.setToolTip("")
            return
        try:
            state = schedule_state_from_info(ws.model_info)
        except LVMError:
            state = None
        line, why = continue_lr_text(state)
        panel.status.setText(line)
        panel.status.setToolTip(why)

    def start_training(self) -> None:
        ws, panel = self.workspace, self.train_panel
        self.state.train = panel.settings()
        try:
            plan = plan_training(
                self.state.train,
                dataset=ws.dataset,
                split=ws.split,
                data=ws.data,
                model=ws.model,
                model_info=ws.model_info,
                dataset_spec=ws.dataset_spec,
                device=ws.device,
            )
        except LVMError as exc:
            ws.message(str(exc))
            return
        self.run.begin(plan.config, plan.epoch_offset, plan.info)
        x_shown, mosaic_z = self._keep_epoch_frames(self.state.train.seed)
        panel.show_run(self.run)
        panel.set_running(True)
        panel.status.setText(plan.describe())
        self.runner.submit(
            self.channel("train"),
            lambda: with_epoch_frames(run_plan(plan), x_shown, mosaic_z),
            on_snapshot=self._on_train_snapshot,
            on_error=lambda msg: self._training_ended(),
            keep_all=True,
        )

    def _keep_epoch_frames(self, seed: int) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]:
        """What the run keeps per epoch for File → Export animation: the shown points' rows (a seeded subset) and
        the mosaic's grid as it is on screen now (``TrainingRun.frames``)."""
        ws, run = self.workspace, self.run
        if ws.data is None:
            return None, None
        run.frame_rows = animation_rows(len(ws.data.x), seed)
        run.frame_labels = None if ws.data.y is None else np.asarray(ws.data.y)[run.frame_rows]
        if ws.dataset is None or ws.dataset.image_shape is None:
            return ws.data.x[run.frame_rows], None
        zx, zy, run.mosaic_rect = self.state.mosaic_cells(self.grid_vb.viewRange())
        return ws.data.x[run.frame_rows], (zx, zy)

    def _on_train_snapshot(self, item) -> None:
        snap, shot, frame = item
        run = self.run
        run.add(snap, shot)
        if frame is not None:
            run.add_frame(snap, *frame)
        self.train_panel.show_run(run)
        self.train_panel.status.setText(run.curve_text(snap))
        if shot is not None:
            self._set_display_model(shot, fit=False)
        if snap.done:
            if snap.stopped_reason == "nan":
                self.workspace.message(
                    "training hit a NaN/inf loss and stopped; the best model seen is kept (try a smaller learning rate)"
                )
            self._finish_training(stopped=False)

    def _finish_training(self, stopped: bool) -> None:
        result = self.run.result()
        self._training_ended()
        self.train_panel.status.setText(self.run.ending_text(stopped))
        if result is None:
            return
        model, info = result
        self.run.shown_result = model
        self.workspace.set_model(model, None, info)

    def _training_ended(self) -> None:
        self.run.end()
        self.train_panel.set_running(False)

    def cancel_training(self) -> None:
        """Stop training between steps; the best model seen so far (else the latest copy) becomes the workspace's."""
        if not self.run.running:
            return
        self.runner.cancel(self.channel("train"))
        self._finish_training(stopped=True)

    def is_training(self) -> bool:
        return self.run.running

    def is_running(self) -> bool:
        return self.run.running

    def eventFilter(self, watched, event) -> bool:
        if watched is self.canvas and event.type() == QEvent.Type.Resize:
            self._arrange_plots()
        return super().eventFilter(watched, event)

    def _arrange_plots(self) -> None:
        """The two square latent planes side by side, or one above the other when the canvas is narrower than
        ``STACK_BELOW_RATIO`` times its height (beside a lesson panel on a 1280 px screen the second plane was cut
        off: a plot with a locked aspect does not shrink below its height)."""
        side = self.canvas.width() >= STACK_BELOW_RATIO * self.canvas.height()
        if side == self.plots_side_by_side:
            return
        self.plots_side_by_side = side
        layout = self.canvas.ci
        layout.removeItem(self.grid_plot)
        layout.addItem(self.grid_plot, row=0 if side else 1, col=1 if side else 0)

    def toggle_run(self) -> bool:
        """Train with the train panel's settings, or stop training (the best model seen is kept)."""
        if self.run.running:
            self.cancel_training()
        else:
            self.start_training()
        return True

    def _ask_save(self) -> None:
        if self.workspace.model is None:
            self.workspace.message("there is no model to save; train or open one first")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save model", "vae.safetensors", "Checkpoints (*.safetensors)")
        if path:
            self.save_model(path)

    def save_model(self, path: str) -> None:
        win = self.window()
        if hasattr(win, "save_model"):
            win.save_model(path)  # updates the window's model label; reports errors
            return
        from lvm.checkpoint import save_model

        try:
            save_model(self.workspace.model, path, self.workspace.model_info)
        except (OSError, LVMError) as exc:
            self.workspace.message(f"could not save the model to {path}: {exc}")
            return
        self.workspace.model_path = str(path)

    # -- LabView API -----------------------------------------------------------------------------------------------
    def activate(self) -> None:
        self._request_encode()
        if self.mosaic_item.image is None:
            self._request_grid()

    def deactivate(self) -> None:
        """Cancel interactive work; training goes on in the background."""
        for what in ("encode", "grid", "density"):
            self.runner.cancel(self.channel(what))
        if not len(self.state.mu):
            self.state.encoded_key = None

    # -- animation (File → Export animation…: app.widgets.animation_export) -------------------------------------------
    def animation_problem(self) -> str | None:
        if self.run.running:
            return "training is running: wait for it (or stop it) to export its epochs"
        if not self.run.frames:
            return "no model was trained in the Latent lab yet: train one (right), then export its epochs"
        return None

    def animation_frame_count(self) -> int:
        return len(self.run.frames)

    def animation_frames(self) -> Iterator[str]:
        """Each epoch end of the last training run: the encoder means of the kept points (coloured by label), the
        decoded mosaic and the curves up to that epoch; then back to what the user had (the current model's view)."""
        run = self.run
        frames, last = list(run.frames), run.frames[-1].epoch
        colours = display.label_colours(run.frame_labels, len(frames[0].mu))
        overlays: list[QGraphicsItem] = [self.density_item, self.thumbs_item, self.sel_curve, self.pin_curve]
        overlays += [self.draw_curve]
        overlays += [self.sel_marker, self.draw_marker, self.message_item, *self.hover_markers]
        shown = [item.isVisible() for item in overlays]
        mosaic, mosaic_shown = self.mosaic_item.image, self.mosaic_item.isVisible()
        mosaic_rect = self.mosaic_item.mapRectToParent(self.mosaic_item.boundingRect())
        try:
            for item in overlays:  # (they belong to the current model)
                item.setVisible(False)
            for f in frames:
                self.scatter.set_data(f.mu, colours)
                if f.mosaic is not None and run.mosaic_rect is not None:
                    self.mosaic_item.setImage(f.mosaic, levels=(0, 255), autoLevels=False)
                    self.mosaic_item.setRect(QRectF(*run.mosaic_rect))
                self.mosaic_item.setVisible(f.mosaic is not None)
                tp = [p for p in run.train_points if p[0] <= f.epoch]
                vp = [p for p in run.valid_points if p[0] <= f.epoch]
                self.train_panel.train_curve.setData([p[0] for p in tp], [p[1] for p in tp])
                self.train_panel.valid_curve.setData([p[0] for p in vp], [p[1] for p in vp])
                held_out = next((f", held-out ELBO {y:.1f} nats" for x, y in vp if x == f.epoch), "")
                yield f"{self.title}, training: epoch {f.epoch:g} of {last:g}{held_out}"
        finally:
            for item, visible in zip(overlays, shown, strict=True):
                item.setVisible(visible)
            if mosaic is None:
                self.mosaic_item.clear()
            else:
                self.mosaic_item.setImage(mosaic, levels=(0, 1), autoLevels=False)
                self.mosaic_item.setRect(mosaic_rect)
            self.mosaic_item.setVisible(mosaic_shown)
            self._apply_colours()
            self.train_panel.show_run(run)

    def export_widget(self) -> QWidget:
        return self

    def export_csv(self, path: str) -> None:
        if not len(self.state.mu):
            raise NotImplementedError("there are no encoded points to export yet")
        from lvm.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows(self.state.csv_rows())

    def view_state(self) -> dict:
        st = self.state
        (x0, x1), (y0, y1) = self.vb.viewRange()
        st.view_range = (float(x0), float(x1)), (float(y0), float(y1))
        st.drawn = None if self.pad.is_empty else self.pad.image.reshape(-1).astype(np.float32)
        st.train = self.train_panel.settings()
        return st.to_dict()

    def restore_view_state(self, state: dict) -> None:
        """What ``view_state`` saved; a bad or missing field keeps what is shown (``LatentState.from_dict``)."""
        if not isinstance(state, dict):
            return
        saved = LatentState.from_dict(state, strict=False)
        present = {k for k in state if state[k] is not None}
        if saved.view_range is not None:
            (x0, x1), (y0, y1) = saved.view_range
            self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
            self.state.fit_pending = False
        for key, box in (
            ("points", self.points_box),
            ("thumbnails", self.thumbs_box),
            ("quantiles", self.quantile_box),
        ):
            if key in present:
                box.setChecked(getattr(saved, key))
        if "background" in present:
            self.background.setCurrentIndex(self.background.findData(saved.background))
        if "grid_n" in present:
            self.grid_n.setValue(saved.grid_n)
        if "plane" in present or "plane_axes" in present:
            if "plane" in present:
                self.state.plane_kind = saved.plane_kind
            if "plane_axes" in present:
                self.state.plane_axes = saved.plane_axes
            self.state.choose_plane()
            self._show_plane_controls()
            self._show_plane()
        if "pinned" in present:
            self.state.pinned = list(saved.pinned)
            self._update_selection()
        if saved.drawn is not None:
            self.pad.set_image(saved.drawn)  # (its changed signal shows the drawing's q(z|x))
        if "hover" in present:
            self.state.hover = saved.hover
            self.hover(saved.hover) if self.state.problem() is None else self._show_hover_marker()
        if isinstance(state.get("train"), dict):
            self.train_panel.show_settings(saved.train)
            self.state.train = saved.train
