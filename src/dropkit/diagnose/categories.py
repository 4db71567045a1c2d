"""What each operation does to the statistics of a tensor, in a few coarse categories.

Both dataflow builders (fx and hooks) name every node by one of these categories, so the rules
read one vocabulary:

* ``dropout``: dropout modules and ``F.dropout*`` calls (``p`` read from the call);
* ``stochastic_depth``: timm/torchvision/transformers drop-path modules and functions;
* ``attention``: ``nn.MultiheadAttention`` and ``scaled_dot_product_attention`` (may carry
  attention dropout);
* ``batchnorm``, ``layernorm``, ``norm`` (GroupNorm, InstanceNorm, RMSNorm, LocalResponseNorm);
* ``linear``, ``conv``: affine maps with weights (a variance shift passes through them);
* ``embedding``: table look-ups;
* ``add``: the binary sums and differences that make residual connections;
* ``elementwise``: activations, scaling, pooling (statistics pass through, shifted);
* ``reshape``: views, copies, concatenation and indexing (values unchanged);
* ``rnn``: recurrent layers; ``input``, ``output``; ``other``: anything else (a rule stops there).
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from dropkit.inspection.registry import FUNCTIONS, module_family

#: categories through which a dropout's variance shift reaches a later layer
PASS_THROUGH = frozenset({"linear", "conv", "add", "elementwise", "reshape"})

DROPOUT_FUNCS = frozenset(name for name, f in FUNCTIONS.items() if f.family == "dropout")
DEPTH_FUNCS = frozenset(name for name, f in FUNCTIONS.items() if f.family == "stochastic_depth")

_FUNCS: dict[str, str] = {}
for _cat, _names in {
    "batchnorm": "batch_norm",
    "layernorm": "layer_norm",
    "norm": "group_norm instance_norm rms_norm local_response_norm normalize",
    "linear": "linear bilinear matmul mm bmm addmm baddbmm einsum",
    "conv": "conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d",
    "embedding": "embedding embedding_bag",
    "attention": "scaled_dot_product_attention multi_head_attention_forward",
    "add": "add sub radd rsub iadd isub",
    "elementwise": (
        "mul rmul imul div truediv rtruediv itruediv neg pos relu relu_ relu6 leaky_relu "
        "gelu silu selu elu celu mish hardswish hardtanh hardsigmoid tanh sigmoid softplus "
        "prelu rrelu glu logsigmoid abs square sqrt pow exp clamp clip "
        "avg_pool1d avg_pool2d avg_pool3d max_pool1d max_pool2d max_pool3d "
        "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d "
        "adaptive_max_pool2d adaptive_max_pool3d lp_pool1d lp_pool2d mean sum"
    ),
    "reshape": (
        "view reshape flatten unflatten permute transpose t contiguous getitem cat concat "
        "concatenate stack split chunk unbind squeeze unsqueeze expand expand_as repeat clone "
        "to float double half type_as narrow select movedim swapaxes pad"
    ),
}.items():
    for _name in _names.split():
        _FUNCS[_name] = _cat


def function_category(name: str) -> str:
    """The category of a function or tensor method called ``name`` (``"__add__"`` as ``add``)."""
    bare = name.strip("_")
    if bare in DROPOUT_FUNCS:
        return "dropout"
    if bare in DEPTH_FUNCS:
        return "stochastic_depth"
    return _FUNCS.get(bare, "other")


_ACTIVATION_MODULES: tuple[type[nn.Module], ...] = tuple(
    cls for cls in vars(nn.modules.activation).values()
    if isinstance(cls, type) and issubclass(cls, nn.Module)
    and cls not in (nn.Module, nn.MultiheadAttention, nn.Softmax, nn.Softmin, nn.LogSoftmax,
                    nn.Softmax2d)
)
_POOL_MODULES: tuple[type[nn.Module], ...] = tuple(
    cls for cls in vars(nn.modules.pooling).values()
    if isinstance(cls, type) and issubclass(cls, nn.Module) and cls is not nn.Module
    and not cls.__name__.startswith("MaxUnpool")
)
_NORMS: tuple[type[nn.Module], ...] = tuple(
    c for c in (nn.GroupNorm, nn.LocalResponseNorm, getattr(nn, "RMSNorm", None),
                nn.modules.instancenorm._InstanceNorm) if c is not None
)


def module_category(module: nn.Module) -> str | None:
    """The category of a module treated as one node, or None to look inside it."""
    family = module_family(module)
    if family in ("dropout", "stochastic_depth"):
        return family
    table: tuple[tuple[tuple[type[nn.Module], ...], str], ...] = (
        ((_BatchNorm,), "batchnorm"),
        ((nn.LayerNorm,), "layernorm"),
        (_NORMS, "norm"),
        ((nn.Linear, nn.Bilinear), "linear"),
        ((_ConvNd,), "conv"),
        ((nn.Embedding, nn.EmbeddingBag), "embedding"),
        ((nn.MultiheadAttention,), "attention"),
        ((nn.RNNBase,), "rnn"),
        (_ACTIVATION_MODULES + _POOL_MODULES, "elementwise"),
        ((nn.Flatten, nn.Unflatten, nn.Identity), "reshape"),
    )
    for classes, category in table:
        if isinstance(module, classes):
            return category
    if isinstance(module, nn.Sequential | nn.ModuleList | nn.ModuleDict):
        return None
    if type(module).__module__.startswith("torch.") and not any(True for _ in module.children()):
        return "other"  # a torch leaf we know nothing about: one opaque node
    return None
