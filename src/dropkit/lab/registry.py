"""Which claims the lab has, which statements each judges, and how ``--claims`` picks them.

Kept apart from the runner (which imports torch) so that ``dropkit lab --help`` and argument
checks stay fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dropkit.errors import DropkitTypeError, DropkitValueError, expected

__all__ = ["CLAIMS", "GROUPS", "STATEMENTS", "claim_of", "select_claims"]

#: Claim id -> module (under ``dropkit.lab`` unless the name contains a dot), in report order.
CLAIMS: dict[str, str] = {
    "regularization": "regularization",
    "ensemble": "ensemble",
    "bayesian": "bayesian",
    "inverted": "inverted",
    "transformer-placement": "transformer",
    "batchnorm": "batchnorm",
    "scale": "scale",
}

#: Statement id -> the claim that judges it (issue 14's ids; the prefix names the group).
STATEMENTS: dict[str, str] = {
    "reg.coadapt": "regularization", "reg.l2": "regularization", "reg.when": "regularization",
    "ens.subnets": "ensemble", "ens.scaling": "ensemble",
    "bayes.vi": "bayesian", "bayes.mc": "bayesian", "bayes.cheap": "bayesian",
    "inv.same": "inverted", "inv.torch": "inverted", "inv.needed": "inverted",
    "tf.sites": "transformer-placement", "tf.residual": "transformer-placement",
    "tf.layernorm": "transformer-placement", "tf.embeddings": "transformer-placement",
    "bn.shift": "batchnorm", "bn.harm": "batchnorm", "bn.recipe": "batchnorm",
    "bn.practice": "batchnorm",
    "scale.nodrop": "scale", "scale.slow": "scale", "scale.counter": "scale",
}

#: Statement-id prefix (the group in issue 14's ids) -> claim id.
GROUPS: dict[str, str] = {sid.split(".")[0]: claim for sid, claim in STATEMENTS.items()}


def claim_of(name: str, registry: Mapping[str, str] = CLAIMS) -> str | None:
    """The claim that ``name`` selects: a claim id, a group ("bn", "transformer") or a
    statement id ("bn.recipe"); None when it names none of them."""
    if name in registry:
        return name
    claim = STATEMENTS.get(name) or GROUPS.get(name)
    if claim is None and name == "transformer":
        claim = "transformer-placement"
    return claim if claim in registry else None


def select_claims(claims: Sequence[str] | None,
                  registry: Mapping[str, str] = CLAIMS) -> list[str]:
    """The claim ids to run, in registry order; ``None`` means all of them.

    Each entry is a claim id, a group ("bn" or "batchnorm") or a statement id ("bn.recipe"):
    a group or statement selects the claim that judges it (its other statements come along,
    since they share the claim's experiments).
    """
    if claims is None:
        return list(registry)
    if isinstance(claims, str) or not all(isinstance(c, str) for c in claims):
        raise DropkitTypeError(expected("claims", "a sequence of claim ids", repr(claims)))
    unknown = [c for c in claims if claim_of(c, registry) is None]
    if unknown or not claims:
        raise DropkitValueError(expected(
            "claims", f"a non-empty list of claim ids from {list(registry)}, groups from "
                      f"{sorted(GROUPS)} or statement ids such as 'bn.recipe'",
            repr(list(claims)) if not unknown else f"unknown id(s) {unknown}"))
    chosen = {claim_of(c, registry) for c in claims}
    return [c for c in registry if c in chosen]
