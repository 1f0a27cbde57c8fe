"""``supjax audit``'s options and its entry point (wired into :mod:`supjax_app.cli`).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="supjax audit"); add_arguments(parser)
>>> cfg = config_from_args(parser.parse_args(["--quick", "--sparse-end", "0.9", "0.95", "--arms", "dense,suppressed"]))
>>> cfg.quick, cfg.sparse_ends, cfg.arms
(True, (0.9, 0.95), ('dense', 'suppressed'))
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from supjax_app.audit.config import ARM_NAMES, ATTACK_NAMES, DEFAULT, QUICK, AuditConfig

__all__ = ["DESCRIPTION", "add_arguments", "config_from_args", "run"]

DESCRIPTION = (
    "Does suppression protect privacy? Trains N LeNet5 models per arm (dense, suppressed, pruned, DP-SGD, "
    "DP-SGD + suppression), each on a random half of a pool with canaries, attacks every model with the "
    "others as shadows (loss threshold, LiRA offline/online, RMIA), and reports TPR at low FPR with "
    "bootstrap intervals, AUC, empirical and DP epsilon, accuracy and sparsity, plus an image-inversion "
    "attack; writes report.json, report.md, scores.npz, inversion.npz and PNGs to --out."
)


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``supjax audit``'s options to ``parser``.

    >>> p = argparse.ArgumentParser(); add_arguments(p); p.parse_args([]).models is None
    True
    """
    g = parser.add_argument_group("data")
    g.add_argument("--data", default="digits", help="'digits' (default), 'fashion-mnist', or a name for --data-dir")
    g.add_argument("--data-dir", default=None, help="a folder of MNIST-format IDX files")
    g.add_argument("--pool", type=int, default=None,
                   help=f"pool size P (default {DEFAULT['pool']} on digits, 2000 otherwise, {QUICK['pool']} with --quick)")
    g.add_argument("--validation", type=int, default=300, help="validation examples, disjoint from the pool (300)")
    g.add_argument("--canary-fraction", type=float, default=0.05,
                   help="fraction of the pool given a random wrong label, in [0, 0.5] (0.05)")
    g = parser.add_argument_group("training")
    g.add_argument("--models", type=int, default=None,
                   help=f"models per arm N, even, >= 2 (default {DEFAULT['models']}, {QUICK['models']} with --quick)")
    g.add_argument("--epochs", type=int, default=None,
                   help=f"epochs per model (default {DEFAULT['epochs']}, {QUICK['epochs']} with --quick)")
    g.add_argument("--batch-size", type=int, default=32, help="batch size (32)")
    g.add_argument("--arms", type=_names, default=ARM_NAMES, help=f"comma-separated arms from {','.join(ARM_NAMES)}")
    g.add_argument("--sparse-end", type=float, nargs="+", dest="sparse_ends", default=[0.95],
                   help="final sparsity of the suppressed and pruned arms; several values draw a frontier")
    g.add_argument("--dp-clip", type=float, default=1.0, help="DP-SGD per-example L2 clip (1.0)")
    g.add_argument("--no-dp-curve", action="store_true",
                   help="train DP-SGD at the matched noise only (by default also at half and twice it, "
                        "the frontier's DP-SGD curve; never with --quick)")
    g.add_argument("--strategy", default="sequential", help="how an arm's models train: sequential, scan, vmap")
    g = parser.add_argument_group("attacks and report")
    g.add_argument("--attacks", type=_names, default=ATTACK_NAMES,
                   help=f"comma-separated attacks from {','.join(ATTACK_NAMES)}")
    g.add_argument("--fpr", type=float, nargs="+", dest="fpr_targets", default=[0.001, 0.01],
                   help="false-positive rates at which TPR is reported, each in (0, 1)")
    g.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples of each interval (200)")
    g.add_argument("--no-inversion", action="store_true", help="skip the image-inversion attack")
    g.add_argument("--inversion-weights", choices=("default", "tutorial"), default="default",
                   help="inversion loss weights: MindArmour's default (1, 0.2, 5) or its tutorial's (1, 0.1, 5)")
    g.add_argument("--no-legacy", action="store_true", help="skip the LR/KNN/MLP/RF attack of supjax train")
    g.add_argument("--seed", type=int, default=0, help="seed of the split, keep matrix, inits and batches (0)")
    g.add_argument("--out", default="supjax-audit", help="output folder (supjax-audit)")
    g.add_argument("--quick", action="store_true",
                   help=f"a smoke run: N={QUICK['models']}, pool {QUICK['pool']}, {QUICK['epochs']} epochs")


def config_from_args(args: argparse.Namespace) -> AuditConfig:
    """The :class:`~supjax_app.audit.config.AuditConfig` of parsed options (not yet validated)."""
    return AuditConfig(
        data=args.data.strip().lower(), data_dir=args.data_dir, models=args.models, pool=args.pool,
        validation=args.validation, epochs=args.epochs, batch_size=args.batch_size,
        canary_fraction=args.canary_fraction, arms=tuple(args.arms), attacks=tuple(args.attacks),
        sparse_ends=tuple(args.sparse_ends), fpr_targets=tuple(args.fpr_targets), dp_clip=args.dp_clip, dp_curve=not args.no_dp_curve,
        bootstrap=args.bootstrap, strategy=args.strategy, inversion=not args.no_inversion,
        inversion_weights=args.inversion_weights,
        legacy=not args.no_legacy, seed=args.seed, out=args.out, quick=args.quick,
    )


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description:>24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), transient=False)


def run(args: argparse.Namespace, error: Any) -> int:
    """Validate the options (``error(message)`` exits with status 2), run the audit, print the table."""
    config = config_from_args(args)
    try:
        config.validate()
    except ValueError as err:
        error(str(err))
    from rich.console import Console

    from supjax_app.audit.app import run_audit
    from supjax_app.audit.report import markdown

    console = Console(stderr=True)
    tasks: dict[str, Any] = {}
    with _progress() as bars:
        def progress(arm: str, done: int, total: int) -> None:
            if arm not in tasks:
                tasks[arm] = bars.add_task(arm, total=total)
            bars.update(tasks[arm], completed=done)

        try:
            report = run_audit(config, say=lambda msg: bars.console.print(msg), progress=progress)
        except FileNotFoundError as err:
            console.print(f"supjax audit: error: {err}")
            return 1
        except ValueError as err:
            console.print(f"supjax audit: error: {err}")
            return 2
    print(markdown(report).split("## Every attack")[0].rstrip())
    print(f"\nsupjax audit: wrote {config.out}/report.json, report.md, scores.npz and plots", file=sys.stderr)
    return 0
