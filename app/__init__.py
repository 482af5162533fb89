"""LVM Explorer's desktop GUI (PySide6 + pyqtgraph) over the Qt-free ``lvm`` library."""

from lvm import __version__, prefer_passive_openmp  # noqa: F401

prefer_passive_openmp()  # before anything imports torch (app.main imports it after the first paint)


def explore(model, data=None, *, view=None):
    """Open LVM Explorer on a live latent model (``app.explorer.explore``: blocks unless a Qt event loop runs, e.g.
    IPython's ``%gui qt``); imported on call, so that ``import app`` stays light (the window paints before torch)."""
    from app.explorer import explore as _explore

    return _explore(model, data, view=view)
