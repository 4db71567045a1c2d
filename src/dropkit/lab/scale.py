"""Claim 7: large models trained on huge data need little or no dropout, because they underfit.

A fixed random MLP *teacher* defines ``p(y | x) = softmax(f(x))`` over ``C`` classes for
``x ~ N(0, I)``: an unlimited stream of noisy labelled examples with a known Bayes-optimal
predictor. A *student* MLP of fixed size is trained with and without dropout for the same number
of Adam steps on training sets of growing size ``n``: the smallest sizes are seen for hundreds of
epochs (the overfitting regime), the largest exactly once (a single pass over a stream, where the
student can only underfit). The test loss is the excess risk over the teacher,

    KL = E_x[ Σ_c t_c(x) (log t_c(x) - log q_c(x)) ]   (nats, 0 for a perfect student),

on fresh inputs. Effect of dropout at each size, per seed: KL(no dropout) - KL(dropout), positive
when dropout helps. The crossover is where the mean effect changes sign (interpolated in log n).

The four steps (`dropkit.experiments.claim.ClaimExperiment`): `measure` trains one seed's
students (the crossover grid, then the one-pass early-dropout comparison of
`dropkit.lab.scale_early`); `shared` reads the configuration survey and the teacher's Bayes
risk once; `judge` and `figures` work from those records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast

import torch
from torch import nn

from dropkit.lab.base import (
    ClaimExperiment,
    ClaimResult,
    Figure,
    Judged,
    LabConfig,
    mean_se,
    run_experiment,
)
from dropkit.lab.base import judge as base_judge
from dropkit.lab.scale_early import EarlySettings
from dropkit.lab.scale_early import measure as early_measure
from dropkit.lab.scale_figures import crossover_figure, early_figure
from dropkit.lab.statements import (
    ALL_OF_RULE,
    Condition,
    Statement,
    all_of,
    disagreement,
    effect_conditions,
    group_summary,
)
from dropkit.lab.survey_claims import survey_claims
from dropkit.lab.train import TrainConfig, mlp, train

ID = "scale"
TITLE = "Dropout and the ratio of data to model size"
CLAIM = ("Dropout helps when a model sees little data many times, but large models trained on "
         "huge data need little or none: they underfit, and dropout then only hurts.")


@dataclass(frozen=True)
class ScaleSettings:
    """Every size, rate, seed and threshold of the experiment (written into the result's
    ``config``)."""

    d_in: int = 16
    classes: int = 4
    teacher_hidden: tuple[int, ...] = (128, 128)
    teacher_gain: float = 1.5  # weight std = gain / sqrt(fan_in), tanh units: a wiggly function
    logit_scale: float = 4.0  # std of the teacher's logits over inputs (sets the label noise)
    student_hidden: tuple[int, ...] = (32, 32)
    rates: tuple[float, ...] = (0.1, 0.3)
    steps: int = 800  # Adam steps for every run; steps * batch_size examples seen
    batch_size: int = 64
    lr: float = 3e-3
    sizes: tuple[int, ...] = (200, 800, 3200, 12800, 51200)  # the last = one pass (a stream)
    n_test: int = 8192
    # the teacher is one fixed function (and its test inputs come from teacher_seed + 1);
    # the seeds vary data, initialisation and masks
    teacher_seed: int = 1234
    min_effect: float = 0.005  # nats of excess risk: a meaningful benefit of dropout
    # [scale.slow]: dropout "slows" training if it needs this many times the steps to the target
    min_slowdown: float = 1.1
    early: EarlySettings = field(default_factory=EarlySettings)  # the one-pass comparison
    # the configuration survey ([scale.nodrop]) at its quick size (`config_survey.Settings.quick`)
    smoke_test: bool = False  # the configuration survey at its smoke-test size (set by quick())

    def quick(self) -> ScaleSettings:
        """The smoke-test size: one rate, 50 steps, two training-set sizes, a smaller test set."""
        return replace(self, rates=(0.3,), steps=50, sizes=(200, 3200), n_test=1024,
                       early=self.early.quick(), smoke_test=True)


SETTINGS = ScaleSettings()


# ---------------------------------------------------------------------------------------------
# the teacher and the data stream
# ---------------------------------------------------------------------------------------------


def make_teacher(s: ScaleSettings) -> nn.Sequential:
    """A fixed random tanh MLP (drawn from ``s.teacher_seed``) whose logits have standard
    deviation ~``s.logit_scale``."""
    gen = torch.Generator().manual_seed(s.teacher_seed)
    layers: list[nn.Module] = []
    width = s.d_in
    for h in (*s.teacher_hidden, s.classes):
        lin = nn.Linear(width, h)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(h, width, generator=gen) * s.teacher_gain
                             / math.sqrt(width))
            lin.bias.copy_(torch.randn(h, generator=gen) * 0.1)
        layers += [lin, nn.Tanh()]
        width = h
    teacher = nn.Sequential(*layers[:-1]).requires_grad_(False)  # no tanh on the logits
    with torch.no_grad():
        probe = teacher(torch.randn(4096, s.d_in, generator=gen))
        head = cast(nn.Linear, teacher[-1])
        head.weight.mul_(s.logit_scale / float(probe.std()))
        head.bias.mul_(s.logit_scale / float(probe.std()))
    return teacher


def draw(teacher: nn.Module, n: int, d_in: int, *,
         generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` fresh examples: inputs ``(n, D)``, teacher log-probabilities ``(n, C)``, and labels
    ``(n,)`` sampled from them (the label noise)."""
    x = torch.randn(n, d_in, generator=generator)
    with torch.no_grad():
        log_t = torch.log_softmax(teacher(x), dim=-1)
    y = torch.multinomial(log_t.exp(), 1, generator=generator).squeeze(1)
    return x, log_t, y


