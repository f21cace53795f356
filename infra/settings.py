"""Deploy-time settings: CDK context values, parsed once, checked with readable errors.

Context comes from cdk.json, `cdk.context.json`, `npx cdk ... -c key=value`, or
`python -m infra.app -c key=value`. Every key is optional; the pipeline (CI/CD) stack is only
built when `github_connection_arn` and `github_repo` are both given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import aws_logs as logs

from shared import resources

DEFAULT_BUILD_DIR = resources.REPO_ROOT / "build" / "lambda"
#: CloudWatch Logs retention periods (days) and their aws_logs.RetentionDays member names.
RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
}  # fmt: skip
_RETENTION_DAYS = tuple(RETENTION)
_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[\w-]+$"
)
_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SettingsError(ValueError):
    """A context value is malformed; the message names the key and what is expected."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no", ""}:
        return False
    raise SettingsError(f"expected true/false, got {value!r}")


@dataclass(frozen=True)
class DeploySettings:
    notification_email: str | None = None
    github_connection_arn: str | None = None
    github_repo: str | None = None  # owner/name
    github_branch: str = "main"
    schedule_expression: str = "rate(7 days)"
    schedule_enabled: bool = False
    log_retention_days: int = 30
    #: The tag DEFAULT_IMAGE_URI points at; CodeBuild passes the commit SHA it pushed.
    image_tag: str = "latest"
    #: Expire run artifacts (runs/...) after this many days; None keeps them (tiered to IA).
    artifact_expiration_days: int | None = None
    cdk_bootstrap_qualifier: str = "hnb659fds"
    lambda_build_dir: Path = DEFAULT_BUILD_DIR

    @property
    def log_retention(self) -> logs.RetentionDays:
        return logs.RetentionDays[RETENTION[self.log_retention_days]]

    @property
    def cicd_enabled(self) -> bool:
        return bool(self.github_connection_arn and self.github_repo)

    @property
    def github_owner_and_name(self) -> tuple[str, str]:
        if not self.github_repo:
            raise SettingsError("github_repo is not set")
        owner, name = self.github_repo.split("/", 1)
        return owner, name

    def context_args(self) -> list[str]:
        """`-c key=value` for every setting that differs from its default, so that a deploy
        from CodeBuild synthesises what the first `make deploy` did (minus image_tag and the
        build directory, which are per build)."""
        args = []
        for key in _FORWARDED:
            value = getattr(self, key)
            if value is not None and value != getattr(_DEFAULTS, key):
                text = str(value).lower() if isinstance(value, bool) else str(value)
                args += ["-c", f"{key}={text}"]
        return args

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> DeploySettings:
        """Read every key through `get` (e.g. `app.node.try_get_context`)."""
        values: dict[str, Any] = {}
        errors: list[str] = []

        def read(key: str, parse: Callable[[Any], Any]) -> None:
            raw = get(key)
            if raw is None or raw == "":
                return
            try:
                values[key] = parse(raw)
            except (SettingsError, ValueError, TypeError) as exc:
                errors.append(f"context {key}={raw!r}: {exc}")

        read("notification_email", lambda v: _match(_EMAIL, str(v), "an e-mail address"))
        read("github_connection_arn", lambda v: _match(_CONNECTION_ARN, str(v), "a connection ARN"))
        read("github_repo", lambda v: _match(_REPO, str(v), "owner/name"))
        read("github_branch", str)
        read("schedule_expression", _schedule)
        read("schedule_enabled", _bool)
        read("log_retention_days", _retention)
        read("image_tag", lambda v: _match(re.compile(r"^[\w][\w.-]{0,127}$"), str(v), "a tag"))
        read("artifact_expiration_days", _positive_int)
        read("cdk_bootstrap_qualifier", str)
        read("lambda_build_dir", lambda v: Path(str(v)).resolve())
        if bool(values.get("github_connection_arn")) != bool(values.get("github_repo")):
            errors.append("give both github_connection_arn and github_repo (or neither)")
        if errors:
            raise SettingsError("invalid CDK context:\n  " + "\n  ".join(errors))
        return cls(**values)


def _match(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        raise SettingsError(f"expected {what}")
    return value


def _schedule(value: Any) -> str:
    text = str(value).strip()
    if not re.match(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$", text):
        raise SettingsError("expected rate(N unit) or cron(...)")
    return text


def _retention(value: Any) -> int:
    days = int(value)
    if days not in _RETENTION_DAYS:
        raise SettingsError(f"CloudWatch Logs retention must be one of {_RETENTION_DAYS}")
    return days


def _positive_int(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise SettingsError("expected a positive number of days")
    return number


_DEFAULTS = DeploySettings()
_FORWARDED = (
    "notification_email",
    "github_connection_arn",
    "github_repo",
    "github_branch",
    "schedule_expression",
    "schedule_enabled",
    "log_retention_days",
    "artifact_expiration_days",
    "cdk_bootstrap_qualifier",
)
