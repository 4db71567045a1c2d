"""Where the tests find `../shared/uci` (or $DROPKIT_UCI_ROOT), and the rule for its absence:
skip on a developer's machine without it, fail in CI (CI=true), where it must be there."""

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("DROPKIT_UCI_ROOT")
              or Path(__file__).resolve().parents[1].parent / "shared" / "uci")
needs_shared = pytest.mark.skipif(
    not (SHARED / "bostonHousing" / "data").is_dir() and os.environ.get("CI") != "true",
    reason=f"UCI data not found at {SHARED} (in CI, CI=true, these tests fail instead)")
