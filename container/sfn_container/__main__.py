"""``python -m sfn_container preprocess|train|evaluate|drift|serve|data``.

The batch entrypoints (preprocess, train, evaluate, drift) write ``$OPT_ML/output/failure`` and
exit 1 on any error; ``serve`` runs until SIGTERM/SIGINT; ``data`` writes a raw data set.

A batch job run as ``python -m sfn_container`` ends without the interpreter's teardown once
its outputs are written and its output streams flushed (``os._exit``): the teardown's
garbage collection over numpy, pyarrow, SciPy and XGBoost's modules measured ~0.3 s of
each job on a busy 2-core machine (0.04 s without), which is pure overhead in front of the
next pipeline step (benchmarks/training_scale.py, figure 6). Nothing is lost by it: every
output file is closed when the job returns, threads are joined (the read-ahead pool, the
tracker), and logging's handlers are flushed here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sfn_container",
        description="The model container's entrypoints (SageMaker's /opt/ml contract; "
        "root from $OPT_ML, default /opt/ml).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("preprocess", help="raw CSVs -> train/validation/test, profile, sample")
    sub.add_parser("train", help="train XGBoost on the train/validation channels")
    sub.add_parser("evaluate", help="score challenger (and champion) -> evaluation.json")
    sub.add_parser("drift", help="captured traffic vs the model's baseline -> drift.json")
    serve = sub.add_parser("serve", help="HTTP model server on $SAGEMAKER_BIND_TO_PORT")
    serve.add_argument("--port", type=int, help="overrides SAGEMAKER_BIND_TO_PORT (8080)")
    serve.add_argument("--host", help="bind address (default 0.0.0.0)")
    serve.add_argument("--workers", type=int, help="processes (default: CPU count)")
    data = sub.add_parser("data", help="write a raw data set as CSV (header, target column)")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=["breast_cancer", "diabetes"])
    source.add_argument("--synthetic", action="store_true", help="generate seeded data")
    data.add_argument("--out", required=True, help="output directory")
    data.add_argument("--rows", type=int, default=10_000)
    data.add_argument("--features", type=int, default=20)
    data.add_argument(
        "--problem-type",
        choices=["binary_classification", "regression"],
        default="binary_classification",
    )
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--filename", help="file name (default: derived from the data set)")
    return parser


def exit_without_teardown(code: int) -> NoReturn:
    """End the process now: flush logging and the standard streams, skip the teardown."""
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None, fast_exit: bool = False) -> int:
    """Run a command; `fast_exit`: a batch job ends the process without the interpreter's
    teardown (see the module docstring) instead of returning its exit code."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from sfn_container.serve import main as serve_main

        return serve_main(host=args.host, port=args.port, workers=args.workers)
    if args.command == "data":
        from sfn_container import data

        if args.synthetic:
            path = data.write_synthetic(
                args.out, args.rows, args.features, args.problem_type, args.seed, args.filename
            )
        else:
            path = data.write_dataset(args.dataset, args.out, args.filename)
        print(path)
        return 0

    from sfn_container.errors import run_job
    from sfn_container.paths import OptMl

    if args.command == "preprocess":
        from sfn_container.preprocess import main as job
    elif args.command == "train":
        from sfn_container.train import main as job
    elif args.command == "drift":
        from sfn_container.drift import main as job
    else:
        from sfn_container.evaluate import main as job
    code = run_job(job, OptMl.from_env().failure_file)
    if fast_exit:
        exit_without_teardown(code)
    return code


if __name__ == "__main__":
    sys.exit(main(fast_exit=True))
