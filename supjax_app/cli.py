"""The ``supjax`` command (also ``python -m supjax_app``): ``train``, ``audit`` and ``bench``.

>>> build_parser().parse_args(["train", "--quick"]).quick
True
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, Sequence

from supjax_app._checks import float_arg, int_arg

__all__ = [
    "build_parser",
    "config_from_args",
    "exit_status",
    "main",
]

_DESCRIPTION = (
    "Suppress Privacy in JAX. `supjax train` trains a LeNet5 twice with the same seed and data "
    "split, once dense and once with supjax.suppress (MindArmour's tutorial schedule), then "
    "attacks both with membership inference and writes report.json, report.md and PNG plots. "
    "`supjax audit` measures whether suppression protects privacy (shadow models, LiRA, RMIA, "
    "DP-SGD, image inversion); `supjax bench` what it costs."
)

_EPILOG = """examples:
  supjax train                                   # digits, a few minutes on 2 CPU cores
  supjax train --quick                           # a smoke run (well under a minute)
  supjax train --data fashion-mnist --epochs 10  # needs `apt-get install dataset-fashion-mnist`
  supjax train --data-dir ~/MNIST_unzip          # any MNIST-format IDX files
  supjax train --checkpoint-every 100            # checkpoints in OUT/checkpoints
  supjax train --checkpoint-every 100 --resume   # continue after an interruption