def excess_risk(student: nn.Module, x: torch.Tensor, log_t: torch.Tensor) -> float:
    """Mean KL(teacher || student) over ``x`` in nats (student in eval mode, dropout off)."""
    with torch.no_grad():
        log_q = torch.log_softmax(student(x), dim=-1)
    return float((log_t.exp() * (log_t - log_q)).sum(dim=-1).mean())


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def crossover(sizes: list[int], mean_effects: list[float]) -> float | None:
    """The first n at which the mean effect goes from positive to <= 0, interpolated linearly in
    log10 n; None if it never does within ``sizes``."""
    pairs = list(zip(sizes, mean_effects, strict=True))
    for (n0, e0), (n1, e1) in zip(pairs, pairs[1:], strict=False):
        if e0 > 0 >= e1:
            t = e0 / (e0 - e1)
            return 10 ** (math.log10(n0) + t * (math.log10(n1) - math.log10(n0)))
    return None


# ---------------------------------------------------------------------------------------------
# the students
# ---------------------------------------------------------------------------------------------


def fit_student(x: torch.Tensor, y: torch.Tensor, s: ScaleSettings, *, p: float,
                seed: int) -> nn.Sequential:
    """A student trained for ``s.steps`` Adam steps: ``steps * batch / n`` epochs over ``x``."""
    torch.manual_seed(seed)
    student = mlp(s.d_in, list(s.student_hidden), s.classes, p=p)
    epochs = max(1, round(s.steps * s.batch_size / len(x)))
    return cast(nn.Sequential,
                train(student, x, y, TrainConfig(epochs=epochs, lr=s.lr, batch_size=s.batch_size,
                                                 seed=seed)))


def test_set(s: ScaleSettings) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """The teacher and its ``s.n_test`` fresh test inputs with their log-probabilities (the
    same for every seed: drawn from ``s.teacher_seed``)."""
    teacher = make_teacher(s)
    x_te, log_t_te, _ = draw(teacher, s.n_test, s.d_in,
                             generator=torch.Generator().manual_seed(s.teacher_seed + 1))
    return teacher, x_te, log_t_te


def config_names(s: ScaleSettings) -> tuple[tuple[float, ...], list[str]]:
    """The dropout rates trained (0 first: no dropout) and their names in the records."""
    configs = (0.0, *s.rates)
    return configs, ["no dropout" if p == 0 else f"dropout p={p:g}" for p in configs]


def epochs_per_size(s: ScaleSettings) -> list[int]:
    return [max(1, round(s.steps * s.batch_size / n)) for n in s.sizes]


# ---------------------------------------------------------------------------------------------
# measure (one seed) and shared (once)
# ---------------------------------------------------------------------------------------------


