"""Errors a user can cause. Each message says what is wrong and what to do; the CLI exits 2 on them."""


class LVMError(Exception):
    """Base class of every error a user's input can cause (bad file, bad argument, bad shape)."""


class DatasetError(LVMError):
    """A dataset file or spec cannot be used; the message names the file and the fix."""


class CheckpointError(LVMError):
    """A model checkpoint is missing, corrupt, tampered with or of another architecture."""


class SessionError(LVMError):
    """A saved workspace/session file cannot be restored."""


class ModelInputError(LVMError, ValueError):
    """Data handed to a model has the wrong shape, dtype or contains NaN/inf."""
