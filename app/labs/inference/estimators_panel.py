"""Estimator convergence (L_k against k, with quantile bands over repeats, naive MC failing, the exact log p(x)) and
Jensen made visible (histograms of p_hat / p(x) and of log p_hat - log p(x) over repeats)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.labs.inference.plots import (
    ELBO_LINE_COLOR,
    ESTIMATOR_COLORS,
    EXACT_COLOR,
    POSTERIOR_CMAP,
    latent_plot,
    set_image,
    union_rect,
)
from app.labs.inference.readouts import (
    ESTIMATOR_LABELS,
    convergence_readout,
    jensen_histograms,
    jensen_readout,
    proposal_readout,
)
from app.widgets.data_point_card import DataPointCard
from app.widgets.estimate_band import add_estimate_band
from app.widgets.grid_lines import GridLines
from app.widgets.image_item import ImageItem
from app.widgets.lab_view import labelled_row, restore_spin
from app.widgets.lab_view import spin_box as _spin
from lvm.estimators.convergence import PROPOSALS, convergence_steps, jensen_estimates, proposal_coverage
from lvm.gaussian_q import encoder_q, gaussian_elbo
from lvm.threads import single_thread


def settings_spin(settings_of, key: str, default: int, name: str, step: int = 1) -> QSpinBox:
    """An integer spin box over the range of setting ``key`` (``LIMITS``) of the settings ``settings_of()`` returns;
    an edit writes the setting."""
    lo, hi = type(settings_of()).LIMITS[key]
    box = _spin(int(lo), int(hi), default, name, step)
    box.valueChanged.connect(lambda v: setattr(settings_of(), key, int(v)))
    return box


class _LazyPanel(QWidget):
    """A panel that computes when shown and its inputs changed (``stale``). Subclasses set ``chan`` (their worker
    channel), ``spins`` (setting name -> spin box) and ``settings`` (the lab state's settings they edit)."""

    chan = ""
    spins: dict[str, QSpinBox | QDoubleSpinBox]
    card: DataPointCard
    status: QLabel

    def __init__(self, lab):
        super().__init__()
        self.lab = lab
        self.ws = lab.workspace
        self.stale = True

    def invalidate(self) -> None:
        self.stale = True
        self.lab.runner.cancel(self.lab.channel(self.chan))
        self.clear()
        if self.lab.is_panel_visible(self):
            self.run()

    @property
    def settings(self):
        raise NotImplementedError

    def run(self) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def ensure(self) -> None:
        if self.stale:
            self.run()

    def add_readout(self, layout: QVBoxLayout) -> None:
        """The panel's last row: the card of the x analysed (``self.card``), then its readout ``self.status``."""
        self.card = DataPointCard()
        row = QHBoxLayout()
        row.addWidget(self.card, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.status, 1)
        layout.addLayout(row)

    def show_settings(self) -> None:
        """The spin boxes show the lab state's settings (a restored session's), without recomputing."""
        st = self.settings
        for key, box in self.spins.items():
            restore_spin(box, getattr(st, key), block_signals=True)


class ConvergencePanel(_LazyPanel):
    title = "Estimator convergence"
    chan = "convergence"

    def __init__(self, lab):
        super().__init__(lab)
        self.snapshot = None
        self.log_px: float | None = None
        self.elbo: float | None = None
        self.coverage = None
        self.proposal = ""
        self.plot = pg.PlotWidget(background="w", title="Estimates of log p(x) against the number of samples k")
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "k (samples per estimate)")
        self.plot.setLabel("left", "log p(x) estimate (nats)")
        self.grid_lines = GridLines(self.plot, alpha=0.2)
        self.plot.addLegend(offset=(-8, -8))
        self.curves, self.bands = {}, {}
        for name in PROPOSALS:
            c = ESTIMATOR_COLORS[name]
            lo, hi, band, self.curves[name] = add_estimate_band(self.plot, c, ESTIMATOR_LABELS[name] + " (mean)")
            self.bands[name] = (lo, hi, band)
        self.exact_line = self.plot.plot(pen=pg.mkPen(EXACT_COLOR, width=2), name="exact log p(x) (quadrature)")
        self.elbo_line = self.plot.plot(
            pen=pg.mkPen(ELBO_LINE_COLOR, width=2, style=Qt.PenStyle.DashLine), name="ELBO(encoder q) (Gauss-Hermite)"
        )
        self.plot.addItem(pg.PlotDataItem(pen=pg.mkPen((120, 120, 120), width=8)), name="band: 10–90 % over estimates")

        self.sample_plots = {}
        row = QHBoxLayout()
        for name in PROPOSALS:
            p = latent_plot(ESTIMATOR_LABELS[name])
            p.setMinimumHeight(170)
            img = ImageItem()
            img.setLookupTable(POSTERIOR_CMAP.getLookupTable(nPts=256))
            p.addItem(img)
            sc = pg.ScatterPlotItem(
                pen=pg.mkPen(ESTIMATOR_COLORS[name]), brush=pg.mkBrush(ESTIMATOR_COLORS[name] + (110,))
            )
            p.addItem(sc)
            self.sample_plots[name] = (p, img, sc)
            row.addWidget(p)

        st = self.settings
        self.repeats = settings_spin(lambda: self.settings, "repeats", st.repeats, "conv-repeats")
        self.seed = settings_spin(lambda: self.settings, "seed", st.seed, "conv-seed")
        self.n_show = settings_spin(lambda: self.settings, "n_show", st.n_show, "conv-nshow", 50)
        self.kmax = settings_spin(lambda: self.settings, "kmax", st.kmax, "conv-kmax", 500)
        self.shift = self._double_spin(
            "shift",
            "conv-shift",
            0.5,
            "moves the proposal: the encoder's q(z|x) moved this many of its standard deviations along its first "
            "axis (0: the encoder's q)",
        )
        self.scale = self._double_spin(
            "scale", "conv-scale", 0.1, "the proposal's standard deviations times this (1: the encoder's)"
        )
        self.spins = {
            "repeats": self.repeats,
            "seed": self.seed,
            "n_show": self.n_show,
            "kmax": self.kmax,
            "shift": self.shift,
            "scale": self.scale,
        }
        self.run_button = QPushButton("Recompute")
        self.run_button.clicked.connect(self.run)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)  # L<sub>k</sub>
        self.status.setObjectName("conv-status")
        for s in (self.repeats, self.seed, self.n_show, self.kmax, self.shift, self.scale):
            s.valueChanged.connect(lambda _=None: self.invalidate())
        ctl = labelled_row(
            ("repeats", self.repeats), ("k max", self.kmax), ("seed", self.seed), ("samples drawn", self.n_show)
        )
        ctl.addWidget(self.run_button)
        ctl.addWidget(self.progress, 1)
        proposal_row = labelled_row(("IWAE's proposal: encoder's q moved (σ)", self.shift), ("σ ×", self.scale))
        proposal_row.addStretch(1)
        self.proposal_status = QLabel()
        self.proposal_status.setObjectName("conv-proposal")
        self.proposal_status.setWordWrap(True)
        self.proposal_status.setTextFormat(Qt.TextFormat.RichText)
        layout = QVBoxLayout(self)
        layout.addLayout(ctl)
        layout.addLayout(proposal_row)
        layout.addWidget(self.plot, 3)
        layout.addWidget(QLabel("Samples of each estimator over p(z|x), dot area ∝ normalised importance weight w̃ᵢ:"))
        layout.addLayout(row, 2)
        layout.addWidget(self.proposal_status)
        self.add_readout(layout)

    def _double_spin(self, key: str, name: str, step: float, tip: str) -> QDoubleSpinBox:
        """A spin box over the range of the float setting ``key``; an edit writes the setting."""
        lo, hi = type(self.settings).LIMITS[key]
        box = QDoubleSpinBox()
        box.setRange(lo, hi)
        box.setDecimals(2)
        box.setSingleStep(step)
        box.setValue(getattr(self.settings, key))
        box.setObjectName(name)
        box.setKeyboardTracking(False)
        box.setToolTip(tip)
        box.valueChanged.connect(lambda v: setattr(self.settings, key, float(v)))
        return box

    @property
    def settings(self):
        return self.lab.state.convergence

    def ks(self) -> tuple[int, ...]:
        return self.settings.ks()

    def clear(self) -> None:
        self.snapshot = None
        self.coverage = None
        for name in PROPOSALS:
            self.curves[name].setData([], [])
            lo, hi, _ = self.bands[name]
            lo.setData([], [])
            hi.setData([], [])
            self.sample_plots[name][2].setData([], [])
        self.exact_line.setData([], [])
        self.elbo_line.setData([], [])
        self.progress.setValue(0)
        self.proposal_status.setText("")

    def run(self) -> None:
        reference = self.lab.log_px_reference()
        if not self.lab.can_compute() or reference is None:
            self.status.setText(self.lab.why_not() or "waiting for log p(x) (the exact posterior, or AIS)…")
            return
        self.stale = False
        self.clear()
        model, x = self.ws.model, self.ws.selected_x
        enc = encoder_q(model, x)
        if enc is None:
            self.status.setText("This model has no encoder: IWAE needs the encoder's q(z|x) as its proposal.")
            return
        mean, L = enc
        with single_thread():
            self.elbo = gaussian_elbo(model, x, mean, L)
        self.log_px, what = reference
        legend_label = self.plot.getPlotItem().legend.getLabel(self.exact_line)
        if legend_label is not None and legend_label.text != what:
            legend_label.setText(what)  # exact (quadrature) or an AIS estimate
        st = self.settings
        mean, L = st.proposal(mean, L)  # IWAE's proposal: the encoder's q, or moved and scaled from it
        self.proposal = st.proposal_name()
        pic, context = self.lab.picture, self.lab.context
        if pic is not None and context is not None:  # 2-D: the uniform proposal's box covers the integration box
            cbox = context.box
            box = (float(cbox[:, 0].min()), float(cbox[:, 1].max()))
            self.coverage = proposal_coverage(pic, mean, L, box)  # exact, on the posterior's fine grid (~1 ms)
        else:  # d > 2: the uniform box is the prior's bulk, and there is no grid for the exact coverage
            box = (-4.0, 4.0)
            self.coverage = None
        ks, repeats, seed, n_show = st.ks(), st.repeats, st.seed, st.n_show
        self.status.setText(f"computing {repeats} repeats × {max(ks)} samples per estimator (seed {seed})…")
        self.lab.runner.submit(
            self.lab.channel(self.chan),
            lambda: convergence_steps(model, x, mean, L, ks=ks, repeats=repeats, seed=seed, box=box, n_show=n_show),
            on_snapshot=self.on_snapshot,
            keep_all=False,
        )

    def on_snapshot(self, snap) -> None:
        log_px, elbo = self.log_px, self.elbo
        if log_px is None or elbo is None:
            return
        self.snapshot = snap
        ks = np.array(snap.ks, dtype=float)
        for name in PROPOSALS:
            mean, lo, hi, _ = snap.stats[name]
            self.curves[name].setData(ks, mean)
            self.bands[name][0].setData(ks, lo)
            self.bands[name][1].setData(ks, hi)
        self.exact_line.setData([ks[0], ks[-1]], [log_px] * 2)
        self.elbo_line.setData([ks[0], ks[-1]], [elbo] * 2)
        ylo = min(elbo, snap.stats["iwae"].q10[0]) - max(3.0, 0.5 * (log_px - elbo))
        self.plot.setYRange(ylo, log_px + max(1.0, 0.15 * (log_px - ylo)), padding=0)
        self.plot.setXRange(0, math.log10(ks[-1]), padding=0.03)
        self.progress.setValue(int(1000 * snap.done / snap.repeats))
        pic = self.lab.picture if not self.lab.sliced() else None
        plane = self.lab.slice.plane if self.lab.sliced() else None
        for name in PROPOSALS:
            p, img, sc = self.sample_plots[name]
            s = snap.samples[name]
            w = s.normalised_weights
            size = 2.0 + 26.0 * np.sqrt(w / w.max())
            z = s.z if plane is None else plane.coordinates(s.z)  # d > 2: projected onto the slice's plane
            sc.setData(z[:, 0], z[:, 1], size=size)
            if pic is not None:
                set_image(img, pic.density, pic.extent, upsample=2)
            ext = (z[:, 0].min(), z[:, 0].max(), z[:, 1].min(), z[:, 1].max())
            r = union_rect(ext, pic.extent if pic is not None else None)
            p.getViewBox().setRange(r, padding=0.05)
            p.setTitle(f"{ESTIMATOR_LABELS[name]}<br>ESS {s.ess:.1f} of {len(s.log_w)} drawn")
        iw = snap.samples["iwae"]
        self.proposal_status.setText(proposal_readout(self.proposal, iw.ess, len(iw.log_w)))
        self.status.setText(convergence_readout(snap, self.ws.selected_index, log_px, elbo, self.coverage))

    def export_csv(self, path: str) -> None:
        snap = self.snapshot
        if snap is None:
            raise NotImplementedError("the estimator convergence has not been computed yet")
        from lvm.io import atomic_open_text

        with atomic_open_text(path) as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "estimator",
                    "k",
                    "mean_log_estimate",
                    "q10",
                    "q90",
                    "n_estimates",
                    "exact_log_px",
                    "elbo_encoder",
                    "seed",
                ]
            )
            for name in PROPOSALS:
                mean, lo, hi, cnt = snap.stats[name]
                for i, k in enumerate(snap.ks):
                    w.writerow([name, k, mean[i], lo[i], hi[i], int(cnt[i]), self.log_px, self.elbo, snap.seed])


