"""Import Ray lazily, with an error that names the extra to install."""

from __future__ import annotations

from typing import Any


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("dropkit.distributed needs Ray: pip install 'dropkit[ray]'") from err
    return ray


def connect(address: str | None) -> Any:
    """Ray, initialised: the running session, else ``address`` (None: a local cluster)."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    return ray
