"""The ``--dp`` options of ``supjax train`` and how they become a :class:`~supjax_app.dp.config.DPConfig`.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="supjax train")
>>> add_arguments(parser)
>>> args = parser.parse_args(["--dp", "--epsilon", "3", "--clip", "0.5", "--end-epoch", "7"])
>>> args.dp, args.epsilon, args.clip, args.noise_multiplier, args.activation, args.end_epoch
(True, 3.0, 0.5, None, None, 7)
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from supjax_app._checks import float_arg, int_arg
from supjax_app.dp.config import ACTIVATIONS, DPConfig

__all__ = [
    "QUICK",
    "add_arguments",
    "config_from_args",
    "run",
]

#: What ``--dp --quick`` changes (a smoke run for CI).
QUICK = {"epochs": 3, "batch_size": 128, "train_size": 5000, "test_size": 1000}

# train options that --dp does not use (no attacks, no checkpoints in DP mode).
_NOT_WITH_DP = (("attacks", "--attacks"), ("attack_size", "--attack-size"), ("checkpoint_dir", "--checkpoint-dir"),
                ("checkpoint_every", "--checkpoint-every"), ("resume", "--resume"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--dp`` option group to ``supjax train``'s parser."""
    d = DPConfig()
    g = parser.add_argument_group(
        "differential privacy (--dp: non-private dense, DP-SGD dense and DP-SGD + suppression in one report)")
    g.add_argument("--dp", action="store_true",
                   help=f"train with DP-SGD (per-example clipping, Gaussian noise, Poisson sampling); "
                        f"defaults with --dp: --batch-size {d.batch_size}, --lr {d.lr}, --epochs {d.epochs}")
    g.add_argument("--epsilon", type=float_arg, default=None, metavar="E",
                   help=f"target ε > 0; picks the noise multiplier with dp-accounting (default {3.0:g})")
    g.add_argument("--noise-multiplier", type=float_arg, default=None, metavar="S",
                   help="noise std over the clipping norm, > 0 (instead of --epsilon; ε is then reported)")
    g.add_argument("--delta", type=float_arg, default=None, metavar="D",
                   help="δ in (0, 1/n] (default: 1/n rounded down to a power of ten)")
    g.add_argument("--clip", type=float_arg, default=d.clip, metavar="C",
                   help=f"per-example L2 clipping norm, > 0 (default {d.clip})")
    g.add_argument("--end-epoch", type=int_arg, default=None, metavar="E",
                   help="last epoch of suppression, in [start epoch, --epochs] (default --epochs); the epochs "
                        "after it train with the masks held, no more suppress operations")
    g.add_argument("--upper-bound", type=float_arg, default=None, metavar="U",
                   help=f"largest |w| suppression keeps in every layer, > 0 (kept weights are clipped to it at "
                        f"each operation; default {d.upper_bound}, chosen on validation; MindArmour's is 1.2)")
    g.add_argument("--masked-clipping", action=argparse.BooleanOptionalAction, default=None,
                   help="DP + suppressed: multiply each per-example gradient by the suppression masks before "
                        "clipping it, so the clipping norm goes to the kept weights only (the same ε: the masks "
                        f"depend only on earlier privatised updates; default {'on' if d.masked_clipping else 'off'})")
    g.add_argument("--ema-decay", type=float_arg, default=None, metavar="D",
                   help="release the DP models' debiased moving average of their iterates with this decay, in "
                        "(0, 1), instead of the last iterate (the same ε; the suppressed model's average keeps "
                        "its zeros; default: the last iterate)")
    g.add_argument("--activation", choices=ACTIVATIONS, default=None,
                   help=f"LeNet5 activation with --dp (default {d.activation})")
    from supjax_app.malloc import add_arguments as add_malloc_arguments

    add_malloc_arguments(g)


def config_from_args(args: argparse.Namespace) -> DPConfig:
    """The :class:`DPConfig` of parsed ``supjax train --dp ...`` arguments (checked).

    Raises ``ValueError`` naming the option for bad input.
    """
    for field, option in _NOT_WITH_DP:
        if getattr(args, field, None) not in (None, False):
            raise ValueError(f"{option} cannot be used with --dp")
    d = DPConfig()
    quick = bool(args.quick)

    def pick(value: Any, name: str) -> Any:
        if value is not None:
            return value
        return QUICK[name] if quick and name in QUICK else getattr(d, name)

    data = args.data
    if data is None and args.data_dir is not None:
        from pathlib import Path

        data = Path(args.data_dir).name or "idx"
    config = DPConfig(
        data=data or "digits", data_dir=args.data_dir,
        train_size=pick(args.train_size, "train_size"), test_size=pick(args.test_size, "test_size"),
        epochs=pick(args.epochs, "epochs"), batch_size=pick(args.batch_size, "batch_size"), lr=pick(args.lr, "lr"),
        clip=args.clip, epsilon=args.epsilon, noise_multiplier=args.noise_multiplier, delta=args.delta,
        activation=args.activation or d.activation, sparse_end=args.sparse_end,
        upper_bound=pick(args.upper_bound, "upper_bound"),
        masked_clipping=pick(args.masked_clipping, "masked_clipping"), start_epoch=args.start_epoch,
        end_epoch=args.end_epoch, ema_decay=args.ema_decay, mask_times=args.mask_times, seed=args.seed,
        out=args.out, quick=quick,
    )
    config.validate()
    return config


def run(args: argparse.Namespace, error: Callable[[str], Any]) -> int:
    """``supjax train --dp``: check the options (``error`` for bad ones), train, report; exit status."""
    try:
        config = config_from_args(args)
    except ValueError as err:
        error(str(err))
        return 2
    from supjax_app import malloc
    from supjax_app.cli import exit_status
    from supjax_app.dp.app import run as run_dp

    malloc.tune_malloc(enabled=not args.no_malloc_tuning)  # before anything is computed: XLA's threads malloc
    return exit_status("train", run_dp, config)