def measure(s: ScaleSettings, seed: int) -> dict[str, Any]:
    """One seed: the excess risk of every student (each size, each rate) and the three
    one-pass students of `dropkit.lab.scale_early`. The stream is drawn from ``seed``, and
    every student seeds its own initialisation, batches and masks from it."""
    teacher, x_te, log_t_te = test_set(s)
    x_all, _, y_all = draw(teacher, max(s.sizes), s.d_in,
                           generator=torch.Generator().manual_seed(seed))
    configs, names = config_names(s)
    risk: dict[str, list[float]] = {name: [] for name in names}
    for n in s.sizes:
        for p, name in zip(configs, names, strict=True):
            student = fit_student(x_all[:n], y_all[:n], s, p=p, seed=seed)
            risk[name].append(excess_risk(student, x_te, log_t_te))
    # counter-evidence and cost in the underfitting regime: one pass over the largest set
    early = early_measure(
        x_all, y_all, d_in=s.d_in, hidden=list(s.student_hidden), classes=s.classes,
        steps=s.steps, batch_size=s.batch_size, lr=s.lr, seed=seed, e=s.early,
        evaluate=lambda m: excess_risk(m, x_te, log_t_te))
    return {"excess_risk": risk, "early": early}


def shared(s: ScaleSettings, seeds: tuple[int, ...]) -> dict[str, Any]:
    """The configuration survey ([scale.nodrop]'s descriptive part) and the teacher's Bayes
    NLL on the test inputs (for the setup text); neither depends on a seed."""
    _, _, log_t_te = test_set(s)
    bayes_nll = float(-(log_t_te.exp() * log_t_te).sum(-1).mean())
    return {"survey": survey_claims(s.smoke_test, ID), "teacher_bayes_nll": bayes_nll}


# ---------------------------------------------------------------------------------------------
# judge: the first edition's rule and the three statements
# ---------------------------------------------------------------------------------------------


def verdict(s: ScaleSettings, small: dict[float, list[float]],
            large: dict[float, list[float]]) -> tuple[str, str, dict[str, dict[str, str]]]:
    """For every rate: (i) dropout helps at the smallest n, (ii) it does not at the largest n."""
    parts: dict[str, dict[str, str]] = {}
    held, texts = 0, []
    for p in small:
        j_small = base_judge(small[p], min_effect=s.min_effect,
                             what=f"KL(no dropout) - KL(p={p:g}) at the smallest n, nats")
        j_large = base_judge(large[p], min_effect=s.min_effect,
                             what=f"KL(no dropout) - KL(p={p:g}) at the largest n, nats")
        helps_small = j_small.verdict == "supported"
        no_help_large = j_large.verdict == "not supported"
        held += helps_small + no_help_large
        parts[f"p={p:g}"] = {"helps_at_smallest_n": j_small.verdict,
                             "helps_at_largest_n": j_large.verdict}
        texts.append(f"p={p:g}: small n: {j_small.criterion} [{j_small.verdict}]; large n: "
                     f"{j_large.criterion} [{j_large.verdict}]")
    total = 2 * len(small)
    v = "supported" if held == total else "not supported" if held == 0 else "partly supported"
    criterion = ("For each dropout rate, two conditions: (i) the benefit at the smallest n is "
                 "'supported' by the judge rule and (ii) the benefit at the largest n (one pass "
                 "over a stream) is 'not supported' (absent or reversed). Supported if all "
                 "conditions hold for every rate, not supported if none does, partly supported "
                 "otherwise. " + " | ".join(texts))
    return v, criterion, parts


#: (name, per-seed effects or an already judged Statement, threshold, unit)
Part = tuple[str, Any, float, str]


def parts_statement(id_: str, text: str, parts: list[Part], rule: str,
                    extra: dict[str, Any] | None = None) -> Statement:
    """A statement made of parts, each judged by the shared effect rule (or already judged,
    when it is a descriptive Statement), combined by `all_of`."""
    judged = []
    for name, e, t, u in parts:
        if isinstance(e, Statement):  # an already judged (descriptive) part
            judged.append((name, e.verdict, e.conditions, e.numbers))
        else:
            judged.append((name, *effect_conditions(e, t, u)))
    return Statement(
        id=id_, group=ID, text=text, verdict=all_of([(n, v) for n, v, _, _ in judged]),
        criterion=rule + " Statement: " + ALL_OF_RULE,
        conditions=[Condition(f"({n}) {c.rule}", c.measured, c.holds)
                    for n, _, cs, _ in judged for c in cs],
        numbers={n: {"verdict": v, **nums} for n, v, _, nums in judged} | (extra or {}),
        kind="descriptive and measured" if any(isinstance(e, Statement)
                                               for _, e, _, _ in parts) else "measured")


