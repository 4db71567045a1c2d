"""The rule for the native (C) UCI kernels in tests: skip on a machine without a C compiler,
fail in CI (CI=true), where the compiler is part of the machine."""

from __future__ import annotations

import os
import shutil

import pytest


def require_native() -> None:
    """Skip the calling test when no C compiler is found, except in CI."""
    if os.environ.get("CI") == "true":
        return
    if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler for the native UCI kernels (in CI, CI=true, this fails)")
