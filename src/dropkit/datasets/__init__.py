"""Data set loaders."""

from dropkit.datasets.uci import UCIDataset, default_uci_cache, download_uci, load_uci

__all__ = ["UCIDataset", "default_uci_cache", "download_uci", "load_uci"]
