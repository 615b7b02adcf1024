"""Datasets: the IDX parser (``idx``) and finding, downloading and caching the files (``fetch``)."""

from harness.data.fetch import (
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    DATASETS,
    MIRRORS_ENV,
    ROLES,
    DataFiles,
    DatasetInfo,
    cache_dir,
    load,
    locate,
)
from harness.data.idx import N_CLASSES, Dataset, load_arrays, parse_idx, parse_pair, read_idx_bytes

__all__ = [
    "CACHE_DIR_ENV",
    "DATASETS",
    "DATA_DIR_ENV",
    "MIRRORS_ENV",
    "N_CLASSES",
    "ROLES",
    "DataFiles",
    "Dataset",
    "DatasetInfo",
    "cache_dir",
    "load",
    "load_arrays",
    "locate",
    "parse_idx",
    "parse_pair",
    "read_idx_bytes",
]
