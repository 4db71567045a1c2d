"""Claim 1 (regularization): unit removal and correlation vs hand computation and numpy; one
seed's measurements vs an independent recomputation (scikit-learn accuracy, masks by hand) and
in any order; the judge on hand-made measurements vs hand-computed effects and verdicts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score
from torch import nn

from dropkit.errors import DropkitValueError
from dropkit.lab import regularization as R
from dropkit.lab.base import LabConfig
from dropkit.lab.train import TrainConfig, mlp, train
from tests.lab_claim_checks import check_claim, check_statements, rejudge, verdict_by_hand

CFG = LabConfig(quick=True, seeds=(0, 1), progress=False)
QUICK = R.SETTINGS.quick()


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
    s = R.SETTINGS
    assert R.verdict(s, strong, strong)[0] == "supported"
    assert R.verdict(s, none, none)[0] == "not supported"
    assert R.verdict(s, strong, none)[0] == "partly supported"
    assert R.verdict(s, none, strong)[2] == {"regularization": "not supported",
                                             "co_adaptation": "supported"}
    # the thresholds are the settings' own: 3 pp is not meaningful when 5 pp is required
    assert R.verdict(dataclasses.replace(s, min_reg_pp=5.0), strong, strong)[0] == \
        "partly supported"


def test_quick_settings_are_the_smoke_test_of_the_same_experiment() -> None:
    q = R.SETTINGS.quick()
    assert q.sizes == (100,) and q.rates == (0.0, 0.5) and q.min_steps == 40
    # the rules' thresholds do not shrink with the sizes
    assert (q.ref_p, q.min_reg_pp, q.min_coadapt_pp) == (R.SETTINGS.ref_p, R.SETTINGS.min_reg_pp,
                                                         R.SETTINGS.min_coadapt_pp)


def _digits_error_pct(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        pred = model.eval()(x).argmax(-1)
    return 100.0 * (1.0 - accuracy_score(y.numpy(), pred.numpy()))


def test_measure_matches_an_independent_recomputation(result) -> None:
    """Seed 1 of the run: the no-dropout net retrained by hand, its errors by scikit-learn, its
    unit removal with masks drawn and applied by hand; also measured again after seed 0 and a
    dirtied global RNG (order and history do not matter)."""
    from dropkit.datasets.digits import load_digits

    torch.manual_seed(12345)
    torch.rand(7)  # a different global stream than the run had
    again = [R.measure(QUICK, 1), R.measure(QUICK, 0)][::-1]
    per = result.numbers["per_size_per_seed"]["100"]
    for k, m in enumerate(again):
        assert m["by_size"][0]["test_err_pct"] == per["test_err_pct"][k]  # bitwise
        assert m["by_size"][0]["l2_test_err_pct"] == [row[k] for row in per["l2_test_err_pct"]]
        assert m["co"]["pref"]["acc_lost_pct"] == \
            result.numbers["co_adaptation"]["trained_p0.5"]["acc_lost_pct"][k]

    d = load_digits(seed=1, n_train=100)
    torch.manual_seed(1)
    model = train(mlp(64, [32], 10, p=0.0), d.flat_train, d.y_train,
                  TrainConfig(epochs=20, lr=1e-3, batch_size=64, seed=1))  # 2 batches: 20 epochs
    te = _digits_error_pct(model, d.flat_test, d.y_test)
    tr = _digits_error_pct(model, d.flat_train, d.y_train)
    assert per["test_err_pct"][1][0] == pytest.approx(te, abs=1e-9)
    assert per["train_err_pct"][1][0] == pytest.approx(tr, abs=1e-9)
    # 30% of 32 units: 10 removed per draw, 3 draws from one generator seeded with the seed
    gen = torch.Generator().manual_seed(1)
    lin1, lin2 = model[0], model[3]
    with torch.no_grad():
        h = torch.relu(lin1(d.flat_test))
        accs = []
        for _ in range(3):
            keep = torch.ones(32)
            keep[torch.randperm(32, generator=gen)[:10]] = 0.0
            pred = lin2(h * keep * (32 / 22)).argmax(-1)
            accs.append(accuracy_score(d.y_test.numpy(), pred.numpy()))
    lost = 100.0 * ((1 - te / 100) - sum(accs) / 3)
    got = result.numbers["co_adaptation"]["trained_p0"]["acc_lost_pct"][1][0]
    assert got == pytest.approx(lost, abs=1e-9)


def test_quick_run_numbers_and_verdict_are_consistent(result) -> None:
    check_claim(result, CFG, "regularization")
    n = result.numbers
    assert n["sizes"] == ["100"]
    per = n["per_size_per_seed"]["100"]
    i0, ip = n["rates"].index(0.0), n["rates"].index(QUICK.ref_p)
    reg = [row[i0] - row[ip] for row in per["test_err_pct"]]
    assert n["effects"]["regularization_pp"] == pytest.approx(reg)
    for te, tr, gap in zip(per["test_err_pct"], per["train_err_pct"], per["gap_pct"],
                           strict=True):
        assert gap == pytest.approx([a - b for a, b in zip(te, tr, strict=True)])
        assert all(0.0 <= v <= 100.0 for v in te + tr)
    parts = (rejudge(n["effects"]["regularization_pp"], QUICK.min_reg_pp),
             rejudge(n["effects"]["co_adaptation_pp"], QUICK.min_coadapt_pp))
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
    l2 = [a - row[ip] + QUICK.l2_tolerance_pp for a, row in zip(
        per["l2_test_err_pct"][0], per["test_err_pct"], strict=True)]  # one L2 strength
    assert st["reg.l2"].numbers["like L2"]["per_seed"] == pytest.approx(l2)
    assert result.config == {**dataclasses.asdict(QUICK), "quick": True}


# Three seeds, two sizes, rates (0, 0.5), two L2 strengths, removal fractions (0.2, 0.3): the
# errors (pp) are chosen so that every effect below is computed by hand.
HAND = dataclasses.replace(R.SETTINGS.quick(), sizes=(50, None), weight_decays=(1e-2, 1e-3),
                           removal_fractions=(0.2, 0.3))
_TEST = [[[20.0, 15.0], [5.0, 4.0]], [[22.0, 16.0], [6.0, 4.5]], [[21.0, 14.0], [5.5, 4.0]]]
_TRAIN = [[[0.0, 2.0], [0.0, 0.0]], [[0.0, 3.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]]
_L2 = [[[18.0, 14.0], [4.0, 5.0]], [[17.0, 15.0], [4.0, 5.0]], [[19.0, 13.0], [4.0, 5.0]]]
_LOST_P0 = [[3.0, 8.0], [4.0, 9.0], [3.0, 7.0]]
_LOST_PREF = [[1.0, 9.0], [1.0, 9.5], [0.5, 8.0]]


def _hand_per_seed() -> list[dict]:
    out = []
    for k in range(3):
        by_size = [{"test_err_pct": _TEST[k][i], "train_err_pct": _TRAIN[k][i],
                    "gap_pct": [a - b for a, b in zip(_TEST[k][i], _TRAIN[k][i], strict=True)],
                    "l2_test_err_pct": _L2[k][i], "l2_gap_pct": _L2[k][i]} for i in range(2)]
        co = {"p0": {"acc_lost_pct": _LOST_P0[k], "mean_abs_corr": 0.3 + 0.01 * k},
              "pref": {"acc_lost_pct": _LOST_PREF[k], "mean_abs_corr": 0.2}}
        out.append({"seed": k, "n_full": 1258, "by_size": by_size, "co": co})
    return out


def _hand_verdict(effects: list[float], t: float) -> str:
    m = sum(effects) / len(effects)
    se = (sum((e - m) ** 2 for e in effects) / (len(effects) - 1) / len(effects)) ** 0.5
    return ("supported" if m - 2 * se > t else
            "partly supported" if m > 0 and m + 2 * se > t else "not supported")


def test_judge_on_hand_made_measurements() -> None:
    judged = R.judge(HAND, _hand_per_seed(), {})
    n = judged.numbers
    assert n["sizes"] == ["50", "full (1258)"]
    # at least 40 steps: 50 rows are one batch (40 epochs), 1258 rows are 20 batches (2 epochs)
    assert n["epochs_per_size"] == [40, 2]
    # gains (p=0 minus p=0.5): 5, 6, 7 at n=50 and 1, 1.5, 1.5 on the full split
    reg = [3.0, 3.75, 4.25]
    coadapt = [8.0 - 9.0, 9.0 - 9.5, 7.0 - 8.0]  # at the judged fraction 0.3
    assert n["effects"] == {"regularization_pp": pytest.approx(reg),
                            "co_adaptation_pp": pytest.approx(coadapt)}
    st = {s.id: s for s in judged.statements}
    assert st["reg.coadapt"].verdict == _hand_verdict(coadapt, 1.0) == "not supported"
    # best L2 by mean test error: wd 1e-3 at n=50 (14 vs 18), 1e-2 on the full split (4 vs 5)
    assert [v["best_l2_weight_decay"] for v in n["summary_per_size"].values()] == [1e-3, 1e-2]
    like_l2 = [(-1 + 0) / 2 + 1, (-1 - 0.5) / 2 + 1, (-1 + 0) / 2 + 1]  # + 1 pp tolerance
    gap = [(7 + 1) / 2, (9 + 1.5) / 2, (8 + 1.5) / 2]
    l2 = st["reg.l2"].numbers
    assert l2["like L2"]["per_seed"] == pytest.approx(like_l2)
    assert l2["train/test gap"]["per_seed"] == pytest.approx(gap)
    assert [l2[k]["verdict"] for k in ("test error", "train/test gap", "like L2")] == [
        _hand_verdict(reg, 0.5), _hand_verdict(gap, 0.5), _hand_verdict(like_l2, 0.0)]
    assert st["reg.l2"].verdict == "supported"
    when = st["reg.when"].numbers
    assert when["larger where the gap is larger"]["per_seed"] == pytest.approx([4.0, 4.5, 5.5])
    assert st["reg.when"].verdict == "supported"
    assert when["gap_without_dropout_pp"] == pytest.approx({"50": 21.0, "full (1258)": 5.5})
    verdicts = [s.verdict for s in judged.statements]
    assert verdict_by_hand(verdicts) == "partly supported"
    assert "The statements disagree" in judged.key_number
    assert n["part_verdicts"] == {"regularization": "supported",
                                  "co_adaptation": "not supported"}
    assert n["co_adaptation"]["trained_p0"]["mean_abs_corr"] == pytest.approx([0.3, 0.31, 0.32])


def test_judge_follows_the_settings_thresholds() -> None:
    strict = dataclasses.replace(HAND, min_coadapt_pp=-2.0, l2_tolerance_pp=0.0)
    st = {s.id: s for s in R.judge(strict, _hand_per_seed(), {}).statements}
    # co-adaptation effects -1, -0.5, -1: m - 2 se = -1.17 clears a threshold of -2 pp
    assert st["reg.coadapt"].verdict == _hand_verdict([-1.0, -0.5, -1.0], -2.0) == "supported"
    # without the 1 pp tolerance dropout is 0.5-0.75 pp worse than the best L2: not "like L2"
    assert st["reg.l2"].numbers["like L2"]["per_seed"] == pytest.approx([-0.5, -0.75, -0.5])
    assert st["reg.l2"].numbers["like L2"]["verdict"] == "not supported"
    assert st["reg.l2"].verdict == "partly supported"


def test_empty_seeds_rejected() -> None:
    with pytest.raises(DropkitValueError, match="cfg.seeds"):
        R.run(LabConfig(quick=True, seeds=(), progress=False))
