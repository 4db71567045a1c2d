"""How many bytes kept samples will take, checked before sampling starts."""

from __future__ import annotations

import os

import torch

from dropkit.errors import DropkitValueError, expected

#: share of the available memory that kept samples may take by default
DEFAULT_FRACTION = 0.5


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (CPU: ``MemAvailable``), or None when unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_kept_samples(samples: int, row_bytes: int, b: int, device: torch.device,
                       limit: int | None) -> None:
    """Refuse to keep ``samples x b`` rows of ``row_bytes`` each above ``limit`` bytes
    (None: half of the available memory)."""
    need = samples * b * row_bytes
    if limit is None:
        free = available_bytes(device)
        if free is None:
            return
        limit = int(free * DEFAULT_FRACTION)
    if need > limit:
        raise DropkitValueError(expected(
            "samples", f"a number of kept samples that fits in {limit / 2**30:.2f} GiB "
            "(use keep_samples=False: the measures are then accumulated chunk by chunk in the "
            "memory of one chunk; or raise memory_limit)",
            f"S={samples} for B={b} rows of {row_bytes} bytes: {need / 2**30:.2f} GiB"))
