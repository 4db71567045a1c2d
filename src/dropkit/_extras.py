"""Optional dependencies: which extra brings which modules, and one error when one is missing.

The core needs torch, numpy and tqdm; the rest comes with an extra named for what it enables
(``pip install 'dropkit[lab]'``). Commands check their extras before doing any work
(`require`), so a bare install fails in one line with the command to run, not in a traceback
minutes later. Checking uses ``importlib.util.find_spec``: nothing is imported.
"""

from __future__ import annotations

import importlib.util

from dropkit.errors import DropkitError

__all__ = ["EXTRAS", "MissingExtraError", "missing_modules", "require"]

#: extra -> ((import name, distribution to name in the message), ...). Keep in step with
#: ``[project.optional-dependencies]`` in pyproject.toml (a test compares the two).
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    # `dropkit lab` and `dropkit active`: figures, digits, NUTS, and the libraries the lab surveys
    "lab": (("matplotlib", "matplotlib"), ("sklearn", "scikit-learn"), ("pyro", "pyro-ppl"),
            ("transformers", "transformers"), ("timm", "timm"), ("torchvision", "torchvision")),
    # `dropkit demo` and `dropkit.datasets.load_digits`: scikit-learn's bundled digits
    "digits": (("sklearn", "scikit-learn"),),
    # figures of the reports (`dropkit.report`)
    "plots": (("matplotlib", "matplotlib"),),
    # `dropkit score --ray` and `dropkit.distributed`
    "ray": (("ray", "ray"),),
    # the lab's gold-standard posterior (NUTS)
    "bayes": (("pyro", "pyro-ppl"),),
    # side-by-side comparisons with peer libraries (benchmarks/)
    "peers": (("baal", "baal"), ("einops", "einops")),
    # `dropkit.metrics`' streaming objects as torchmetrics.Metric (DDP sync, MetricCollection)
    "metrics": (("torchmetrics", "torchmetrics"),),
    # the UCI kernels compiled by numba where no C compiler is available
    "kernels": (("numba", "numba"),),
}


class MissingExtraError(DropkitError, ImportError):
    """An optional dependency is not installed; the message says which extra brings it."""

    def __init__(self, extra: str, missing: list[str], what: str) -> None:
        self.extra, self.missing = extra, missing
        verb = "is" if len(missing) == 1 else "are"
        super().__init__(f"{what} needs {' and '.join(missing)}, which {verb} not installed: "
                         f"pip install 'dropkit[{extra}]'")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed package
        return False


def missing_modules(extra: str) -> list[str]:
    """The distributions of ``extra`` whose modules cannot be found, in the order listed."""
    return [dist for module, dist in EXTRAS[extra] if not _installed(module)]


def require(extra: str, what: str) -> None:
    """Raise `MissingExtraError` naming ``what`` (e.g. ``"dropkit lab"``) unless every module
    of ``extra`` is installed."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(extra, missing, what)
