"""Let the configuration survey read torchvision's and timm's pure-Python model builders when
torchvision's compiled ops do not load (the lab's own process only; no op is ever called).

The only torchvision wheel that pins torch 2.13.0 (0.28.0) is a CUDA build: its ``_C.so`` does
not load beside ``torch==2.13.0+cpu``, and its ``_meta_registrations`` then fails on
``register_fake("torchvision::nms")``; timm imports torchvision and fails with it. Declaring the
two op schemas that module registers fakes for lets the package import; the survey only builds
models on the meta device and reads their modules. The same fix the test suite applies
(``tests/_torchvision.py``).
"""

from __future__ import annotations

import importlib.util
import sys

import torch

_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_LIB: torch.library.Library | None = None


def _compiled_ops_load() -> bool:
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key("torchvision::nms", "CPU")
    except RuntimeError:
        return False


def allow_torchvision_import() -> str | None:
    """Declare the schemas if torchvision is installed and does not import (idempotent).

    Returns a note for the survey's table when the schemas were declared, else None.
    """
    global _LIB
    if _LIB is not None:
        return "torchvision's compiled ops do not load here; its op schemas were declared so " \
               "that its pure-Python model builders (and timm's) import"
    if importlib.util.find_spec("torchvision") is None:
        return None
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401 - a working install needs nothing
            return None
        except RuntimeError:
            # a failed import leaves half-initialised modules behind: drop them
            for name in [m for m in sys.modules if m == "torchvision"
                         or m.startswith("torchvision.")]:
                del sys.modules[name]
    else:
        return None
    if _compiled_ops_load():
        return None
    _LIB = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        _LIB.define(schema)
    return allow_torchvision_import()
