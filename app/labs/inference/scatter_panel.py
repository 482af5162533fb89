"""ELBO vs log p(x) across the data set: encoder ELBO against exact log p(x) for a seeded subset of the current split,
the diagonal ELBO = log p(x), colour = the KL gap. Clicking a point selects it in the workspace (everywhere)."""

from __future__ import annotations

import csv

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QVBoxLayout

from app.labs.inference.estimators_panel import _LazyPanel, settings_spin
from app.labs.inference.readouts import gap_classes, scatter_readout
from app.widgets.grid_lines import GridLines
from lvm.estimators.encoder_gap import encoder_gap_steps

GAP_CMAP = pg.colormap.get("viridis")
N_COLOURS = 64


class ScatterPanel(_LazyPanel):
    title = "ELBO vs log p(x)"
    chan = "scatter"

    def __init__(self, lab):
        super().__init__(lab)
        self.snap = None
        st = self.settings
        self.n = settings_spin(lambda: self.settings, "n", st.n, "scatter-n", 100)
        self.seed = settings_spin(lambda: self.settings, "seed", st.seed, "scatter-seed")
        self.spins = {"n": self.n, "seed": self.seed}
        for s in (self.n, self.seed):
            s.valueChanged.connect(lambda _=None: self.invalidate())
        self.plot = pg.PlotWidget(
            background="w", title="Encoder ELBO against exact log p(x) — click a point to select it"
        )
        self.plot.setLabel("bottom", "exact log p(x) (quadrature)")
        self.plot.setLabel("left", "ELBO(q_φ(z|x)) (Gauss-Hermite)")
        self.grid_lines = GridLines(self.plot, alpha=0.2)
        self.diag = self.plot.plot(pen=pg.mkPen("k", width=1.5, style=Qt.PenStyle.DashLine))
        self.scatter = pg.ScatterPlotItem(
            size=7, pen=None, hoverable=True, hoverSize=11, hoverPen=pg.mkPen("k", width=1.5), tip=self._tip
        )
        self.scatter.sigClicked.connect(self._on_click)
        self.plot.addItem(self.scatter)
        self.sel = pg.ScatterPlotItem(size=16, pen=pg.mkPen((230, 40, 40), width=2.5), brush=None, symbol="o")
        self.sel.setZValue(10)
        self.plot.addItem(self.sel)
        self.colorbar = pg.ColorBarItem(
            values=(0, 1), colorMap=GAP_CMAP, label="KL gap log p(x) − ELBO (nats)", interactive=False, width=14
        )
        self.colorbar.setImageItem([], insert_in=self.plot.getPlotItem())
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setObjectName("scatter-status")
        ctl = QHBoxLayout()
        ctl.addWidget(QLabel("points (random subset of the split)"))
        ctl.addWidget(self.n)
        ctl.addWidget(QLabel("seed"))
        ctl.addWidget(self.seed)
        ctl.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(ctl)
        layout.addWidget(self.plot, 1)
        self.add_readout(layout)  # with the selected x's card (a click on a point selects it)

    @property
    def settings(self):
        return self.lab.state.scatter

    def _tip(self, x, y, data):
        return f"#{int(data)}: log p(x) {x:.2f}, ELBO {y:.2f}, gap {x - y:.2f}"

    def clear(self) -> None:
        self.snap = None
        self.scatter.clear()
        self.sel.clear()
        self.diag.setData([], [])
        self.progress.setValue(0)

    def indices(self) -> np.ndarray:
        return self.settings.indices(len(self.ws.data))

    def run(self) -> None:
        ctx = self.lab.context
        if self.lab.sliced():
            d = self.ws.model.latent_dim
            self.status.setText(
                f"This model's latent space is {d}-D: this panel needs the exact log p(x) of every point, by "
                "quadrature, which needs a 2-D latent (AIS for each of hundreds of points would take minutes). The "
                "'KL gap in a slice' panel shows the gap for one x, with log p(x) by AIS."
            )
            return
        if not self.lab.can_compute() or ctx is None:
            self.status.setText(self.lab.why_not() or "waiting for the model's latent grid…")
            return
        self.stale = False
        self.clear()
        model, x_all, idx, box = self.ws.model, self.ws.data.x, self.indices(), ctx.box
        self.status.setText(f"computing ELBO and exact log p(x) for {len(idx)} points (seed {self.settings.seed})…")
        self.lab.runner.submit(
            self.lab.channel(self.chan),
            lambda: encoder_gap_steps(model, x_all, idx, box),
            on_snapshot=self.on_snapshot,
        )

    def on_snapshot(self, snap) -> None:
        self.snap = snap
        k = snap.done
        lp, el, idx = snap.log_px[:k], snap.elbo[:k], snap.indices[:k]
        ci, hi = gap_classes(snap.gap, N_COLOURS)
        lut = GAP_CMAP.getLookupTable(0.0, 1.0, N_COLOURS)
        brushes = [pg.mkBrush(*lut[i]) for i in range(N_COLOURS)]
        self.scatter.setData(lp, el, brush=[brushes[i] for i in ci], data=idx)
        self.colorbar.setLevels((0.0, hi))
        lo_v, hi_v = float(min(lp.min(), el.min())), float(lp.max())
        self.diag.setData([lo_v, hi_v], [lo_v, hi_v])
        self.progress.setValue(int(1000 * k / len(snap.indices)))
        self.show_selection()
        self.status.setText(scatter_readout(snap, self.settings.seed))

    def show_selection(self) -> None:
        snap = self.snap
        i = self.ws.selected_index
        if snap is None or i is None:
            self.sel.clear()
            return
        where = np.nonzero(snap.indices[: snap.done] == i)[0]
        if where.size:
            j = where[0]
            self.sel.setData([snap.log_px[j]], [snap.elbo[j]])
        else:
            self.sel.clear()

    def _on_click(self, _item, points, _ev=None) -> None:
        if len(points):
            self.ws.select(int(points[0].data()))

    def point_position(self, index: int):
        """(log p(x), ELBO) of data index ``index`` when it is in the computed subset (for tests)."""
        snap = self.snap
        if snap is None:
            return None
        where = np.nonzero(snap.indices[: snap.done] == index)[0]
        return None if not where.size else (float(snap.log_px[where[0]]), float(snap.elbo[where[0]]))

    def export_csv(self, path: str) -> None:
        snap = self.snap
        if snap is None:
            raise NotImplementedError("the ELBO vs log p(x) scatter has not been computed yet")
        y = self.ws.data.y
        from lvm.io import atomic_open_text

        with atomic_open_text(path) as f:
            w = csv.writer(f)
            w.writerow(["index", "label", "elbo_encoder", "exact_log_px", "kl_gap"])
            for j in range(snap.done):
                i = int(snap.indices[j])
                w.writerow(
                    [i, "" if y is None else int(y[i]), snap.elbo[j], snap.log_px[j], snap.log_px[j] - snap.elbo[j]]
                )
