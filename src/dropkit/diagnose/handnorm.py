"""`mark_hand_norms`: normalisations written by hand become ``norm`` nodes of the dataflow.

``nn.LayerNorm`` and ``nn.RMSNorm`` are single nodes, but Llama's and T5's RMSNorm,
``x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w``, are user classes: the dataflow
sees their ``pow``, ``mean``, ``rsqrt`` and ``mul``, and a rule that looks through elementwise
operations walks straight through the norm. The normalisation is recognised by what it computes,
not by a class name: a product or quotient that scales a tensor by a statistic of that same
tensor (``x * rsqrt(mean(x^2) + eps)``, ``(x - mean) / sqrt(var + eps)``,
``x / x.norm(...)``). That node and the ones computing it from ``x`` are relabelled ``norm``;
the rules then stop there as they stop at a LayerNorm.
"""

from __future__ import annotations

from dataclasses import replace

from dropkit.diagnose.graph import Dataflow, Node

# statistics a normalisation divides by (after a square root)
_REDUCTIONS = frozenset({"mean", "var", "std", "var_mean", "std_mean", "norm", "vector_norm",
                         "linalg_vector_norm"})
_SCALINGS = frozenset({"mul", "rmul", "imul", "div", "truediv", "rtruediv", "itruediv"})
_INVERSES = frozenset({"rsqrt", "reciprocal", "pow", "rtruediv", "rdiv"})
# what may stand between the statistic and the scale: + eps, sqrt, clamp, casts (rsqrt is "other")
_ARITHMETIC = frozenset({"elementwise", "reshape", "add", "other"})
NAME = "normalization"


def _inverse_of(flow: Dataflow, r: int, b: int, divides: bool) -> bool:
    """``b`` is computed from the statistic ``r`` by arithmetic alone (no layer in between, so a
    squeeze-and-excitation gate ``x * sigmoid(fc(mean(x)))`` is not a norm); a product needs an
    inverse on the way (``rsqrt``, ``reciprocal``, ``pow``, ``1 / s``)."""
    between = [flow.nodes[i] for i in (b, *flow.ancestors(b))
               if i == r or r in flow.ancestors(i)]
    if any(m.op not in _ARITHMETIC for m in between):
        return False
    return divides or any(m.name in _INVERSES for m in between)


def _normalisation(flow: Dataflow, n: Node) -> set[int]:
    """If ``n`` is ``a * g(r)`` or ``a / g(r)`` where ``r`` reduces ``a`` (or what ``a`` is made
    from) inside the same module as ``n``: the nodes of that normalisation, from the first one
    that reads the normalised tensor to ``n`` (so ``x - mean(x)`` inside it is no residual add);
    else the empty set."""
    if n.name not in _SCALINGS or len(n.inputs) != 2:
        return set()
    divides = "div" in n.name
    for a, b in (n.inputs, n.inputs[::-1]):
        stats = [r for r in (b, *flow.ancestors(b)) if flow.nodes[r].name in _REDUCTIONS
                 and flow.nodes[r].path == n.path]
        for r in stats:
            over = flow.ancestors(r)
            sources = {a} if a in over else {i for i in flow.nodes[a].inputs if i in over}
            if sources and _inverse_of(flow, r, b, divides):
                return {i for i in (n.index, *flow.ancestors(n.index))
                        if flow.nodes[i].path == n.path
                        and (i == n.index or sources & flow.ancestors(i))}
    return set()


def mark_hand_norms(flow: Dataflow) -> Dataflow:
    """A copy of ``flow`` in which each normalisation written by hand is made of ``norm``
    nodes: the rules stop there as they stop at a LayerNorm."""
    paths = {n.path for n in flow.nodes if n.name in _REDUCTIONS}
    hits: set[int] = set()
    for n in flow.nodes:
        if n.path in paths and n.op != "norm" and n.index not in hits:
            hits |= _normalisation(flow, n)
    if not hits:
        return flow
    nodes = [replace(n, op="norm", name=NAME) if n.index in hits else n for n in flow.nodes]
    return Dataflow(flow.method, nodes, flow.fx_error)