"""


def _attacks(text: str) -> tuple[str, ...]:
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    return tuple(a.strip() for a in text.split(",") if a.strip())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``supjax`` (sub-commands ``train``, ``audit`` and ``bench``).

    >>> args = build_parser().parse_args(["train", "--epochs", "5", "--lr", "0.1"])
    >>> args.command, args.epochs, args.lr, args.batch_size, args.out  # unset: 32 (512 with --dp)
    ('train', 5, 0.1, None, 'supjax-report')
    >>> build_parser().parse_args(["bench", "--quick", "--no-compat"]).no_compat
    True
    """
    from supjax_app.dp.config import DPConfig
    from supjax_app.train.config import ATTACK_NAMES, DEFAULT_EPOCHS, QUICK_EPOCHS, TARGET_INTERVAL

    dp = DPConfig()  # the --dp defaults, named in the help

    parser = argparse.ArgumentParser(prog="supjax", description=_DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser(
        "train",
        help="train dense and suppressed LeNet5, attack both, write a report",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--data", default=None, metavar="NAME",
                      help="data set: 'digits' (scikit-learn's 8x8 digits, the default), 'fashion-mnist' "
                           "(read from /usr/share/datasets/fashion-mnist, or from --data-dir), or any "
                           "name for the IDX files in --data-dir; never downloaded")
    data.add_argument("--data-dir", default=None, metavar="DIR",
                      help="directory with the four MNIST-format IDX files (optionally .gz), flat or "
                           "in DIR/train and DIR/test")
    data.add_argument("--train-size", type=int_arg, default=None, metavar="N",
                      help="train on a seeded random subset of at most N training samples (default: all)")
    data.add_argument("--test-size", type=int_arg, default=None, metavar="N",
                      help="evaluate on a seeded random subset of at most N test samples (default: all)")

    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=int_arg, default=None, metavar="N",
                       help=f"training epochs, 1..1000 (default {DEFAULT_EPOCHS}; {QUICK_EPOCHS} with --quick; "
                            f"{dp.epochs} with --dp)")
    train.add_argument("--batch-size", type=int_arg, default=None, metavar="N",
                       help="samples per SGD step (default 32, as the tutorial); the last partial batch "
                            f"of an epoch is dropped (--dp: the expected Poisson batch, default {dp.batch_size})")
    train.add_argument("--lr", type=float_arg, default=None, metavar="LR",
                       help="SGD learning rate, in (0, 0.5] (default 0.05, as the tutorial; --dp: in (0, 100], "
                            f"default {dp.lr:g})")
    train.add_argument("--seed", type=int_arg, default=0, metavar="N",
                       help="seed of everything: data split, initial weights, data order, suppression "
                            "noise and attacks (default 0); both runs share it")
    train.add_argument("--quick", action="store_true",
                       help=f"a smoke run for CI: {QUICK_EPOCHS} epochs (unless --epochs), at most 200 "
                            "attack samples per group, and at most 5000 train / 1000 test samples")

    sup = p.add_argument_group("suppression (the tutorial's LeNet5 layers and options)")
    sup.add_argument("--sparse-end", type=float_arg, default=0.95, metavar="S",
                     help="sparsity reached at the end of training, in (0, 1) (default 0.95)")
    sup.add_argument("--start-epoch", type=int_arg, default=None, metavar="E",
                     help="first epoch of suppression, 1..--epochs (default: the epoch at 30%% of "
                          "training, as the tutorial's 3 of 10)")
    sup.add_argument("--mask-times", type=int_arg, default=None, metavar="N",
                     help=f"number of suppress operations (default: one every ~{TARGET_INTERVAL} steps "
                          "of the suppression phase)")

    attack = p.add_argument_group("membership inference")
    attack.add_argument("--attacks", type=_attacks, default=None, metavar="LIST",
                        help=f"comma-separated attacks from {','.join(ATTACK_NAMES)} or 'none' (default: "
                             "all); the loss-threshold attack always runs")
    attack.add_argument("--attack-size", type=int_arg, default=None, metavar="N",
                        help="at most N members (train) and N non-members (test) for the attacks "
                             "(default 1000; 200 with --quick)")

    out = p.add_argument_group("output and checkpoints")
    out.add_argument("--out", default="supjax-report", metavar="DIR",
                     help="where report.json, report.md and the PNG plots go (default ./supjax-report)")
    out.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                     help="save Orbax checkpoints of both runs here (DIR/dense, DIR/suppressed); "
                          "default OUT/checkpoints when --checkpoint-every or --resume is given")
    out.add_argument("--checkpoint-every", type=int_arg, default=None, metavar="N",
                     help="save a checkpoint every N optimizer steps (default: once per epoch when "
                          "checkpointing); the last 3 are kept")
    out.add_argument("--resume", action="store_true",
                     help="continue from the latest checkpoint in the checkpoint directory; the result "
                          "is bitwise the one of an uninterrupted run")
    from supjax_app.dp.cli import add_arguments as add_dp_arguments

    add_dp_arguments(p)
    from supjax_app import compile_cache

    compile_cache.add_arguments(out)
    bench = sub.add_parser(
        "bench",
        help="measure step overhead, operation time, selection and speed-ups (JSON with --json)",
        description="Benchmark supjax against the bare optimizer, one elementwise pass and the reference.",
    )
    from supjax_app.bench.cli import add_arguments

    add_arguments(bench)
    from supjax_app.audit import cli as audit_cli

    audit = sub.add_parser("audit", help="does suppression protect privacy? shadow-model attacks, DP-SGD, inversion",
                           description=audit_cli.DESCRIPTION)
    audit_cli.add_arguments(audit)
    compile_cache.add_arguments(audit.add_argument_group("compilation cache"))
    return parser


