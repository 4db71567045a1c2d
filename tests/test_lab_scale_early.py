"""Early dropout and the cost of dropout when underfitting (dropkit.lab.scale_early): values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dropkit.lab import scale as SC
from dropkit.lab import scale_early as SE
from dropkit.lab.train import TrainConfig, mlp, seeded, train


def _stream(n: int = 256, d: int = 5, c: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    return x, torch.randint(0, c, (n,), generator=gen)


def _risk(x, y):
    def risk(m: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(m(x), y))

    return risk


def _curve(x, y, *, p, early, steps=8, seed=3):
    with seeded(seed):
        model = mlp(5, [16], 3, p=0.3)
    return model, SE.train_curve(model, x, y, steps=steps, batch_size=32, lr=1e-2, seed=seed,
                                 p=p, early_steps=early, evaluate=_risk(x, y), eval_every=2)


def test_one_pass_equals_the_shared_training_loop() -> None:
    # No dropout, one pass: the same network as `lab.train.train` for one epoch (same seed,
    # same shuffled batches), so the scale claim's students are comparable.
    x, y = _stream()
    model, out = _curve(x, y, p=0.0, early=None)
    with seeded(3):
        ref = mlp(5, [16], 3, p=0.0)
    train(ref, x, y, TrainConfig(epochs=1, lr=1e-2, batch_size=32, seed=3))
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [s for s, _ in out["curve"]] == [0, 2, 4, 6, 8]
    assert out["curve"][-1][1] == pytest.approx(_risk(x, y)(ref.eval()), abs=0)
    assert out["train_cpu_s"] > 0


def test_early_dropout_schedule_ends_where_stated() -> None:
    x, y = _stream()
    # switched off before the first step: the no-dropout run, bit for bit
    m0, _ = _curve(x, y, p=0.3, early=0)
    m_none, _ = _curve(x, y, p=0.0, early=None)
    # never switched off within the budget: the standard-dropout run, bit for bit
    m_all, _ = _curve(x, y, p=0.3, early=8)
    m_std, _ = _curve(x, y, p=0.3, early=None)
    m_half, _ = _curve(x, y, p=0.3, early=4)
    same = lambda a, b: all(torch.equal(u, v) for u, v in  # noqa: E731
                            zip(a.parameters(), b.parameters(), strict=True))
    assert same(m0, m_none) and same(m_all, m_std)
    assert not same(m_half, m_std) and not same(m_half, m_none)
    assert all(m.p == 0.0 for m in m_half.modules() if isinstance(m, torch.nn.Dropout))


def test_steps_to_target_by_hand() -> None:
    curve = [(0, 1.0), (10, 0.6), (20, 0.4), (30, 0.45)]
    assert SE.steps_to(curve, 0.6, 30) == (10.0, True)
    assert SE.steps_to(curve, 0.41, 30) == (20.0, True)
    assert SE.steps_to(curve, 0.1, 30) == (60.0, False)  # censored at twice the budget


def test_measure_target_and_costs_are_consistent() -> None:
    s = SC.ScaleSettings(d_in=4, classes=3, teacher_hidden=(8,), student_hidden=(8,), steps=20,
                    batch_size=16)
    teacher = SC.make_teacher(s)
    x, _, y = SC.draw(teacher, 320, 4, generator=torch.Generator().manual_seed(0))
    xt, lt, _ = SC.draw(teacher, 256, 4, generator=torch.Generator().manual_seed(1))
    e = SE.EarlySettings(p=0.2, eval_every=5)
    out = SE.measure(x, y, d_in=4, hidden=[8], classes=3, steps=20, batch_size=16, lr=1e-2,
                     seed=0, e=e, evaluate=lambda m: SC.excess_risk(m, xt, lt))
    none = out["none"]["curve"]
    assert out["target_step"] == 10 and out["target"] == dict(none)[10]
    assert out["none"]["steps_to_target"] <= 10 and out["none"]["reached_target"]
    for v in SE.VARIANTS:
        r = out[v]
        assert r["final"] == r["curve"][-1][1] >= 0  # a KL divergence
        assert r["cpu_s_per_step"] == pytest.approx(r["train_cpu_s"] / 20)
        assert r["cpu_s_to_target"] == pytest.approx(r["cpu_s_per_step"] * r["steps_to_target"])
    # early dropout follows standard dropout until it switches off (same masks): the first
    # evaluations (steps 0 and 5 of 20, switch at 0.2 x 20 = 4 -> only step 0) agree
    assert out["early"]["curve"][0] == out["standard"]["curve"][0] == out["none"]["curve"][0]
    # and the caller's random stream is untouched
    before = torch.get_rng_state()
    SE.measure(x, y, d_in=4, hidden=[8], classes=3, steps=4, batch_size=16, lr=1e-2, seed=0,
               e=e, evaluate=lambda m: SC.excess_risk(m, xt, lt))
    assert torch.equal(torch.get_rng_state(), before)
