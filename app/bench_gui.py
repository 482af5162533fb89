"""``python -m app.bench_gui [--json] [--quick]``: does any lab freeze the GUI? Scripted interactions under a watchdog.

Scenarios (each runs for a fixed time while a ``Watchdog`` ticks every 10 ms on the GUI thread):

- ``first-visits``: each lab shown for the first time, one every 400 ms, after the user was idle while the window built
  them ahead (``MainWindow.build_labs_when_idle``; ``idle_s``: how long that took from ready; ``show_ms`` per lab);
- ``mixture-em-100k``: EM playing on 100,000 toy points (mixture lab);
- ``latent-train``: training the VAE (latent lab);
- ``inference-drag-q``: a left-button drag of q's ellipse, one mouse move per frame (inference lab);
- ``inpainting-draw``: strokes on the inpainting canvas, one mouse move per frame;
- ``latent-hover``: the mouse moving over the latent plane and the decoded grid (latent lab);
- ``switch-views``: the tabs switched every 250 ms (after each lab was built once: first visits are not timed);
- ``switch-datasets``: digits / moons / blobs (100,000 points) loaded in turn;
- ``inference-select``: a new x selected every 400 ms (inference lab; ``refresh_ms``: selection -> exact posterior);
- ``latent-pan-zoom``: left-button drags (pan) and wheel turns (zoom) over the 10,000 encoded digits;
- ``infinite-slider``: a slider of theta dragged with the mouse (infinite-mixture lab; ``redraw_ms`` per move).

Besides the stall figures, scenarios report what their issue names: ``update_ms`` (one q update while dragging),
``updates_per_s`` and ``latency_ms`` (inpainting: canvas change -> completion drawn), ``show_ms`` (mixture: one EM
snapshot drawn, the recolour included), medians over the scenario.

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
from typing import Any

BUDGET_S = 0.050
SCENARIOS = (
    "first-visits",
    "mixture-em-100k",
    "latent-train",
    "inference-drag-q",
    "inpainting-draw",
    "latent-hover",
    "switch-views",
    "switch-datasets",
    "inference-select",
    "latent-pan-zoom",
    "infinite-slider",
)


def _median_ms(values) -> float | None:
    values = [float(v) for v in values if v == v]
    return round(float(np.median(values)), 2) if values else None


def _mouse(widget, kind, pos, button, buttons):
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    ev = QMouseEvent(
        kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, ev)


class Bench:
    def __init__(self, quick: bool, device: str = "cpu", profile: bool = False):
        from PySide6.QtWidgets import QApplication

        from app.core.watchdog import Watchdog
        from app.core.workspace import Workspace
        from app.main_window import MainWindow

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
        from app.core.cpu_share import this_threads_schedule

        sched0, t0 = this_threads_schedule(), time.perf_counter()
        timer.start()
        self.wait(duration)
        timer.stop()
        sched1, elapsed = this_threads_schedule(), time.perf_counter() - t0
        if prof is not None:
            import io
            import pstats

            prof.disable()
            if dump_dir := os.environ.get("LVM_PROFILE_DUMP"):  # (a folder: one pstats file per scenario)
                os.makedirs(dump_dir, exist_ok=True)
                prof.dump_stats(os.path.join(dump_dir, f"{name}.prof"))
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(
                r"(app|lvm|pyqtgraph|torch)/", int(os.environ.get("LVM_PROFILE_ROWS", "14"))
            )
            print("\n".join(buf.getvalue().splitlines()[6:]), file=sys.stderr)
        st = self.dog.stats()
        row = {
            "name": name,
            **st,
            "inputs": counter["i"],
            "duration_s": duration,
            "within_budget": st["longest_stall_s"] <= BUDGET_S,
            **extra,
        }
        if sched0 is not None and sched1 is not None:  # the GUI thread's share of the time: running, and runnable
            row["gui_running"] = round((sched1[0] - sched0[0]) / elapsed, 3)  # but waiting for a core held by others
            row["gui_waiting"] = round((sched1[1] - sched0[1]) / elapsed, 3)
        self.results.append(row)
        print(
            f"  {name:18s} longest stall {st['longest_stall_s'] * 1000:6.1f} ms   p99 frame "
            f"{st['p99_frame_s'] * 1000:6.1f} ms   p50 {st['p50_frame_s'] * 1000:5.1f} ms   {st['frames']} frames"
            + (
                f"   GUI thread ran {row['gui_running']:.0%}, waited {row['gui_waiting']:.0%}"
                if "gui_waiting" in row
                else ""
            ),
            file=sys.stderr,
            flush=True,
        )
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
        w.warmed_up.connect(lambda: done.update(v=True))  # (the start-up's background warm-up is not timed)
        w.load_defaults()
        self.wait_until(lambda: done["v"] and not w.is_loading() and not w.is_warming_up())
        ahead = w.help_typesetting  # (the help formulas typeset ahead, in the background of the first seconds)
        self.wait_until(lambda: ahead is None or ahead.pending == 0)
        if w.workspace.model is None:  # no bundled model in this checkout: the bundled architecture, untrained
            torch.manual_seed(0)
            w.workspace.set_model(VAE().eval(), None, {})
        self.dog.start()

    # -- scenarios -------------------------------------------------------------------------------------------------
    def first_visits(self) -> None:
        from app.labs import LABS

        w = self.window
        w.set_view("mixture")
        names = [name for name in LABS if name != "mixture"]  # (none shown yet: the first scenario)
        t0 = time.perf_counter()  # an idle user: no input while the window builds the labs not shown yet
        self.wait_until(lambda: (w.labs_ahead is None or w.labs_ahead.pending == 0) and not w.is_busy(), 120)
        idle_s = time.perf_counter() - t0
        built_ahead = all(name in w.labs for name in names)
        shown: list[float] = []

        def step(i):
            if i < len(names):
                t = time.perf_counter()
                w.set_view(names[i])
                shown.append(1000 * (time.perf_counter() - t))

        row = self.measure("first-visits", step, duration=0.4 * len(names) + 0.6, period_ms=400)
        row.update(
            idle_s=round(idle_s, 1),  # from ready to every lab built ahead
            show_ms=_median_ms(shown),  # one lab's first showing (set_view)
            show_max_ms=round(max(shown), 1) if shown else None,
            built_ahead=built_ahead,
        )
        w.set_view("mixture")

    def mixture_em(self) -> None:
        lab = self.view("mixture")
        lab.source_combo.setCurrentText("blobs")
        lab.n_spin.setValue(100_000)
        lab._load_source()
        self.wait(0.2)
        if not lab.is_em_running():
            lab.toggle_run()

        shown = []

        def keep_playing(i):
            if "show_ms" in lab.timings:
                shown.append(lab.timings.pop("show_ms"))
            if i % 30 == 0 and not lab.is_em_running() and not lab.is_busy():
                lab.toggle_run()

        row = self.measure("mixture-em-100k", keep_playing, n_points=int(lab.X.shape[0]))
        row.update(show_ms=_median_ms(shown), snapshots=len(shown))
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

        state: dict[str, Any] = {"pressed": False}

        def step(i):
            t = i * 0.05
            x, y = float(kl.mean[0]), float(kl.mean[1])
            if not state["pressed"]:
                _mouse(vp, QEvent.Type.MouseButtonPress, at(x, y), Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
                state["pressed"], state["origin"] = True, at(x, y)
                return
            target = state["origin"] + QPoint(int(60 * np.sin(t)), int(40 * np.sin(1.3 * t)))
            _mouse(vp, QEvent.Type.MouseMove, target, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)

        kl.update_ms.clear()
        kl.elbo_ms.clear()
        kl.elbo_latency_ms.clear()
        kl.elbo_picture.clear()
        row = self.measure("inference-drag-q", step)
        row.update(
            update_ms=_median_ms(kl.update_ms),  # one q update on the GUI thread (ellipse, fields, readout)
            updates=len(kl.update_ms),
            elbo_ms=_median_ms(kl.elbo_ms),  # the worker's ELBO(q) alone
            latency_ms=_median_ms(kl.elbo_latency_ms),  # q set to its ELBO drawn (the paint excluded)
            picture_ms=_median_ms(kl.elbo_picture.ms),  # drag-to-picture: q set to its ELBO painted
        )
        _mouse(
            vp,
            QEvent.Type.MouseButtonRelease,
            state.get("origin", QPoint(0, 0)),
            Qt.MouseButton.LeftButton,
            Qt.MouseButton.NoButton,
        )

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
                _mouse(canvas, QEvent.Type.MouseButtonPress, p, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
            elif k == 39:
                _mouse(canvas, QEvent.Type.MouseButtonRelease, p, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
            else:
                _mouse(canvas, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)

        lab.update_ms.clear()
        lab.compute_ms.clear()
        lab.picture_clock.clear()
        n0 = lab.n_updates
        row = self.measure("inpainting-draw", step)
        row.update(
            updates_per_s=round((lab.n_updates - n0) / row["duration_s"], 1),
            latency_ms=_median_ms(lab.update_ms),  # canvas change to the result drawn (the paint excluded)
            compute_ms=_median_ms(lab.compute_ms),  # the worker's inference alone
            picture_ms=_median_ms(lab.picture_clock.ms),  # pen-to-picture: the pen's change to the completions painted
        )

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
            _mouse(vp, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)

        lab.hover_decode_ms.clear()
        lab.hover_picture.clear()
        row = self.measure("latent-hover", step)
        row.update(
            decode_ms=_median_ms(lab.hover_decode_ms),  # one hover decode (mean, sample, variance)
            picture_ms=_median_ms(lab.hover_picture.ms),  # move-to-picture: the mouse move to its digits painted
        )

    def switch_views(self) -> None:
        from app.labs import LABS

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

    def inference_select(self) -> None:
        lab = self.view("inference")
        lab.set_panel("kl")
        ws = self.window.workspace
        self.wait_until(lambda: lab.picture is not None and not lab.is_busy(), 60)
        lab.refresh_ms.clear()
        n = len(ws.data) if ws.data is not None else 1

        def step(i):
            ws.select((37 * (i + 1)) % n)

        row = self.measure("inference-select", step, period_ms=400)
        self.wait_until(lambda: not lab.is_busy(), 30)
        row.update(refresh_ms=_median_ms(lab.refresh_ms), refreshes=len(lab.refresh_ms))

    def latent_pan_zoom(self) -> None:
        from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
        from PySide6.QtGui import QWheelEvent
        from PySide6.QtWidgets import QApplication

        lab = self.view("latent")
        self.wait_until(lambda: not lab.is_busy(), 60)
        widget, vp = lab.canvas, lab.canvas.viewport()
        centre = widget.mapFromScene(lab.vb.sceneBoundingRect().center())
        state: dict[str, Any] = {"pressed": False}

        def step(i):
            phase = (i // 40) % 2
            if phase == 0:  # pan: a left-button drag in a small circle
                p = centre + QPoint(int(50 * np.sin(i * 0.2)), int(35 * np.cos(i * 0.2)))
                if not state["pressed"]:
                    _mouse(vp, QEvent.Type.MouseButtonPress, p, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
                    state["pressed"] = True
                else:
                    _mouse(vp, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
            else:
                if state["pressed"]:
                    _mouse(
                        vp, QEvent.Type.MouseButtonRelease, centre, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
                    )
                    state["pressed"] = False
                delta = 120 if (i // 10) % 2 else -120  # zoom in, then out
                ev = QWheelEvent(
                    QPointF(centre),
                    QPointF(vp.mapToGlobal(centre)),
                    QPoint(0, 0),
                    QPoint(0, delta),
                    Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier,
                    Qt.ScrollPhase.NoScrollPhase,
                    False,
                )
                QApplication.sendEvent(vp, ev)

        self.measure("latent-pan-zoom", step, n_points=int(len(lab.mu)))
        if state["pressed"]:
            _mouse(vp, QEvent.Type.MouseButtonRelease, centre, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)

    def infinite_slider(self) -> None:
        from PySide6.QtCore import QEvent, QPoint, Qt
        from PySide6.QtWidgets import QStyle, QStyleOptionSlider

        lab = self.view("infinite")
        self.wait_until(lambda: not lab.is_busy(), 120)
        slider = next(iter(lab.sliders.values())).slider
        opt = QStyleOptionSlider()
        slider.initStyleOption(opt)
        handle = (
            slider.style()
            .subControlRect(QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, slider)
            .center()
        )
        redraws = []
        state: dict[str, Any] = {"pressed": False}

        def step(i):
            if not state["pressed"]:
                _mouse(
                    slider, QEvent.Type.MouseButtonPress, handle, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton
                )
                state["pressed"] = True
                return
            p = handle + QPoint(int(0.4 * slider.width() * np.sin(i * 0.08)), 0)
            _mouse(slider, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
            redraws.append(lab.last_redraw_ms)

        row = self.measure("infinite-slider", step)
        _mouse(slider, QEvent.Type.MouseButtonRelease, handle, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
        row.update(redraw_ms=_median_ms(redraws))

    def run(self, only: list[str] | None = None) -> list[dict]:
        self.setup()
        table = {
            "first-visits": self.first_visits,
            "mixture-em-100k": self.mixture_em,
            "latent-train": self.latent_train,
            "inference-drag-q": self.inference_drag,
            "inpainting-draw": self.inpainting_draw,
            "latent-hover": self.latent_hover,
            "switch-views": self.switch_views,
            "switch-datasets": self.switch_datasets,
            "inference-select": self.inference_select,
            "latent-pan-zoom": self.latent_pan_zoom,
            "infinite-slider": self.infinite_slider,
        }
        for name in only or SCENARIOS:
            table[name]()
        self.dog.stop()
        return self.results

    def close(self) -> None:
        self.window.close()
        self.window.runner.shutdown(5000)


np: Any = None  # numpy, imported in main() (keeps `--help` fast)


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
    summary = {
        "budget_s": BUDGET_S,
        "all_within_budget": all(r["within_budget"] for r in results),
        "worst": worst["name"],
        "cases": results,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        extras = (
            "idle_s",
            "show_ms",
            "show_max_ms",
            "update_ms",
            "decode_ms",
            "elbo_ms",
            "updates_per_s",
            "latency_ms",
            "compute_ms",
            "picture_ms",
            "refresh_ms",
            "redraw_ms",
        )
        for r in results:
            more = "  ".join(f"{k} {r[k]}" for k in extras if r.get(k) is not None)
            print(
                f"{r['name']:18s} longest stall {r['longest_stall_s'] * 1000:6.1f} ms  p99 frame "
                f"{r['p99_frame_s'] * 1000:6.1f} ms  {'ok' if r['within_budget'] else 'OVER 50 ms'}  {more}"
            )
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
