"""Remembered settings (QSettings). ``LVM_EXPLORER_SETTINGS=/path/file.ini`` redirects them (tests use it)."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings

_settings: QSettings | None = None


def app_settings() -> QSettings:
    global _settings
    if _settings is None:
        path = os.environ.get("LVM_EXPLORER_SETTINGS")
        _settings = QSettings(path, QSettings.Format.IniFormat) if path else QSettings("LVM Explorer", "lvm-explorer")
    return _settings
