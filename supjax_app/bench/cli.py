"""``supjax bench``: how much suppression costs, measured on this machine.

The command line: ``supjax bench --json bench.json`` (or ``python -m supjax_app.bench.cli``)
prints the table of :mod:`supjax_app.bench.report` and writes its JSON; ``--quick`` runs
everything with tiny repeat counts (a smoke test, not a measurement). Run it on an otherwise
idle machine: the min/max beside each median show how noisy it was.

>>> parser = argparse.ArgumentParser(prog="supjax bench")
>>> add_arguments(parser)
>>> parser.parse_args([]).compat_mode
'graph'
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from supjax_app.bench.report import print_table, run_bench

__all__ = [
    "add_arguments",
    "main",
    "run",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``supjax bench``'s options to ``parser``.

    >>> parser = argparse.ArgumentParser(prog="supjax bench")
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--quick", "--sizes", "1e4", "1e6", "--no-compat"])
    >>> args.quick, args.sizes, args.no_compat, args.compat_mode, args.json
    (True, [10000.0, 1000000.0], True, 'graph', None)
    """
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="write the figures as JSON to PATH")
    parser.add_argument("--quick", action="store_true",
                        help="tiny repeat counts and small layers: a smoke run (CI), not a measurement")
    parser.add_argument("--sizes", type=float, nargs="+", metavar="N", default=None,
                        help="single-layer sizes of the selection ratio (default 1e4 1e5 1e6 1e7; "
                             "the goal is judged at the largest)")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not time MindArmour's update_mask even when it is installed")
    parser.add_argument("--no-compat", action="store_true",
                        help="do not time compat_mindspore's step even when MindSpore is installed")
    parser.add_argument("--compat-mode", choices=("graph", "pynative"), default="graph",
                        help="MindSpore mode of compat_mindspore's timed step (default graph)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and data (default 0)")


def run(args: argparse.Namespace) -> int:
    """Run the bench for parsed arguments; print the table, write the JSON; return 0.

    Returns 2, before measuring anything, when ``--sizes`` holds a size below 1.

    >>> parser = argparse.ArgumentParser(prog="supjax bench")
    >>> add_arguments(parser)
    >>> run(parser.parse_args(["--sizes", "0"]))  # the error message goes to stderr
    2
    >>> import contextlib, io, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "bench.json")
    >>> with contextlib.redirect_stdout(io.StringIO()):  # the table  # doctest: +SKIP
    ...     status = run(parser.parse_args(["--quick", "--no-compat", "--json", path]))
    >>> status, json.load(open(path))["figures"]["compat_step_ratio"]["note"]  # doctest: +SKIP
    (0, 'skipped (--no-compat)')
    """
    sizes = None if args.sizes is None else [int(s) for s in args.sizes]
    if sizes is not None and any(s < 1 for s in sizes):
        print("supjax bench: error: --sizes must be positive", file=sys.stderr)
        return 2
    report = run_bench(
        quick=args.quick,
        sizes=sizes,
        reference=not args.no_reference,
        compat=not args.no_compat,
        compat_mode=args.compat_mode,
        seed=args.seed,
        progress=lambda msg: print(f"supjax bench: {msg} ...", file=sys.stderr, flush=True),
    )
    print_table(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")
        print(f"supjax bench: wrote {args.json}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m supjax_app.bench.cli [--json PATH] [--quick] ...``.

    >>> main(["--quick", "--sizes", "-1"])  # rejected before any measurement
    2
    >>> import contextlib, io, os, tempfile
    >>> path, table = os.path.join(tempfile.mkdtemp(), "bench.json"), io.StringIO()
    >>> with contextlib.redirect_stdout(table):  # doctest: +SKIP
    ...     status = main(["--quick", "--no-reference", "--no-compat", "--json", path])
    >>> status, "step_overhead_ratio" in table.getvalue(), json.load(open(path))["quick"]  # doctest: +SKIP
    (0, True, True)
    """
    parser = argparse.ArgumentParser(prog="supjax bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
