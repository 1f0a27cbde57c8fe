"""Choose DP-SGD hyperparameters on a validation split (never the test split).

The training split is cut (seeded) into ``validation`` held-out examples and the rest (or
``--fit-size`` of the rest, to fit the CPU budget); each candidate ``(batch_size, lr, clip)`` trains the DP dense model on the rest at the target ε
(noise calibrated for that smaller training set) and is scored on the held-out examples. The
results go to a JSON file as they come.
``python -m supjax_app.dp.select --data fashion-mnist --epochs 10 --out selection.json``.

>>> x_fit, y_fit, x_val, y_val = validation_split(np.arange(10.0), np.arange(10), 3, seed=0)
>>> len(x_fit), len(x_val), sorted(np.concatenate([x_fit, x_val]).tolist()) == list(np.arange(10.0))
(7, 3, True)
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from supjax_app.dp.config import DPConfig

__all__ = [
    "GRID",
    "main",
    "validation_split",
]

#: Candidates ``(batch_size, lr, clip)`` (SGD momentum 0.9, tanh): the learning rate only (CPU budget; batch
#: size and epochs are fixed by the 30-minute budget, the clip at Tramèr and Boneh's 0.1)
GRID: tuple[tuple[int, float, float], ...] = ((1024, 2.0, 0.1), (1024, 4.0, 0.1))


def validation_split(x: np.ndarray, y: np.ndarray, size: int, seed: int):
    """``(x_fit, y_fit, x_val, y_val)``: ``size`` seeded random examples held out of ``(x, y)``."""
    perm = np.random.default_rng([int(seed), 0xDA7A]).permutation(len(x))
    val, fit = np.sort(perm[:size]), perm[size:]  # fit in a seeded random order
    return x[fit], y[fit], x[val], y[val]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the grid; write ``{"candidates": [...], "chosen": {...}}`` to ``--out``; return 0."""
    from supjax_app.dp.app import train_models
    from supjax_app.train.app import load_data
    from supjax_app.train.config import TrainConfig

    parser = argparse.ArgumentParser(prog="python -m supjax_app.dp.select")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--validation", type=int, default=10000)
    parser.add_argument("--fit-size", type=int, default=None,
                        help="train the candidates on at most this many of the non-validation examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="selection.json")
    args = parser.parse_args(argv)
    ds = load_data(TrainConfig(data=args.data, seed=args.seed))
    x_fit, y_fit, x_val, y_val = validation_split(ds.x_train, ds.y_train, args.validation, args.seed)
    x_fit, y_fit = x_fit[: args.fit_size], y_fit[: args.fit_size]  # already a seeded random order
    lock = threading.Lock()
    rows: list[dict] = []

    def candidate(batch_size: int, lr: float, clip: float) -> None:
        cfg = DPConfig(data=args.data, epochs=args.epochs, batch_size=batch_size, lr=lr, clip=clip,
                       epsilon=args.epsilon, seed=args.seed)
        result = train_models(cfg, x_fit, y_fit, x_val, y_val, ds.num_classes, models=("dp_dense",),
                              log=lambda msg: print(f"lr {lr}: {msg}", flush=True))
        model = result["models"]["dp_dense"]
        with lock:
            rows.append({"batch_size": batch_size, "lr": lr, "clip": clip,
                         "validation_accuracy": model["test_accuracy"], "seconds": model["seconds"],
                         "noise_multiplier": result["privacy"]["noise_multiplier"],
                         "epsilon": result["privacy"]["epsilon"]})
            best = max(rows, key=lambda r: r["validation_accuracy"])
            Path(args.out).write_text(json.dumps({
                "data": args.data, "epochs": args.epochs, "epsilon": args.epsilon, "fit_examples": len(x_fit),
                "validation_examples": len(x_val), "seed": args.seed,
                "fixed": {"momentum": 0.9, "activation": "tanh", "model": "dp_dense"},
                "candidates": rows, "chosen": best, "done": len(rows) == len(GRID)}, indent=2) + "\n")
            print(f"select: {rows[-1]}", flush=True)

    # the candidates train side by side (JAX releases the GIL while it computes)
    with ThreadPoolExecutor(max_workers=len(GRID)) as pool:
        for future in [pool.submit(candidate, *c) for c in GRID]:
            future.result()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
