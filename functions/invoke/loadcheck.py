"""The staging endpoint's load check: `requests` single-row InvokeEndpoint calls from the
sample rows, `concurrency` at a time (a thread pool: the calls wait on the network); each
call's latency as the client sees it. p99 (nearest rank) and the error rate are compared
with the config's thresholds; over either -> LoadCheckFailedError naming what was measured,
and the model is not promoted."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

from functions.invoke.logic import ACCEPT, CONTENT_TYPE, _records, to_csv
from shared.adapters.runtime import SageMakerRuntime
from shared.adapters.s3 import S3
from shared.errors import InferenceError, InvalidInputError, LoadCheckFailedError
from shared.models import LoadCheckOutput, LoadCheckRequest
from shared.observability import logger


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def single_rows(s3: S3, uri: str, limit: int = 100) -> list[str]:
    """CSV bodies of one sample row each (header kept: the server recognises it)."""
    target = uri if uri.endswith(".csv") else _first_csv(s3, uri)
    records = _records("\n".join(s3.read_lines(target, limit + 1)))
    if len(records) < 2:
        raise InvalidInputError(f"sample_uri: {target} has no rows below its header")
    header, rows = records[0], records[1:]
    return [to_csv([header, row]) for row in rows]


def _first_csv(s3: S3, uri: str) -> str:
    found = s3.first_object(uri.rstrip("/") + "/", suffix=".csv")
    if found is None:
        raise InvalidInputError(f"sample_uri: no .csv object under {uri}")
    return found


def load_check(request: LoadCheckRequest, runtime: SageMakerRuntime, s3: S3) -> LoadCheckOutput:
    check, endpoint = request.load_check, request.endpoint_name
    bodies = single_rows(s3, request.sample_uri)
    errors: list[str] = []

    def one(i: int) -> float:
        started = time.perf_counter()
        try:
            runtime.invoke(endpoint, bodies[i % len(bodies)], CONTENT_TYPE, ACCEPT)
        except InferenceError as exc:
            errors.append(str(exc))
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(max_workers=check.concurrency) as pool:
        latencies = list(pool.map(one, range(check.requests)))
    rate = len(errors) / check.requests
    p99 = percentile(latencies, 99)
    output = LoadCheckOutput(
        endpoint_name=endpoint,
        requests=check.requests,
        errors=len(errors),
        error_rate=rate,
        p50_latency_ms=round(percentile(latencies, 50), 3),
        p99_latency_ms=round(p99, 3),
        passed=rate <= check.max_error_rate and p99 <= check.max_p99_latency_ms,
    )
    logger.info("load check", extra=output.model_dump())
    if not output.passed:
        problems = []
        if rate > check.max_error_rate:
            first = f" (first: {errors[0][:300]})" if errors else ""
            problems.append(
                f"error rate {rate:.3f} ({len(errors)}/{check.requests}) > "
                f"max_error_rate {check.max_error_rate}{first}"
            )
        if p99 > check.max_p99_latency_ms:
            problems.append(
                f"p99 latency {p99:.1f} ms > max_p99_latency_ms {check.max_p99_latency_ms}"
            )
        raise LoadCheckFailedError(
            f"staging endpoint {endpoint}: " + "; ".join(problems) + ": not promoted, "
            "production unchanged"
        )
    return output
