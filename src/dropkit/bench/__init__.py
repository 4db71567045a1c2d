"""Reproductions of published results and speed comparisons.

``run_uci(load_uci("bostonHousing", "../shared/uci"))`` reruns Gal & Ghahramani's UCI
regression protocol for MC dropout (all networks of a data set as one batched model);
``write_report`` puts the results next to the published numbers (``PUBLISHED_2018``).
"""

from dropkit.bench.uci_config import PUBLISHED_2016, PUBLISHED_2018, UCIConfig
from dropkit.bench.uci_protocol import UCIResult, UCISplitResult, run_uci
from dropkit.bench.uci_report import write_report

__all__ = ["PUBLISHED_2016", "PUBLISHED_2018", "UCIConfig", "UCIResult", "UCISplitResult",
           "run_uci", "write_report"]
