"""``lvm-explorer``: start the GUI. Flags: --data, --model, --device, --view, --list-views, --screenshot, --smoke."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, cast

from app.core.appearance import FONT_RANGE, PALETTES, THEMES


def _process_start() -> float:
    """``time.perf_counter()`` at process start (Linux: from /proc; elsewhere: when this module was imported)."""
    now = time.perf_counter()
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return now - age if 0 <= age < 10 else now  # imported later (in a test, say): from now
    except (OSError, ValueError, IndexError):
        return now


_T0 = _process_start()  # start-up times below are measured from here
# = lvm.device.DEVICE_CHOICES; kept here so that argument parsing needs no import of the library
DEVICE_CHOICES = ("auto", "cpu", "cuda")
DEFAULT_VIEW = "mixture"
DEFAULT_SIZE = "1360x860"
MIN_RESTORED_SIZE = (480, 320)  # a remembered window smaller than this is not restored


def build_parser() -> argparse.ArgumentParser:
    from app.labs import LABS

    p = argparse.ArgumentParser(prog="lvm-explorer", description="LVM Explorer: see and touch latent variable models.")
    p.add_argument(
        "--data", default=None, help="dataset: folder (MNIST layout), .npz, or built-in name (default: digits)"
    )
    p.add_argument(
        "--model",
        default=None,
        help="VAE checkpoint (.safetensors), or a Python file (FILE.py or FILE.py:FACTORY) building a latent model "
        "(naming it runs it); default: the bundled 2-D VAE",
    )
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--view", default=None, choices=list(LABS), help="lab to open")
    p.add_argument("--list-views", action="store_true", help="print the view names, one a line, and exit")
    p.add_argument("--session", default=None, help="open a saved session file")
    p.add_argument("--lesson", default=None, metavar="NAME|FILE", help="open a lesson (a bundled one or a .toml file)")
    p.add_argument("--step", type=int, default=1, metavar="N", help="the lesson's step to open (1 = the first)")
    p.add_argument("--theme", default=None, choices=THEMES, help="light, dark or high-contrast (this run only)")
    p.add_argument("--palette", default=None, choices=PALETTES, help="component colours (this run only)")
    p.add_argument(
        "--font-size", type=_font_size, default=None, metavar="PT", help="font size in points (this run only)"
    )
    p.add_argument("--screenshot", metavar="PATH", help="load, wait for the view's computations, save a PNG, exit")
    p.add_argument("--smoke", action="store_true", help="start, load the defaults, quit (exit 0 when all loaded)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds --screenshot/--smoke wait at most")
    p.add_argument(
        "--size", default=None, help=f"window size WxH (default: the size at the last quit, else {DEFAULT_SIZE})"
    )
    return p


def _font_size(text: str) -> int:
    lo, hi = FONT_RANGE
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of points") from None
    if not lo <= size <= hi:
        raise argparse.ArgumentTypeError(f"{size} is outside {lo}..{hi} points")
    return size


def startup_appearance(args: argparse.Namespace):
    """The remembered appearance (the defaults for --screenshot/--smoke: reproducible), with the command line's
    --theme, --palette and --font-size for this run (not remembered)."""
    from app.core.appearance import Appearance, load_appearance

    capture = bool(args.screenshot or args.smoke)
    appearance = Appearance() if capture else load_appearance()
    changes = {"theme": args.theme, "palette": args.palette, "font_size": args.font_size}
    return appearance.replace(**{k: v for k, v in changes.items() if v is not None})


def install_excepthook(window) -> None:
    """An exception escaping a slot on the GUI thread is printed as before and also shown to the user (a non-modal
    message), instead of going to the console only; the app keeps running."""
    previous = sys.excepthook

    def hook(etype, value, tb):
        previous(etype, value, tb)
        from lvm.errors import LVMError

        text = (
            str(value)
            if issubclass(etype, LVMError)
            else f"internal error: {etype.__name__}: {value} (the details are on the console; please report it)"
        )
        try:
            window.show_error(text)
        except Exception:  # noqa: BLE001 - the window may be gone while closing
            pass

    sys.excepthook = hook


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_views:
        from app.labs import LABS

        print("\n".join(LABS))
        return 0
    if (args.screenshot or args.smoke) and "QT_QPA_PLATFORM" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LVM Explorer")
    app.setOrganizationName("LVM Explorer")
    from app.core.gui_gc import install_gui_thread_collector

    install_gui_thread_collector()  # before any worker runs: Qt objects are never destroyed off the GUI thread
    _set_identity(app)
    from app.widgets.theme import apply_appearance

    apply_appearance(cast(QApplication, app), startup_appearance(args))  # before the window shows (app.widgets.theme)
    # the main window paints before torch and pyqtgraph are imported (each lab imports them when first built)
    from app.core.settings import app_settings
    from app.core.workspace import Workspace
    from app.main_window import MainWindow, write_error, write_image
    from lvm.errors import LVMError

    try:
        workspace = Workspace(device=args.device)
    except LVMError as exc:
        print(f"lvm-explorer: error: {exc}", file=sys.stderr)
        return 2
    try:
        w, h = (int(v) for v in (args.size or DEFAULT_SIZE).lower().split("x"))
        if w <= 0 or h <= 0:
            raise ValueError(args.size)
    except ValueError:
        print(f"lvm-explorer: error: --size {args.size!r} must look like 1360x860", file=sys.stderr)
        return 2
    window = MainWindow(workspace)
    install_excepthook(window)
    capture = bool(args.screenshot or args.smoke)  # reproducible: neither the remembered size nor the last view
    if args.size or capture or not restore_geometry(window, app_settings().value("geometry", None)):
        window.resize(w, h)
    window.show()
    app.processEvents()  # paint the window before the loads start in the workers
    first_paint = time.perf_counter() - _T0
    if args.device.startswith("cuda"):
        try:  # (resolving imports torch: only when a GPU was asked for, after the window is painted)
            _ = workspace.device
        except LVMError as exc:
            print(f"lvm-explorer: error: {exc}", file=sys.stderr)
            return 2
    if args.session:
        window.open_session(args.session, keep_view=bool(args.view))  # --view wins over the session's view
    else:
        window.load_defaults(args.data, args.model)
    # --view is checked by argparse (a bad name exits 2 with the choices); a remembered view may name a lab that
    # no longer exists (a settings file from another version): then the default view
    if not capture:
        window.offer_recovered_model()  # a model trained and not saved when the app last closed (app.core.recovery)
    remembered = None if capture else app_settings().value("last_view", None)
    window.set_view(
        args.view or (remembered if isinstance(remembered, str) and remembered in window_views() else DEFAULT_VIEW)
    )

    if args.lesson:
        from app.lessons.format import LessonError, load_lesson

        try:
            lesson = load_lesson(args.lesson)
        except LessonError as exc:
            print(f"lvm-explorer: error: {exc}", file=sys.stderr)
            return 2
        if not 1 <= args.step <= len(lesson.steps):
            print(
                f"lvm-explorer: error: --step {args.step}: the lesson has steps 1 to {len(lesson.steps)}",
                file=sys.stderr,
            )
            return 2
        window.start_lesson(args.lesson, args.step - 1)

    if args.screenshot or args.smoke:
        deadline = time.monotonic() + args.timeout
        status: dict[str, Any] = {"code": 0, "ready": None}

        def busy() -> bool:
            # --smoke waits for the defaults to load (then "ready") and for the warm-up after them; --screenshot also
            # for the shown lab's computations
            if not window.is_loading() and status["ready"] is None:
                status["ready"] = time.perf_counter() - _T0
            return (
                window.is_loading()
                or window.is_warming_up()
                or (bool(args.screenshot) and window.lab(window.current_view_name()).is_busy())
                or (bool(args.lesson) and window.lesson_panel().is_busy())
            )

        def poll():
            if busy() and time.monotonic() < deadline:
                QTimer.singleShot(10 if status["ready"] is None else 50, poll)
                return
            if busy():
                print("lvm-explorer: timed out waiting for the computations", file=sys.stderr)
                status["code"] = 1
            if window.errors:
                print("lvm-explorer: " + "\n".join(window.errors), file=sys.stderr)
                status["code"] = 1
            if args.screenshot:
                app.processEvents()
                try:
                    write_image(window.grab(), args.screenshot)
                except (OSError, LVMError) as exc:
                    print(f"lvm-explorer: error: {write_error(args.screenshot, exc)}", file=sys.stderr)
                    status["code"] = 2
            if args.smoke:
                print(
                    f"smoke ok: first paint {first_paint * 1000:.0f} ms, "
                    f"ready {status['ready']:.2f} s, warm-up done {time.perf_counter() - _T0:.2f} s, "
                    f"dataset {workspace.dataset_spec}, model {workspace.model_path}"
                )
            window.close()
            app.quit()

        QTimer.singleShot(100, poll)
        app.exec()
        return status["code"]
    return app.exec()


def _set_identity(app) -> None:
    """The application icon and desktop-file name (Wayland app id, task bars; packaging/lvm-explorer.desktop)."""
    from PySide6.QtGui import QIcon

    from lvm.resources import resources_dir

    app.setDesktopFileName("lvm-explorer")
    icon = resources_dir() / "icons" / "lvm-explorer.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))


def restore_geometry(window, saved) -> bool:
    """Restore the window geometry saved at the last close (``saved``: the settings value, maybe junk).

    True when it was restored: readable, at least ``MIN_RESTORED_SIZE`` and on a screen (Qt moves a window restored
    off-screen back onto one; checked anyway). Otherwise False and the caller sizes the window.
    """
    from PySide6.QtCore import QByteArray
    from PySide6.QtGui import QGuiApplication

    if isinstance(saved, (bytes, bytearray)):
        saved = QByteArray(bytes(saved))
    if not isinstance(saved, QByteArray) or saved.isEmpty():
        return False
    before = window.saveGeometry()
    if not window.restoreGeometry(saved):
        return False
    size, frame = window.size(), window.frameGeometry()
    on_screen = any(screen.availableGeometry().intersects(frame) for screen in QGuiApplication.screens())
    if on_screen and size.width() >= MIN_RESTORED_SIZE[0] and size.height() >= MIN_RESTORED_SIZE[1]:
        return True
    window.restoreGeometry(before)
    return False


def window_views():
    from app.labs import LABS

    return LABS


def console_main() -> None:
    code = main()
    # Workers still finishing a computation hold no unsaved state (every save is atomic and synchronous):
    # leave at once instead of waiting for them in the thread pool's destructor.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
