"""The scale claim's figures (`dropkit.lab.scale`): the crossover with training-set size and
the one-pass curves of no, standard and early dropout. Drawing only: no training."""

from __future__ import annotations

from typing import Any, Protocol

from dropkit.lab.base import Figure, errorbar, figure_png, mean_se
from dropkit.lab.scale_early import EarlySettings


class ScaleSettings(Protocol):
    """What the figures read of `dropkit.lab.scale.ScaleSettings` (named here, so that this
    module does not import the claim that imports it)."""

    @property
    def sizes(self) -> tuple[int, ...]: ...
    @property
    def steps(self) -> int: ...
    @property
    def batch_size(self) -> int: ...


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


def crossover_figure(s: ScaleSettings, loss: dict[str, list[list[float]]],
                     effects: dict[float, list[list[float]]], params: int) -> Figure:
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
    return Figure("scale_crossover", figure_png(fig),
                  "Left: excess test risk of the fixed-size student with and without dropout. "
                  "Right: the benefit of dropout (no-dropout loss minus dropout loss) per "
                  "training-set size; the top axis shows examples per student parameter. "
                  "Error bars: ± 2 se over seeds.")