def _rate_means(effects: dict[float, list[list[float]]], column: int) -> list[float]:
    """Per seed: the effect at size index ``column``, averaged over the rates."""
    rates = list(effects)
    n_seeds = len(next(iter(effects.values())))
    return [sum(effects[p][k][column] for p in rates) / len(rates) for k in range(n_seeds)]


def _rate_text(effects: dict[float, list[list[float]]]) -> str:
    return f"mean over p in {[float(p) for p in effects]}"


def nodrop_statement(s: ScaleSettings, effects: dict[float, list[list[float]]],
                     survey: dict[str, Any]) -> Statement:
    """[scale.nodrop]: the configuration survey (when it could be read) and the benefit of
    dropout at the smallest training set."""
    survey_part = survey["judged"].get("scale.nodrop")
    parts: list[Part] = []
    if survey_part is not None:
        parts.append(("configurations", survey_part, 0.0, ""))
    parts.append(("dropout helps where the model overfits", _rate_means(effects, 0),
                  s.min_effect, "nats"))
    return parts_statement(
        "scale.nodrop", "Modern large models use no or very low dropout, because overfitting is "
        "not their bottleneck.", parts,
        ("parts: " if survey_part is not None else "one part (the configuration survey could "
         "not be read): ")
        + (f"(configurations) {survey_part.criterion}; " if survey_part is not None else "")
        + f"(dropout helps where the model overfits) at the smallest training set (hundreds of "
          f"epochs), KL(no dropout) - KL(dropout), {_rate_text(effects)}, by the shared effect "
          f"rule with threshold {s.min_effect:g} nats.")


def _early(early: list[dict[str, Any]], key: str, variant: str) -> list[float]:
    """One value of one one-pass student, per seed."""
    return [float(r[variant][key]) for r in early]


def slow_statement(s: ScaleSettings, early: list[dict[str, Any]]) -> Statement:
    """[scale.slow]: in the one-pass stream, standard dropout needs more steps to the target
    and ends no better than no dropout."""
    slower = [math.log(a / b) for a, b in zip(_early(early, "steps_to_target", "standard"),
                                              _early(early, "steps_to_target", "none"),
                                              strict=True)]
    std_harm = [a - b for a, b in zip(_early(early, "final", "standard"),
                                      _early(early, "final", "none"), strict=True)]
    variants = ("none", "standard", "early")
    return parts_statement(
        "scale.slow", "When a model underfits, dropout only slows training.",
        [("slower to the target", slower, math.log(s.min_slowdown), ""),
         ("no better at the end", std_harm, 0.0, "nats")],
        f"in the one-pass stream (the student underfits), standard dropout against none from "
        f"the same initial weights and batches; two parts by the shared effect rule: (slower to "
        f"the target) log(steps standard dropout needs to reach the target / steps no dropout "
        f"needs), target = the no-dropout student's excess risk halfway through, threshold "
        f"log {s.min_slowdown:g} ({s.min_slowdown - 1:.0%} more steps); (no better at the end) "
        f"final excess risk with dropout minus without, threshold 0 nats.",
        extra={"cpu_s_per_step": {v: mean_se(_early(early, "cpu_s_per_step", v))[0]
                                  for v in variants},
               "cpu_s_to_target": {v: mean_se(_early(early, "cpu_s_to_target", v))[0]
                                   for v in variants},
               "reached_target": {v: [bool(r[v]["reached_target"]) for r in early]
                                  for v in variants}})


def counter_statement(s: ScaleSettings, effects: dict[float, list[list[float]]],
                      early: list[dict[str, Any]]) -> Statement:
    """[scale.counter]: standard dropout hurts at the largest n, and early dropout (Liu et al.
    2023) does not rescue it."""
    large_harm = [-e for e in _rate_means(effects, -1)]
    early_gain = [a - b for a, b in zip(_early(early, "final", "none"),
                                        _early(early, "final", "early"), strict=True)]
    return parts_statement(
        "scale.counter", "Dropout is often counterproductive at scale.",
        [("standard dropout hurts at the largest n", large_harm, 0.0, "nats"),
         ("early dropout does not help either", [s.min_effect - g for g in early_gain], 0.0,
          "nats")],
        f"two parts by the shared effect rule: (standard dropout hurts at the largest n) "
        f"KL(dropout) - KL(no dropout) at the largest training set (one pass), "
        f"{_rate_text(effects)}, threshold 0 nats; (early dropout does not help either) "
        f"{s.min_effect:g} nats - (final KL without dropout - final KL with early dropout), "
        f"threshold 0: early dropout (Liu et al. 2023) gains less than {s.min_effect:g} nats.",
        extra={"early_gain_per_seed": early_gain})


