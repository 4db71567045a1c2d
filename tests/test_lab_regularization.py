"""Claim 1 (regularization): unit removal and correlation vs hand computation and numpy, the
verdict rule, and the quick run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dropkit.errors import DropkitValueError
from dropkit.lab import regularization as R
from dropkit.lab.base import LabConfig
from dropkit.lab.train import mlp
from tests.lab_claim_checks import check_claim, check_statements, rejudge

CFG = LabConfig(quick=True, seeds=(0, 1), progress=False)


@pytest.fixture(scope="module")
def result():
    return R.run(CFG)


def _net(hidden: list[int], p: float = 0.5, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return mlp(6, hidden, 3, p=p)


def _state(model: nn.Module) -> tuple[list[torch.Tensor], list[bool]]:
    return ([t.clone() for t in model.state_dict().values()],
            [m.training for m in model.modules()])


def test_eval_forward_is_the_model_without_dropout_and_borrows_it() -> None:
    model = _net([8, 5]).train()  # left in train mode on purpose: dropout must stay off
    x = torch.randn(10, 6)
    before = _state(model)
    got = R._eval_forward(model, x)
    ones = R._eval_forward(model, x, [torch.ones(8), torch.ones(5)])
    model.eval()
    ref = model(x)
    model.train()
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(ones, ref)
    after = _state(model)
    assert before[1] == after[1]
    assert all(torch.equal(a, b) for a, b in zip(before[0], after[0], strict=True))


def test_removal_matches_hand_computation() -> None:
    model = _net([4])
    x = torch.randn(3, 6)
    keep = torch.tensor([1.0, 0.0, 1.0, 0.0])
    lin1, lin2 = model[0], model[3]
    h = torch.relu(lin1(x)) * keep * (4 / 2)  # two of four kept, rescaled by h / kept
    torch.testing.assert_close(R._eval_forward(model, x, [keep]), lin2(h))


def test_removal_masks_remove_exactly_the_fraction_reproducibly() -> None:
    a = R.removal_masks([10, 7], 0.3, generator=torch.Generator().manual_seed(1))
    b = R.removal_masks([10, 7], 0.3, generator=torch.Generator().manual_seed(1))
    assert [int((m == 0).sum()) for m in a] == [3, 2]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    # never removes every unit
    assert int(R.removal_masks([3], 1.0, generator=torch.Generator())[0].sum()) == 1


def test_accuracy_lost_is_zero_when_nothing_is_removed() -> None:
    model = _net([8, 8])
    x, y = torch.randn(50, 6), torch.randint(0, 3, (50,))
    lost = R.accuracy_lost_pct(model, x, y, 0.0, repeats=3, generator=torch.Generator())
    assert lost == pytest.approx(0.0, abs=1e-9)


def test_mean_abs_correlation_matches_numpy_and_skips_dead_units() -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(200, 5, generator=g)
    h[:, 1] = 0.7 * h[:, 0] + 0.3 * h[:, 1]
    with_dead = torch.cat([h, torch.zeros(200, 2)], dim=1)  # two dead units
    c = np.corrcoef(h.double().numpy().T)
    ref = np.abs(c[~np.eye(5, dtype=bool)]).mean()
    assert R.mean_abs_correlation(with_dead) == pytest.approx(ref, abs=1e-12)
    assert np.isnan(R.mean_abs_correlation(torch.zeros(10, 4)))


def test_verdict_rule_cases() -> None:
    strong, none = [3.0, 3.2, 2.9], [-1.0, 0.1, -0.5]
    assert R.verdict(strong, strong)[0] == "supported"
    assert R.verdict(none, none)[0] == "not supported"
    assert R.verdict(strong, none)[0] == "partly supported"
    assert R.verdict(none, strong)[2] == {"regularization": "not supported",
                                          "co_adaptation": "supported"}


def test_quick_run_structure(result) -> None:
    check_claim(result, CFG, "regularization")


def test_quick_run_numbers_and_verdict_are_consistent(result) -> None:
    n = result.numbers
    assert n["sizes"] == ["100"]
    per = n["per_size_per_seed"]["100"]
    i0, ip = n["rates"].index(0.0), n["rates"].index(R.REF_P)
    reg = [row[i0] - row[ip] for row in per["test_err_pct"]]
    assert n["effects"]["regularization_pp"] == pytest.approx(reg)
    for te, tr, gap in zip(per["test_err_pct"], per["train_err_pct"], per["gap_pct"],
                           strict=True):
        assert gap == pytest.approx([a - b for a, b in zip(te, tr, strict=True)])
        assert all(0.0 <= v <= 100.0 for v in te + tr)
    parts = (rejudge(n["effects"]["regularization_pp"], R.MIN_REG_PP),
             rejudge(n["effects"]["co_adaptation_pp"], R.MIN_COADAPT_PP))
    assert tuple(n["part_verdicts"].values()) == parts
    # one size in the quick run: [reg.when] needs two and is left out
    check_statements(result, ["reg.coadapt", "reg.l2"])
    st = {s.id: s for s in result.statements}
    assert st["reg.coadapt"].numbers["per_seed"] == pytest.approx(
        n["effects"]["co_adaptation_pp"])
    assert st["reg.l2"].numbers["test error"]["per_seed"] == pytest.approx(
        n["effects"]["regularization_pp"])
    gap = [row[i0] - row[ip] for row in per["gap_pct"]]
    assert st["reg.l2"].numbers["train/test gap"]["per_seed"] == pytest.approx(gap)
    l2 = [a - row[ip] + R.L2_TOLERANCE_PP for a, row in zip(
        per["l2_test_err_pct"][0], per["test_err_pct"], strict=True)]  # one L2 strength
    assert st["reg.l2"].numbers["like L2"]["per_seed"] == pytest.approx(l2)


def test_empty_seeds_rejected() -> None:
    with pytest.raises(DropkitValueError, match="cfg.seeds"):
        R.run(LabConfig(quick=True, seeds=(), progress=False))
