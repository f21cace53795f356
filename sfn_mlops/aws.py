"""Where the CLI's commands go: AWS (standard credential chain, --region/--profile) or a
running local cloud (--local / --endpoint-url), and the user-facing errors for both."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from shared import resources

DEFAULT_LOCAL_PORT = 4599
LOCAL_PORT_ENV = "SFN_MLOPS_LOCAL_PORT"


class UserError(Exception):
    """An error for the user: printed as a message, never a traceback; exit code 2."""


def local_endpoint(port: int | None = None) -> str:
    port = port or int(os.environ.get(LOCAL_PORT_ENV, DEFAULT_LOCAL_PORT))
    return f"http://127.0.0.1:{port}"


@dataclass
class Target:
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    state_machine_arn: str | None = None
    _session: Any = field(default=None, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None

    def session(self) -> Any:
        import boto3
        import botocore.exceptions

        if self._session is None:
            try:
                if self.is_local:
                    self._session = boto3.session.Session(
                        aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                        aws_session_token="testing",
                        region_name=self.region or "us-east-1",
                    )
                else:
                    self._session = boto3.session.Session(
                        profile_name=self.profile, region_name=self.region
                    )
            except botocore.exceptions.ProfileNotFound as exc:
                raise UserError(f"AWS profile not found: {self.profile}") from exc
            if not self._session.region_name:
                raise UserError(
                    "no AWS region: pass --region, set AWS_REGION, or configure a profile"
                )
        return self._session

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session().client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    def resolve_state_machine(self) -> str:
        if self.state_machine_arn:
            return self.state_machine_arn
        env = os.environ.get("SFN_MLOPS_STATE_MACHINE_ARN")
        if env:
            self.state_machine_arn = env
            return env
        sfn = self.client("stepfunctions")

        def machines() -> list[dict[str, Any]]:
            pages = sfn.get_paginator("list_state_machines").paginate()
            return [sm for page in pages for sm in page["stateMachines"]]

        for sm in call(machines):
            if sm["name"] == resources.STATE_MACHINE_NAME:
                self.state_machine_arn = str(sm["stateMachineArn"])
                return self.state_machine_arn
        where = self.endpoint_url or f"region {self.session().region_name}"
        raise UserError(
            f"state machine {resources.STATE_MACHINE_NAME!r} not found in {where}: "
            "deploy it (make deploy) or start the local cloud (sfn-mlops local up)"
        )

    def execution_arn(self, execution: str) -> str:
        """An execution ARN from an ARN or a name (of this pipeline's state machine)."""
        if execution.startswith("arn:"):
            return execution
        sm = self.resolve_state_machine()
        return sm.replace(":stateMachine:", ":execution:", 1) + f":{execution}"


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call an AWS API, turning what the user can fix into a UserError."""
    import botocore.exceptions

    try:
        return fn(*args, **kwargs)
    except botocore.exceptions.NoCredentialsError as exc:
        raise UserError(
            "no AWS credentials found: configure them (aws configure, AWS_PROFILE, SSO) "
            "or use --local to talk to a local cloud"
        ) from exc
    except botocore.exceptions.EndpointConnectionError as exc:
        raise UserError(
            f"cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}: is the local "
            "cloud running? (sfn-mlops local up)"
        ) from exc
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code == "ExecutionDoesNotExist":
            raise UserError(f"unknown execution: {message}") from exc
        if code == "ExecutionNotRedrivable":
            raise UserError(
                f"cannot redrive: {message}. A new execution with the same input can: "
                "sfn-mlops rerun EXECUTION"
            ) from exc
        if code in (
            "ExpiredToken",
            "ExpiredTokenException",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "AccessDeniedException",
            "AccessDenied",
        ):
            raise UserError(f"AWS refused the credentials ({code}): {message}") from exc
        raise UserError(f"{code}: {message}") from exc
