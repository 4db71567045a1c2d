"""results.json and the HTML page of the digits experiment, through the lab's report page.

The experiment becomes one "claim" section of `dropkit.report.html.render_html` (the same
machinery as the lab): the published result is the claim, the labels-vs-accuracy figure and
the numbers follow, and the verdict comes from the rule in `judge_labels`.
"""

from __future__ import annotations

from typing import Any

CLAIM = ("BALD and variation ratio reach the target test error with about half the labels "
         "random acquisition needs (Gal, Islam & Ghahramani, ICML 2017, MNIST, Table 1: 10% "
         "error).")
STRONG, WEAK = 0.6, 1.0  # label ratio vs random: "about half" / "fewer"


def judge_labels(summary: dict[str, Any], budget_end: int) -> tuple[str, str, dict[str, Any]]:
    """Verdict, criterion and the ratios labels(acq) / labels(random) for BALD and VR.

    A curve that never reaches the target counts as ``budget_end`` labels (a lower bound)."""
    def labels(acq: str) -> int:
        reach = summary[acq]["labels_to_target"]
        return budget_end if reach is None else int(reach)

    checked = [a for a in ("bald", "variation_ratio") if a in summary]
    criterion = (f"ratio = labels to target / random's labels to target (a curve that never "
                 f"reaches it counts as {budget_end}); supported if every ratio of BALD and "
                 f"variation ratio <= {STRONG}; partly supported if all < {WEAK} or one <= "
                 f"{STRONG}; else not supported")
    if "random" not in summary or not checked:
        return "not supported", "needs random and BALD or variation ratio: " + criterion, {}
    ratios: dict[str, Any] = {a: labels(a) / labels("random") for a in checked}
    if all(r <= STRONG for r in ratios.values()):
        verdict = "supported"
    elif all(r < WEAK for r in ratios.values()) or any(r <= STRONG for r in ratios.values()):
        verdict = "partly supported"
    else:
        verdict = "not supported"
    return verdict, criterion, ratios


def curves_figure(summary: dict[str, Any], target: float) -> Any:
    """Labels vs test accuracy per acquisition, mean over seeds with a ±2 se band."""
    import matplotlib

    from dropkit.lab.base import Figure, figure_png

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for acq, row in summary.items():
        m, se = row["accuracy_mean"], row["accuracy_se"]
        ax.plot(row["labels"], m, label=acq, lw=1.6)
        ax.fill_between(row["labels"], [a - 2 * e for a, e in zip(m, se, strict=True)],
                        [a + 2 * e for a, e in zip(m, se, strict=True)], alpha=0.15)
    ax.axhline(target, color="k", ls=":", lw=1, label=f"target {target:.0%}")
    ax.set_xlabel("labelled images")
    ax.set_ylabel("test accuracy (MC dropout)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return Figure("curves", figure_png(fig), "Test accuracy vs number of labels, mean over "
                  "seeds with a ±2 standard-error band.")


def document(result: dict[str, Any], *, command: str, started: str, seconds: float,
             environment: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The results.json document (a lab-shaped page with one section) and its figures."""
    cfg, summary = result["config"], result["summary"]
    budget_end = cfg["initial"] + cfg["budget"]
    verdict, criterion, ratios = judge_labels(summary, budget_end)
    reach = {a: s["labels_to_target"] for a, s in summary.items()}
    key = ", ".join(f"{a} {'>' + str(budget_end) if n is None else n}" for a, n in
                    reach.items())
    caveats = [f"digits, not MNIST: {result['pool']} pool images, {result['test']} test "
               f"images, an MLP instead of the paper's CNN, {len(cfg['seeds'])} seed(s)."]
    if cfg["quick"]:
        caveats.append("--quick: a smoke run of a few rounds; its verdict means nothing.")
    record = {
        "id": "digits-active", "title": "Active learning on digits", "verdict": verdict,
        "claim": CLAIM, "criterion": criterion, "key_number": f"labels to "
        f"{cfg['target']:.0%} accuracy: {key}",
        "setup": (f"pool = digits training split; start from {cfg['initial']} balanced labels, "
                  f"acquire {cfg['batch_size']} per round up to {cfg['budget']} more; a fresh "
                  f"64-{cfg['hidden']}-{cfg['hidden']}-10 MLP (dropout {cfg['p']}) trained "
                  f"{cfg['steps']} Adam steps each round; S = {cfg['samples']} MC dropout samples "
                  f"for scoring and testing."),
        "numbers": {"labels_to_target": reach, "ratio_to_random": ratios,
                    "final_accuracy": {a: s["final_accuracy"] for a, s in summary.items()}},
        "caveats": caveats, "seeds": list(cfg["seeds"]), "seconds": seconds, "config": cfg,
    }
    doc = {"claims": [record], "order": ["digits-active"], **environment,
           "lab_config": cfg, "command": command, "started_utc": started,
           "wall_seconds": seconds, "experiment": result}
    return doc, {"digits-active": [curves_figure(summary, cfg["target"])]}
