"""Data: IDX files, datasets with named splits, toy sets, binarization."""

from lvm.data.binarize import BINARIZATIONS, binarize
from lvm.data.datasets import BUILTIN_NAMES, Dataset, Split, load_dataset
from lvm.data.idx import encode_idx, parse_idx, read_idx, write_idx

__all__ = [
    "BINARIZATIONS",
    "BUILTIN_NAMES",
    "Dataset",
    "Split",
    "binarize",
    "encode_idx",
    "load_dataset",
    "parse_idx",
    "read_idx",
    "write_idx",
]
