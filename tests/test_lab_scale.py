"""Claim 7 (scale): the teacher stream's statistics, the excess risk by hand, the crossover
interpolation, the verdict rule, and the quick run."""

from __future__ import annotations

import math

import pytest
import torch

from dropkit.errors import DropkitValueError
from dropkit.lab import scale as SC
from dropkit.lab.base import LabConfig
from tests.lab_claim_checks import check_claim, check_statements, rejudge

CFG = LabConfig(quick=True, seeds=(0, 1), progress=False)


@pytest.fixture(scope="module")
def result():
    return SC.run(CFG)


def test_teacher_is_fixed_and_its_logits_have_the_set_scale() -> None:
    s = SC.Settings()
    t1, t2 = SC.make_teacher(s), SC.make_teacher(s)
    x = torch.randn(4000, s.d_in, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(t1(x), t2(x))
    assert float(t1(x).std()) == pytest.approx(s.logit_scale, rel=0.1)
    assert not any(p.requires_grad for p in t1.parameters())


def test_labels_follow_the_teacher_distribution() -> None:
    s = SC.Settings()
    teacher = SC.make_teacher(s)
    x, log_t, y = SC.draw(teacher, 20000, s.d_in, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20000, s.d_in) and y.shape == (20000,)
    freq = torch.bincount(y, minlength=s.classes).double() / len(y)
    expected = log_t.exp().double().mean(dim=0)
    # each frequency has sd <= sqrt(0.25 / 20000) ~ 0.0035: 0.015 is > 4 sd
    torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)
    # the label of the teacher's arg-max is more likely than any other
    assert float((y == log_t.argmax(1)).double().mean()) > 1 / s.classes


def test_excess_risk_is_kl_by_hand() -> None:
    teacher = SC.make_teacher(SC.Settings(d_in=3, teacher_hidden=(5,), classes=3))
    x = torch.randn(4, 3)
    log_t = torch.log_softmax(teacher(x), dim=-1)
    assert SC.excess_risk(teacher, x, log_t) == pytest.approx(0.0, abs=1e-6)
    student = torch.nn.Linear(3, 3)
    with torch.no_grad():
        q = torch.softmax(student(x), dim=-1).tolist()
    t = log_t.exp().tolist()
    ref = sum(sum(ti * math.log(ti / qi) for ti, qi in zip(tr, qr, strict=True))
              for tr, qr in zip(t, q, strict=True)) / 4
    assert SC.excess_risk(student, x, log_t) == pytest.approx(ref, rel=1e-5)


def test_crossover_interpolates_in_log_n() -> None:
    assert SC.crossover([1, 10, 100], [1.0, 1.0, -1.0]) == pytest.approx(math.sqrt(1000))
    assert SC.crossover([1, 10, 100], [2.0, 0.0, -1.0]) == pytest.approx(10.0)
    assert SC.crossover([1, 10, 100], [1.0, 0.5, 0.1]) is None
    assert SC.crossover([1, 10, 100], [-1.0, -0.5, 0.1]) is None


def test_verdict_rule_cases() -> None:
    helps, gone = [0.5, 0.6, 0.55], [-0.01, -0.02, -0.015]
    assert SC.verdict({0.1: helps, 0.3: helps}, {0.1: gone, 0.3: gone})[0] == "supported"
    assert SC.verdict({0.1: gone}, {0.1: helps})[0] == "not supported"
    assert SC.verdict({0.1: helps, 0.3: helps}, {0.1: gone, 0.3: helps})[0] == "partly supported"


def test_quick_run_structure(result) -> None:
    check_claim(result, CFG, "scale")


def test_quick_run_numbers_and_verdict_are_consistent(result) -> None:
    n = result.numbers
    s = SC.QUICK
    assert n["sizes"] == list(s.sizes)
    assert n["epochs_per_size"][-1] == 1  # the largest size is a single pass
    base = n["excess_risk_per_seed"]["no dropout"]
    for p in s.rates:
        drop = n["excess_risk_per_seed"][f"dropout p={p:g}"]
        eff = n["effect_per_seed"][f"p={p:g}"]
        for b, d, e in zip(base, drop, eff, strict=True):
            assert e == pytest.approx([u - v for u, v in zip(b, d, strict=True)])
        parts = n["part_verdicts"][f"p={p:g}"]
        assert parts["helps_at_smallest_n"] == rejudge([row[0] for row in eff], SC.MIN_EFFECT)
        assert parts["helps_at_largest_n"] == rejudge([row[-1] for row in eff], SC.MIN_EFFECT)
    assert all(v >= -1e-6 for rows in n["excess_risk_per_seed"].values() for r in rows
               for v in r)  # a KL divergence
    check_statements(result, ["scale.nodrop", "scale.slow", "scale.counter"])
    st = {s.id: s for s in result.statements}
    e = n["effect_per_seed"]
    small = [sum(e[k][i][0] for k in e) / len(e) for i in range(len(base))]
    assert st["scale.nodrop"].numbers["dropout helps where the model overfits"][
        "per_seed"] == pytest.approx(small)
    harm = [-sum(e[k][i][-1] for k in e) / len(e) for i in range(len(base))]
    assert st["scale.counter"].numbers["standard dropout hurts at the largest n"][
        "per_seed"] == pytest.approx(harm)
    early = n["early_dropout"]["per_seed"]
    # the no-dropout student of the one-pass experiment is the first edition's student at the
    # largest n (same init, same one-pass batches): the same final excess risk
    assert [r["none"]["final"] for r in early] == pytest.approx(
        [row[-1] for row in base], rel=1e-5)
    gain = [r["none"]["final"] - r["early"]["final"] for r in early]
    assert st["scale.counter"].numbers["early dropout does not help either"][
        "per_seed"] == pytest.approx([SC.MIN_EFFECT - g for g in gain])


def test_empty_seeds_rejected() -> None:
    with pytest.raises(DropkitValueError, match="cfg.seeds"):
        SC.run(LabConfig(quick=True, seeds=(), progress=False))
