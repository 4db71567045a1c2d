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
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
from torch import nn

from dropkit.lab.base import (
    ClaimResult,
    Figure,
    LabConfig,
    check_seeds,
    errorbar,
    figure_png,
    judge,
    mean_se,
)
from dropkit.lab.scale_early import EarlySettings
from dropkit.lab.scale_early import measure as early_measure
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

MIN_EFFECT = 0.005  # nats of excess risk: a meaningful benefit of dropout
TEACHER_SEED = 1234  # the teacher is one fixed function; seeds vary data, init and masks


@dataclass(frozen=True)
class Settings:
    """Every size and rate of the experiment (written into the result's ``config``)."""

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


QUICK = Settings(rates=(0.3,), steps=50, sizes=(200, 3200), n_test=1024)


# ---------------------------------------------------------------------------------------------
# the teacher and the data stream
# ---------------------------------------------------------------------------------------------


def make_teacher(s: Settings, *, seed: int = TEACHER_SEED) -> nn.Sequential:
    """A fixed random tanh MLP whose logits have standard deviation ~``s.logit_scale``."""
    gen = torch.Generator().manual_seed(seed)
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
# the experiment
# ---------------------------------------------------------------------------------------------


def fit_student(x: torch.Tensor, y: torch.Tensor, s: Settings, *, p: float,
                seed: int) -> nn.Sequential:
    """A student trained for ``s.steps`` Adam steps: ``steps * batch / n`` epochs over ``x``."""
    torch.manual_seed(seed)
    student = mlp(s.d_in, list(s.student_hidden), s.classes, p=p)
    epochs = max(1, round(s.steps * s.batch_size / len(x)))
    return cast(nn.Sequential,
                train(student, x, y, TrainConfig(epochs=epochs, lr=s.lr, batch_size=s.batch_size,
                                                 seed=seed)))


