"""MNIST-format IDX files to normalized arrays: reading and checking (``idx``), finding and
downloading (``files``), and the train / validation / test splits (``splits``)."""

from compare.data import idx
from compare.data.files import DATASETS, FILES, NUM_CLASSES, SAMPLE, find_idx_files
from compare.data.idx import DataError, read_idx
from compare.data.splits import Splits, default_val_size, load_splits

__all__ = ["DATASETS", "FILES", "NUM_CLASSES", "SAMPLE", "DataError", "Splits", "default_val_size",
           "find_idx_files", "idx", "load_splits", "read_idx"]
