"""Deprecated: the models and helpers moved to `tests.zoo.small`; this re-export keeps the lab
tests' imports working until they import from there."""

from tests.zoo.small import assert_same_state, snapshot

__all__ = ["assert_same_state", "snapshot"]
