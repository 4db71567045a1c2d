"""`mark_hand_norms`: normalisations written by hand become ``norm`` nodes of the dataflow.

``nn.LayerNorm`` and ``nn.RMSNorm`` are single nodes, but Llama's and T5's RMSNorm,
``x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w``, are user classes: the dataflow
sees their ``pow``, ``mean``, ``rsqrt`` and ``mul``, and a rule that looks through elementwise
operations walks straight through the norm. The normalisation is recognised by what it computes,
not by a class name: a product or quotient that scales a tensor by a statistic of that same
tensor (``x * rsqrt(mean(x^2) + eps)``, ``(x - mean) / sqrt(var + eps)``,
``x / x.norm(...)``). That node is relabelled ``norm``; the rules then stop there as they stop at
a LayerNorm.
"""

from __future__ import annotations

from dataclasses import replace

from dropkit.diagnose.graph import Dataflow, Node

# statistics a normalisation divides by (after a square root)
_REDUCTIONS = frozenset({"mean", "var", "std", "var_mean", "std_mean", "norm", "vector_norm",
                         "linalg_vector_norm"})
_SCALINGS = frozenset({"mul", "rmul", "imul", "div", "truediv", "rtruediv", "itruediv"})
NAME = "normalization"


def _scales_by_own_statistic(flow: Dataflow, n: Node) -> bool:
    """``n`` is ``a * g(r)`` or ``a / g(r)`` where ``r`` reduces ``a`` (or what ``a`` is made
    from), inside the same module as ``n``."""
    if n.name not in _SCALINGS or len(n.inputs) != 2:
        return False
    for a, b in (n.inputs, n.inputs[::-1]):
        stats = [r for r in (b, *flow.ancestors(b)) if flow.nodes[r].name in _REDUCTIONS
                 and flow.nodes[r].path == n.path]
        for r in stats:
            over = flow.ancestors(r)
            if a in over or any(i in over for i in flow.nodes[a].inputs):
                return True
    return False


def mark_hand_norms(flow: Dataflow) -> Dataflow:
    """A copy of ``flow`` in which each normalisation written by hand is one ``norm`` node."""
    paths = {n.path for n in flow.nodes if n.name in _REDUCTIONS}
    hits = {n.index for n in flow.nodes
            if n.path in paths and n.op != "norm" and _scales_by_own_statistic(flow, n)}
    if not hits:
        return flow
    nodes = [replace(n, op="norm", name=NAME) if n.index in hits else n for n in flow.nodes]
    return Dataflow(flow.method, nodes, flow.fx_error)
