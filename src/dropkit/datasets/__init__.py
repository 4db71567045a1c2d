"""Data set loaders."""

from dropkit.datasets.digits import Digits, load_digits, rotate, shift
from dropkit.datasets.mnist import default_mnist_cache, download_mnist, load_mnist
from dropkit.datasets.uci import UCIDataset, default_uci_cache, download_uci, load_uci

__all__ = ["Digits", "UCIDataset", "default_mnist_cache", "default_uci_cache", "download_mnist",
           "download_uci", "load_digits", "load_mnist", "load_uci", "rotate", "shift"]
