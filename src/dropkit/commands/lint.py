"""`dropkit lint FACTORY`: lint a model's dropout from the command line (exit 1 on warnings).

``FACTORY`` is ``package.module:callable``: a zero-argument callable returning an ``nn.Module``
(then ``--input-shape`` gives the example input) or a ``(module, example_input)`` pair. The
current directory is importable, as with ``python -m``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when the command runs, so `dropkit --help` stays quick
    from torch import nn

DTYPES = ("float32", "float64", "int64")


class UsageError(Exception):
    """Bad command-line usage: printed as one line, exit code 2."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lint", help="find misplaced dropout in a model (exit 1 on warnings or errors)",
        description="Builds the model from FACTORY, runs one forward pass on an example input "
        "and reports dropout placement problems: dropout before BatchNorm, on the residual "
        "stream, on embeddings or logits, after LayerNorm, high rates on conv feature maps, "
        "dropout MC dropout cannot control, and no dropout at all; p=0 placeholders (timm and "
        "Hugging Face defaults) are one info finding. Exit code 1 when any finding is a "
        "warning or an error, 0 otherwise, 2 on bad usage.")
    p.add_argument("factory", metavar="FACTORY",
                   help="package.module:callable returning an nn.Module or (module, input)")
    p.add_argument("--input-shape", default=None, metavar="SHAPE",
                   help="example input shape, e.g. 2,3,32,32 (not needed when the factory "
                   "returns an input; without either only the static rules run)")
    p.add_argument("--input-dtype", default="float32", choices=DTYPES,
                   help="dtype of the example input (int64 gives token ids 0; default float32)")
    p.add_argument("--method", default="auto", choices=("auto", "fx", "hooks"),
                   help="how to build the dataflow (default: fx, else hooks)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)


@contextmanager
def _cwd_importable() -> Iterator[None]:
    added = os.getcwd() not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        yield
    finally:
        if added:
            sys.path.remove(os.getcwd())


def load_factory(spec: str) -> object:
    """Call the factory named ``module:attr`` and return what it returns."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise UsageError(f"FACTORY must look like package.module:callable, got {spec!r}")
    try:
        with _cwd_importable():
            module = importlib.import_module(mod_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix
        raise UsageError(f"cannot import {mod_name!r}: {type(exc).__name__}: {exc}") from exc
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{spec} is a {type(obj).__name__}, not a callable")
    try:
        return obj()
    except Exception as exc:  # noqa: BLE001 - report, never a traceback
        raise UsageError(f"{spec}() raised {type(exc).__name__}: {exc}") from exc


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        shape = ()
    if not shape or any(n < 1 for n in shape):
        raise UsageError(f"--input-shape must be positive integers separated by commas "
                         f"(e.g. 2,3,32,32), got {text!r}")
    return shape


def example_for(built: object, shape: str | None, dtype: str) -> tuple[nn.Module, object]:
    """The model and example input from what the factory returned and the flags."""
    import torch
    from torch import nn

    example: object = None
    if isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], nn.Module):
        built, example = built
    if not isinstance(built, nn.Module):
        raise UsageError(f"the factory must return an nn.Module or a (module, example_input) "
                         f"pair, but returned {type(built).__name__}")
    if shape is not None:
        size = parse_shape(shape)
        gen = torch.Generator().manual_seed(0)
        torch_dtype = getattr(torch, dtype)  # one of DTYPES, checked by argparse
        example = (torch.zeros(size, dtype=torch_dtype) if dtype == "int64"
                   else torch.randn(size, generator=gen, dtype=torch_dtype))
    return built, example


def run(args: argparse.Namespace) -> int:
    from dropkit.diagnose import lint
    from dropkit.errors import DropkitError

    try:
        if args.input_shape is not None:
            parse_shape(args.input_shape)  # a bad flag is refused before the factory runs
        model, example = example_for(load_factory(args.factory), args.input_shape,
                                     args.input_dtype)
        result = lint(model, example, method=args.method)
    except (UsageError, DropkitError) as exc:
        print(f"dropkit lint: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        print(f"dropkit lint: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if example is None:
        print("dropkit lint: note: no example input (--input-shape), so only the rules that "
              "need no forward pass ran", file=sys.stderr)
    print(result.to_json() if args.json else result)
    return result.exit_code
