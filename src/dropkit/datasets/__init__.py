"""Data set loaders."""

from dropkit.datasets.digits import Digits, load_digits, rotate, shift
from dropkit.datasets.uci import UCIDataset, default_uci_cache, download_uci, load_uci

__all__ = ["Digits", "UCIDataset", "default_uci_cache", "download_uci", "load_digits", "load_uci",
           "rotate", "shift"]
