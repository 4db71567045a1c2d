"""The lint rules: one function per rule, each ``rule(ctx) -> list[Finding]``.

Rules that read the dataflow see only dropout that ran in the forward pass (as under
`dropkit.mc_mode`); the rules on rates and control read `find_dropout`'s static discovery too,
and the rates the model is configured with (`configured_rate`): a call that ran with p=0
because mc_mode could not switch its flag is not a p=0 site.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from dropkit.diagnose import references as ref
from dropkit.diagnose.categories import PASS_THROUGH
from dropkit.diagnose.findings import Finding
from dropkit.diagnose.graph import Dataflow, Node
from dropkit.diagnose.rates import Rate, configured_rate
from dropkit.errors import NoDropoutError
from dropkit.inspection.discover import Discovery
from dropkit.mc.mode import require_dropout


@dataclass(frozen=True)
class Context:
    """What the rules read: the model, its static dropout discovery, (maybe) its dataflow, and
    the ids of the rules that run (so two rules never say the same thing twice)."""

    model: nn.Module
    discovery: Discovery
    flow: Dataflow | None
    selected: frozenset[str] = field(default_factory=frozenset)


def _where(path: str) -> str:
    return path or "<root>"


def _live(flow: Dataflow | None, kinds: tuple[str, ...] = ("module", "functional")) -> list[Node]:
    """Dropout nodes of the given kinds that drop something (p > 0)."""
    if flow is None:
        return []
    return [n for n in flow.dropout_nodes if n.dropout_kind in kinds and (n.p or 0) > 0]


def _label(n: Node) -> str:
    what = "dropout" if n.dropout_kind == "module" else f"{n.name}() called"
    return f"{what} at {_where(n.path)} (p={n.p:g})" if n.p is not None else what


def dropout_before_batchnorm(ctx: Context) -> list[Finding]:
    """Dropout whose output reaches a BatchNorm directly or through linear/conv/elementwise ops."""
    flow, out = ctx.flow, []
    for d in _live(flow):
        assert flow is not None
        seen = {d.index}
        frontier: list[tuple[int, tuple[str, ...]]] = [(d.index, ())]
        hits: list[tuple[Node, tuple[str, ...]]] = []
        while frontier:
            i, via = frontier.pop(0)
            for u in flow.users(i):
                node = flow.nodes[u]
                if u in seen:
                    continue
                seen.add(u)
                if node.op == "batchnorm":
                    hits.append((node, via))
                elif node.op in PASS_THROUGH or node.op == "dropout":
                    step = via + ((node.describe(),) if node.op in ("linear", "conv") else ())
                    frontier.append((u, step))
        if not hits:
            continue
        # One finding per dropout site, naming every BatchNorm it reaches (DenseNet's concatenated
        # features reach dozens).
        reached = [(_where(bn.path), "directly" if not via else "through " + ", ".join(via))
                   for bn, via in hits]
        if len(reached) == 1:
            what = f"BatchNorm {reached[0][0]} {reached[0][1]}"
        else:
            what = f"{len(reached)} BatchNorm layers: " + ", ".join(
                f"{bn} ({route})" for bn, route in reached)
        out.append(Finding(
            "dropout-before-batchnorm", d.path, "warning",
            f"{_label(d)} feeds {what}. BatchNorm's running "
            "variance is learned with dropout on; at inference dropout is off, the input "
            "variance shifts and BatchNorm normalizes with the wrong statistics (MC dropout "
            "keeps dropout on and is not affected).",
            "move the dropout after the last BatchNorm (e.g. into the classifier head), or "
            "after training re-estimate the statistics with dropout off: "
            "dropkit.recalibrate_bn(model, data); measure it with "
            "dropkit.diagnose.variance_shift(model, data)",
            ref.LI_2019, tuple(bn.path for bn, _ in hits)))
    return out


def _residual_add(flow: Dataflow, node: Node) -> bool:
    """An add of ``x`` and something computed from ``x`` (``x + f(x)``)."""
    if node.op != "add" or len(node.inputs) < 2:
        return False
    return any(a in flow.ancestors(b) for a in node.inputs for b in node.inputs if a != b)


def dropout_on_residual_stream(ctx: Context) -> list[Finding]:
    """Dropout on the sum ``x + f(x)`` or on the skip path, rather than on the branch ``f(x)``."""
    flow, out = ctx.flow, []
    look = ("reshape", "elementwise")
    for d in _live(flow):
        assert flow is not None
        before = [flow.nodes[i] for i in flow.nearest(d.index, forward=False, skip=look)]
        # The stream goes on when the dropped sum is the skip input of a later residual add:
        # reached through reshapes and elementwise ops only, not through a layer that reads it
        # (T5's encoder output feeds the decoder's cross-attention, not its stream). Norms stop
        # the walk back, hand-written ones included (`mark_hand_norms`): dropout(norm(x + f(x)))
        # is a final norm's output, not the stream.
        later = [i for i in flow.nearest(d.index, forward=True, skip=look + ("dropout",))
                 if _residual_add(flow, flow.nodes[i])]
        if later and any(_residual_add(flow, b) for b in before):
            out.append(Finding(
                "dropout-on-residual-stream", d.path, "warning",
                f"{_label(d)} masks the residual stream x + f(x) itself: every later layer "
                "loses the dropped units of the skip connection, which is meant to pass x "
                "through unchanged.",
                "apply the dropout to the branch output f(x) before the add: "
                "x = x + dropout(f(x))",
                f"{ref.VASWANI_2017}; {ref.ZAGORUYKO_2016}"))
            continue
        x = d.inputs[0] if d.inputs else None
        for a in flow.nearest(d.index, forward=True, skip=look):
            add = flow.nodes[a]
            if add.op != "add" or x is None:
                continue
            others = [o for o in add.inputs if o != d.index and d.index not in flow.ancestors(o)
                      and o not in flow.ancestors(d.index)]
            if any(x in flow.ancestors(o) for o in others):
                out.append(Finding(
                    "dropout-on-residual-stream", d.path, "warning",
                    f"{_label(d)} masks the skip path of a residual connection ({add.describe()}"
                    "): the identity x is dropped while the branch f(x) is computed from the "
                    "undropped x.",
                    "drop the branch instead: x = x + dropout(f(x))",
                    f"{ref.VASWANI_2017}; {ref.ZAGORUYKO_2016}"))
                break
    return out


def dropout_on_embeddings(ctx: Context) -> list[Finding]:
    """Dropout on embedding look-ups (through sums, scaling and LayerNorm)."""
    flow, out = ctx.flow, []
    look = ("reshape", "add", "elementwise", "layernorm", "norm", "dropout")
    for d in _live(flow):
        assert flow is not None
        # through sums of embeddings, but not through residual adds (then it is a block's output)
        src = [flow.nodes[i] for i in flow.nearest(
            d.index, forward=False,
            skip=lambda n: n.op in look and not _residual_add(flow, n))]
        emb = [s for s in src if s.op == "embedding"]
        if emb:
            out.append(Finding(
                "dropout-on-embeddings", d.path, "info",
                f"{_label(d)} acts on embeddings ({', '.join(e.describe() for e in emb)}). This "
                "is common practice: the Transformer and GPT-2 drop the sum of token and "
                "position embeddings (rate 0.1), BERT drops the embeddings after their "
                "LayerNorm (0.1). Under MC dropout its noise reaches every layer.",
                "nothing to fix if intended; keep the rate small (about 0.1)",
                f"{ref.VASWANI_2017}; {ref.BERT_GPT2}"))
    return out


def dropout_on_logits(ctx: Context) -> list[Finding]:
    """Dropout applied to the model's output."""
    flow, out = ctx.flow, []
    for d in _live(flow):
        assert flow is not None
        after = [flow.nodes[i] for i in flow.nearest(d.index, forward=True)]
        if after and all(a.op == "output" for a in after):
            out.append(Finding(
                "dropout-on-logits", d.path, "info",
                f"{_label(d)} is the model's last operation: it zeroes outputs (a dropped "
                "logit becomes 0, not a neutral value) and scales the rest by 1/(1-p), which "
                "changes the softmax temperature. Classifiers such as AlexNet and VGG apply "
                "dropout before their fully connected layers, never after the last one.",
                "move the dropout before the last layer (dropout -> linear -> logits)",
                ref.KRIZHEVSKY_2012))
    return out


