"""Load a latent model the app did not make: an LVM Explorer checkpoint, or a Python file that builds one.

``load_any_model(spec, device, allow_code=...)`` takes

- ``NAME.safetensors``: an LVM Explorer checkpoint (``lvm.checkpoint.load_model``; nothing is unpickled);
- ``NAME.py`` or ``NAME.py:FACTORY``: a Python file, run as a fresh module (its folder is on ``sys.path`` while it
  is imported, so it can import the files beside it; ``if __name__ == "__main__":`` blocks do not run). The model is
  ``FACTORY()`` when a factory is named; otherwise ``make_model()`` when the file defines it, else the module's
  attribute ``model``. The result must follow the latent-model protocol (``lvm.models.base``: ``latent_dim``,
  ``log_prior(z)``, ``log_likelihood(x, z)``; optional members in ``lvm.models.capabilities``). A torch module is
  put in eval mode and moved to ``device``. Running a file runs its code: ``allow_code=True`` says the user agreed
  (naming the file on a command line, or answering the app's question).

Every failure is a ``UserModelError`` naming the file, the line where Python gives one, and what is missing.

Serialized torch programs (``.pt2``, ``torch.export.save``) are refused: ``torch.export.load`` (torch 2.13) is not safe
on a file from someone else. It unpickles, with ``torch.load(weights_only=False)`` or ``pickle.loads``, every weight
or constant the archive itself flags as pickled (``use_pickle``, custom and opaque objects), and the example inputs
after a ``weights_only`` load fails; it parses the graph's symbolic shapes with ``sympy.sympify`` (which evaluates
Python); and it resolves each graph node's target as any attribute path under ``torch`` (``torch.os.system`` is one),
which the program then calls. Loading one is running its author's code without the question a ``.py`` file gets; a
``.py`` file that builds the model states the same thing openly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import torch

from lvm.errors import ModelInputError, UserModelError

DEFAULT_FACTORY = "make_model"
DEFAULT_ATTRIBUTE = "model"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")
PT2_REFUSAL = (
    "serialized torch programs (torch.export .pt2) are not loaded: torch.export.load unpickles parts of the archive "
    "(weights and constants the file flags as pickled, with torch.load(weights_only=False)), evaluates its symbolic "
    "shapes with sympy, and calls any function under `torch` a graph node names, so a .pt2 file can run its "
    "author's code. Write a small .py file that builds the model (make_model()) and loads its weights from a "
    ".safetensors file instead; see examples/README.md"
)

_import_lock = threading.Lock()  # sys.path is edited while a file is imported: one at a time
_module_numbers = itertools.count(1)

__all__ = ["UserModelError", "file_sha256", "is_code_spec", "load_any_model", "parse_spec"]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file's bytes (hex): what the app remembers a user's consent to run a file by."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """``"dir/my_vae.py:make_vae"`` -> (Path("dir/my_vae.py"), "make_vae"); anything else -> (Path(spec), None)."""
    text = os.fspath(spec)
    head, sep, tail = text.rpartition(":")
    if sep and head.endswith(".py") and tail.isidentifier():
        return Path(head), tail
    return Path(text), None


def is_code_spec(spec: str | os.PathLike[str]) -> bool:
    """True when ``spec`` names a Python file (loading it runs code: ask first)."""
    return parse_spec(spec)[0].suffix.lower() == ".py"


def load_any_model(
    spec: str | os.PathLike[str], device: torch.device | str = "cpu", *, allow_code: bool, sha256: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """(model, info) from a checkpoint or a Python file (see the module docstring); raises an ``LVMError``:
    ``CheckpointError`` for a bad checkpoint, ``UserModelError`` for everything else. ``sha256``: a Python file must
    still have this content (the content the user agreed to run), else it is not run."""
    path, factory = parse_spec(spec)
    suffix = path.suffix.lower()
    if suffix == ".safetensors" and factory is None:
        from lvm.checkpoint import load_model

        return load_model(path, device)
    if suffix == ".pt2":
        raise UserModelError(f"{path}: {PT2_REFUSAL}")
    if suffix in PICKLE_SUFFIXES:
        raise UserModelError(
            f"{path}: {suffix} files are pickles (torch.save), which can run code when loaded and are never loaded. "
            "Save the weights with safetensors and write a .py file that builds the model (see examples/README.md)"
        )
    if suffix != ".py":
        raise UserModelError(
            f"{path}: not a model file LVM Explorer reads; give an LVM Explorer checkpoint (.safetensors) or a "
            "Python file (.py, or FILE.py:FACTORY) that builds a latent model"
        )
    if not allow_code:
        raise UserModelError(
            f"{path} is Python code: loading it runs it on this computer, which needs your consent (the app asks; "
            "naming the file on a command line is consent)"
        )
    return load_python_model(path, factory, device, sha256=sha256)


def load_python_model(
    path: Path, factory: str | None = None, device: torch.device | str = "cpu", *, sha256: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Run ``path`` as a fresh module and build its model (the caller has the user's consent; ``sha256``: to run
    exactly this content)."""
    module, digest = _import_file(path, sha256)
    name, build = _factory(module, path, factory)
    if name == DEFAULT_ATTRIBUTE:  # (an object, not a factory: a torch module is callable too)
        model = build
    else:
        try:
            model = build()
        except Exception as exc:  # noqa: BLE001 - anything the user's code raises becomes a message naming it
            raise UserModelError(f"{path}: `{name}` raised {_describe_exception(exc, path)}") from exc
    what = f"{path}: `{name}` ({'an object of type' if name == DEFAULT_ATTRIBUTE else 'it returned a'} " + (
        f"{type(model).__name__})"
    )
    try:
        from lvm.models.capabilities import check_latent_model

        check_latent_model(model, what)
    except ModelInputError as exc:
        raise UserModelError(str(exc)) from None
    if isinstance(model, torch.nn.Module):
        try:
            model = model.to(device).eval()
        except Exception as exc:  # noqa: BLE001
            raise UserModelError(f"{path}: the model cannot be moved to {device} ({exc})") from exc
    check_model_shapes(model, str(path))
    info = {"source": "python", "file": str(path), "factory": name, "sha256": digest}
    return model, info


