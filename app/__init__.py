"""LVM Explorer's desktop GUI (PySide6 + pyqtgraph) over the Qt-free ``lvm`` library."""

from lvm import __version__  # noqa: F401
