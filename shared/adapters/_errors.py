"""ClientError translation shared by the adapters (by error code, never by message)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError

from shared.aws import error_code, error_message, is_throttling
from shared.errors import TransientServiceError


@contextmanager
def transient_errors(operation: str) -> Iterator[None]:
    """Throttling and 5xx-like codes become TransientServiceError (the workflow retries it)."""
    try:
        yield
    except ClientError as exc:
        if is_throttling(exc):
            raise TransientServiceError(
                f"{operation}: {error_code(exc)}: {error_message(exc)}"
            ) from exc
        raise


def code_of(exc: ClientError) -> str:
    return error_code(exc) or ""


__all__ = ["ClientError", "code_of", "transient_errors"]
