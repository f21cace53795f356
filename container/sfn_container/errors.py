"""Errors the container raises on purpose, and how an entrypoint reports them.

SageMaker reads ``/opt/ml/output/failure`` into the job's ``FailureReason`` when the
container exits non-zero; :func:`run_job` writes it for any exception, so the reason a
pipeline execution shows is the container's own message (first line: the error type).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path

# SageMaker truncates FailureReason at 1024 characters.
MAX_FAILURE_CHARS = 1024


class ContainerError(Exception):
    """Base class: a problem with the job's input or configuration (not a crash)."""


class ConfigError(ContainerError):
    """Missing or invalid setting (environment, hyperparameters, CLI arguments)."""


class SchemaError(ContainerError):
    """The data does not have the expected columns or types; the message names them."""


class EmptyInputError(ContainerError):
    """An input channel or directory holds no data."""


class ModelError(ContainerError):
    """A model artifact is missing, unreadable or does not fit the data."""


def failure_reason(exc: BaseException) -> str:
    reason = f"{type(exc).__name__}: {exc}"
    return reason[:MAX_FAILURE_CHARS]


def write_failure(path: Path, exc: BaseException) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(failure_reason(exc) + "\n", encoding="utf-8")
    except OSError as write_error:  # the reason still reaches the log below
        print(f"could not write {path}: {write_error}", file=sys.stderr)


def run_job(job: Callable[[], object], failure_file: Path) -> int:
    """Run a batch entrypoint; on any error write the failure file and return exit code 1.

    Expected errors (:class:`ContainerError`) log one line; anything else logs the traceback
    too, because it is a bug rather than bad input.
    """
    try:
        job()
    except ContainerError as exc:
        write_failure(failure_file, exc)
        print(f"ERROR {failure_reason(exc)}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # any error: the job must always leave a reason behind
        write_failure(failure_file, exc)
        traceback.print_exc()
        return 1
    return 0
