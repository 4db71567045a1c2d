"""Dropout modules, each a thin twin of a function in `dropkit.functional`."""

from dropkit.nn.dropout import Dropout

__all__ = ["Dropout"]