def _import_file(path: Path, sha256: str | None) -> tuple[Any, str]:
    """(the module made by running ``path``, the SHA-256 of what ran); its folder is on sys.path while it runs."""
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        raise UserModelError(f"{path}: file not found") from None
    except OSError as exc:
        raise UserModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    digest = hashlib.sha256(source).hexdigest()
    if sha256 is not None and digest != sha256:
        raise UserModelError(f"{path}: the file changed after you agreed to run it; it was not run. Open it again")
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        raise UserModelError(f"{path}: {where}syntax error: {exc.msg}; fix the file and open it again") from None
    except ValueError as exc:  # null bytes
        raise UserModelError(f"{path}: not a Python source file ({exc})") from None
    name = f"lvm_user_model_{next(_module_numbers)}_{path.stem if path.stem.isidentifier() else 'file'}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise UserModelError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    with _import_lock:
        sys.modules[name] = module  # (dataclasses and pickling look the module up by name)
        sys.path.insert(0, folder)
        try:
            exec(code, module.__dict__)  # the consented user's file (compiled above: no __pycache__ beside it)
        except BaseException as exc:
            sys.modules.pop(name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            if isinstance(exc, SystemExit):
                raise UserModelError(f"{path}: the file called exit() while being imported") from None
            raise UserModelError(
                f"{path}: running the file raised {_describe_exception(exc, path)}; fix it and open it again"
            ) from exc
        finally:
            try:
                sys.path.remove(folder)
            except ValueError:
                pass
    return module, digest


def _factory(module: Any, path: Path, factory: str | None) -> tuple[str, Any]:
    """(name, callable or object): the named factory, else ``make_model``, else the attribute ``model``."""
    if factory is not None:
        if not hasattr(module, factory):
            raise UserModelError(f"{path}: has no `{factory}`; define `def {factory}():` returning the model")
        build = getattr(module, factory)
        if not callable(build):
            raise UserModelError(f"{path}: `{factory}` is not a function; it must be one that returns the model")
        return f"{factory}()", build
    if hasattr(module, DEFAULT_FACTORY):
        build = getattr(module, DEFAULT_FACTORY)
        if not callable(build):
            raise UserModelError(
                f"{path}: `{DEFAULT_FACTORY}` is not a function; it must be one that returns the model"
            )
        return f"{DEFAULT_FACTORY}()", build
    if hasattr(module, DEFAULT_ATTRIBUTE):
        return DEFAULT_ATTRIBUTE, getattr(module, DEFAULT_ATTRIBUTE)
    raise UserModelError(
        f"{path}: has no `{DEFAULT_FACTORY}` and no `{DEFAULT_ATTRIBUTE}`; define `def {DEFAULT_FACTORY}():` returning "
        f"the latent model (or name another factory: {path.name}:FACTORY)"
    )


def _describe_exception(exc: BaseException, path: Path) -> str:
    """``"ValueError: bad (line 12)"``: the deepest line of ``path`` in the traceback, where there is one."""
    line = None
    target = os.path.normcase(str(path.resolve()))
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            if os.path.normcase(str(Path(frame.filename).resolve())) == target:
                line = frame.lineno
        except (OSError, ValueError):
            continue
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text + (f" (line {line})" if line else "")


def check_model_shapes(model: Any, name: str) -> None:
    """Call the model once on zeros, to turn a wrong ``latent_dim`` or a wrong output shape into a message now
    rather than in the middle of a computation: log p(z) for z (3, d) must be (3,); log p(x|z) for x (2, D) and
    z (1, 2, d) must be (1, 2) where the model declares ``data_dim`` (or an image shape); ``encode(x)`` must give a
    Distribution with batch shape (2,) and event shape (d,)."""
    from lvm.models.capabilities import describe

    caps = describe(model)
    d = caps.latent_dim
    dtype, device = _dtype_device(model)
    z = torch.zeros(3, d, dtype=dtype, device=device)
    with torch.no_grad():
        _expect(lambda: model.log_prior(z), (3,), f"{name}: log_prior(z) for z of shape (3, {d})", d)
        if caps.data_dim is None:
            return
        x = torch.zeros(2, caps.data_dim, dtype=dtype, device=device)
        zs = torch.zeros(1, 2, d, dtype=dtype, device=device)
        what = f"{name}: log_likelihood(x, z) for x of shape (2, {caps.data_dim}) and z of shape (1, 2, {d})"
        _expect(lambda: model.log_likelihood(x, zs), (1, 2), what, d)
        if caps.has_encoder:
            what = f"{name}: encode(x) for x of shape (2, {caps.data_dim})"
            try:
                q = model.encode(x)
            except Exception as exc:  # noqa: BLE001
                raise UserModelError(f"{what} raised {type(exc).__name__}: {exc}") from exc
            if not isinstance(q, torch.distributions.Distribution):
                raise UserModelError(
                    f"{what} returned {type(q).__name__}; it must return q(z|x) as a torch.distributions.Distribution"
                )
            if tuple(q.batch_shape) != (2,) or tuple(q.event_shape) != (d,):
                raise UserModelError(
                    f"{what} has batch shape {tuple(q.batch_shape)} and event shape {tuple(q.event_shape)}; it must "
                    f"be (2,) and ({d},): wrap a Normal as torch.distributions.Independent(Normal(mu, sigma), 1)"
                )


def _expect(call: Any, shape: tuple[int, ...], what: str, d: int) -> None:
    try:
        out = call()
    except Exception as exc:  # noqa: BLE001
        raise UserModelError(
            f"{what} raised {type(exc).__name__}: {exc}; is latent_dim = {d} the size of z the model uses?"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise UserModelError(f"{what} returned {type(out).__name__}; it must return a tensor of shape {shape}")
    if tuple(out.shape) != shape:
        raise UserModelError(
            f"{what} returned shape {tuple(out.shape)}; it must be {shape} (summed over the last dimension; "
            f"is latent_dim = {d} right?)"
        )


def _dtype_device(model: Any) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of the model's first floating parameter or buffer, or of a tensor attribute of a model
    that is no torch module (float32 on the CPU without one)."""
    if isinstance(model, torch.nn.Module):
        tensors: Any = itertools.chain(model.parameters(), model.buffers())
    else:
        tensors = (v for v in getattr(model, "__dict__", {}).values() if isinstance(v, torch.Tensor))
    for tensor in tensors:
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.float32, torch.device("cpu")
