"""The dataflow graph both builders produce: which operation feeds which, on one forward pass."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Node:
    """One operation of a forward pass.

    Attributes:
        index: position in `Dataflow.nodes` (nodes are in execution order).
        op: category (see `dropkit.diagnose.categories`): ``"dropout"``, ``"batchnorm"``, ...
        name: what ran: a module class (``"Conv2d"``) or a function (``"dropout"``, ``"add"``).
        path: module path of the module that is this node, or that called this function
            (``""`` for the model itself).
        inputs: indices of the nodes whose outputs this node reads.
        shape: shape of its (first) tensor output, when known.
        p: drop probability of a dropout node (attention dropout included), else None.
        dropout_kind: ``"module"``, ``"functional"``, ``"attention"`` or ``"rnn"`` for nodes
            that carry dropout, else None.
    """

    index: int
    op: str
    name: str
    path: str
    inputs: tuple[int, ...] = ()
    shape: tuple[int, ...] | None = None
    p: float | None = None
    dropout_kind: str | None = None

    def describe(self) -> str:
        """``"Conv2d at features.3"``, ``"add in blocks.0"``, ``"input"``."""
        if self.op in ("input", "output"):
            return self.op
        where = "at" if self.dropout_kind == "module" or self.name[:1].isupper() else "in"
        return f"{self.name} {where} {self.path or '<root>'}"


@dataclass(frozen=True)
class SiteFlow:
    """For one dropout node: what feeds it and what it feeds (nearest non-reshape nodes)."""

    path: str
    kind: str
    p: float | None
    fed_by: tuple[str, ...]
    feeds: tuple[str, ...]


@dataclass
class Dataflow:
    """Nodes of one forward pass in execution order, with ``method`` ``"fx"`` or ``"hooks"``.

    ``fx_error`` says why torch.fx was not used (None when it was).
    """

    method: str
    nodes: list[Node]
    fx_error: str | None = None
    _users: list[list[int]] = field(default_factory=list, repr=False)
    _anc: list[frozenset[int]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._users = [[] for _ in self.nodes]
        for node in self.nodes:
            for i in node.inputs:
                self._users[i].append(node.index)

    def users(self, index: int) -> list[int]:
        """Indices of the nodes that read node ``index``'s output."""
        return self._users[index]

    @property
    def dropout_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.dropout_kind is not None]

    def ancestors(self, index: int) -> frozenset[int]:
        """Every node that node ``index`` depends on (not itself)."""
        # Inputs always precede their users, so one pass in index order fills the memo.
        for j in range(len(self._anc), index + 1):
            out: set[int] = set()
            for i in self.nodes[j].inputs:
                out.add(i)
                out |= self._anc[i]
            self._anc.append(frozenset(out))
        return self._anc[index]

    def nearest(self, index: int, *, forward: bool,
                skip: Iterable[str] | Callable[[Node], bool] = ("reshape",)) -> list[int]:
        """Nearest nodes before (or after) ``index``, looking through the nodes to ``skip``
        (categories, or a predicate on a node)."""
        if not callable(skip):
            ops = frozenset(skip)
            skip = lambda n: n.op in ops  # noqa: E731
        step = self.users if forward else (lambda i: list(self.nodes[i].inputs))
        found: list[int] = []
        seen: set[int] = set()
        stack = list(step(index))
        while stack:
            i = stack.pop(0)
            if i in seen:
                continue
            seen.add(i)
            if skip(self.nodes[i]):
                stack.extend(step(i))
            else:
                found.append(i)
        return found

    def flows(self) -> list[SiteFlow]:
        """What feeds and what is fed by every dropout node seen in the forward pass."""
        return [
            SiteFlow(n.path, n.dropout_kind or "", n.p,
                     tuple(self.nodes[i].describe() for i in self.nearest(n.index, forward=False)),
                     tuple(self.nodes[i].describe() for i in self.nearest(n.index, forward=True)))
            for n in self.dropout_nodes
        ]
