"""The CDK app: `python -m infra.app [-c key=value ...]` writes the cloud assembly to cdk.out.

Offline, no Docker, no AWS credentials: the stacks are environment-agnostic, the Lambda
code and layer come from build/lambda (`make layer`), the definition from the committed
state_machine/asl.json. cdk-nag's AwsSolutions pack runs at synth and any unacknowledged
finding fails it. `npx cdk deploy --app "python -m infra.app"` (`make deploy`) runs the same.

Stacks: `SfnMlops` (the pipeline) always; `SfnMlopsCicd` (CodePipeline + CodeBuild) when
the context gives `github_connection_arn` and `github_repo`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Tags

from infra import nag
from infra.settings import DeploySettings, SettingsError
from infra.stacks.cicd import CicdStack
from infra.stacks.pipeline import PipelineStack
from shared import resources

PIPELINE_STACK = "SfnMlops"
CICD_STACK = "SfnMlopsCicd"
CDK_JSON = resources.REPO_ROOT / "cdk.json"


def _cdk_json_context() -> dict[str, Any]:
    """cdk.json's context (feature flags). The CDK CLI passes it itself; plain `python -m
    infra.app` reads it here so both synthesise the same templates."""
    if "CDK_CONTEXT_JSON" in os.environ or not CDK_JSON.is_file():
        return {}
    context: dict[str, Any] = json.loads(CDK_JSON.read_text()).get("context", {})
    return context


def build_app(
    context: Mapping[str, Any] | None = None,
    *,
    outdir: str | Path | None = None,
    asl_path: Path = resources.ASL_PATH,
) -> App:
    """The app with its stacks and cdk-nag attached (call `.synth()` on it)."""
    merged = {**_cdk_json_context(), **(context or {})}
    if outdir is None and "CDK_OUTDIR" not in os.environ:
        outdir = resources.REPO_ROOT / "cdk.out"
    app = App(context=merged, outdir=str(outdir) if outdir is not None else None)
    settings = DeploySettings.from_context(app.node.try_get_context)

    PipelineStack(
        app,
        PIPELINE_STACK,
        settings=settings,
        asl_path=asl_path,
        description="sfn-mlops: Step Functions MLOps pipeline (SageMaker train, evaluate, "
        "register, deploy when better)",
    )
    if settings.cicd_enabled:
        CicdStack(
            app,
            CICD_STACK,
            settings=settings,
            description="sfn-mlops: CodePipeline (GitHub) -> CodeBuild: test, push image, deploy",
        )
    Tags.of(app).add("project", resources.PROJECT)
    nag.apply(app)
    return app


def _parse_context(pairs: list[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SettingsError(f"context must be key=value, got {pair!r}")
        context[key] = value
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Synthesise the sfn-mlops CDK app")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        app = build_app(_parse_context(args.context))
        assembly = app.synth()
    except (SettingsError, FileNotFoundError, ValueError) as exc:
        print(f"infra.app: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # cdk-nag findings: the report is in the message
        print(f"infra.app: synth failed:\n{exc}", file=sys.stderr)
        return 1
    if "CDK_OUTDIR" not in os.environ:
        stacks = ", ".join(s.stack_name for s in assembly.stacks)
        print(f"synthesised {stacks} into {assembly.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
