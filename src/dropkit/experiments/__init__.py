"""Shared machinery of experiment runs (the lab, the benchmarks): environment capture, JSON
writing and atomic result sets (``record``)."""

from dropkit.experiments.record import (
    check_output_dir,
    environment,
    recover,
    write_json,
    write_result_set,
    write_text_atomic,
)

__all__ = [
    "check_output_dir",
    "environment",
    "recover",
    "write_json",
    "write_result_set",
    "write_text_atomic",
]
