"""Deprecated module name: `MCDropout` lives in `dropkit.mc.mcdropout` (beside
`dropkit.mc.prediction`, the types it returns). Kept so that old imports work; import from
``dropkit`` or ``dropkit.mc.mcdropout`` instead."""

from dropkit.mc.mcdropout import MCDropout as MCDropout

__all__ = ["MCDropout"]
