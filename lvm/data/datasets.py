"""Datasets with named splits: MNIST-layout folders, ``.npz`` files, the bundled digits and 2-D toy sets.

``load_dataset(spec)`` accepts:

- ``digits`` — the bundled MNIST test set (10,000 labelled images) shipped in ``resources/data``;
- ``blobs``, ``moons``, ``rings``, ``pinwheel``, ``anisotropic`` with optional ``:key=value,...`` arguments
  (``moons:n=3000,seed=2``), each checked against the ranges in ``lvm.data.toy`` (e.g. 1 <= n <= 2,000,000);
- a folder in MNIST layout (``train-images-idx3-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``, labels optional;
  torchvision's ``<root>/MNIST/raw`` too);
- an ``.npz`` holding ``train``/``valid``/``test`` arrays (labels as ``train_labels``/``train_y`` optional) or
  ``x``/``y``. Object arrays are never unpickled; every member's .npy header is read first and refused when it
  claims more bytes (∏ shape · itemsize) than the member holds or than ``MAX_NPZ_BYTES`` (4 GiB).

Images are returned flattened, float32, scaled to [0, 1] when stored as integers.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from lvm.data.idx import read_idx
from lvm.data.toy import TOY_SETS, check_args
from lvm.errors import DatasetError
from lvm.resources import resources_dir

RESOURCE_DATA = resources_dir() / "data"
BUILTIN_NAMES = ("digits", *TOY_SETS)
SPLIT_ORDER = ("train", "valid", "test")
NPY_MAGIC = b"\x93NUMPY"
MAX_NPZ_BYTES = 4 * 2**30  # 4 GiB: the most an .npz's arrays may claim together; a larger header is refused unread


@dataclasses.dataclass(frozen=True)
class Split:
    """One split: ``x`` float32 (N, D); ``y`` int64 (N,) or None."""

    x: np.ndarray
    y: np.ndarray | None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A named dataset: its splits, the image shape (None for point data) and where it came from."""

    name: str
    splits: dict[str, Split]
    image_shape: tuple[int, int] | None
    source: str

    @property
    def default_split(self) -> str:
        return "train" if "train" in self.splits else next(iter(self.splits))

    def split(self, name: str | None = None) -> Split:
        name = name or self.default_split
        if name not in self.splits:
            raise DatasetError(f"{self.source}: has no split {name!r}; it has {', '.join(self.splits)}")
        return self.splits[name]

    @property
    def dim(self) -> int:
        return int(next(iter(self.splits.values())).x.shape[1])

    @property
    def is_image(self) -> bool:
        return self.image_shape is not None

    @property
    def has_labels(self) -> bool:
        return all(s.y is not None for s in self.splits.values())


def _guess_image_shape(dim: int) -> tuple[int, int] | None:
    side = int(round(math.sqrt(dim)))
    return (side, side) if side * side == dim and dim >= 16 else None


