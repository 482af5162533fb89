"""The question asked before running a user's Python model file (File → Open model, a session naming one).

Tests replace ``ask_to_run_code`` (a modal question would wait for a click)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget


def ask_to_run_code(parent: QWidget | None, path: str | Path) -> bool:
    """Ask whether to run ``path``; True when the user agrees (modal: the answer decides what loads)."""
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Run Python code?",
        f"{Path(path).name} runs Python code on this computer. Run it?",
        QMessageBox.StandardButton.NoButton,
        parent,
    )
    box.setObjectName("code-consent")
    box.setInformativeText(
        f"{path}\n\nOpen only files you wrote or trust: the code can do anything your user account can. LVM Explorer "
        "remembers your answer for this file's exact content; a changed file is asked about again."
    )
    run = box.addButton("Run it", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is run
