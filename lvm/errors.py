"""Errors a user can cause. Each message says what is wrong and what to do; the CLI exits 2 on them."""


class LVMError(Exception):
    """Base class of every error a user's input can cause (bad file, bad argument, bad shape)."""


class DatasetError(LVMError):
    """A dataset file or spec cannot be used; the message names the file and the fix."""


class CheckpointError(LVMError):
    """A model checkpoint is missing, corrupt, tampered with or of another architecture."""


class SessionError(LVMError):
    """A saved workspace/session file cannot be restored."""


class DeviceUnavailableError(LVMError):
    """The device asked for (``cuda``) is not present on this machine."""


class ModelInputError(LVMError, ValueError):
    """Data handed to a model has the wrong shape, dtype or contains NaN/inf."""


class UserModelError(ModelInputError):
    """A model file the app did not make (a .py file, a refused format) gives no latent model (``lvm.user_models``);
    the message names the file, the line where there is one, and what to change."""


def out_of_memory_message(exc: BaseException) -> str | None:
    """What to tell the user when ``exc`` means the computer or the GPU ran out of memory (None for anything else).

    Covers Python's ``MemoryError`` and torch's ``OutOfMemoryError`` (a ``RuntimeError`` whose message says "out of
    memory", on CUDA and in the CPU allocator)."""
    text = str(exc)
    if isinstance(exc, MemoryError):
        on_gpu = False
    elif isinstance(exc, RuntimeError) and "out of memory" in text.lower():
        on_gpu = "cuda" in text.lower() or "gpu" in text.lower() or type(exc).__name__ == "OutOfMemoryError"
    else:
        return None
    if on_gpu:
        return (
            "the GPU ran out of memory; switch the device to cpu (the Device menu, or --device cpu on the command "
            "line), or ask for less at once (fewer points or samples, a smaller grid)"
        )
    return "the computer ran out of memory; ask for less at once (fewer points or samples, a smaller grid or batch)"
