"""`Finding`: one thing the linter says about a model; `LintResult`: all of them, printable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from dropkit.diagnose.graph import Dataflow, SiteFlow

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One diagnostic.

    Attributes:
        rule: the rule id, e.g. ``"dropout-before-batchnorm"``.
        path: module path of the dropout (or of the module that calls it); ``""`` is the model.
        severity: ``"error"`` (wrong at inference), ``"warning"`` (likely hurts) or ``"info"``.
        message: what was found and why it matters.
        fix: what to do about it.
        reference: where the advice comes from (paper, architecture), or ``""``.
        related: the other module paths the finding is about, also named in the message: the
            BatchNorm layers a dropout reaches, the sites of a grouped p=0 finding.
    """

    rule: str
    path: str
    severity: str
    message: str
    fix: str
    reference: str = ""
    related: tuple[str, ...] = ()


@dataclass
class LintResult:
    """The findings of `lint`, most severe first, with the dataflow they were read from.

    Iterates, indexes and has a length like the list of findings. ``method`` is ``"fx"``,
    ``"hooks"`` or ``"none"`` (no example input: only the rules that need no forward pass ran).
    """

    findings: list[Finding]
    method: str
    dataflow: Dataflow | None = None
    flows: list[SiteFlow] = field(default_factory=list)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def __getitem__(self, i: int) -> Finding:
        return self.findings[i]

    def rules(self) -> set[str]:
        """The ids of the rules that fired."""
        return {f.rule for f in self.findings}

    @property
    def exit_code(self) -> int:
        """1 when any finding is a warning or an error (fail a CI job), else 0."""
        return int(any(f.severity in ("error", "warning") for f in self.findings))

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "fx_error": self.dataflow.fx_error if self.dataflow else None,
            "findings": [asdict(f) for f in self.findings],
            "sites": [asdict(s) for s in self.flows],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        how = {"fx": "torch.fx", "hooks": "forward hooks", "none": "no forward pass"}[self.method]
        lines = [f"dataflow: {how}, {len(self.flows)} dropout site(s) seen"]
        if self.dataflow is not None and self.dataflow.fx_error:
            lines[0] += f" (fx could not trace: {self.dataflow.fx_error})"
        for s in self.flows:
            fed, feeds = ", ".join(s.fed_by) or "?", ", ".join(s.feeds) or "?"
            lines.append(f"  {s.path or '<root>'} ({s.kind}, p={s.p}): "
                         f"{fed} -> [dropout] -> {feeds}")
        if not self.findings:
            lines.append("no findings")
            return "\n".join(lines)
        rows = [(f.severity, f.rule, f.path or "<root>") for f in self.findings]
        widths = [max(len(h), *(len(r[k]) for r in rows))
                  for k, h in enumerate(("SEVERITY", "RULE", "PATH"))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
        lines.append(fmt.format("SEVERITY", "RULE", "PATH", "MESSAGE"))
        for f, row in zip(self.findings, rows, strict=True):
            lines.append(fmt.format(*row, f.message))
            pad = " " * (sum(widths) + 6)
            lines.append(f"{pad}fix: {f.fix}")
            if f.reference:
                lines.append(f"{pad}ref: {f.reference}")
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}
        lines.append(", ".join(f"{n} {s}(s)" for s, n in counts.items()))
        return "\n".join(lines)