def config_from_args(args: argparse.Namespace):
    """The :class:`~supjax_app.train.config.TrainConfig` an argparse namespace asks for.

    >>> cfg = config_from_args(build_parser().parse_args(["train", "--quick", "--seed", "3"]))
    >>> cfg.epochs, cfg.seed, cfg.attack_size, cfg.train_size, cfg.test_size, cfg.validate()
    (10, 3, 200, 5000, 1000, True)
    >>> config_from_args(build_parser().parse_args(["train", "--data-dir", "/data/kmnist"])).data
    'kmnist'
    """
    from pathlib import Path

    from supjax_app.train.config import ATTACK_NAMES, DEFAULT_EPOCHS, QUICK_EPOCHS, TrainConfig

    data = args.data
    if data is None and args.data_dir is not None:
        data = Path(args.data_dir).name  # name the data set after its directory
        if not data or data.strip().lower() == "digits":
            data = "idx"
    data = data or "digits"
    quick = args.quick
    return TrainConfig(
        data=data,
        data_dir=args.data_dir,
        epochs=args.epochs if args.epochs is not None else (QUICK_EPOCHS if quick else DEFAULT_EPOCHS),
        batch_size=args.batch_size if args.batch_size is not None else 32,
        lr=args.lr if args.lr is not None else 0.05,
        sparse_end=args.sparse_end,
        start_epoch=args.start_epoch,
        mask_times=args.mask_times,
        seed=args.seed,
        attacks=args.attacks if args.attacks is not None else ATTACK_NAMES,
        attack_size=args.attack_size if args.attack_size is not None else (200 if quick else 1000),
        train_size=args.train_size if args.train_size is not None else (5000 if quick else None),
        test_size=args.test_size if args.test_size is not None else (1000 if quick else None),
        out=args.out,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        quick=quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``supjax``; return the exit status (0 ok, 1 missing data, 2 bad options).

    >>> import contextlib, io, os, tempfile
    >>> main(["train", "--data", "fashion-mnist", "--data-dir", tempfile.mkdtemp()])  # no IDX files there
    1
    >>> out = tempfile.mkdtemp()
    >>> with contextlib.redirect_stdout(io.StringIO()):  # progress and table  # doctest: +SKIP
    ...     status = main(["train", "--quick", "--out", out])
    >>> status, sorted(os.listdir(out))  # doctest: +SKIP
    (0, ['accuracy.png', 'report.json', 'report.md', 'roc.png', 'sparsity.png'])
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        from supjax_app.bench.cli import run as run_bench

        return run_bench(args)
    if args.command in ("train", "audit"):
        return _with_compile_cache(parser, args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects unknown commands
    return 2  # pragma: no cover


def _with_compile_cache(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run ``train`` or ``audit`` with JAX's persistent compilation cache as asked, then say how it served."""
    from supjax_app import compile_cache

    with compile_cache.configure(args) as folder:
        before = compile_cache.stats()
        status = _run_command(parser, args)
        used = compile_cache.stats()
    if folder is not None:
        print(f"supjax {args.command}: compilation cache {folder}: {used.hits - before.hits} of "
              f"{used.requests - before.requests} compilations loaded from it, "
              f"{compile_cache.cache_entries(folder)} entries (--no-compile-cache to switch off)",
              file=sys.stderr)
    return status


def _run_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``supjax train`` or ``supjax audit`` for parsed arguments."""
    if args.command == "audit":
        from supjax_app.audit import cli as audit_cli

        audit_parser = parser._subparsers._group_actions[0].choices["audit"]  # noqa: SLF001
        return audit_cli.run(args, audit_parser.error)
    train_parser = parser._subparsers._group_actions[0].choices["train"]  # noqa: SLF001
    if args.dp:
        from supjax_app.dp.cli import run as run_dp

        return run_dp(args, train_parser.error)
    for option in ("epsilon", "noise_multiplier", "delta", "activation", "end_epoch", "upper_bound",
                   "masked_clipping", "ema_decay"):
        if getattr(args, option) is not None:
            train_parser.error(f"--{option.replace('_', '-')} needs --dp")
    try:
        config = config_from_args(args)
        config.validate()
    except ValueError as err:
        train_parser.error(str(err))
    from supjax_app.train.app import run

    return exit_status("train", run, config)


def exit_status(command: str, run: Callable[[Any], object], config: Any) -> int:
    """Run ``run(config)`` for ``supjax <command>``: 0, or 1 (missing file) / 2 (bad value) with the error said.

    >>> def fails(config):
    ...     raise ValueError("masks leak")
    >>> import contextlib, io
    >>> with contextlib.redirect_stderr(io.StringIO()) as err:
    ...     status = exit_status("train", fails, None)
    >>> status, err.getvalue().strip()
    (2, 'supjax train: error: masks leak')
    """
    try:
        run(config)
    except FileNotFoundError as err:
        print(f"supjax {command}: error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"supjax {command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
