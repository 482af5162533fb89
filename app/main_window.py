"""The main window: one tab per lab, menus for data/models/sessions/export, device and progress in the status bar."""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QBuffer, QIODevice, QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QIcon, QImageWriter, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.gui_gc import install_gui_thread_collector
from app.core.idle_steps import IdleSteps
from app.core.settings import app_settings
from app.core.warmup import freeze_new_long_lived, freeze_startup_heap, warm_up_torch_when_idle
from app.core.workers import TaskRunner, trim_heap_soon
from app.core.workspace import DEFAULT_DATASET, DEFAULT_MODEL, RESOURCES, GaussianQ, Workspace, read_session
from app.labs import LABS, lab_class
from app.widgets.elided_label import ElidedLabel
from app.widgets.steady_tabs import SteadyTabWidget
from app.widgets.theme import build_appearance_menu, restyle_new_widget

if TYPE_CHECKING:
    from app.widgets.lab_view import LabView
from lvm import __version__
from lvm.device import DEVICE_CHOICES, resolve_device
from lvm.errors import DeviceUnavailableError, LVMError, SessionError
from lvm.io import atomic_write_bytes

log = logging.getLogger(__name__)


LONG_JOBS = {"/train": "training", "/fit": "the fit", "/em": "EM", "/optimise": "the optimisation"}


def describe_job(channel: str) -> str:
    """A worker channel (``"mixture/em"``) in the user's words: ``"Mixture lab: EM"``."""
    lab, _, job = channel.partition("/")
    title = LABS[lab][0] if lab in LABS else lab
    what = LONG_JOBS.get("/" + job, job)
    return f"{title}: {what}"


