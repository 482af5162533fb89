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


# -- consent to run a user's Python model file (File → Open model asks once per file content) -------------------------
CODE_CONSENT_KEY = "code_consent/sha256"
MAX_CODE_CONSENTS = 500  # the most recent ones are kept


def consented_code_hashes() -> list[str]:
    """The SHA-256 digests (hex) of the Python model files the user agreed to run, oldest first."""
    value = app_settings().value(CODE_CONSENT_KEY, "")
    text = " ".join(value) if isinstance(value, list) else str(value or "")
    return [h for h in text.split() if len(h) == 64]


def code_consented(sha256: str) -> bool:
    """True when the user agreed to run a file with exactly this content."""
    return sha256 in consented_code_hashes()


def remember_code_consent(sha256: str) -> None:
    """Remember that the user agreed to run a file with this content (asked once per content)."""
    hashes = [h for h in consented_code_hashes() if h != sha256] + [sha256]
    app_settings().setValue(CODE_CONSENT_KEY, " ".join(hashes[-MAX_CODE_CONSENTS:]))