def dropout_after_layernorm(ctx: Context) -> list[Finding]:
    """Dropout right after a LayerNorm."""
    flow, out = ctx.flow, []
    for d in _live(flow):
        assert flow is not None
        src = [flow.nodes[i] for i in flow.nearest(d.index, forward=False)]
        ln = [s for s in src if s.op == "layernorm"]
        if ln:
            out.append(Finding(
                "dropout-after-layernorm", d.path, "info",
                f"{_label(d)} drops the output of LayerNorm {_where(ln[0].path)}. BERT does this "
                "once, after the embeddings' LayerNorm; inside Transformer, BERT and GPT-2 "
                "blocks dropout acts on each sub-layer's output (and the attention weights) "
                "before the residual add, not on LayerNorm outputs.",
                "usually intended only after the embeddings; inside blocks prefer dropout on "
                "the sub-layer output before the residual add",
                f"{ref.BERT_GPT2}; {ref.VASWANI_2017}"))
    return out


@dataclass(frozen=True)
class RateSites:
    """Sites by configured rate: ``zero`` configured p=0 (placeholders), ``off`` configured
    p > 0 that ran with p=0 because mc_mode does not switch the flag their rate depends on.
    Both map a path to what is there (``"Dropout"``, ``"attention dropout in LlamaAttention"``).
    """

    zero: dict[str, str]
    off: dict[str, tuple[str, Rate]]


