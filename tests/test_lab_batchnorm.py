"""Claim 6 (dropout and BatchNorm): the quick run, its verdict rule, the placements, the shift."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from dropkit.experiments.claim import group_verdict
from dropkit.lab import batchnorm as BN
from dropkit.lab.base import LabConfig
from tests.lab_claim_checks import check_claim, check_statements, rejudge

CFG = LabConfig(quick=True, seeds=(0, 1), progress=False)
Q = BN.SETTINGS.quick()


@pytest.fixture(scope="module")
def result():
    return BN.run(CFG)


def test_measure_is_pure_and_gives_the_run_its_numbers(result):
    check_claim(result, CFG, "batchnorm")  # the lab's contract: JSON numbers, decodable figures
    torch.manual_seed(123)  # another global stream, and seed 1 alone (the run did 0 first)
    again = BN.measure(Q, 1)
    main, recipe = result.numbers["per_seed"], result.numbers["recipe"]["per_seed"]
    assert again == {"seed": 1, "rows": main[1]["rows"], "recipe": recipe[1]}
    assert again["rows"] != main[0]["rows"]  # the seed matters
    rows = again["rows"]
    assert [(r["placement"], r["width"], r["p"]) for r in rows] == BN._configs(Q)
    assert all(len(r["shift"]) == Q.blocks and all(v > 0 for v in r["shift"]) for r in rows)


def _made_up_seed(seed, j):
    """Records shaped like `measure`'s, with errors chosen so every statement's verdict can be
    worked out by hand (``j``: a per-seed jitter shared by every net)."""
    cases = {"none": (0.10, 0.10, 1.0), "act-drop-linear-bn": (0.14, 0.12, 2.0),
             "input-drop-linear-bn": (0.13, 0.11, 2.0), "linear-drop-bn": (0.15, 0.13, 2.0),
             "after-last-bn": (0.11, 0.11, 1.0)}
    rows = [{"placement": pl, "width": 16, "p": 0.0 if pl == "none" else 0.5,
             "shift": [v, v], "shift_after_recalibration": [1.0, 1.0], "error": e + j,
             "error_after_recalibration": a + j} for pl, (e, a, v) in cases.items()]
    recipe = [{"net": n, "width": 16, "p": 0.5, "error": e + j} for n, e in
              (("plain|none", 0.10), ("plain|act-drop-linear", 0.09), ("ln|none", 0.10),
               ("ln|act-drop-linear-ln", 0.12))]
    return {"seed": seed, "rows": rows, "recipe": recipe}


def test_judge_on_made_up_measurements():
    per_seed = [_made_up_seed(s, j) for s, j in enumerate((0.0, 0.001, -0.001))]
    survey = {"table": {"rows": [], "unavailable": ["not read in this test"]}, "judged": {},
              "figures": []}
    j = BN.judge(Q, per_seed, survey)
    st = {s.id: s for s in j.statements}
    # shift: log 2 beyond the no-dropout net on every seed, far above log 1.1
    assert st["bn.shift"].numbers["per_seed"] == pytest.approx([math.log(2.0)] * 3)
    # harm: re-estimating removes 2 pp (> 0.5 pp: supported); LayerNorm's dropout costs 2 pp
    # (> 0.5 pp allowed: not supported)
    assert st["bn.harm"].numbers["BatchNorm"]["verdict"] == "supported"
    assert st["bn.harm"].numbers["LayerNorm"]["per_seed"] == pytest.approx([-0.015] * 3)
    # recipe: costs 3 pp against dropout after the last BatchNorm (not supported), 1 pp better
    # than none without BatchNorm (supported), 1 pp better than Linear-Dropout-BatchNorm
    parts = st["bn.recipe"].numbers
    assert {k: parts[k]["verdict"] for k in ("with BatchNorm following", "without BatchNorm",
                                             "vs between Linear and BatchNorm")} == {
        "with BatchNorm following": "not supported", "without BatchNorm": "supported",
        "vs between Linear and BatchNorm": "supported"}
    assert {k: s.verdict for k, s in st.items()} == {
        "bn.shift": "supported", "bn.harm": "partly supported", "bn.recipe": "partly supported"}
    assert group_verdict(j.statements) == "partly supported"
    assert "The first edition's rule, verdict supported" in j.criterion
    assert j.key_number.startswith("shift at p=0.5: x2.00 beyond no-dropout")
    assert ("(input-drop-linear-bn 2.00, act-drop-linear-bn 2.00, linear-drop-bn 2.00)"
            in j.key_number)
    assert j.numbers["effects"]["after_last_bn_gain"] == pytest.approx([0.03] * 3)
    assert j.numbers["per_seed"][1] == {"seed": 1, "rows": per_seed[1]["rows"]}
    assert any("[bn.practice] is not judged" in c for c in j.caveats)


def test_verdict_is_recomputed_from_the_effects(result):
    effects, parts = result.numbers["effects"], result.numbers["part_verdicts"]
    assert parts["shift"] == rejudge(effects["log_shift_over_baseline"], Q.min_log_shift)
    assert parts["harm"] == rejudge(effects["recalibration_gain"], Q.min_recalibration_gain)
    ids = ["bn.shift", "bn.harm", "bn.recipe"]
    survey = result.numbers["config_survey"]
    cnns = [r for r in survey["rows"] if r["group"] == "cnn" and r["batchnorm"] is not None]
    if len(cnns) >= 3:  # timm/torchvision readable: [bn.practice] is judged
        ids.append("bn.practice")
        share = sum(r["batchnorm"] and r["rates"]["dropout"] == 0 for r in cnns) / len(cnns)
        st = result.statements[-1]
        assert st.numbers["share"] == pytest.approx(share) and st.kind == "descriptive"
    check_statements(result, ids)
    st = {s.id: s for s in result.statements}
    assert st["bn.shift"].numbers["per_seed"] == pytest.approx(effects["log_shift_over_baseline"])
    assert st["bn.harm"].numbers["BatchNorm"]["per_seed"] == pytest.approx(
        effects["recalibration_gain"])


def test_shift_effect_matches_the_rows(result):
    p = result.numbers["reference_p"]
    for seed_rows, effect in zip(result.numbers["per_seed"],
                                 result.numbers["effects"]["log_shift_over_baseline"],
                                 strict=True):
        rows = seed_rows["rows"]

        def mean_abs_log(r):
            return sum(abs(math.log(v)) for v in r["shift"]) / len(r["shift"])

        by_hand = []
        for w in Q.widths:
            base = mean_abs_log(BN._find(rows, "none", w, 0.0))
            by_hand += [mean_abs_log(BN._find(rows, pl, w, p)) - base for pl in BN.BEFORE_BN]
        assert effect == pytest.approx(sum(by_hand) / len(by_hand), abs=1e-12)


def test_dropout_feeding_batchnorm_directly_inflates_its_running_variance(result):
    # Inverted dropout at p=0.5 on an input with mean mu and variance s2 has variance
    # (s2 + mu^2) / (1 - p) - mu^2 >= 2 s2: the first BatchNorm of "linear-drop-bn" must show a
    # running/test ratio well above 1 (training drift can move it, not halve it).
    for seed_rows in result.numbers["per_seed"]:
        for w in Q.widths:
            first = BN._find(seed_rows["rows"], "linear-drop-bn", w, 0.5)["shift"][0]
            assert first > 1.4
            clean = BN._find(seed_rows["rows"], "none", w, 0.0)["shift"][0]
            assert first > clean


def _kinds(model: nn.Sequential) -> list[str]:
    names = {nn.Linear: "L", nn.BatchNorm1d: "B", nn.ReLU: "R", nn.Dropout: "D"}
    return [names[type(m)] for m in model]


@pytest.mark.parametrize("placement, pattern", [
    ("none", "LBR LBR L"),
    ("act-drop-linear-bn", "LBRD LBRD L"),
    ("input-drop-linear-bn", "DLBR LBR L"),
    ("linear-drop-bn", "LDBR LDBR L"),
    ("after-last-bn", "LBR LBR D L"),
])
def test_build_places_dropout_where_named(placement, pattern):
    model = BN.build(placement, 6, 8, 3, 0.5, blocks=2)
    assert "".join(_kinds(model)) == pattern.replace(" ", "")
    assert model(torch.randn(4, 6)).shape == (4, 3)


def test_build_rejects_an_unknown_placement():
    with pytest.raises(ValueError, match="placement must be one of"):
        BN.build("drop-everywhere", 6, 8, 3, 0.5, blocks=2)


def test_medians_match_a_naive_computation():
    torch.manual_seed(0)
    model = BN.build("linear-drop-bn", 6, 8, 3, 0.5, blocks=2)
    x = torch.randn(200, 6)
    model.train()
    with torch.no_grad():
        for _ in range(20):
            model(x[torch.randperm(200)[:50]])
    model.eval()
    got = BN._medians(model, x)
    seen = []
    hooks = [m.register_forward_pre_hook(lambda _m, a: seen.append(a[0].double()))
             for m in model if isinstance(m, nn.BatchNorm1d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    bns = [m for m in model if isinstance(m, nn.BatchNorm1d)]
    for value, inp, bn in zip(got, seen, bns, strict=True):
        naive = (bn.running_var.double() / inp.var(0, unbiased=True)).median()
        # torch's median of an even count is the lower middle value; accept either middle
        ratio = torch.sort(bn.running_var.double() / inp.var(0, unbiased=True)).values
        assert value == pytest.approx(float(naive), rel=1e-6) or value == pytest.approx(
            float(ratio[len(ratio) // 2]), rel=1e-6)


def test_dropout_between_batchnorm_and_relu_is_dropout_after_relu():
    # why "bn-drop-act" is not a separate placement: the same masks give the same outputs
    after = BN.build("act-drop-linear-bn", 6, 8, 3, 0.5, blocks=2).train()
    layers = list(after)
    swapped = nn.Sequential(*[layers[i] for i in (0, 1, 3, 2, 4, 5, 7, 6, 8)]).train()
    assert "".join(_kinds(swapped)) == "LBDRLBDRL"
    x = torch.randn(16, 6)
    torch.manual_seed(3)
    a = after(x)
    torch.manual_seed(3)
    b = swapped(x)
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------
# [bn.recipe] and [bn.harm]: the nets without BatchNorm
# ---------------------------------------------------------------------------------------------


def test_recipe_nets_by_hand():
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    nets = {}
    for net in BN.RECIPE_NETS:
        torch.manual_seed(1)
        nets[net] = BN.build_recipe(net, 5, 8, 3, 0.5, blocks=2).eval()
    with torch.no_grad():
        # eval mode: dropout is the identity, so a net with dropout is its twin without
        assert torch.equal(nets["plain|act-drop-linear"](x), nets["plain|none"](x))
        assert torch.equal(nets["ln|act-drop-linear-ln"](x), nets["ln|none"](x))
        # the plain net by hand: two Linear-ReLU blocks and a head
        m = nets["plain|none"]
        lin = [mod for mod in m if isinstance(mod, nn.Linear)]
        h = torch.relu(lin[1](torch.relu(lin[0](x))))
        torch.testing.assert_close(m(x), lin[2](h))
        # the LayerNorm net normalises every block's pre-activation per example
        m = nets["ln|none"]
        lin = [mod for mod in m if isinstance(mod, nn.Linear)]
        z = lin[0](x)
        z = (z - z.mean(1, keepdim=True)) / torch.sqrt(z.var(1, unbiased=False, keepdim=True)
                                                        + 1e-5)
        h = torch.relu(z)
        z = lin[1](h)
        z = (z - z.mean(1, keepdim=True)) / torch.sqrt(z.var(1, unbiased=False, keepdim=True)
                                                        + 1e-5)
        torch.testing.assert_close(m(x), lin[2](torch.relu(z)), rtol=1e-5, atol=1e-5)
    # dropout sits after each ReLU, feeding the next Linear (or the head)
    layers = list(nets["plain|act-drop-linear"])
    drops = [i for i, mod in enumerate(layers) if isinstance(mod, nn.Dropout)]
    assert all(isinstance(layers[i - 1], nn.ReLU) and isinstance(layers[i + 1], nn.Linear)
               for i in drops) and len(drops) == 2
    with pytest.raises(ValueError, match="net must be one of"):
        BN.build_recipe("bn|x", 5, 8, 3, 0.5, blocks=2)


def test_recipe_costs_from_made_up_rows():
    sizes = replace(BN.SETTINGS, blocks=2, widths=(8, 16), ps=(0.5,), epochs=1, batch_size=8)

    def rows(base):  # BatchNorm rows: error = base + offset per placement (width-independent)
        off = {"none": 0.0, "act-drop-linear-bn": 0.06, "after-last-bn": 0.01,
               "linear-drop-bn": 0.08, "input-drop-linear-bn": 0.02}
        return {"rows": [{"placement": pl, "width": w, "p": 0.0 if pl == "none" else 0.5,
                          "error": base + o, "shift": [1.0, 2.0]}
                         for pl, o in off.items() for w in sizes.widths]}

    def recipe(base):
        off = {"plain|none": 0.02, "plain|act-drop-linear": 0.01, "ln|none": 0.03,
               "ln|act-drop-linear-ln": 0.035}
        return [{"net": n, "width": w, "p": 0.5, "error": base + o}
                for n, o in off.items() for w in sizes.widths]

    per_seed, rec = [rows(0.1), rows(0.2)], [recipe(0.1), recipe(0.2)]
    costs = BN.recipe_costs(per_seed, rec, sizes, 0.5)
    expect = {"recipe_minus_after_last_bn": 0.05, "recipe_minus_none_without_bn": -0.01,
              "linear_drop_bn_minus_recipe": 0.02, "ln_dropout_minus_none": 0.005,
              "recipe_minus_none_with_bn": 0.06}
    for key, value in expect.items():
        assert costs[key] == pytest.approx([value, value]), key
    summ = BN.recipe_summary(per_seed, rec, sizes, 0.5)
    assert summ["act-drop-linear-bn|width=8"]["cost_vs_no_dropout"]["mean"] == pytest.approx(0.06)
    assert summ["ln|act-drop-linear-ln|width=16"]["error"]["mean"] == pytest.approx(0.185)
    assert summ["after-last-bn|width=8"]["largest_shift"] == 2.0


def test_recipe_runs_in_the_quick_result(result):
    rec = result.numbers["recipe"]
    assert len(rec["per_seed"]) == len(CFG.seeds)
    for seed_rows in rec["per_seed"]:
        assert {r["net"] for r in seed_rows} == set(BN.RECIPE_NETS)
        assert all(0.0 <= r["error"] <= 1.0 for r in seed_rows)
    st = {s.id: s for s in result.statements}
    costs = BN.recipe_costs(result.numbers["per_seed"], rec["per_seed"], Q,
                            rec["reference_p"])
    assert st["bn.recipe"].numbers["with BatchNorm following"]["per_seed"] == pytest.approx(
        [Q.max_recipe_cost - c for c in costs["recipe_minus_after_last_bn"]])
    assert st["bn.harm"].numbers["LayerNorm"]["per_seed"] == pytest.approx(
        [Q.max_recipe_cost - c for c in costs["ln_dropout_minus_none"]])
    assert any(f.name == "batchnorm_recipe" for f in result.figures)
