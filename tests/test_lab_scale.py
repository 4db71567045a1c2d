"""Claim 7 (scale): the teacher stream's statistics, the excess risk by hand, the crossover
interpolation, the verdict rule, the judge on hand-made seeds, and the quick run recomputed
from its steps."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from dropkit.errors import DropkitValueError
from dropkit.experiments.claim import group_verdict
from dropkit.lab import scale as SC
from dropkit.lab.base import LabConfig
from tests.lab_claim_checks import check_claim, check_statements, rejudge

CFG = LabConfig(quick=True, seeds=(0, 1), progress=False)


@pytest.fixture(scope="module")
def result():
    return SC.run(CFG)


def test_teacher_is_fixed_and_its_logits_have_the_set_scale() -> None:
    s = SC.ScaleSettings()
    t1, t2 = SC.make_teacher(s), SC.make_teacher(s)
    x = torch.randn(4000, s.d_in, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(t1(x), t2(x))
    assert float(t1(x).std()) == pytest.approx(s.logit_scale, rel=0.1)
    assert not any(p.requires_grad for p in t1.parameters())


def test_labels_follow_the_teacher_distribution() -> None:
    s = SC.ScaleSettings()
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
    teacher = SC.make_teacher(SC.ScaleSettings(d_in=3, teacher_hidden=(5,), classes=3))
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
    s = SC.SETTINGS
    assert SC.verdict(s, {0.1: helps, 0.3: helps}, {0.1: gone, 0.3: gone})[0] == "supported"
    assert SC.verdict(s, {0.1: gone}, {0.1: helps})[0] == "not supported"
    assert SC.verdict(s, {0.1: helps, 0.3: helps},
                      {0.1: gone, 0.3: helps})[0] == "partly supported"


#: the one-pass students' CPU times: measured, so they differ between two runs
TIMINGS = ("train_cpu_s", "cpu_s_per_step", "cpu_s_to_target")


def _untimed(early: dict) -> dict:
    return {k: ({f: x for f, x in v.items() if f not in TIMINGS} if isinstance(v, dict) else v)
            for k, v in early.items()}


def test_run_is_its_steps_in_any_order(result) -> None:
    """measure() of the last seed, called again after the run (so after other seeds and the
    shared survey), gives that seed's numbers in the run (the steps are pure); the settings
    are the run's config."""
    check_claim(result, CFG, "scale")
    q = SC.SETTINGS.quick()
    last = CFG.seeds[-1]
    alone = SC.measure(q, last)
    n = result.numbers
    assert {k: rows[-1] for k, rows in n["excess_risk_per_seed"].items()} == alone["excess_risk"]
    assert _untimed(n["early_dropout"]["per_seed"][-1]) == _untimed(alone["early"])
    assert result.config == {**dataclasses.asdict(q), "quick": True}


def _early(none: float, std: float, early: float, steps_std: float) -> dict:
    def student(final: float, steps: float) -> dict:
        return {"final": final, "steps_to_target": steps, "reached_target": True,
                "cpu_s_per_step": 0.01, "cpu_s_to_target": 0.01 * steps,
                "curve": [[0, 1.0], [50, final]]}

    return {"target": none, "target_step": 25, "none": student(none, 20.0),
            "standard": student(std, steps_std), "early": student(early, 20.0)}


NO_SURVEY = {"survey": {"table": {"rows": [], "unavailable": ["not read in this test"]},
                        "judged": {}, "figures": []}, "teacher_bayes_nll": 0.5}


@pytest.mark.parametrize(("small", "nodrop", "first_edition", "claim"), [
    # dropout helps at n=200 by 0.10, 0.12, 0.11: m - 2 se = 0.11 - 2 x 0.0058 > 0.005
    ((0.10, 0.12, 0.11), "supported", "supported", "supported"),
    # dropout hurts at n=200: m < 0, not supported; the first edition's rule then holds one
    # of its two conditions (the large-n one)
    ((-0.05, -0.04, -0.06), "not supported", "partly supported", "partly supported"),
])
def test_judge_on_hand_made_seeds(small, nodrop, first_edition, claim) -> None:
    s = SC.ScaleSettings(rates=(0.3,), sizes=(200, 3200))
    large = (-0.02, -0.03, -0.025)  # dropout hurts at the largest n: harm 0.025 +- 0.0029
    # standard dropout needs 2x, 2.2x, 1.8x the steps (log: 0.69, 0.79, 0.59 > log 1.1) and
    # ends 0.05, 0.04, 0.06 nats worse; early dropout gains -0.01, -0.02, 0 (< 0.005)
    early = [_early(0.40, 0.45, 0.41, 40.0), _early(0.40, 0.44, 0.42, 44.0),
             _early(0.40, 0.46, 0.40, 36.0)]
    per_seed = [{"excess_risk": {"no dropout": [1.0, 0.4], "dropout p=0.3": [1.0 - a, 0.4 - b]},
                 "early": e} for a, b, e in zip(small, large, early, strict=True)]
    judged = SC.judge(s, per_seed, NO_SURVEY)
    st = {x.id: x.verdict for x in judged.statements}
    assert st == {"scale.nodrop": nodrop, "scale.slow": "supported",
                  "scale.counter": "supported"}
    assert group_verdict(judged.statements) == claim
    parts = judged.numbers["part_verdicts"]["p=0.3"]
    # the same small-n effects and threshold as [scale.nodrop]'s measured part
    assert parts == {"helps_at_smallest_n": nodrop, "helps_at_largest_n": "not supported"}
    assert f"verdict {first_edition}:" in judged.criterion
    mean_small, mean_large = sum(small) / 3, sum(large) / 3
    cross = judged.numbers["crossover"]["p=0.3"]
    if mean_small > 0:  # the sign changes between 200 and 3200: interpolate in log n by hand
        t = mean_small / (mean_small - mean_large)
        assert cross["n"] == pytest.approx(200 * 16 ** t, rel=1e-12)
    else:
        assert cross == "no sign change within the sizes tried"
    assert judged.numbers["early_dropout"]["final_mean"]["early"] == pytest.approx(0.41)


def test_quick_run_numbers_and_verdict_are_consistent(result) -> None:
    n = result.numbers
    s = SC.SETTINGS.quick()
    assert n["sizes"] == list(s.sizes)
    assert n["epochs_per_size"][-1] == 1  # the largest size is a single pass
    base = n["excess_risk_per_seed"]["no dropout"]
    for p in s.rates:
        drop = n["excess_risk_per_seed"][f"dropout p={p:g}"]
        eff = n["effect_per_seed"][f"p={p:g}"]
        for b, d, e in zip(base, drop, eff, strict=True):
            assert e == pytest.approx([u - v for u, v in zip(b, d, strict=True)])
        parts = n["part_verdicts"][f"p={p:g}"]
        assert parts["helps_at_smallest_n"] == rejudge([row[0] for row in eff], s.min_effect)
        assert parts["helps_at_largest_n"] == rejudge([row[-1] for row in eff], s.min_effect)
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
        "per_seed"] == pytest.approx([s.min_effect - g for g in gain])


def test_empty_seeds_rejected() -> None:
    with pytest.raises(DropkitValueError, match="cfg.seeds"):
        SC.run(LabConfig(quick=True, seeds=(), progress=False))