class JensenPanel(_LazyPanel):
    title = "Jensen made visible"
    chan = "jensen"

    def __init__(self, lab):
        super().__init__(lab)
        self.values = None
        self.log_px: float = math.nan
        self.k_used = 0
        st = self.settings
        self.k = settings_spin(lambda: self.settings, "k", st.k, "jensen-k")
        self.repeats = settings_spin(lambda: self.settings, "repeats", st.repeats, "jensen-repeats", 500)
        self.seed = settings_spin(lambda: self.settings, "seed", st.seed, "jensen-seed")
        self.spins = {"k": self.k, "repeats": self.repeats, "seed": self.seed}
        for s in (self.k, self.repeats, self.seed):
            s.valueChanged.connect(lambda _=None: self.invalidate())
        self.p_plot = pg.PlotWidget(
            background="w", title="p<sub>est</sub>(x) / p(x) over repeats: its mean is 1 (unbiased)"
        )
        self.p_plot.setLabel("bottom", "p<sub>est</sub>(x) / p(x)")
        self.p_plot.setLabel("left", "count")
        self.l_plot = pg.PlotWidget(background="w", title="log p<sub>est</sub> − log p(x): mean below 0 (Jensen)")
        self.l_plot.setLabel("bottom", "log p<sub>est</sub>(x) − log p(x)  (nats)")
        self.l_plot.setLabel("left", "count")
        self.p_hist = pg.PlotDataItem(
            stepMode="center", fillLevel=0, brush=(30, 110, 200, 120), pen=pg.mkPen((30, 110, 200))
        )
        self.l_hist = pg.PlotDataItem(
            stepMode="center", fillLevel=0, brush=(200, 120, 20, 120), pen=pg.mkPen((200, 120, 20))
        )
        self.p_plot.addItem(self.p_hist)
        self.l_plot.addItem(self.l_hist)
        self.p_lines = (
            pg.InfiniteLine(angle=90, pen=pg.mkPen("k", width=2)),
            pg.InfiniteLine(angle=90, pen=pg.mkPen((220, 40, 40), width=2, style=Qt.PenStyle.DashLine)),
        )
        self.l_lines = (
            pg.InfiniteLine(angle=90, pen=pg.mkPen("k", width=2)),
            pg.InfiniteLine(angle=90, pen=pg.mkPen((220, 40, 40), width=2, style=Qt.PenStyle.DashLine)),
        )
        for ln in self.p_lines:
            self.p_plot.addItem(ln)
        for ln in self.l_lines:
            self.l_plot.addItem(ln)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setObjectName("jensen-status")
        self.status.setTextFormat(Qt.TextFormat.RichText)
        ctl = QHBoxLayout()
        for label, w in (("k (samples per estimate)", self.k), ("repeats", self.repeats), ("seed", self.seed)):
            ctl.addWidget(QLabel(label))
            ctl.addWidget(w)
        ctl.addStretch(1)
        grid = QGridLayout()
        grid.addWidget(self.p_plot, 0, 0)
        grid.addWidget(self.l_plot, 0, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(ctl)
        layout.addLayout(grid, 1)
        layout.addWidget(
            QLabel(
                "Black: the truth (ratio 1, log difference 0). Red dashed: the sample mean over repeats. "
                "Importance sampling with q = encoder q(z|x)."
            )
        )
        self.add_readout(layout)

    @property
    def settings(self):
        return self.lab.state.jensen

    def clear(self) -> None:
        self.values = None
        self.p_hist.setData([], [])
        self.l_hist.setData([], [])

    def run(self) -> None:
        reference = self.lab.log_px_reference()
        if not self.lab.can_compute() or reference is None:
            self.status.setText(self.lab.why_not() or "waiting for log p(x) (the exact posterior, or AIS)…")
            return
        model, x = self.ws.model, self.ws.selected_x
        enc = encoder_q(model, x)
        if enc is None:
            self.status.setText("This model has no encoder: the estimates use the encoder's q(z|x) as proposal.")
            return
        self.stale = False
        mean, L = enc
        st = self.settings
        k, repeats, seed, log_px = st.k, st.repeats, st.seed, reference[0]
        self.status.setText(f"computing {repeats} estimates with k = {k} (seed {seed})…")
        self.lab.runner.submit(
            self.lab.channel(self.chan),
            lambda: (k, seed, log_px, jensen_estimates(model, x, mean, L, k, repeats, seed)),
            on_result=self.on_result,
        )

    def on_result(self, result) -> None:
        k, seed, log_px, logs = result
        self.values, self.log_px, self.k_used = logs, log_px, k
        h = jensen_histograms(logs, log_px)
        self.p_hist.setData(h.ratio_edges, h.ratio_counts)
        self.l_hist.setData(h.log_edges, h.log_counts)
        self.p_lines[0].setPos(1.0)
        self.p_lines[1].setPos(h.mean_ratio)
        self.l_lines[0].setPos(0.0)
        self.l_lines[1].setPos(h.mean_log)
        self.status.setText(jensen_readout(h, self.ws.selected_index, k, len(logs), seed))

    def export_csv(self, path: str) -> None:
        if self.values is None:
            raise NotImplementedError("the Jensen histograms have not been computed yet")
        from lvm.io import atomic_open_text

        with atomic_open_text(path) as f:
            w = csv.writer(f)
            w.writerow(["repeat", "log_p_hat", "exact_log_px", "ratio_p_hat_over_p", "k"])
            for i, v in enumerate(self.values):
                w.writerow([i, v, self.log_px, math.exp(v - self.log_px), self.k_used])
