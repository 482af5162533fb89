"""LVM Explorer's desktop GUI (PySide6 + pyqtgraph) over the Qt-free ``lvm`` library."""

from lvm import __version__, prefer_passive_openmp  # noqa: F401

prefer_passive_openmp()  # before anything imports torch (app.main imports it after the first paint)