class MainWindow(QMainWindow):
    """Hosts the labs over one ``Workspace`` and one ``TaskRunner``."""

    loading_finished = Signal()  # the dataset and model asked for are loaded (or failed): the app is ready
    warmed_up = Signal()  # torch's lazy imports done, formulas typeset from now on (``warm_up_in_background``)
    build_labs_ahead = True  # labs not shown yet are built while the user is idle, once warmed up

    def __init__(self, workspace: Workspace | None = None, runner: TaskRunner | None = None):
        super().__init__()
        install_gui_thread_collector()  # (idempotent) the cyclic GC runs on the GUI thread only: app.core.gui_gc
        self.workspace = workspace or Workspace()
        self.runner = runner or TaskRunner(parent=self)
        self.labs: dict[str, LabView] = {}
        self.last_error: str | None = None
        self.errors: list[str] = []
        self._loading = 0  # load jobs submitted and not yet done (on_done runs once per job, whatever happened)
        self.lesson_dock: QDockWidget | None = None
        self._help_before_lesson: bool | None = None
        self.presenter: Any = None  # app.lessons.presenter.Presenter, made on first use
        self.help_typesetting: Any = None  # app.widgets.formula_text.TypesetAhead, once warmed up
        self.labs_ahead: IdleSteps | None = None  # the labs built ahead of their first showing, once warmed up
        self.setWindowTitle("LVM Explorer")
        icon = RESOURCES / "icons" / "lvm-explorer.svg"
        if icon.exists():
            self.setWindowIcon(QIcon(str(icon)))
        self.resize(QSize(1360, 860))

        self.tabs = SteadyTabWidget()
        self.tabs.setDocumentMode(True)
        for name, (title, _) in LABS.items():
            holder = QWidget()
            holder.setObjectName(f"holder-{name}")
            QVBoxLayout(holder).setContentsMargins(0, 0, 0, 0)
            self.tabs.addTab(holder, title)
        self._pause_hidden_pages(self.tabs.currentIndex())
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.setCentralWidget(self.tabs)
        self._build_status_bar()
        self.help_visible = app_settings().value("help_visible", True) not in (False, "false", "0", 0)
        self._build_menus()

        ws = self.workspace
        ws.events.dataset.connect(self._on_dataset)
        ws.events.model.connect(self._on_model)
        ws.events.device.connect(self._on_device)
        ws.events.message.connect(self.show_error)
        self.runner.job_error.connect(lambda ch, msg: self.show_error(msg))
        self.runner.progress.connect(self._on_progress)
        self.runner.busy_changed.connect(self._on_busy)

    # -- construction ----------------------------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.dataset_label = ElidedLabel("no dataset")
        self.model_label = ElidedLabel("no model")
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        self.device_combo.setCurrentText(self.workspace.device_spec)
        self.device_combo.setToolTip("torch device for computations")
        self.device_combo.textActivated.connect(self.set_device)
        self.device_label = QLabel(self.workspace.device_spec)  # the resolved device once a model is loaded
        self.job_label = ElidedLabel("", min_chars=16)  # what runs ("Mixture lab: EM: 1,500 points, iteration 12")
        self.job_label.setMaximumWidth(420)
        self.job_label.setVisible(False)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(120)
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(lambda: self.runner.cancel())
        for label in (self.dataset_label, self.model_label):
            bar.addWidget(label)
        permanent: tuple[QWidget, ...] = (
            self.job_label,
            self.progress,
            self.cancel_button,
            QLabel("device:"),
            self.device_combo,
            self.device_label,
        )
        for widget in permanent:
            bar.addPermanentWidget(widget)

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self._action(m, "Open dataset folder…", self._ask_dataset_folder, QKeySequence.StandardKey.Open)
        self._action(m, "Open dataset file (.npz)…", self._ask_dataset_file)
        sub = m.addMenu("Built-in datasets")
        from lvm.data import BUILTIN_NAMES

        for name in BUILTIN_NAMES:
            self._action(sub, name, lambda checked=False, n=name: self.load_dataset(n))
        m.addSeparator()
        self._action(m, "Open model…", self._ask_model)
        bundled = m.addMenu("Bundled models")
        from lvm.resources import BUNDLED_MODELS, pretrained_model_path

        for key, (_file, what) in BUNDLED_MODELS.items():
            path = pretrained_model_path(key)
            act = self._action(bundled, what, lambda checked=False, p=path: self.open_model(str(p)))
            act.setEnabled(path.exists())
        self._action(m, "Save model as…", self._ask_save_model)
        m.addSeparator()
        self._action(m, "Open session…", self._ask_open_session)
        self._action(m, "Save session as…", self._ask_save_session, QKeySequence.StandardKey.Save)
        m.addSeparator()
        self._action(m, "Export view as PNG…", lambda: self._ask_export("png"))
        self._action(m, "Export view as SVG…", lambda: self._ask_export("svg"))
        self._action(m, "Export view data as CSV…", self._ask_export_csv)
        self._action(m, "Export animation…", self._ask_export_animation)  # (app.widgets.animation_export)
        m.addSeparator()
        self._action(m, "Quit", self.close, QKeySequence.StandardKey.Quit)
        dm = self.menuBar().addMenu("&Device")
        group = QActionGroup(self)
        for spec in DEVICE_CHOICES:
            act = self._action(dm, spec, lambda checked=False, s=spec: self.set_device(s))
            act.setCheckable(True)
            act.setChecked(spec == self.workspace.device_spec)
            group.addAction(act)
        vm = self.menuBar().addMenu("&View")
        for i, (name, (title, _)) in enumerate(LABS.items()):
            self._action(vm, title, lambda checked=False, n=name: self.set_view(n), f"Ctrl+{i + 1}")
        vm.addSeparator()
        self.help_action = QAction("Help panel", self)
        self.help_action.setCheckable(True)
        self.help_action.setChecked(self.help_visible)
        self.help_action.setShortcut(QKeySequence("F1"))
        self.help_action.toggled.connect(self.set_help_visible)
        vm.addAction(self.help_action)
        self.appearance_menu = build_appearance_menu(vm)  # theme, palette, font size (app.widgets.theme)
        self._build_lessons_menu()
        hm = self.menuBar().addMenu("&Help")
        self._action(hm, "About LVM Explorer", self.show_about)

    def _build_lessons_menu(self) -> None:
        from app.lessons.format import bundled_lessons, lesson_titles

        lm = self.menuBar().addMenu("&Lessons")
        lm.setObjectName("lessons-menu")
        for name, path in bundled_lessons().items():
            title, steps = lesson_titles(path)
            if name == "failure-modes":  # one click each
                sub = lm.addMenu(title)
                for i, step_title in enumerate(steps):
                    self._action(sub, step_title, lambda checked=False, n=name, k=i: self.start_lesson(n, k))
            else:
                self._action(lm, title, lambda checked=False, n=name: self.start_lesson(n))
        lm.addSeparator()
        self._action(lm, "Open lesson file…", self._ask_lesson)
        self.presenter_action = self._action(lm, "Presenter mode", self.toggle_presenter, "F5")
        self.presenter_action.setCheckable(True)

    # -- lessons ---------------------------------------------------------------------------------------------------
    def start_lesson(self, name_or_path: str | Path, step: int = 0) -> bool:
        """Open a lesson (a bundled one by name, or a file) at ``step`` (0-based) in the lesson panel; a file that
        cannot be used is reported and changes nothing."""
        from app.lessons.format import LessonError, load_lesson

        try:
            lesson = load_lesson(name_or_path)
        except LessonError as exc:
            self.show_error(str(exc))
            return False
        panel = self.lesson_panel()
        assert self.lesson_dock is not None  # (made by lesson_panel)
        if not self.lesson_dock.isVisible():
            self._help_before_lesson = self.help_visible
            self.set_help_visible(False)  # the lesson panel takes the help panel's place
            self.lesson_dock.show()
        panel.start(lesson, step)
        return True

    def lesson_panel(self):
        """The lesson panel (in a dock at the right), created on first use."""
        if self.lesson_dock is None:
            from app.lessons.panel import LessonPanel

            panel = LessonPanel(self)
            dock = QDockWidget("Lesson", self)
            dock.setObjectName("lesson-dock")
            dock.setWidget(panel)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            dock.hide()
            panel.closed.connect(dock.close)
            dock.visibilityChanged.connect(self._on_lesson_visibility)
            self.lesson_dock = dock
        return self.lesson_dock.widget()

    def _on_lesson_visibility(self, visible: bool) -> None:
        if not visible and self._help_before_lesson is not None and not self.isFullScreen():
            self.set_help_visible(self._help_before_lesson)
            self._help_before_lesson = None

    def _ask_lesson(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open lesson", self._last_dir(), "Lessons (*.toml)")
        if path:
            self._remember_dir(path)
            self.start_lesson(path)

    def toggle_presenter(self) -> None:
        from app.lessons.presenter import Presenter

        if self.presenter is None:
            self.presenter = Presenter(self)
        self.presenter.toggle()
        self.presenter_action.setChecked(self.presenter.active)

    # -- labs ------------------------------------------------------------------------------------------------------
    def set_view(self, name: str) -> None:
        if name not in LABS:
            raise LVMError(f"unknown view {name!r}; choose one of {', '.join(LABS)}")
        index = list(LABS).index(name)
        if self.tabs.currentIndex() == index:
            self._on_tab_changed(index)
        else:
            self.tabs.setCurrentIndex(index)

    def set_help_visible(self, visible: bool) -> None:
        """Show or hide every lab's help panel (remembered when the window closes)."""
        self.help_visible = bool(visible)
        if self.help_action.isChecked() != self.help_visible:
            self.help_action.setChecked(self.help_visible)  # (toggled calls back here once, with the same value)
        for lab in self.labs.values():
            lab.set_help_visible(self.help_visible)

    def current_view_name(self) -> str:
        return list(LABS)[self.tabs.currentIndex()]

    def lab(self, name: str):
        """The lab ``name``, created on first use."""
        if name not in self.labs:
            holder = self.tabs.widget(list(LABS).index(name))
            lab = lab_class(name)(self.workspace, self.runner)
            lab.restore_view_state(self.workspace.view_states.get(name, {}))
            lab.set_help_visible(self.help_visible)
            lab.help_visibility_requested.connect(self.set_help_visible)
            layout = holder.layout() if holder is not None else None
            assert layout is not None, f"the tab page of {name} has a layout"
            layout.addWidget(lab)
            from app.widgets.steady_plots import settle_view_transforms  # (pyqtgraph: loaded with the first lab)

            settle_view_transforms(lab)
            restyle_new_widget(lab)  # the appearance applied before it was built (app.widgets.theme)
            self.labs[name] = lab
            QTimer.singleShot(0, self, freeze_new_long_lived)  # (once its first activation has built the rest)
        return self.labs[name]

    def _pause_hidden_pages(self, current: int) -> None:
        """Hidden tabs do not repaint; the page just shown repaints once, after its plots have settled.

        Showing a page dirties every QGraphicsScene on it (the view sends its scene WindowActivate, and each top-level
        QGraphicsWidget calls update()), and each scene's queued processDirtyItems dispatches the window's
        UpdateRequest at once: one window paint per plot, back to back (measured: 45-50 ms for the Infinite mixture
        tab). With the page's updates off while it is shown, those paints find nothing to draw there; a posted call
        turns updates on again, which repaints the page once (16-22 ms). Until then the screen keeps the old pixels.
        """
        for i in range(self.tabs.count()):
            other = self.tabs.widget(i)
            if i != current and other is not None:
                other.setUpdatesEnabled(False)
        page = self.tabs.widget(current)
        if page is not None and not page.updatesEnabled():
            QTimer.singleShot(0, self, lambda: self._resume_page(page))

    def _resume_page(self, page: QWidget) -> None:
        if self.tabs.currentWidget() is page:
            page.setUpdatesEnabled(True)

    def _on_tab_changed(self, index: int) -> None:
        name = list(LABS)[index]
        self._pause_hidden_pages(index)
        for other, lab in self.labs.items():
            if other != name:
                lab.deactivate()
        self.workspace.current_view = name
        self.lab(name).activate()

    def is_loading(self) -> bool:
        """True while a dataset or model is being loaded."""
        return self.runner.is_busy("load/")

    def is_busy(self) -> bool:
        return self.is_loading() or any(lab.is_busy() for lab in self.labs.values())

    # -- loading ---------------------------------------------------------------------------------------------------
    def load_dataset(self, spec: str, split: str | None = None, on_done=None) -> None:
        """Load ``spec`` in a worker; on error the workspace keeps its dataset and the user sees why."""
        # torch is imported here, on the GUI thread, before the worker starts: the dataset worker and the GUI thread's
        # ``load_model`` importing torch at once can leave it half-initialised (app.core.warmup)
        import torch  # noqa: F401

        from lvm.data import load_dataset

        def done(ds):
            self.workspace.set_dataset(ds, str(spec), split)
            if on_done:
                on_done()

        self._run_load("load/dataset", lambda: load_dataset(spec), done)

    def load_model(self, path: str | Path, on_done=None, sha256: str | None = None) -> None:
        """Load a checkpoint or a Python model file (``lvm.user_models``) in a worker. Running a .py file needs the
        user's consent, which the caller has: a command line names the file, ``open_model`` asks (``sha256``: the
        content agreed to). A file that fails leaves the current model in place and the user sees why."""
        # imported here, on the GUI thread (after the first paint): the same package imported for the first time by
        # two threads at once broke (KeyError: 'lvm.models' while a lab's module was being imported)
        from lvm.user_models import load_any_model

        ws = self.workspace

        def job():
            return load_any_model(path, ws.device, allow_code=True, sha256=sha256)

        def done(result):
            model, info = result
            ws.set_model(model, str(path), info)
            if on_done:
                on_done()

        self._run_load("load/model", job, done)

    def _run_load(self, channel, fn, done) -> None:
        self._loading += 1

        def finished():
            self._loading -= 1
            if self._loading == 0:
                trim_heap_soon()  # the replaced dataset/model was freed: return its pages to the OS
                self.loading_finished.emit()

        self.runner.submit(channel, fn, on_result=done, on_done=finished, keep_all=True)

    def load_defaults(self, data: str | None = None, model: str | None = None) -> None:
        # formulas are typeset once loading is done (their matplotlib import would compete with it, and importing it
        # while a worker imports torch._dynamo hung a test: app.widgets.formula_text)
        from app.widgets.formula_text import hold_typesetting, release_typesetting

        hold_typesetting()
        self.warmed_up.connect(release_typesetting, Qt.ConnectionType.SingleShotConnection)
        self.warmed_up.connect(self.typeset_help_ahead, Qt.ConnectionType.SingleShotConnection)
        if self.build_labs_ahead:
            self.warmed_up.connect(self.build_labs_when_idle, Qt.ConnectionType.SingleShotConnection)
        self.loading_finished.connect(self.warm_up_in_background, Qt.ConnectionType.SingleShotConnection)
        self.load_dataset(data or DEFAULT_DATASET)
        model_path = model or (str(DEFAULT_MODEL) if DEFAULT_MODEL.exists() else None)
        if model_path:
            self.load_model(model_path)

    def warm_up_in_background(self) -> None:
        """Once the app is ready: torch's lazy imports for its first optimiser (app.core.warmup; ms after the first
        time), then the help panels' formulas (matplotlib's import, never beside torch._dynamo's: the two at once
        hung a test) and one collection + ``gc.freeze()`` of the start-up heap."""

        def done() -> None:
            freeze_startup_heap()
            if shiboken6.isValid(self):  # (the window may have closed while torch warmed up)
                self.warmed_up.emit()

        self.runner.submit("warmup/torch", lambda: warm_up_torch_when_idle(), on_done=done, keep_all=True)

    def typeset_help_ahead(self) -> None:
        """Typeset every lab's help formulas in the background of the event loop, one per timer tick, at the size and
        resolution the help panels have (``app.widgets.formula_text.TypesetAhead``): a lab shown for the first time
        then finds its formulas ready."""
        from app.labs import explanation
        from app.widgets.formula_text import FormulaBrowser, TypesetAhead

        shown = self.findChild(FormulaBrowser, "explanation-text")
        font_of = shown if shown is not None else self
        point_size = font_of.font().pointSizeF()
        dpi = font_of.logicalDpiY() * font_of.devicePixelRatioF()
        self.help_typesetting = TypesetAhead(
            [explanation(name) for name in LABS], point_size if point_size > 0 else 10.0, dpi, parent=self
        )

    def build_labs_when_idle(self) -> None:
        """Build the labs not shown yet while the user is idle (``app.core.idle_steps``), one step at a time:
        pyqtgraph's import, then each lab's module import and its build. A lab's first showing then takes 7-15 ms
        of the GUI thread instead of 90-260 ms. Steps wait while any job runs (a lab's own start-up work included)."""
        import importlib

        def build(name: str) -> None:
            if shiboken6.isValid(self):
                self.lab(name)

        steps: list = [lambda: importlib.import_module("pyqtgraph")]
        for name in LABS:
            if name not in self.labs:
                steps += [lambda name=name: lab_class(name), lambda name=name: build(name)]
        self.labs_ahead = IdleSteps(steps, can_run=lambda: self.isVisible() and not self.runner.is_busy(), parent=self)
        self.labs_ahead.failed.connect(lambda why: log.warning("building a lab ahead failed: %s", why))

    def is_warming_up(self) -> bool:
        return self.runner.is_busy("warmup/")

    def set_device(self, spec: str) -> None:
        try:
            self.workspace.set_device(spec)
        except DeviceUnavailableError:
            self.show_error(
                f"There is no CUDA GPU on this computer (PyTorch finds none), so the computations stay on "
                f"{self.workspace.device}. Choose Device → auto to use a GPU whenever one is present."
            )
            self.device_combo.setCurrentText(self.workspace.device_spec)
        except LVMError as exc:
            self.show_error(str(exc))
            self.device_combo.setCurrentText(self.workspace.device_spec)

    # -- workspace events ------------------------------------------------------------------------------------------
    def _on_dataset(self, ds) -> None:
        n = len(ds.split(self.workspace.split))
        self.dataset_label.setText(f"data: {ds.name} ({self.workspace.split}, {n:,} samples)")

    def _on_model(self, model) -> None:
        self.device_label.setText(str(self.workspace.device))
        if model is None:
            self.model_label.setText("no model")
            return
        from lvm.models.capabilities import describe

        ws = self.workspace
        if ws.model_path:
            name = Path(ws.model_path).name
        else:
            name = f"{type(model).__name__} (from Python)" if ws.model_info.get("source") == "explore" else "(unsaved)"
        try:
            caps = describe(model)
        except LVMError:
            self.model_label.setText(f"model: {name}")
            return
        self.model_label.setText(f"model: {name} (latent {caps.latent_dim}-D, {caps.decoder})")

    def _on_device(self, device) -> None:
        self.device_label.setText(str(device))
        self.device_combo.setCurrentText(self.workspace.device_spec)

    def _on_progress(self, channel: str, fraction: float, text: str) -> None:
        if not self.progress.isVisible():
            return
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        self.job_label.setText(f"{describe_job(channel)}: {text}" if text else describe_job(channel))

    def _on_busy(self, busy: bool) -> None:
        long_jobs = [c for c in self.runner.running_channels() if c.endswith(tuple(LONG_JOBS))]
        shown = busy and bool(long_jobs)
        if shown and not self.progress.isVisible():  # a long job started: say what runs, busy until it reports
            self.progress.setRange(0, 0)
            self.job_label.setText(describe_job(long_jobs[0]))
            self.cancel_button.setText(f"Stop {LONG_JOBS[next(s for s in LONG_JOBS if long_jobs[0].endswith(s))]}")
            self.cancel_button.setToolTip(f"Stop {describe_job(long_jobs[0])} (what it computed so far is kept)")
        self.job_label.setVisible(shown)
        self.progress.setVisible(shown)
        self.cancel_button.setVisible(shown)

    def show_error(self, text: str) -> None:
        """Tell the user, without blocking (a non-modal message box)."""
        self.last_error = text
        self.errors.append(text)
        self.statusBar().showMessage(text, 10000)
        log.warning("shown to the user: %s", text)
        # titled apart from the main window ("Problem — LVM Explorer" on X11), so that a window manager's list, or a
        # script looking for the main window by its title, never mistakes one for the other
        box = QMessageBox(QMessageBox.Icon.Warning, "Problem", text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- dialogs ---------------------------------------------------------------------------------------------------
    def _last_dir(self) -> str:
        return str(app_settings().value("last_dir", str(Path.home())))

    def _remember_dir(self, path: str) -> None:
        app_settings().setValue("last_dir", str(Path(path).parent))

    def _ask_dataset_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open dataset folder (MNIST layout)", self._last_dir())
        if path:
            self._remember_dir(path + "/x")
            self.load_dataset(path)

    def _ask_dataset_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open dataset", self._last_dir(), "NumPy archives (*.npz)")
        if path:
            self._remember_dir(path)
            self.load_dataset(path)

    def _ask_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open model",
            self._last_dir(),
            "Models (*.safetensors *.py);;Checkpoints (*.safetensors);;Python files building a model (*.py)",
        )
        if path:
            self._remember_dir(path)
            self.open_model(path)

    def open_model(self, path: str, on_done=None) -> bool:
        """File → Open model: a checkpoint loads; a Python file (``FILE.py[:FACTORY]``, it runs code) loads once the
        user agreed to run this content (asked once per content: its SHA-256 is remembered in the settings). Returns
        whether a load started."""
        from lvm.user_models import is_code_spec

        sha256 = None
        if is_code_spec(path):
            sha256 = self.code_consent(path)
            if sha256 is None:
                self.statusBar().showMessage(f"{Path(path).name} was not run (you did not agree)", 10000)
                return False
        self.load_model(path, on_done, sha256=sha256 or None)
        return True

    def code_consent(self, spec: str) -> str | None:
        """The SHA-256 of the Python file ``spec`` names when the user agrees to run it (remembered: asked once per
        content), else None; "" for a file that cannot be read (loading it says why)."""
        from app.core.settings import code_consented, remember_code_consent
        from app.widgets import code_consent
        from lvm.user_models import file_sha256, parse_spec

        file = parse_spec(spec)[0]
        try:
            sha256 = file_sha256(file)
        except OSError:
            return ""
        if code_consented(sha256):
            return sha256
        if not code_consent.ask_to_run_code(self, file):
            return None
        remember_code_consent(sha256)
        return sha256

    def _ask_save_model(self) -> None:
        if self.workspace.model is None:
            self.show_error("there is no model to save; train or open one first")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save model", self._last_dir(), "Checkpoints (*.safetensors)")
        if path:
            self.save_model(path)

    def save_model(self, path: str) -> None:
        from lvm.checkpoint import save_model

        try:
            save_model(self.workspace.model, path, self.workspace.model_info)
        except (OSError, LVMError) as exc:
            self.show_error(f"could not save the model to {path}: {exc}")
            return
        self.workspace.model_path = str(path)
        self._on_model(self.workspace.model)

    def _ask_open_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open session", self._last_dir(), "LVM sessions (*.lvmsession *.json)"
        )
        if path:
            self.open_session(path)

    def _ask_save_session(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session", self._last_dir(), "LVM sessions (*.lvmsession)")
        if path:
            self.save_session(path)

    def _ask_export(self, kind: str) -> None:
        scale = 1.0
        if kind == "png":  # its pixel size first (SVG is drawn in vectors)
            from app.widgets.animation_export import ask_figure_scale

            chosen = ask_figure_scale(self, self.lab(self.current_view_name()).export_widget())
            if chosen is None:
                return
            scale = chosen
        path, _ = QFileDialog.getSaveFileName(self, f"Export view as {kind.upper()}", self._last_dir(), f"*.{kind}")
        if path:
            if not path.lower().endswith(f".{kind}"):  # the filter says what to write; "plot" becomes "plot.svg"
                path += f".{kind}"
            self.export_view(path, scale)

    def _ask_export_animation(self) -> None:
        from app.widgets.animation_export import ask_animation_export

        ask_animation_export(self, self.lab(self.current_view_name()), self._last_dir())

    def _ask_export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export view data", self._last_dir(), "*.csv")
        if path:
            self.export_csv(path)

    # -- sessions and export ---------------------------------------------------------------------------------------
    def session_losses(self) -> tuple[list[str], str | None]:
        """(what the session would not keep, the embedded model or None): asked before writing, so that the user
        is told before saving (never only when the session is opened again)."""
        losses = []
        latent = self.labs.get("latent")
        if latent is not None and latent.is_training():
            losses.append(
                "training is running: the session keeps the model as it was before this training run "
                "(stop training first to keep the weights trained so far)"
            )
        model_data, problem = self.workspace.embedded_model()
        if problem:
            losses.append(problem)
        for lab in self.labs.values():
            losses += lab.session_losses()
        return losses, model_data

    def save_session(self, path: str, confirm: bool = True) -> QMessageBox | None:
        """Save the workspace, every lab's state and a model made in the app (embedded: one atomic write).
        When something cannot be kept, a question says what, before anything is written (``confirm``: ask; False:
        save without it). Returns the question box, or None when the session was written (or failed to)."""
        losses, model_data = self.session_losses()
        if losses and confirm:
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Save session",
                "This session cannot keep everything:\n\n"
                + "\n".join(f"• {t}" for t in losses)
                + "\n\nSave it without these?",
                QMessageBox.StandardButton.NoButton,
                self,
            )
            box.setObjectName("session-losses")
            save_button = box.addButton("Save without them", QMessageBox.ButtonRole.AcceptRole)
            box.addButton(QMessageBox.StandardButton.Cancel)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.buttonClicked.connect(lambda b: self._write_session(path, model_data) if b is save_button else None)
            box.open()
            return box
        self._write_session(path, model_data)
        return None

    def _write_session(self, path: str, model_data: str | None) -> None:
        ws = self.workspace
        for name, lab in self.labs.items():
            ws.view_states[name] = lab.view_state()
        try:
            ws.save_session(path, model_data)
        except OSError as exc:  # the previous file is unchanged (an atomic write)
            self.show_error(f"the session was not saved; {write_error(path, exc)}. The previous file is unchanged")

    def open_session(self, path: str, keep_view: bool = False) -> None:
        """Restore a session, all or nothing: its dataset and model load together in a worker and replace the
        workspace's only when both loaded; a bad file (or a dataset or model it names that does not load) leaves the
        workspace untouched and says why. ``keep_view``: stay on the current lab (``--view`` wins over the session)."""
        from app.core.workspace import model_from_bytes
        from lvm.data import load_dataset
        from lvm.user_models import is_code_spec, load_any_model, parse_spec

        try:
            raw = read_session(path)
        except LVMError as exc:
            self.show_error(str(exc))
            return
        ws = self.workspace
        base = Path(path).parent

        def resolve(p):
            return p if p is None or Path(p).is_absolute() or p in ("digits",) or ":" in p else str(base / p)

        spec = resolve(raw["dataset"]) if Path(base / raw["dataset"]).exists() else raw["dataset"]
        model_path = resolve(raw["model"]) if raw.get("model") else None
        code_sha256 = None
        if model_path and raw.get("model_data") is None and is_code_spec(model_path):
            file, factory = parse_spec(raw["model"])  # (FILE.py:FACTORY, the file relative to the session)
            model_path = resolve(str(file)) + (f":{factory}" if factory else "")
            code_sha256 = self.code_consent(model_path)  # asked unless this content was agreed to before
            if code_sha256 is None:
                self.show_error(
                    f"the session {path} uses the Python model file {parse_spec(model_path)[0]}, which runs code; you "
                    "did not agree to run it, so the session was not opened. The workspace is unchanged."
                )
                return
        device_spec, device, device_note = ws.device_spec, ws.device, None
        if raw.get("device"):
            try:  # a session saved on a GPU machine still opens without one, on the current device
                device, device_spec = resolve_device(raw["device"]), raw["device"]
            except LVMError as exc:
                device_note = f"{path}: {exc}; staying on {ws.device}"

        def job():
            try:
                dataset = load_dataset(spec)
                if raw.get("model_data") is not None:  # a model made in the app, embedded (field "model_data")
                    model, info = model_from_bytes(raw["model_data"], device, f"{path} (field 'model_data')")
                else:
                    model, info = (
                        load_any_model(model_path, device, allow_code=True, sha256=code_sha256 or None)
                        if model_path
                        else (None, None)
                    )
            except LVMError as exc:
                raise SessionError(f"could not open the session {path}: {exc}. The workspace is unchanged.") from None
            return dataset, model, info

        def apply(result):
            dataset, model, info = result
            ws.set_dataset(dataset, str(spec), raw.get("split"))
            if model is not None:  # (an embedded model has no file: still unsaved, as when the session was saved)
                ws.set_model(model, None if raw.get("model_data") is not None else str(model_path), info)
            if device_note:
                self.show_error(device_note)
            elif device_spec != ws.device_spec:
                self.set_device(device_spec)
            ws.seeds.update(raw.get("seeds", {}))
            ws.events.seeds.emit("global")
            ws.select(raw.get("selected_index"))  # before the labs: a lab following the selection keeps its state
            if raw.get("q"):
                ws.set_q(GaussianQ.from_arrays(raw["q"]["mean"], raw["q"]["scale_tril"]))
            ws.view_states.update(raw.get("views", {}))
            for name, lab in self.labs.items():
                lab.restore_view_state(ws.view_states.get(name, {}))
            if raw.get("current_view") in LABS and not keep_view:
                self.set_view(raw["current_view"])

        self._run_load("load/session", job, apply)

    def export_view(self, path: str, scale: float = 1.0) -> None:
        """Write the current view as SVG (a ``.svg`` name) or as an image in the format its suffix names, atomically:
        an existing file is replaced whole, a failed export leaves it as it was and says why. ``scale``: the image's
        pixel size against the view on screen (drawn at that size, sharp; its resolution field 96 dpi x scale)."""
        widget = self.lab(self.current_view_name()).export_widget()
        try:
            if path.lower().endswith(".svg"):
                atomic_write_bytes(path, svg_bytes(widget, f"LVM Explorer — {self.current_view_name()}"))
            elif scale != 1.0:
                from app.widgets.animation_export import figure_image

                write_image(figure_image(widget, scale), path)
            else:
                write_image(widget.grab(), path)
        except (OSError, LVMError) as exc:
            self.show_error(write_error(path, exc))

    def export_csv(self, path: str) -> None:
        try:
            self.lab(self.current_view_name()).export_csv(path)
        except (NotImplementedError, LVMError) as exc:
            self.show_error(str(exc))
        except OSError as exc:
            self.show_error(write_error(path, exc))

    def show_about(self) -> None:
        import numpy as np
        import pyqtgraph
        import PySide6
        import torch

        text = (
            f"<h3>LVM Explorer {__version__}</h3><p>See and touch latent variable models.</p>"
            f"<p>Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
            f"PySide6 {PySide6.__version__}, pyqtgraph {pyqtgraph.__version__}</p>"
            f"<p>Device: {self.workspace.device}"
            f"{' (' + torch.cuda.get_device_name(0) + ')' if self.workspace.device.type == 'cuda' else ''}</p>"
            "<p>Bundled data: MNIST test set (Yann LeCun, Corinna Cortes; CC BY-SA 3.0).</p>"
        )
        box = QMessageBox(QMessageBox.Icon.Information, "About LVM Explorer", text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- models trained and not saved (app.core.recovery) ------------------------------------------------------------
    def keep_unsaved_model(self) -> Path | None:
        """Closing: training stops (its weights so far become the model) and a trained model that was never saved is
        written to the recovery file, to be offered at the next start. The path, or None when nothing was kept."""
        from app.core import recovery

        latent = self.labs.get("latent")
        if latent is not None and latent.is_training():
            latent.cancel_training()
        ws = self.workspace
        if not recovery.is_unsaved_training_result(ws.model, ws.model_path, ws.model_info):
            return None
        return recovery.keep_model(ws.model, {**ws.model_info, "kept_on_close": True})

    def offer_recovered_model(self) -> QMessageBox | None:
        """At start: a model kept by ``keep_unsaved_model`` is offered (non-modal): Open, Discard or Later."""
        from app.core import recovery
        from lvm.checkpoint import load_model

        path = recovery.recovery_file()
        if not path.exists():
            return None
        try:
            _, info = load_model(path)
        except LVMError as exc:
            self.show_error(f"a model kept when LVM Explorer last closed cannot be read ({exc}); it stays in {path}")
            return None
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Unsaved model",
            f"A model you trained ({recovery.describe(info)}) was not saved when LVM Explorer last "
            "closed. It was kept. Open it now?",
            QMessageBox.StandardButton.NoButton,
            self,
        )
        box.setObjectName("recovered-model")
        open_button = box.addButton("Open", QMessageBox.ButtonRole.AcceptRole)
        discard_button = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def chosen(button) -> None:
            if button is open_button:
                device = self.workspace.device

                def opened(result) -> None:
                    model, kept_info = result
                    self.workspace.set_model(model, None, kept_info)  # still unsaved: kept again on close
                    path.unlink(missing_ok=True)

                self._run_load("load/model", lambda: load_model(path, device), opened)
            elif button is discard_button:
                path.unlink(missing_ok=True)

        box.buttonClicked.connect(chosen)
        box.open()
        return box

    # -- closing ---------------------------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        # remembered once, here: QSettings writes its file on the GUI thread after every change (measured: one
        # sync took 0.7 s while the machine was busy), so nothing is written while the user works
        self.keep_unsaved_model()
        settings = app_settings()
        settings.setValue("geometry", self.saveGeometry())
        settings.setValue("last_view", self.current_view_name())
        settings.setValue("help_visible", self.help_visible)
        if self.workspace.dataset_spec:
            settings.setValue("last_dataset", str(self.workspace.dataset_spec))
        self.runner.close(3000)
        super().closeEvent(event)
        if event.isAccepted():
            # closing the window ends the app: tool windows opened from it (pyqtgraph's export dialog) close with it,
            # or the app would keep running behind a stray window
            for widget in QApplication.topLevelWidgets():
                if widget is not self and widget.isVisible() and not isinstance(widget, MainWindow):
                    widget.close()


