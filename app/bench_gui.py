"""``python -m app.bench_gui [--json] [--quick]``: does any lab freeze the GUI? Scripted interactions under a watchdog.

Scenarios (each runs for a fixed time while a ``Watchdog`` ticks every 10 ms on the GUI thread):

- ``mixture-em-100k``: EM playing on 100,000 toy points (mixture lab);
- ``latent-train``: training the VAE (latent lab);
- ``inference-drag-q``: a left-button drag of q's ellipse, one mouse move per frame (inference lab);
- ``inpainting-draw``: strokes on the inpainting canvas, one mouse move per frame;
- ``latent-hover``: the mouse moving over the latent plane and the decoded grid (latent lab);
- ``switch-views``: the tabs switched every 250 ms (after each lab was built once: first visits are not timed);
- ``switch-datasets``: digits / moons / blobs (100,000 points) loaded in turn.

Input is delivered by a 16 ms QTimer (a 60 Hz mouse), so the event loop runs as with a user. Per scenario the output
gives the longest stall (timer lateness, seconds), the 50th/99th-percentile frame time and the number of frames.
Target: no stall above ``BUDGET_S`` = 50 ms. Runs offscreen unless ``$QT_QPA_PLATFORM``/``$DISPLAY`` say otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

BUDGET_S = 0.050
SCENARIOS = ("mixture-em-100k", "latent-train", "inference-drag-q", "inpainting-draw", "latent-hover", "switch-views",
             "switch-datasets")


def _mouse(widget, kind, pos, button, buttons):
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    ev = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(widget, ev)


class Bench:
    def __init__(self, quick: bool, device: str = "cpu", profile: bool = False):
        from PySide6.QtWidgets import QApplication

        from app.main_window import MainWindow
        from app.state import Workspace
        from app.watchdog import Watchdog

        self.app = QApplication.instance() or QApplication(sys.argv[:1])
        self.quick = quick
        self.duration = 2.0 if quick else 5.0
        self.window = MainWindow(Workspace(device=device))
        self.window.resize(1360, 860)
        self.window.show()
        self.dog = Watchdog(interval_ms=10)
        self.profile = profile
        self.results: list[dict] = []

    # -- helpers ---------------------------------------------------------------------------------------------------
    def wait(self, seconds: float) -> None:
        from PySide6.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def wait_until(self, cond, timeout: float = 120.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            self.wait(0.05)
        return cond()

    def measure(self, name: str, step=None, duration: float | None = None, period_ms: int = 16, **extra) -> dict:
        """Run the event loop for ``duration`` seconds, calling ``step(i)`` every ``period_ms``; record the stats."""
        from PySide6.QtCore import QTimer

        duration = duration or self.duration
        counter = {"i": 0}
        timer = QTimer()
        timer.setInterval(period_ms)

        def tick():
            step(counter["i"])
            counter["i"] += 1

        if step is not None:
            timer.timeout.connect(tick)
        self.dog.reset()
        prof = None
        if self.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        timer.start()
        self.wait(duration)
        timer.stop()
        if prof is not None:
            import io
            import pstats

            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(r"(app|lvm|pyqtgraph)/", 14)
            print("\n".join(buf.getvalue().splitlines()[6:]), file=sys.stderr)
        st = self.dog.stats()
        row = {"name": name, **st, "inputs": counter["i"], "duration_s": duration, "within_budget":
               st["longest_stall_s"] <= BUDGET_S, **extra}
        self.results.append(row)
        print(f"  {name:18s} longest stall {st['longest_stall_s'] * 1000:6.1f} ms   p99 frame "
              f"{st['p99_frame_s'] * 1000:6.1f} ms   p50 {st['p50_frame_s'] * 1000:5.1f} ms   {st['frames']} frames",
              file=sys.stderr, flush=True)
        return row

    def view(self, name: str):
        self.window.set_view(name)
        self.wait(0.3)
        return self.window.lab(name)

    # -- set-up ----------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        import torch

        from lvm.models.vae import VAE

        w = self.window
        done = {"v": False}
        w.loading_finished.connect(lambda: done.update(v=True))
        w.load_defaults()
        self.wait_until(lambda: done["v"] and not w.is_loading())
        if w.workspace.model is None:  # no bundled model in this checkout: the bundled architecture, untrained
            torch.manual_seed(0)
            w.workspace.set_model(VAE().eval(), None, {})
        self.dog.start()

    # -- scenarios -------------------------------------------------------------------------------------------------
    def mixture_em(self) -> None:
        lab = self.view("mixture")
        lab.source_combo.setCurrentText("blobs")
        lab.n_spin.setValue(100_000)
        lab._load_source()
        self.wait(0.2)
        if not lab.is_em_running():
            lab.toggle_run()

        def keep_playing(i):
            if i % 30 == 0 and not lab.is_em_running() and not lab.is_busy():
                lab.toggle_run()

        self.measure("mixture-em-100k", keep_playing, n_points=int(lab.X.shape[0]))
        if lab.is_em_running():
            lab.toggle_run()
        lab.n_spin.setValue(1500)
        lab._load_source()

    def latent_train(self) -> None:
        lab = self.view("latent")
        self.wait_until(lambda: not lab.is_busy(), 60)
        lab.train_panel.epochs.setValue(50)
        lab.start_training()
        self.measure("latent-train", lambda i: None, duration=self.duration + 1.0)
        lab.cancel_training()
        self.wait_until(lambda: not lab.is_training() and not lab.runner.is_busy(lab.channel("train")), 30)

    def inference_drag(self) -> None:
        from PySide6.QtCore import QEvent, QPoint, QPointF, Qt

        lab = self.view("inference")
        lab.set_panel("kl")
        if self.window.workspace.selected_index is None:
            self.window.workspace.select(0)
        self.wait_until(lambda: lab.picture is not None and not lab.is_busy(), 60)
        kl = lab.kl
        kl.set_q(np.zeros(2), np.diag([0.6, 0.6]))
        kl.fit_view()
        self.wait(0.2)
        plot, vp = kl.plot, kl.plot.viewport()

        def at(x, y):
            return plot.mapFromScene(plot.getViewBox().mapViewToScene(QPointF(x, y)))

        state = {"pressed": False}

        def step(i):
            t = i * 0.05
            x, y = float(kl.mean[0]), float(kl.mean[1])
            if not state["pressed"]:
                _mouse(vp, QEvent.MouseButtonPress, at(x, y), Qt.LeftButton, Qt.LeftButton)
                state["pressed"], state["origin"] = True, at(x, y)
                return
            target = state["origin"] + QPoint(int(60 * np.sin(t)), int(40 * np.sin(1.3 * t)))
            _mouse(vp, QEvent.MouseMove, target, Qt.NoButton, Qt.LeftButton)

        self.measure("inference-drag-q", step)
        _mouse(vp, QEvent.MouseButtonRelease, state.get("origin", QPoint(0, 0)), Qt.LeftButton, Qt.NoButton)

    def inpainting_draw(self) -> None:
        from PySide6.QtCore import QEvent, QPoint, Qt

        lab = self.view("inpainting")
        self.wait_until(lambda: lab.result is not None and not lab.is_busy(), 90)
        canvas = lab.canvas
        r = canvas._square()

        def pos(row, col):
            return QPoint(int(r.left() + col / 28 * r.width()), int(r.top() + row / 28 * r.height()))

        def step(i):
            k = i % 40
            p = pos(14 + 10 * np.sin(i * 0.15), 14 + 10 * np.cos(i * 0.11))
            if k == 0:
                _mouse(canvas, QEvent.MouseButtonPress, p, Qt.LeftButton, Qt.LeftButton)
            elif k == 39:
                _mouse(canvas, QEvent.MouseButtonRelease, p, Qt.LeftButton, Qt.NoButton)
            else:
                _mouse(canvas, QEvent.MouseMove, p, Qt.NoButton, Qt.LeftButton)

        self.measure("inpainting-draw", step)

    def latent_hover(self) -> None:
        from PySide6.QtCore import QEvent, QPointF, Qt

        lab = self.view("latent")
        self.wait_until(lambda: not lab.is_busy(), 60)
        widget = lab.canvas
        vp = widget.viewport()

        def step(i):
            vb = lab.grid_vb if (i // 60) % 2 else lab.vb
            rect = vb.sceneBoundingRect()
            sx = rect.left() + rect.width() * (0.5 + 0.45 * np.sin(i * 0.07))
            sy = rect.top() + rect.height() * (0.5 + 0.45 * np.cos(i * 0.05))
            p = widget.mapFromScene(QPointF(sx, sy))
            _mouse(vp, QEvent.MouseMove, p, Qt.NoButton, Qt.NoButton)

        self.measure("latent-hover", step)

    def switch_views(self) -> None:
        from app.views import LABS

        names = list(LABS)
        for name in names:  # steady state: each lab is built once, on its first visit (not measured here)
            self.view(name)
        self.view("mixture")

        def step(i):
            self.window.set_view(names[i % len(names)])

        self.measure("switch-views", step, duration=self.duration + 1.0, period_ms=250)

    def switch_datasets(self) -> None:
        specs = ["moons", "blobs:n=100000", "digits"]
        self.view("mixture")

        def step(i):
            if not self.window.is_loading():
                self.window.load_dataset(specs[i % len(specs)])

        self.measure("switch-datasets", step, duration=self.duration + 2.0, period_ms=700)
        self.wait_until(lambda: not self.window.is_loading(), 60)
        if self.window.workspace.dataset_spec != "digits":
            self.window.load_dataset("digits")
            self.wait_until(lambda: not self.window.is_loading(), 60)

    def run(self, only: list[str] | None = None) -> list[dict]:
        self.setup()
        table = {"mixture-em-100k": self.mixture_em, "latent-train": self.latent_train,
                 "inference-drag-q": self.inference_drag, "inpainting-draw": self.inpainting_draw,
                 "latent-hover": self.latent_hover, "switch-views": self.switch_views,
                 "switch-datasets": self.switch_datasets}
        for name in only or SCENARIOS:
            table[name]()
        self.dog.stop()
        return self.results

    def close(self) -> None:
        self.window.close()
        self.window.runner.shutdown(5000)


np = None  # numpy, imported in main() (keeps `--help` fast)


def main(argv: list[str] | None = None) -> int:
    global np
    p = argparse.ArgumentParser(prog="python -m app.bench_gui", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--quick", action="store_true", help="2 s per scenario instead of 5 s")
    p.add_argument("--only", nargs="*", choices=SCENARIOS, help="run only these scenarios")
    p.add_argument("--device", default="cpu")
    p.add_argument("--profile", action="store_true", help="profile the GUI thread (cProfile) per scenario")
    args = p.parse_args(argv)
    if "QT_QPA_PLATFORM" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    import numpy

    np = numpy
    bench = Bench(args.quick, args.device, args.profile)
    try:
        results = bench.run(args.only)
    finally:
        bench.close()
    worst = max(results, key=lambda r: r["longest_stall_s"])
    summary = {"budget_s": BUDGET_S, "all_within_budget": all(r["within_budget"] for r in results),
               "worst": worst["name"], "cases": results}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for r in results:
            print(f"{r['name']:18s} longest stall {r['longest_stall_s'] * 1000:6.1f} ms  p99 frame "
                  f"{r['p99_frame_s'] * 1000:6.1f} ms  {'ok' if r['within_budget'] else 'OVER 50 ms'}")
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