def statements(s: ScaleSettings, effects: dict[float, list[list[float]]],
               early: list[dict[str, Any]], survey: dict[str, Any]) -> list[Statement]:
    """[scale.nodrop], [scale.slow] and [scale.counter], each from its own rule (issue 14)."""
    return [nodrop_statement(s, effects, survey), slow_statement(s, early),
            counter_statement(s, effects, early)]


# ---------------------------------------------------------------------------------------------
# judge: numbers and prose
# ---------------------------------------------------------------------------------------------


def excess_risks(s: ScaleSettings, per_seed: list[dict[str, Any]]) -> dict[str, list[list[float]]]:
    """Student name -> per seed, the excess risk at each size."""
    _, names = config_names(s)
    return {name: [r["excess_risk"][name] for r in per_seed] for name in names}


def dropout_effects(s: ScaleSettings,
                    loss: dict[str, list[list[float]]]) -> dict[float, list[list[float]]]:
    """Rate -> per seed, KL(no dropout) - KL(dropout) at each size (> 0: dropout helps)."""
    configs, names = config_names(s)
    base = loss[names[0]]
    return {p: [[a - b for a, b in zip(r0, r, strict=True)] for r0, r in
                zip(base, loss[name], strict=True)]
            for p, name in zip(configs[1:], names[1:], strict=True)}


def crossovers(s: ScaleSettings, effects: dict[float, list[list[float]]],
               params: int) -> dict[str, Any]:
    """Per rate: where the mean effect changes sign, in n and in data per parameter."""
    sizes = list(s.sizes)
    cross: dict[str, Any] = {}
    for p, e in effects.items():
        means = [mean_se([row[i] for row in e])[0] for i in range(len(sizes))]
        c = crossover(sizes, means)
        cross[f"p={p:g}"] = ({"n": c, "data_per_param": c / params} if c is not None
                             else "no sign change within the sizes tried")
    return cross


def numbers(s: ScaleSettings, loss: dict[str, list[list[float]]],
            effects: dict[float, list[list[float]]], parts: dict[str, dict[str, str]],
            early: list[dict[str, Any]], shared: dict[str, Any]) -> dict[str, Any]:
    """Every measured value of the claim, per seed, for ``results.json``."""
    sizes = list(s.sizes)
    params = student_params(s)
    summary = {f"p={p:g}": [dict(zip(("mean", "se"), mean_se([row[i] for row in e]),
                                     strict=True)) for i in range(len(sizes))]
               for p, e in effects.items()}
    return {
        "sizes": sizes,
        "epochs_per_size": epochs_per_size(s),
        "student_params": params,
        "data_per_param": [n / params for n in sizes],
        "teacher_bayes_nll": shared["teacher_bayes_nll"],
        "excess_risk_per_seed": loss,
        "effect_per_seed": {f"p={p:g}": e for p, e in effects.items()},
        "effect_summary": summary,
        "crossover": crossovers(s, effects, params),
        "part_verdicts": parts,
        "early_dropout": {"settings": asdict(s.early), "per_seed": early,
                          "final_mean": {k: mean_se([r[k]["final"] for r in early])[0]
                                         for k in ("none", "standard", "early")}},
        "config_survey": shared["survey"]["table"],
    }


def student_params(s: ScaleSettings) -> int:
    return n_params(mlp(s.d_in, list(s.student_hidden), s.classes))


def key_number(s: ScaleSettings, numbers_: dict[str, Any], cpu: dict[str, float]) -> str:
    """One line for the report's table (the CPU ratio is a timing: it varies run to run)."""
    sizes, summary, cross = numbers_["sizes"], numbers_["effect_summary"], numbers_["crossover"]
    first = {k: v_[0]["mean"] for k, v_ in summary.items()}
    last = {k: v_[-1]["mean"] for k, v_ in summary.items()}
    fm = numbers_["early_dropout"]["final_mean"]
    return ("benefit of dropout (nats): " + "; ".join(
        f"{k}: {first[k]:+.3f} at n={sizes[0]}, {last[k]:+.3f} at n={sizes[-1]}" for k in first)
        + "; crossover " + ", ".join(
        f"{k}: n~{c['n']:.0f}" if isinstance(c, dict) else f"{k}: none" for k, c in
        cross.items())
        + f"; one pass, final KL none {fm['none']:.3f}, p={s.early.p:g} {fm['standard']:.3f}, "
          f"early {fm['early']:.3f} nats; CPU per step x{cpu['standard'] / cpu['none']:.2f} "
          f"with dropout")


