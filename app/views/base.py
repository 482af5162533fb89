"""The base of every lab: a widget over the shared workspace and the worker facility.

A lab subscribes to ``workspace.events`` in ``__init__`` and redraws; it changes the workspace to talk to other labs.
Heavy work goes through ``self.runner.submit(self.channel("name"), fn, ...)``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QSplitter, QTextBrowser, QVBoxLayout, QWidget

from app.state import Workspace
from app.workers import TaskRunner


class LabView(QWidget):
    """Base class of the labs. Subclasses set ``name``, ``title`` and ``explanation`` (HTML with the formulas)."""

    name = "lab"
    title = "Lab"
    explanation = ""

    def __init__(self, workspace: Workspace, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.runner = runner
        self.setObjectName(f"lab-{self.name}")

    # -- helpers for subclasses ------------------------------------------------------------------------------------
    def channel(self, what: str) -> str:
        """A worker channel private to this lab (``runner.cancel(self.name)`` cancels them all)."""
        return f"{self.name}/{what}"

    def with_explanation(self, content: QWidget) -> QSplitter:
        """``content`` with the "what am I looking at" panel on its right."""
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(content)
        splitter.addWidget(explanation_panel(self.title, self.explanation))
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([1000, 240])
        return splitter

    # -- the main window calls these -------------------------------------------------------------------------------
    def activate(self) -> None:
        """The lab became visible: start lazy computations here."""

    def deactivate(self) -> None:
        """The lab was hidden: cancel interactive work."""
        self.runner.cancel(self.name + "/")

    def is_busy(self) -> bool:
        """True while this lab's computations run (``--screenshot`` waits for them)."""
        return self.runner.is_busy(self.name + "/")

    def export_widget(self) -> QWidget:
        """The widget rendered by "Export view as PNG/SVG"."""
        return self

    def export_csv(self, path: str) -> None:
        """Write the data behind the view as CSV; labs override."""
        raise NotImplementedError(f"the {self.title} has no data to export")

    def view_state(self) -> dict:
        """JSON-able view state (ranges, toggles) saved in sessions."""
        return {}

    def restore_view_state(self, state: dict) -> None:
        """Restore what ``view_state`` returned; must tolerate missing or wrong keys."""


class PlaceholderLab(LabView):
    """A lab that is not built yet (keeps its place in the window)."""

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        layout = QVBoxLayout(self)
        label = QLabel(f"<h2>{self.title}</h2><p>This lab is not built yet.</p>")
        label.setAlignment(Qt.AlignCenter)
        layout.addWidget(label)


def explanation_panel(title: str, html: str) -> QFrame:
    frame = QFrame()
    frame.setObjectName("explanation")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(4, 4, 4, 4)
    head = QLabel("<b>What am I looking at?</b>")
    text = QTextBrowser()
    text.setOpenExternalLinks(True)
    text.setHtml(html or f"<p>{title}</p>")
    layout.addWidget(head)
    layout.addWidget(text)
    frame.setMinimumWidth(180)
    return frame
