"""Moved to `dropkit.inspection.discover` (one home for model inspection); kept as an alias."""

from dropkit.inspection.discover import Discovery, DropoutSite, find_dropout
from dropkit.inspection.registry import DROPOUT_MODULES

__all__ = ["DROPOUT_MODULES", "Discovery", "DropoutSite", "find_dropout"]