# -- atomic image export (also used by ``lvm-explorer --screenshot``) -------------------------------------------------
def write_image(image, path: str) -> None:
    """Encode ``image`` (QPixmap or QImage) in the format the suffix of ``path`` names (PNG when it has none) and
    write it atomically (``lvm.io.atomic_write_bytes``). OSError when the file cannot be written; LVMError for a
    format Qt cannot write."""
    fmt = Path(path).suffix[1:].lower() or "png"
    writable = {bytes(f.data()).decode().lower() for f in QImageWriter.supportedImageFormats()}
    if fmt not in writable:
        raise LVMError(f"{path}: .{fmt} is not an image format LVM Explorer can write; use .png or .svg")
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if image.isNull() or not image.save(buffer, fmt.upper()):
        raise LVMError(f"{path}: the view could not be encoded as {fmt.upper()} (is the window shown?)")
    atomic_write_bytes(path, bytes(buffer.data().data()))


def svg_bytes(widget, title: str) -> bytes:
    """``widget`` rendered as an SVG document (in memory; the caller writes it atomically)."""
    from PySide6.QtSvg import QSvgGenerator

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    gen = QSvgGenerator()
    gen.setOutputDevice(buffer)
    gen.setSize(widget.size())
    gen.setViewBox(widget.rect())
    gen.setTitle(title)
    painter = QPainter(gen)
    if not painter.isActive():
        raise LVMError("the SVG renderer could not start; export as PNG instead")
    try:
        widget.render(painter, QPoint())
    finally:
        ended = painter.end()
    data = bytes(buffer.data().data())
    if not ended or b"<svg" not in data:
        raise LVMError("the SVG renderer produced no document; export as PNG instead")
    return data


def write_error(path: str, exc: BaseException) -> str:
    """A message for a failed write of ``path``: which file, why, and what to do."""
    if isinstance(exc, LVMError):
        return f"could not write {exc}" if str(exc).startswith(str(path)) else f"could not write {path}: {exc}"
    parent = Path(path).parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        why = f"{existing} is a file, not a folder"
    elif isinstance(exc, PermissionError):
        why = f"no permission to write in {parent}"
    else:
        why = getattr(exc, "strerror", None) or str(exc)
    return f"could not write {path}: {why}; choose another file or folder"