def rate_sites(ctx: Context) -> RateSites:
    """Sites with p=0 in discovery or the dataflow, each checked against its configured rate."""
    zero = {s.path: s.module_type for s in ctx.discovery.sites if s.p == 0.0}
    off: dict[str, tuple[str, Rate]] = {}
    for n in ctx.flow.nodes if ctx.flow is not None else []:
        ran_zero = n.dropout_kind is not None and n.p == 0.0
        # attention with its dropout_p 0 (SDPA) or dropout 0 (nn.MultiheadAttention)
        attention = n.op == "attention" and n.dropout_kind is None
        if not (ran_zero or attention) or n.path in zero or n.path in off:
            continue
        try:
            module = ctx.model.get_submodule(n.path)
        except AttributeError:
            continue
        rate = configured_rate(module, attention=attention)
        kind = "attention dropout" if attention else n.name + "()"
        what = type(module).__name__ if n.dropout_kind == "module" else (
            f"{kind} in {type(module).__name__}")
        # A flag mc_mode switched on ran the configured rate: then the run is the truth.
        if rate is not None and rate.p > 0 and n.path not in ctx.discovery.switch_on:
            off[n.path] = (what, rate)
        elif rate is not None or n.dropout_kind == "module":
            zero[n.path] = what  # an unreadable rate that ran as 0 may be gated: no claim
    return RateSites(zero, off)


def _mc_possible(ctx: Context) -> bool:
    try:
        require_dropout(ctx.discovery)
    except NoDropoutError:
        return False
    return True


def _common_path(paths: list[str]) -> str:
    parts = [p.split(".") for p in paths]
    common = []
    for level in zip(*parts, strict=False):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return ".".join(common)


def _listing(sites: dict[str, str]) -> str:
    return ", ".join(f"{what} at {_where(path)}" for path, what in sorted(sites.items()))


def dead_dropout(ctx: Context) -> list[Finding]:
    """Dropout configured with p = 0: placeholders (timm, Hugging Face defaults), one info."""
    zero = rate_sites(ctx).zero
    if not zero:
        return []
    n = len(zero)
    sites = f"{n} dropout site{'s' if n > 1 else ''} with p=0 ({_listing(zero)})"
    if _mc_possible(ctx):
        message = (f"{sites}: placeholders that drop nothing, in training or under MC dropout; "
                   "the model's other dropout is live.")
    else:
        message = (f"the model's only dropout has p=0: {sites}. It drops nothing, so it neither "
                   "regularizes nor gives MC dropout any randomness: MC dropout is impossible "
                   "until a rate > 0 is set and trained with.")
    return [Finding(
        "dead-dropout", _common_path(list(zero)), "info", message,
        "nothing to fix if intended (timm and Hugging Face configs default rates to 0); to use "
        "it set the rate (e.g. drop_rate=0.1 or nn.Dropout(0.1)) and train or fine-tune", "",
        tuple(sorted(zero)))]


def _conv_map(flow: Dataflow, d: Node) -> bool:
    if d.name in ("Dropout2d", "Dropout3d", "dropout2d", "dropout3d"):
        return True
    if d.shape is None or len(d.shape) < 3:
        return False  # flattened features (AlexNet's head) are not feature maps any more
    look = ("elementwise", "reshape", "batchnorm", "norm", "dropout")
    return any(flow.nodes[i].op == "conv"
               for i in flow.nearest(d.index, forward=False, skip=look))


def high_rate_conv_dropout(ctx: Context) -> list[Finding]:
    """Rates p >= 0.5 on convolutional feature maps."""
    flow = ctx.flow
    if flow is None:
        hits = {s.path: s.p for s in ctx.discovery.sites if s.p is not None and s.p >= 0.5
                and s.module_type in ("Dropout2d", "Dropout3d")}
    else:
        hits = {d.path: d.p for d in _live(flow)
                if d.p is not None and d.p >= 0.5 and _conv_map(flow, d)}
    return [Finding(
        "high-rate-conv-dropout", path, "warning",
        f"dropout at {_where(path)} drops p={p:g} of a convolutional feature map. Neighbouring "
        "activations are strongly correlated, so heavy dropout mostly destroys signal; "
        "Srivastava et al. (SVHN) kept 90% of the inputs and 75% of the units of the first "
        "convolutional layers, and 50% only deeper, in the top layers.",
        "use p <= 0.25 on feature maps (or channel-wise torch.nn.Dropout2d at a low rate), and "
        "keep p = 0.5 for the fully connected head",
        f"{ref.SRIVASTAVA_2014}; {ref.TOMPSON_2015}")
        for path, p in sorted(hits.items())]


