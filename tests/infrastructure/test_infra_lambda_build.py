"""The Lambda assets (infra/build_lambda.py): small, for the right platform, nothing forbidden."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from infra import build_lambda
from shared import resources


def test_layer_fits_the_size_budget(lambda_build: build_lambda.BuildResult) -> None:
    # Given the layer the build wrote
    layer = lambda_build.root / "layer"
    # Then its unzipped size (measured again here, not trusted from the manifest) is <= 15 MiB
    measured = sum(f.stat().st_size for f in layer.rglob("*") if f.is_file())
    assert measured <= build_lambda.LAYER_LIMIT_BYTES, f"{measured / 2**20:.1f} MiB"
    assert json.loads((lambda_build.root / "manifest.json").read_text())["layer_bytes"] == measured


def test_no_forbidden_or_runtime_provided_package_anywhere(
    lambda_build: build_lambda.BuildResult,
) -> None:
    # Given every directory the build wrote (layer site-packages and each function's code)
    site = lambda_build.root / "layer" / "python"
    names = {p.name.split("-")[0].split(".")[0].lower() for p in site.iterdir()}
    # Then no sagemaker/stepfunctions/numpy/pandas, and no boto3/botocore (the runtime has them)
    assert not names & {"sagemaker", "stepfunctions", "numpy", "pandas"}
    assert not names & {"boto3", "botocore", "s3transfer"}
    assert build_lambda.forbidden_packages(site) == []
    # ... and no code imports them either
    assert build_lambda.forbidden_imports(site / "shared") == []
    assert build_lambda.forbidden_imports(lambda_build.root / "functions") == []


def test_forbidden_checks_catch_a_forbidden_package_and_import(tmp_path: Path) -> None:
    # Given a site dir holding numpy and a module importing the stepfunctions SDK
    (tmp_path / "numpy").mkdir()
    (tmp_path / "pandas-2.2.0.dist-info").mkdir()
    (tmp_path / "mod.py").write_text("import os\nfrom stepfunctions.steps import Chain\n")
    # Then both checks report them
    assert build_lambda.forbidden_packages(tmp_path) == ["numpy", "pandas-2.2.0.dist-info"]
    assert build_lambda.forbidden_imports(tmp_path) == ["mod.py: stepfunctions.steps"]


@pytest.mark.parametrize(
    "module",
    ["sfn_mlops.local.cloud", "infra.app", "state_machine", "benchmarks.run", "aws_cdk", "moto"],
)
def test_forbidden_imports_catch_project_and_tool_code_even_lazily(
    tmp_path: Path, module: str
) -> None:
    # Given Lambda code importing the project's non-Lambda code or a tool, inside a function
    (tmp_path / "handler.py").write_text(
        f"import json\n\n\ndef handler(event, context):\n    import {module}\n    return event\n"
    )
    (tmp_path / "logic.py").write_text(f"def f():\n    from {module} import x\n")
    # Then the build's scan names each file and module
    assert build_lambda.forbidden_imports(tmp_path) == [
        f"handler.py: {module}",
        f"logic.py: {module}",
    ]


def test_the_build_refuses_lambda_code_that_imports_the_local_cloud(
    lambda_build: build_lambda.BuildResult, tmp_path: Path
) -> None:
    # Given a checkout whose gate function lazily imports moto (the layer already built)
    source = tmp_path / "src"
    for name in ("functions", "shared"):
        shutil.copytree(resources.REPO_ROOT / name, source / name)
    shutil.copy2(resources.REPO_ROOT / "pyproject.toml", source / "pyproject.toml")
    handler = source / "functions" / "gate" / "handler.py"
    handler.write_text(handler.read_text() + "\n\ndef _x() -> None:\n    import moto\n")
    out = tmp_path / "out"
    shutil.copytree(lambda_build.root / "layer", out / "layer")  # no reinstall: same pins
    # When the assets are built, Then the build fails naming the file and the module
    with pytest.raises(build_lambda.BuildError, match=r"gate/handler\.py: moto"):
        build_lambda.build(out, source_root=source)