def _as_features(arr: np.ndarray, what: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Validate and flatten an array of samples to float32 (N, D); integers are scaled to [0, 1]."""
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise DatasetError(f"{what}: has dtype {arr.dtype}; need numbers (uint8 images or floats)")
    if arr.ndim in (2, 3) and 0 in arr.shape:
        raise DatasetError(f"{what}: is empty (shape {arr.shape})")
    shape: tuple[int, int] | None
    if arr.ndim == 3:
        shape = (int(arr.shape[1]), int(arr.shape[2]))
        arr = arr.reshape(arr.shape[0], -1)
    elif arr.ndim == 2:
        shape = _guess_image_shape(arr.shape[1])
    else:
        raise DatasetError(f"{what}: has shape {arr.shape}; need (N, D) samples or (N, H, W) images")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DatasetError(f"{what}: is empty (shape {arr.shape})")
    if arr.dtype.kind in "biu":
        scale = 255.0 if arr.max(initial=0) > 1 else 1.0
        out = arr.astype(np.float32) / np.float32(scale)
    else:
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            bad = int((~np.isfinite(out)).any(axis=1).sum())
            raise DatasetError(f"{what}: {bad} sample(s) contain NaN or infinity; remove or impute them")
    return np.ascontiguousarray(out), shape


def _as_labels(arr: np.ndarray, n: int, what: str) -> np.ndarray:
    if arr.dtype == object or arr.dtype.kind not in "biu":
        raise DatasetError(f"{what}: labels have dtype {arr.dtype}; need integers")
    arr = arr.reshape(-1)
    if arr.shape[0] != n:
        raise DatasetError(f"{what}: {arr.shape[0]} labels for {n} samples; the counts must match")
    return arr.astype(np.int64)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    alt = stem.replace("-idx", ".idx")  # some mirrors use dots
    for name in (alt, alt + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_mnist_folder(folder: Path) -> Dataset:
    if (folder / "MNIST" / "raw").is_dir():
        folder = folder / "MNIST" / "raw"
    splits: dict[str, Split] = {}
    shape = None
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _find(folder, f"{prefix}-images-idx3-ubyte")
        if images is None:
            continue
        arr = read_idx(images)
        if arr.ndim != 3:
            raise DatasetError(f"{images}: images must be a 3-D IDX array (N, H, W), got shape {arr.shape}")
        x, shape = _as_features(arr, str(images))
        labels_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
        y = None
        if labels_path is not None:
            lab = read_idx(labels_path)
            if lab.ndim != 1:
                raise DatasetError(f"{labels_path}: labels must be a 1-D IDX array, got shape {lab.shape}")
            y = _as_labels(lab, x.shape[0], str(labels_path))
        splits[split] = Split(x, y)
    if not splits:
        raise DatasetError(
            f"{folder}: no MNIST-layout files found; expected train-images-idx3-ubyte[.gz] and/or "
            "t10k-images-idx3-ubyte[.gz] (labels *-labels-idx1-ubyte optional)"
        )
    return Dataset(folder.name, splits, shape, str(folder))


def _npy_header(fh: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """(shape, dtype, header length) of the .npy stream ``fh``, read from its header alone: no data is read."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise DatasetError(
            f"{where}: .npy format version {version[0]}.{version[1]} is not read; save plain numeric "
            "arrays with numpy.savez"
        )
    if any(d < 0 for d in shape):
        raise DatasetError(f"{where}: the header claims a negative shape {shape}; the file is corrupt")
    return tuple(shape), dtype, fh.tell()


def _member_size_is_plausible(info: zipfile.ZipInfo, archive_bytes: int) -> bool:
    """Whether a zip member's stated sizes can be true: its compressed bytes fit in the archive, a stored member is as
    long as its compressed bytes, and a deflated one expands at most 1032-fold (deflate's largest ratio)."""
    if info.compress_size > archive_bytes:
        return False
    if info.compress_type == zipfile.ZIP_STORED:
        return info.file_size == info.compress_size
    if info.compress_type == zipfile.ZIP_DEFLATED:
        return info.file_size <= 1032 * info.compress_size + 1024
    return True


def _check_npz_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive_bytes: int) -> int:
    """Validate one member's .npy header before anything is allocated; returns the bytes it claims.

    The claim is count·itemsize with count = ∏ shape; it must fit in the member (ZipInfo.file_size minus the header)
    and in ``MAX_NPZ_BYTES``. Object (pickled) dtypes are refused."""
    where = f"{path}[{info.filename}]"
    with zf.open(info) as fh:
        if fh.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise DatasetError(
                f"{where}: member is not a NumPy .npy array; an .npz must hold only arrays saved with numpy.savez"
            )
        fh.seek(0)
        shape, dtype, header_len = _npy_header(fh, where)
    if dtype.hasobject:
        raise DatasetError(f"{where}: holds object (pickled) arrays, which are never loaded; save plain numeric arrays")
    claimed = math.prod(shape) * dtype.itemsize
    if not _member_size_is_plausible(info, archive_bytes) or claimed > info.file_size - header_len:
        raise DatasetError(
            f"{where}: the header claims shape {shape} of {dtype} ({claimed:,} bytes) but the member "
            f"holds {max(info.file_size - header_len, 0):,}; the file is corrupt or truncated — save it "
            "again with numpy.savez"
        )
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize > MAX_NPZ_BYTES:  # empty dims count 1: numpy's limit
        raise DatasetError(
            f"{where}: shape {shape} of {dtype} is over the {MAX_NPZ_BYTES:,}-byte limit per dataset; "
            "subsample it or store it as uint8"
        )
    return claimed