def verdict(small: dict[float, list[float]],
            large: dict[float, list[float]]) -> tuple[str, str, dict[str, dict[str, str]]]:
    """For every rate: (i) dropout helps at the smallest n, (ii) it does not at the largest n."""
    parts: dict[str, dict[str, str]] = {}
    held, texts = 0, []
    for p in small:
        j_small = judge(small[p], min_effect=MIN_EFFECT,
                        what=f"KL(no dropout) - KL(p={p:g}) at the smallest n, nats")
        j_large = judge(large[p], min_effect=MIN_EFFECT,
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


def statements(effects: dict[float, list[list[float]]], early: list[dict[str, Any]],
               survey: dict[str, Any]) -> list[Statement]:
    """[scale.nodrop], [scale.slow] and [scale.counter], each from its own rule (issue 14)."""
    rates = list(effects)
    n_seeds = len(next(iter(effects.values())))
    small = [sum(effects[p][k][0] for p in rates) / len(rates) for k in range(n_seeds)]
    large_harm = [-sum(effects[p][k][-1] for p in rates) / len(rates) for k in range(n_seeds)]
    rate_text = f"mean over p in {[float(p) for p in rates]}"

    def parts_statement(id_: str, text: str, parts: list[tuple[str, Any, float, str]],
                        rule: str, extra: dict[str, Any] | None = None) -> Statement:
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

    out: list[Statement] = []
    survey_part = survey["judged"].get("scale.nodrop")
    nodrop_parts: list[tuple[str, Any, float, str]] = []
    if survey_part is not None:
        nodrop_parts.append(("configurations", survey_part, 0.0, ""))
    nodrop_parts.append(("dropout helps where the model overfits", small, MIN_EFFECT, "nats"))
    out.append(parts_statement(
        "scale.nodrop", "Modern large models use no or very low dropout, because overfitting is "
        "not their bottleneck.", nodrop_parts,
        ("parts: " if survey_part is not None else "one part (the configuration survey could "
         "not be read): ")
        + (f"(configurations) {survey_part.criterion}; " if survey_part is not None else "")
        + f"(dropout helps where the model overfits) at the smallest training set (hundreds of "
          f"epochs), KL(no dropout) - KL(dropout), {rate_text}, by the shared effect rule with "
          f"threshold {MIN_EFFECT:g} nats."))

    def arr(key: str, variant: str) -> list[float]:
        return [float(r[variant][key]) for r in early]

    slower = [math.log(a / b) for a, b in zip(arr("steps_to_target", "standard"),
                                              arr("steps_to_target", "none"), strict=True)]
    std_harm = [a - b for a, b in zip(arr("final", "standard"), arr("final", "none"),
                                      strict=True)]
    out.append(parts_statement(
        "scale.slow", "When a model underfits, dropout only slows training.",
        [("slower to the target", slower, math.log(1.1), ""),
         ("no better at the end", std_harm, 0.0, "nats")],
        "in the one-pass stream (the student underfits), standard dropout against none from the "
        "same initial weights and batches; two parts by the shared effect rule: (slower to the "
        "target) log(steps standard dropout needs to reach the target / steps no dropout "
        "needs), target = the no-dropout student's excess risk halfway through, threshold "
        "log 1.1 (10% more steps); (no better at the end) final excess risk with dropout minus "
        "without, threshold 0 nats.",
        extra={"cpu_s_per_step": {v: mean_se(arr("cpu_s_per_step", v))[0] for v in
                                  ("none", "standard", "early")},
               "cpu_s_to_target": {v: mean_se(arr("cpu_s_to_target", v))[0] for v in
                                   ("none", "standard", "early")},
               "reached_target": {v: [bool(r[v]["reached_target"]) for r in early]
                                  for v in ("none", "standard", "early")}}))
    early_gain = [a - b for a, b in zip(arr("final", "none"), arr("final", "early"),
                                        strict=True)]
    out.append(parts_statement(
        "scale.counter", "Dropout is often counterproductive at scale.",
        [("standard dropout hurts at the largest n", large_harm, 0.0, "nats"),
         ("early dropout does not help either", [MIN_EFFECT - g for g in early_gain], 0.0,
          "nats")],
        f"two parts by the shared effect rule: (standard dropout hurts at the largest n) "
        f"KL(dropout) - KL(no dropout) at the largest training set (one pass), {rate_text}, "
        f"threshold 0 nats; (early dropout does not help either) {MIN_EFFECT:g} nats - (final "
        f"KL without dropout - final KL with early dropout), threshold 0: early dropout (Liu "
        f"et al. 2023) gains less than {MIN_EFFECT:g} nats.",
        extra={"early_gain_per_seed": early_gain}))
    return out


def early_figure(early: list[dict[str, Any]], e: EarlySettings) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = {"none": "no dropout", "standard": f"dropout p={e.p:g} throughout",
              "early": f"early dropout p={e.p:g}, first {e.early_fraction:.0%} of steps"}
    for i, v in enumerate(("none", "standard", "early")):
        steps = [s for s, _ in early[0][v]["curve"]]
        rows = [[val for _, val in r[v]["curve"]] for r in early]
        errorbar(ax, steps, rows, color=f"C{i}", label=labels[v], marker=".")
    ax.axhline(mean_se([r["target"] for r in early])[0], color="0.4", ls=":",
               label="target: no dropout's risk halfway")
    ax.set_yscale("log")
    ax.set(xlabel="Adam steps (one pass over the stream)",
           ylabel="test excess risk KL(teacher || student) (nats, log)",
           title="Underfitting regime: dropout, early dropout and none")
    ax.legend(fontsize=8)
    return Figure("scale_early_dropout", figure_png(fig),
                  f"Test excess risk during one pass over the largest training set, mean ± 2 se "
                  f"over {len(early)} seeds, the three students from the same initial weights and "
                  f"batches. Early dropout switches off after {e.early_fraction:.0%} of the "
                  f"steps (Liu et al., ICML 2023).")


def figures(s: Settings, loss: dict[str, list[list[float]]], effects: dict[float, list],
            params: int) -> list[Figure]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(s.sizes)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for i, (name, rows) in enumerate(loss.items()):
        errorbar(axes[0], sizes, rows, marker="o", color=f"C{i}", label=name)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("test excess risk KL(teacher || student)\n(nats, log scale)")
    axes[0].set_title("Student loss vs training-set size")
    for i, (p, rows) in enumerate(effects.items()):
        errorbar(axes[1], sizes, rows, marker="o", color=f"C{i + 1}",
                  label=f"KL(none) - KL(p={p:g})")
    axes[1].axhline(0.0, color="k", lw=1)
    top = max(max(mean_se(col)[0] + 2 * mean_se(col)[1] for col in zip(*rows, strict=True))
              for rows in effects.values())
    axes[1].set_ylim(top=max(0.02, 2 * top))
    axes[1].set_yscale("symlog", linthresh=0.01)  # small effects at large n stay visible
    axes[1].set_ylabel("benefit of dropout (nats, symlog)\n> 0: dropout helps")
    axes[1].set_title("Effect of dropout vs training-set size")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(f"training examples n (log scale); student has {params} parameters")
        ax.legend(fontsize=8)
        # ticks at the sizes measured, both axes: log-axis minor labels collided at every size
        ax.set_xticks(sizes, [f"{n:g}" for n in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        sec = ax.secondary_xaxis("top", functions=(lambda n: n / params, lambda r: r * params))
        sec.set_xticks([n / params for n in sizes])
        sec.xaxis.set_major_formatter(FuncFormatter(lambda r, _: f"{r:.2g}"))
        sec.xaxis.set_minor_formatter(NullFormatter())
        sec.set_xlabel("data / parameters")
    fig.suptitle(f"Teacher-student stream, {s.steps} Adam steps of {s.batch_size} for every n "
                 f"(the largest n is one pass); mean ± 2 se over seeds")
    return [Figure("scale_crossover", figure_png(fig),
                   "Left: excess test risk of the fixed-size student with and without dropout. "
                   "Right: the benefit of dropout (no-dropout loss minus dropout loss) per "
                   "training-set size; the top axis shows examples per student parameter. "
                   "Error bars: ± 2 se over seeds.")]


def run(cfg: LabConfig) -> ClaimResult:
    """Measure claim 7 (see the module docstring)."""
    from dropkit._progress import progress_bar

    start = time.perf_counter()
    s = QUICK if cfg.quick else Settings()
    seeds = check_seeds(cfg)
    teacher = make_teacher(s)
    x_te, log_t_te, _ = draw(teacher, s.n_test, s.d_in,
                             generator=torch.Generator().manual_seed(TEACHER_SEED + 1))
    bayes_nll = float(-(log_t_te.exp() * log_t_te).sum(-1).mean())
    configs = (0.0, *s.rates)
    names = ["no dropout" if p == 0 else f"dropout p={p:g}" for p in configs]
    loss: dict[str, list[list[float]]] = {name: [] for name in names}
    with progress_bar(total=len(seeds) * len(s.sizes) * len(configs), desc=ID, file=sys.stderr,
              enabled=cfg.progress) as bar:
        for seed in seeds:
            gen = torch.Generator().manual_seed(seed)
            x_all, _, y_all = draw(teacher, max(s.sizes), s.d_in, generator=gen)
            rows: dict[str, list[float]] = {name: [] for name in names}
            for n in s.sizes:
                for p, name in zip(configs, names, strict=True):
                    student = fit_student(x_all[:n], y_all[:n], s, p=p, seed=seed)
                    rows[name].append(excess_risk(student, x_te, log_t_te))
                    bar.update()
            for name in names:
                loss[name].append(rows[name])
    params = n_params(mlp(s.d_in, list(s.student_hidden), s.classes))
    base = loss[names[0]]
    effects = {p: [[a - b for a, b in zip(r0, r, strict=True)] for r0, r in
                   zip(base, loss[name], strict=True)]
               for p, name in zip(configs[1:], names[1:], strict=True)}
    first_verdict, first_edition, parts = verdict(
        {p: [row[0] for row in e] for p, e in effects.items()},
        {p: [row[-1] for row in e] for p, e in effects.items()})
    # counter-evidence and cost in the underfitting regime (after the first edition's runs;
    # every student seeds its own init and batches, so the numbers above are unchanged)
    es = EarlySettings.quick() if cfg.quick else EarlySettings()
    early = []
    for seed in seeds:
        x_all, _, y_all = draw(teacher, max(s.sizes), s.d_in,
                               generator=torch.Generator().manual_seed(seed))
        early.append(early_measure(
            x_all, y_all, d_in=s.d_in, hidden=list(s.student_hidden), classes=s.classes,
            steps=s.steps, batch_size=s.batch_size, lr=s.lr, seed=seed, e=es,
            evaluate=lambda m: excess_risk(m, x_te, log_t_te)))
    survey = survey_claims(cfg.quick, ID)
    judged = statements(effects, early, survey)
    v, criterion = group_summary(judged)
    criterion += f" (The first edition's rule, verdict {first_verdict}: {first_edition})"
    split = disagreement(judged)
    sizes = list(s.sizes)
    cross = {}
    for p, e in effects.items():
        means = [mean_se([row[i] for row in e])[0] for i in range(len(sizes))]
        c = crossover(sizes, means)
        cross[f"p={p:g}"] = ({"n": c, "data_per_param": c / params} if c is not None
                             else "no sign change within the sizes tried")
    summary = {f"p={p:g}": [dict(zip(("mean", "se"), mean_se([row[i] for row in e]),
                                     strict=True)) for i in range(len(sizes))]
               for p, e in effects.items()}
    numbers: dict[str, Any] = {
        "sizes": sizes,
        "epochs_per_size": [max(1, round(s.steps * s.batch_size / n)) for n in sizes],
        "student_params": params,
        "data_per_param": [n / params for n in sizes],
        "teacher_bayes_nll": bayes_nll,
        "excess_risk_per_seed": loss,
        "effect_per_seed": {f"p={p:g}": e for p, e in effects.items()},
        "effect_summary": summary,
        "crossover": cross,
        "part_verdicts": parts,
        "early_dropout": {"settings": asdict(es), "per_seed": early,
                          "final_mean": {k: mean_se([r[k]["final"] for r in early])[0]
                                         for k in ("none", "standard", "early")}},
    }
    numbers["config_survey"] = survey["table"]
    first = {k: v_[0]["mean"] for k, v_ in summary.items()}
    last = {k: v_[-1]["mean"] for k, v_ in summary.items()}
    key = ("benefit of dropout (nats): " + "; ".join(
        f"{k}: {first[k]:+.3f} at n={sizes[0]}, {last[k]:+.3f} at n={sizes[-1]}" for k in first)
        + "; crossover " + ", ".join(
        f"{k}: n~{c['n']:.0f}" if isinstance(c, dict) else f"{k}: none" for k, c in
        cross.items()))
    setup = (f"Teacher: fixed random tanh MLP {s.d_in}-{'-'.join(map(str, s.teacher_hidden))}-"
             f"{s.classes} (weight std {s.teacher_gain}/sqrt(fan_in), logits scaled to std "
             f"{s.logit_scale}); x ~ N(0, I), labels sampled from the teacher's softmax (Bayes "
             f"NLL {bayes_nll:.3f} nats). Student: ReLU MLP {s.d_in}-"
             f"{'-'.join(map(str, s.student_hidden))}-{s.classes} ({params} parameters), dropout "
             f"p in {list(configs)} after each hidden layer; {s.steps} Adam steps (lr {s.lr}, "
             f"batch {s.batch_size}) for every training-set size n in {sizes}, i.e. "
             f"{numbers['epochs_per_size']} epochs; test risk on {s.n_test} fresh inputs.")
    caveats = [
        "One teacher, one student size and one step budget; 'huge data' here means a few tens "
        "of examples per parameter, far from language-model scale.",
        "The step budget is the same for every n, so the largest sizes are also the least "
        "trained per example; a longer stream would shift the crossover.",
        "No learning-rate schedule or tuning per setting; dropout rates are fixed in advance.",
    ]
    fm = numbers["early_dropout"]["final_mean"]
    cpu = next(st for st in judged if st.id == "scale.slow").numbers["cpu_s_per_step"]
    key += (f"; one pass, final KL none {fm['none']:.3f}, p={es.p:g} {fm['standard']:.3f}, "
            f"early {fm['early']:.3f} nats; CPU per step x{cpu['standard'] / cpu['none']:.2f} "
            f"with dropout" + (f". {split}" if split else ""))
    setup += (f" Underfitting regime ([scale.slow], [scale.counter]): one pass over the "
              f"largest set with no dropout, dropout p={es.p:g} throughout, and early dropout "
              f"(p={es.p:g} for the first {es.early_fraction:.0%} of the steps), evaluated "
              f"every {es.eval_every} steps.")
    caveats.append("[scale.slow]'s CPU seconds per step are measured on this machine and vary "
                   "with its load; the verdict uses step counts, not seconds.")
    if "scale.nodrop" not in survey["judged"]:
        caveats.append("[scale.nodrop]'s configuration part is not judged in this run ("
                       + "; ".join(survey["table"]["unavailable"]) + ").")
    return ClaimResult(id=ID, title=TITLE, claim=CLAIM, setup=setup, verdict=v,
                       criterion=criterion, key_number=key, numbers=numbers,
                       figures=figures(s, loss, effects, params) + [early_figure(early, es)]
                       + survey["figures"], caveats=caveats,
                       config={"quick": cfg.quick, "teacher_seed": TEACHER_SEED, **asdict(s),
                               "early": asdict(es)},
                       seeds=seeds, seconds=time.perf_counter() - start, statements=judged)
