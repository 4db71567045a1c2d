"""Make torchvision's pure-Python models importable beside the CPU build of torch.

The only torchvision wheel that pins torch 2.13.0 (0.28.0) is a CUDA build: its compiled ops
(``_C.so``) need ``libtorch_cuda`` and do not load beside ``torch==2.13.0+cpu``, and its
``_meta_registrations`` then fails on ``register_fake("torchvision::nms")`` because the op was
never defined. timm (and torchmetrics) import torchvision, so the failure would take them down
too. Declaring the two op schemas that ``_meta_registrations`` registers fakes for lets the
package import; its model code (EfficientNet, ConvNeXt, ``StochasticDepth``, ...) is pure Python
and runs unchanged. Calling ``torchvision.ops.nms`` itself would still fail: no test does.
"""

from __future__ import annotations

import importlib.util

import torch

_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_LIB: torch.library.Library | None = None


def _compiled_ops_load() -> bool:
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key("torchvision::nms", "CPU")
    except RuntimeError:
        return False


def allow_import() -> None:
    """Declare torchvision's op schemas when its compiled ops are missing (idempotent)."""
    global _LIB
    if _LIB is not None or importlib.util.find_spec("torchvision") is None:
        return
    try:
        import torchvision  # noqa: F401 - a working install needs nothing
        return
    except RuntimeError:
        pass
    if _compiled_ops_load():
        return
    _LIB = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        _LIB.define(schema)
