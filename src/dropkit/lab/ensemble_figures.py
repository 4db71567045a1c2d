"""The ensemble claim's figures (`dropkit.lab.ensemble`): Monte Carlo averages against weight
scaling in the deep net, and the softmax layer's subnetwork average. Drawing only: no training."""

from __future__ import annotations

from typing import Any, Protocol

from dropkit.lab.base import Figure, errorbar, figure_png, mean_se


class EnsembleSettings(Protocol):
    """What the figures read of `dropkit.lab.ensemble.EnsembleSettings` (named here, so that
    this module does not import the claim that imports it)."""

    @property
    def d(self) -> int: ...
    @property
    def deep_hidden(self) -> tuple[int, ...]: ...
    @property
    def deep_p(self) -> float: ...
    @property
    def s_grid(self) -> tuple[int, ...]: ...


def _band(ax: Any, values: list[float], label: str, color: str) -> None:
    m, se = mean_se(values)
    ax.axhline(m, color=color, ls="--", label=label)
    ax.axhspan(m - 2 * se, m + 2 * se, color=color, alpha=0.15)


def deep_figure(s: EnsembleSettings, deep: list[dict[str, Any]]) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # constrained layout: each panel's y label gets its own room (it ran into the previous one)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    for ax, key, ws_key, label in ((axes[0], "err_mc_pct", "err_ws_pct", "test error (%)"),
                                   (axes[1], "nll_mc", "nll_ws", "test NLL (nats)")):
        errorbar(ax, list(s.s_grid), [r[key] for r in deep], marker="o",
                 label="MC average of S samples", color="C0")
        _band(ax, [r[ws_key] for r in deep], "weight scaling (one pass)", "C3")
        ax.set_xscale("log")
        ax.set_xlabel("S (number of MC dropout samples, log scale)")
        ax.set_ylabel(label)
        ax.legend()
    axes[0].set_title("Deep net: test error vs S")
    axes[1].set_title("Deep net: test NLL vs S")
    # the seeds' splits differ, so the paired difference shows what the bands above hide
    errorbar(axes[2], list(s.s_grid), [[v - r["nll_ws"] for v in r["nll_mc"]] for r in deep],
             marker="o", color="C0", label="NLL(MC, S) - NLL(weight scaling), same seed")
    axes[2].axhline(0.0, color="C3", ls="--", label="no difference")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("S (number of MC dropout samples, log scale)")
    axes[2].set_ylabel("paired NLL difference (nats; < 0: MC better)")
    axes[2].set_title("Deep net: MC minus weight scaling")
    axes[2].legend(loc="upper right", fontsize=8)  # full size covered the tick labels
    fig.suptitle(f"MLP {list(s.deep_hidden)} with dropout p={s.deep_p} on digits "
                 f"(mean ± 2 se over {len(deep)} seeds)")
    return Figure("ensemble_mc_vs_ws", figure_png(fig),
                  "Monte Carlo averages of S dropout samples vs the weight-scaled network "
                  "(dashed line, band = ± 2 se over seeds); right: the NLL difference "
                  "within each seed. Error bars: ± 2 se over seeds.")


def softmax_figure(s: EnsembleSettings, soft: dict[float, list[dict[str, Any]]]) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = max(soft)  # the largest rate shows the biggest AM/WS gap
    pairs = [pt for r in soft[p] for pt in r["true_prob_ws_am"]]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter([a for a, _ in pairs], [b for _, b in pairs], s=6, alpha=0.4,
               label="arithmetic mean of all 2^d subnetworks")
    ax.plot([0, 1], [0, 1], color="k", lw=1, label="y = x (NGM lies exactly here)")
    ax.set_xlabel("weight scaling: p(true class)")
    ax.set_ylabel("subnetwork average: p(true class)")
    ax.set_title(f"Softmax layer, d={s.d} inputs, p={p}")
    ax.legend(loc="upper left")
    return Figure("ensemble_softmax_layer", figure_png(fig),
                  f"Single softmax layer with input dropout p={p}: probability of the true "
                  f"class under weight scaling vs the arithmetic mean over all 2^{s.d} masks. "
                  "The normalized geometric mean coincides with weight scaling (the diagonal).")