def uncontrollable_dropout(ctx: Context) -> list[Finding]:
    """Dropout `mc_mode` cannot switch: hard-coded on, gated on a shared flag, or unknown."""
    out = []
    for s in ctx.discovery.uncontrollable:
        on = s.reason.startswith("hard-coded on")
        where = f"{s.module_type} at {_where(s.path)}" + (f", line {s.line}" if s.line else "")
        out.append(Finding(
            "uncontrollable-dropout", s.path, "error" if on else "warning",
            f"{s.kind} dropout in {where}: {s.reason}."
            + (" Predictions are random even in eval mode." if on else
               " mc_mode leaves it off, so MC dropout gets no randomness from it."),
            "write F.dropout(x, p, training=self.training) in a module whose training flag "
            "gates nothing else, or use a dropout module (torch.nn.Dropout, dropkit.nn.Dropout)",
            ref.GAL_2016))
    known = {s.path for s in ctx.discovery.sites}
    for path, (what, rate) in sorted(rate_sites(ctx).off.items()):
        if path in known:
            continue
        out.append(Finding(
            "uncontrollable-dropout", path, "info",
            f"{what} at {_where(path)} is configured with p={rate.p:g} ({rate.source}) but ran "
            "with p=0: its rate depends on this module's training flag, which mc_mode does not "
            "switch, so under MC dropout it stays off (in training it drops as configured).",
            "nothing to fix for training; MC dropout draws on the model's other dropout. To "
            "include this one, gate the rate by a module whose flag gates nothing else, or "
            "use a dropout module", ref.GAL_2016))
    if ctx.flow is not None:
        for n in _live(ctx.flow, ("functional", "attention")):
            if n.path not in known:
                known.add(n.path)
                out.append(Finding(
                    "uncontrollable-dropout", n.path, "warning",
                    f"{_label(n)} ran in the forward pass but is not in the source of "
                    f"{_where(n.path)}'s class (a helper function or another object calls it), "
                    "so mc_mode does not know how to control it.",
                    "call the dropout inside the module's own forward with "
                    "training=self.training, or use a dropout module", ref.GAL_2016))
    for path in ctx.discovery.unchecked:
        out.append(Finding(
            "uncontrollable-dropout", path, "info",
            f"the source of {_where(path)}'s class cannot be read, so functional dropout inside "
            "it (if any) is unknown to mc_mode.",
            "define the class in a .py file, or use dropout modules", ""))
    return out


def no_dropout(ctx: Context) -> list[Finding]:
    """No controllable dropout with p > 0: MC dropout is impossible."""
    if _mc_possible(ctx):
        return []
    rates = rate_sites(ctx)
    severity = "warning"
    related: tuple[str, ...] = ()
    if rates.off:
        detail = ("its dropout with a rate > 0 depends on flags mc_mode does not switch ("
                  + ", ".join(sorted(_where(p) for p in rates.off))
                  + "; see uncontrollable-dropout)")
        related = tuple(sorted(rates.off))
    elif ctx.discovery.uncontrollable:
        detail = "mc_mode cannot switch its dropout (see uncontrollable-dropout)"
    elif rates.zero:
        if "dead-dropout" in ctx.selected:
            return []  # dead-dropout says it, once, with the sites
        # configured off on purpose (a placeholder): information, like dead-dropout
        detail, severity = f"its only dropout has p=0 ({_listing(rates.zero)})", "info"
        related = tuple(sorted(rates.zero))
    else:
        detail = "the model has no dropout at all"
    return [Finding(
        "no-dropout", "", severity,
        f"no dropout that mc_mode can switch on: {detail}. MC dropout is impossible.",
        "add dropout (torch.nn.Dropout or dropkit.nn.Dropout, p about 0.1-0.5) before the "
        "last layers and retrain or fine-tune, e.g. nn.Sequential(body, nn.Dropout(0.1), "
        "head); MC dropout needs dropout that was active during training",
        ref.GAL_2016, related)]


RULES: dict[str, Callable[[Context], list[Finding]]] = {
    "dropout-before-batchnorm": dropout_before_batchnorm,
    "dropout-on-residual-stream": dropout_on_residual_stream,
    "dropout-on-embeddings": dropout_on_embeddings,
    "dropout-on-logits": dropout_on_logits,
    "dropout-after-layernorm": dropout_after_layernorm,
    "dead-dropout": dead_dropout,
    "high-rate-conv-dropout": high_rate_conv_dropout,
    "uncontrollable-dropout": uncontrollable_dropout,
    "no-dropout": no_dropout,
}
