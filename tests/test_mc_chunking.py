"""Samples per pass: the timed choice (with a fake clock) and the fixed rule (by hand)."""

import pytest
import torch
from torch import nn

from dropkit.mc import chunking
from dropkit.mc.inputs import check_inputs

# ms per sample when k samples share a pass: fastest at 4, then slower
COST = {1: 4.0, 2: 2.5, 4: 1.5, 8: 1.6, 16: 2.5, 32: 3.0, 64: 3.0}


def _fake(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A clock that charges COST[k] per sample; returns the list of samples drawn."""
    drawn: list[int] = []

    def draw(k: int, n: int):
        def run() -> float:
            drawn.append(n)
            return COST[k] * 1e-3 * n
        return run

    monkeypatch.setattr(chunking, "_time", lambda fn, device: fn())
    monkeypatch.setattr(chunking, "_draw", draw, raising=False)
    return drawn


@pytest.mark.parametrize(("samples", "best", "tried"), [
    (200, 4, "1: 4.00, 2: 2.50, 4: 1.50, 8: 1.60, 16: 2.50"),  # stops at 16 > 1.3 x 1.50
    (10, 2, "1: 4.00, 2: 2.50"),  # 4 would spend 3 + 5 + 9 = 17 > 10 samples on timing
])
def test_measure_keeps_the_fastest_and_spends_at_most_the_samples(
        monkeypatch: pytest.MonkeyPatch, samples: int, best: int, tried: str) -> None:
    drawn = _fake(monkeypatch)
    x = check_inputs(torch.zeros(2, 3))
    k, reason = chunking.measure(nn.Identity(), x, samples, None, chunking._draw)
    assert k == best
    assert reason.endswith(f"(ms/sample {tried})")
    assert sum(drawn) <= samples


@pytest.mark.parametrize(("start", "samples", "best", "tried"), [
    # from the rule's 8: halves until 2 is 30% slower than the best, then doubles (16 is);
    # 4 is only 6% faster than 8, within timing noise: the rule's 8 stands
    (8, 200, 8, "8: 1.60, 4: 1.50, 2: 2.50, 16: 2.50"),
    # from 16: 8 and 4 are clearly (36-40%) faster, 2 and 32 are 30% slower than 4
    (16, 200, 4, "16: 2.50, 8: 1.60, 4: 1.50, 2: 2.50, 32: 3.00"),
    # the rule's choice alone spends 33 > 20 samples: nothing else is timed, the rule stands
    (16, 20, 16, "16: 2.50"),
])
def test_measure_starts_at_the_rules_choice(
        monkeypatch: pytest.MonkeyPatch, start: int, samples: int, best: int, tried: str) -> None:
    drawn = _fake(monkeypatch)
    x = check_inputs(torch.zeros(2, 3))
    k, reason = chunking.measure(nn.Identity(), x, samples, None, chunking._draw, start=start)
    assert k == best and reason.endswith(f"(ms/sample {tried})")
    assert sum(drawn) <= max(samples, 2 * start + 1)


def test_measure_respects_max_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(monkeypatch)
    x = check_inputs(torch.zeros(2, 3))
    k, reason = chunking.measure(nn.Identity(), x, 200, 4, chunking._draw)  # 4 rows: k <= 2
    assert k == 2 and reason.endswith("(ms/sample 1: 4.00, 2: 2.50)")


def test_rule_keeps_the_largest_activation_under_16_mib() -> None:
    # one row's largest activation: 2**20 float32 = 4 MiB; B = 2 rows: 8 MiB per sample,
    # so 16 MiB // 8 MiB = 2 samples per pass; with 3 rows (12 MiB a sample, BERT-base's
    # batch of 8 x 128 tokens) one sample a pass, which measured faster than two
    model = nn.Sequential(nn.Linear(4, 2**20), nn.Dropout(0.5))
    x = check_inputs(torch.zeros(2, 4))
    assert chunking.rule(model, x, 100, None)[0] == 2
    assert chunking.rule(model, check_inputs(torch.zeros(3, 4)), 100, None)[0] == 1
    assert chunking.rule(model, x, 1, None)[0] == 1  # never more than the samples asked for
    assert chunking.rule(model, x, 100, 2)[0] == 1  # max_batch 2 rows = B: one sample a pass