def setup(s: ScaleSettings, bayes_nll: float) -> str:
    configs, _ = config_names(s)
    es = s.early
    return (f"Teacher: fixed random tanh MLP {s.d_in}-{'-'.join(map(str, s.teacher_hidden))}-"
            f"{s.classes} (weight std {s.teacher_gain}/sqrt(fan_in), logits scaled to std "
            f"{s.logit_scale}); x ~ N(0, I), labels sampled from the teacher's softmax (Bayes "
            f"NLL {bayes_nll:.3f} nats). Student: ReLU MLP {s.d_in}-"
            f"{'-'.join(map(str, s.student_hidden))}-{s.classes} ({student_params(s)} "
            f"parameters), dropout p in {list(configs)} after each hidden layer; {s.steps} Adam "
            f"steps (lr {s.lr}, batch {s.batch_size}) for every training-set size n in "
            f"{list(s.sizes)}, i.e. {epochs_per_size(s)} epochs; test risk on {s.n_test} fresh "
            f"inputs."
            f" Underfitting regime ([scale.slow], [scale.counter]): one pass over the "
            f"largest set with no dropout, dropout p={es.p:g} throughout, and early dropout "
            f"(p={es.p:g} for the first {es.early_fraction:.0%} of the steps), evaluated "
            f"every {es.eval_every} steps.")


def caveats(survey: dict[str, Any]) -> list[str]:
    out = [
        "One teacher, one student size and one step budget; 'huge data' here means a few tens "
        "of examples per parameter, far from language-model scale.",
        "The step budget is the same for every n, so the largest sizes are also the least "
        "trained per example; a longer stream would shift the crossover.",
        "No learning-rate schedule or tuning per setting; dropout rates are fixed in advance.",
        "[scale.slow]'s CPU seconds per step are measured on this machine and vary with its "
        "load; the verdict uses step counts, not seconds.",
    ]
    if "scale.nodrop" not in survey["judged"]:
        out.append("[scale.nodrop]'s configuration part is not judged in this run ("
                   + "; ".join(survey["table"]["unavailable"]) + ").")
    return out


def judge(s: ScaleSettings, per_seed: list[dict[str, Any]],
          shared: dict[str, Any]) -> Judged:
    """The three statements, the first edition's rule (in the criterion), numbers and prose."""
    loss = excess_risks(s, per_seed)
    effects = dropout_effects(s, loss)
    early = [r["early"] for r in per_seed]
    first_verdict, first_edition, parts = verdict(
        s, {p: [row[0] for row in e] for p, e in effects.items()},
        {p: [row[-1] for row in e] for p, e in effects.items()})
    judged = statements(s, effects, early, shared["survey"])
    _, criterion = group_summary(judged)
    criterion += f" (The first edition's rule, verdict {first_verdict}: {first_edition})"
    split = disagreement(judged)
    nums = numbers(s, loss, effects, parts, early, shared)
    cpu = next(st for st in judged if st.id == "scale.slow").numbers["cpu_s_per_step"]
    return Judged(statements=judged, criterion=criterion,
                  key_number=key_number(s, nums, cpu) + (f". {split}" if split else ""),
                  numbers=nums, setup=setup(s, shared["teacher_bayes_nll"]),
                  caveats=caveats(shared["survey"]))


def figures(s: ScaleSettings, per_seed: list[dict[str, Any]],
            shared: dict[str, Any]) -> list[Figure]:
    """The crossover, the one-pass curves and the configuration survey (no training)."""
    loss = excess_risks(s, per_seed)
    return ([crossover_figure(s, loss, dropout_effects(s, loss), student_params(s)),
             early_figure([r["early"] for r in per_seed], s.early)]
            + shared["survey"]["figures"])


EXPERIMENT = ClaimExperiment(id=ID, title=TITLE, claim=CLAIM, settings=SETTINGS,
                             measure=measure, judge=judge, figures=figures, shared=shared)


def run(cfg: LabConfig) -> ClaimResult:
    """Measure claim 7 (see the module docstring), one seed after another."""
    return run_experiment(EXPERIMENT, cfg)
