"""Test-session set-up shared by every test module."""

from tests._torchvision import allow_import

allow_import()


import logging  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(autouse=True, scope="module")  # module: the claims run in module fixtures
def _lab_figures_are_laid_out_cleanly(request: pytest.FixtureRequest) -> Iterator[None]:
    """The lab's tests draw every claim's figures at quick size: each figure goes through
    `dropkit.report.figure.figure_png`, which logs its layout problems (overlapping text, text
    in another panel, a log axis unlabelled where the data are); any such problem fails the
    module that drew the figure (an error at its teardown)."""
    if not request.module.__name__.split(".")[-1].startswith("test_lab_"):
        yield
        return
    handler = _Collect()
    logger = logging.getLogger("dropkit.report")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.messages:
        pytest.fail("figure layout problems:\n" + "\n".join(handler.messages))


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """One local 2-CPU Ray cluster for the whole test session (starting one takes ~8 s), shut
    down at its end. Its workers start in the current folder, which Ray puts on their path, so
    test modules such as ``tests.lab_fake_descent`` import there."""
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'dropkit[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
