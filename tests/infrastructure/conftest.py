"""Fixtures for the CDK tests: the Lambda assets are built once per session into a tmp dir
(so `make test` works from a fresh clone) and the app is synthesised once, with the CI/CD
context supplied so both stacks are checked. Synth runs jsii/node: it is the slow part."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

# Node 20 still runs jsii fine; its end-of-life banner would only clutter the test output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk.assertions import Template
from cfnhelpers import CICD_CONTEXT, Synth

from infra import build_lambda, nag
from infra.app import CICD_STACK, PIPELINE_STACK, build_app


@pytest.fixture(scope="session")
def lambda_build(tmp_path_factory: pytest.TempPathFactory) -> build_lambda.BuildResult:
    return build_lambda.build(tmp_path_factory.mktemp("lambda"))


@pytest.fixture(scope="session")
def synth(
    lambda_build: build_lambda.BuildResult, tmp_path_factory: pytest.TempPathFactory
) -> Synth:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app({**CICD_CONTEXT, "lambda_build_dir": str(lambda_build.root)}, outdir=outdir)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings fail the synth; keep the report for the test
        report = outdir / "validation-report.json"
        error = f"{exc}\n{report.read_text() if report.is_file() else ''}"
    templates = {
        p.name.removesuffix(".template.json"): json.loads(p.read_text())
        for p in outdir.glob("*.template.json")
    }
    assert {PIPELINE_STACK, CICD_STACK} <= set(templates), sorted(templates)
    return Synth(outdir, templates, nag.report(app), error)


@pytest.fixture(scope="session")
def pipeline(synth: Synth) -> Template:
    return synth.template(PIPELINE_STACK)


@pytest.fixture(scope="session")
def pipeline_json(synth: Synth) -> dict[str, Any]:
    return synth.templates[PIPELINE_STACK]


@pytest.fixture(scope="session")
def cicd(synth: Synth) -> Template:
    return synth.template(CICD_STACK)
