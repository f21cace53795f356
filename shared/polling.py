"""The adaptive poll schedule: the wait before poll n+1 is min(max, interval * 2**n).

Waits grow geometrically, so the number of state transitions grows with the log of a job's
duration; `max_polls` bounds each loop, keeping the execution history far below 25,000 events.
"""

from __future__ import annotations


def wait_seconds(attempt: int, interval: int, max_interval: int) -> int:
    """Seconds to wait after poll number `attempt` (0 = right after the job started)."""
    if attempt >= 32:  # 2**32 * interval is beyond any max_interval; avoid huge integers
        return max(1, max_interval)
    return max(1, min(max_interval, interval * (1 << attempt)))


def schedule_seconds(max_polls: int, interval: int, max_interval: int) -> int:
    """Total time the waits before `max_polls` polls cover."""
    return sum(wait_seconds(a, interval, max_interval) for a in range(max_polls))


def polls_needed(seconds: int, interval: int, max_interval: int, limit: int = 10_000) -> int:
    """The smallest max_polls whose schedule covers `seconds` (capped at `limit`)."""
    covered = 0
    for attempt in range(limit):
        covered += wait_seconds(attempt, interval, max_interval)
        if covered >= seconds:
            return attempt + 1
    return limit