def _read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every member of an .npz as an array, each header checked by ``_check_npz_member`` first (and their total
    against ``MAX_NPZ_BYTES``), so a header claiming a huge shape is refused before allocating; never unpickles."""
    with open(path, "rb") as fh:
        if fh.read(len(NPY_MAGIC)) == NPY_MAGIC:  # a plain .npy array renamed .npz
            raise DatasetError(
                f"{path}: a single NumPy array (.npy), not an .npz archive; save it with "
                "numpy.savez(path, x=images, y=labels)"
            )
    archive_bytes = path.stat().st_size
    arrays, total = {}, 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            total += _check_npz_member(path, zf, info, archive_bytes)
            if total > MAX_NPZ_BYTES:
                raise DatasetError(
                    f"{path}: its arrays hold over {MAX_NPZ_BYTES:,} bytes together (the limit per "
                    "dataset); subsample them or store them as uint8"
                )
            with zf.open(info) as member:
                arrays[info.filename.removesuffix(".npy")] = np.lib.format.read_array(member, allow_pickle=False)
    return arrays


def _load_npz(path: Path) -> Dataset:
    try:
        arrays = _read_npz_arrays(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DatasetError(
                f"{path}: holds object (pickled) arrays, which are never loaded; save plain numeric arrays"
            ) from None
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    except (
        OSError,
        zipfile.BadZipFile,
        EOFError,
        KeyError,
        zlib.error,
        NotImplementedError,
        struct.error,
        RuntimeError,
    ) as exc:  # RuntimeError: an encrypted member
        raise DatasetError(f"{path}: not a readable .npz file ({exc}); it may be truncated or corrupt") from None
    names = [s for s in SPLIT_ORDER if s in arrays]
    if names:
        pairs = {s: (arrays[s], arrays.get(f"{s}_labels", arrays.get(f"{s}_y"))) for s in names}
    elif "x" in arrays:
        pairs = {"train": (arrays["x"], arrays.get("y"))}
    else:
        raise DatasetError(
            f"{path}: found arrays {sorted(arrays) or 'none'}; need 'train'/'valid'/'test' "
            "(optionally '<split>_labels') or 'x' (optionally 'y')"
        )
    splits, shapes = {}, set()
    for s, (x_arr, y_arr) in pairs.items():
        x, shape = _as_features(x_arr, f"{path}[{s}]")
        y = None if y_arr is None else _as_labels(y_arr, x.shape[0], f"{path}[{s}]")
        splits[s] = Split(x, y)
        shapes.add((x.shape[1], shape))
    if len(shapes) != 1:
        raise DatasetError(f"{path}: splits disagree on the sample shape: {sorted(shapes, key=str)}")
    return Dataset(path.stem, splits, shapes.pop()[1], str(path))


def _parse_builtin_args(spec: str) -> tuple[str, dict[str, int | float]]:
    name, _, rest = spec.partition(":")
    kwargs: dict[str, int | float] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise DatasetError(f"dataset spec {spec!r}: argument {item!r} must look like key=value")
        if key.strip() in kwargs:
            raise DatasetError(f"dataset spec {spec!r}: {key.strip()} is given twice; give each argument once")
        try:
            kwargs[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            raise DatasetError(f"dataset spec {spec!r}: {key}={value!r} is not a number") from None
    return name.strip().lower(), kwargs


def load_builtin(spec: str) -> Dataset:
    """``digits`` (no arguments) or a toy set with arguments validated by ``lvm.data.toy.check_args``."""
    name, kwargs = _parse_builtin_args(spec)
    if name == "digits":
        if kwargs:
            raise DatasetError(f"dataset spec {spec!r}: digits takes no arguments; give just 'digits'")
        ds = _load_mnist_folder(RESOURCE_DATA)
        return Dataset("digits", ds.splits, ds.image_shape, "digits (bundled MNIST test set)")
    if name not in TOY_SETS:
        raise DatasetError(
            f"unknown dataset {spec!r}; give a folder, an .npz file or one of {', '.join(BUILTIN_NAMES)}"
        )
    try:
        x, y = TOY_SETS[name](**check_args(TOY_SETS[name], kwargs))
    except DatasetError as exc:
        raise DatasetError(f"dataset spec {spec!r}: {exc}") from None
    return Dataset(name, {"train": Split(x, y)}, None, spec)


def load_dataset(spec: str | os.PathLike[str]) -> Dataset:
    """Load a dataset from a built-in name, an MNIST-layout folder or an ``.npz`` file (see module docstring)."""
    text = str(spec)
    if text.partition(":")[0].strip().lower() in BUILTIN_NAMES and not Path(text).exists():
        return load_builtin(text)
    path = Path(text).expanduser()
    if not path.exists():
        raise DatasetError(
            f"{text}: no such file or folder; give an MNIST-layout folder, an .npz file or one of "
            f"{', '.join(BUILTIN_NAMES)}"
        )
    if path.is_dir():
        return _load_mnist_folder(path)
    if path.suffix == ".npz":
        return _load_npz(path)
    raise DatasetError(f"{path}: unsupported file type; give an MNIST-layout folder or an .npz file")
