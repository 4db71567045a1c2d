"""`dropkit demo`: MC dropout vs weight scaling on scikit-learn's digits, in about a minute."""

from __future__ import annotations

import argparse
import time

from dropkit.commands._common import non_negative, positive

ANGLES = (0, 15, 30, 45, 60, 90)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="train a small dropout MLP on digits; compare MC dropout with weight scaling",
        description="Trains a 64-256-256-10 MLP with dropout (p=0.3) on scikit-learn's bundled "
        "digits (no download), then prints accuracy, NLL and ECE of the weight-scaled "
        "(deterministic) and the MC dropout predictions, and the mean predictive entropy and "
        "mutual information on test digits rotated by increasing angles.")
    p.add_argument("--samples", type=int, default=100, help="MC dropout passes (default 100)")
    p.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    p.add_argument("--seed", type=int, default=0, help="seed for split, init and masks")
    p.set_defaults(func=run, extras=("digits",))


def check(args: argparse.Namespace) -> None:
    """Every flag, before the two minutes of training (`DropkitValueError` naming the flag)."""
    positive("--samples", args.samples)
    positive("--epochs", args.epochs)
    non_negative("--seed", args.seed)


def run(args: argparse.Namespace) -> int:
    check(args)
    import torch

    from dropkit import MCDropout
    from dropkit._progress import progress_bar
    from dropkit.datasets.digits import load_digits, rotate
    from dropkit.lab.train import TrainConfig, mlp, train
    from dropkit.metrics import accuracy, expected_calibration_error, negative_log_likelihood

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    data = load_digits(seed=args.seed)
    model = mlp(64, [256, 256], 10, p=0.3)
    train(model, data.flat_train, data.y_train,
          TrainConfig(epochs=args.epochs, lr=1e-3, batch_size=64, seed=args.seed),
          progress="training" if args.progress else None)
    mc = MCDropout(model, samples=args.samples, seed=args.seed, progress=False)
    x, y = data.flat_test, data.y_test
    rows = []
    for name, pred in (("weight scaling", mc.deterministic(x)),
                       (f"MC dropout (S={args.samples})", mc.predict(x))):
        rows.append((name, accuracy(pred.mean, y, from_logits=False),
                     negative_log_likelihood(pred.mean, y, from_logits=False),
                     expected_calibration_error(pred.mean, y, from_logits=False)))
    print(f"digits: {len(data.y_train)} train / {len(y)} test images, MLP 64-256-256-10, "
          f"dropout 0.3, seed {args.seed}\n")
    print(f"{'prediction':<24}{'accuracy':>10}{'NLL':>10}{'ECE':>10}")
    for name, acc, nll, ece in rows:
        print(f"{name:<24}{acc:>10.4f}{nll:>10.4f}{ece:>10.4f}")
    print(f"\nMC dropout uncertainty on test digits rotated by an angle (S={args.samples}):\n")
    print(f"{'angle (deg)':<14}{'accuracy':>10}{'entropy (nats)':>16}{'mutual info (nats)':>20}")
    for angle in progress_bar(ANGLES, enabled=args.progress, desc="rotations", leave=False):
        pred = mc.predict(rotate(data.x_test, angle).flatten(1))
        print(f"{angle:<14}{accuracy(pred.mean, y, from_logits=False):>10.4f}"
              f"{pred.predictive_entropy.mean().item():>16.4f}"
              f"{pred.mutual_information.mean().item():>20.4f}")
    print(f"\ndone in {time.perf_counter() - start:.1f} s")
    return 0
