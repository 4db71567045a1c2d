"""Reproductions of published results and speed comparisons."""

from dropkit.bench.uci_config import PUBLISHED_2016, PUBLISHED_2018, UCIConfig
from dropkit.bench.uci_protocol import UCIResult, UCISplitResult, run_uci

__all__ = ["PUBLISHED_2016", "PUBLISHED_2018", "UCIConfig", "UCIResult", "UCISplitResult",
           "run_uci"]
