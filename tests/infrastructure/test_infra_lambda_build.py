"""The Lambda assets (infra/build_lambda.py): small, for the right platform, nothing forbidden."""

from __future__ import annotations

import ast
import dataclasses
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


def test_compiled_wheels_match_the_lambda_runtime(lambda_build: build_lambda.BuildResult) -> None:
    # Given the compiled extension of pydantic-core in the layer
    site = lambda_build.root / "layer" / "python"
    (extension,) = (site / "pydantic_core").glob("_pydantic_core*.so")
    # Then it is CPython 3.12 for the architecture the functions run on
    cpu = {"arm64": "aarch64", "x86_64": "x86_64"}[build_lambda.ARCHITECTURE]
    assert f"cpython-{build_lambda.PYTHON_VERSION.replace('.', '')}-{cpu}" in extension.name


def test_layer_pins_what_the_tests_ran_against(lambda_build: build_lambda.BuildResult) -> None:
    from importlib import metadata

    site = lambda_build.root / "layer" / "python"
    for pin in lambda_build.requirements:
        name, version = pin.split("==")
        assert metadata.version(name) == version
        assert (site / f"{name.replace('-', '_')}-{version}.dist-info").is_dir()
    # shared/ ships in the layer, pruned of bytecode
    assert (site / "shared" / "resources.py").is_file()
    assert not list(site.rglob("__pycache__"))


@pytest.mark.parametrize("spec", resources.FUNCTIONS, ids=lambda s: s.key)
def test_each_function_asset_holds_only_its_code_and_its_handler(
    lambda_build: build_lambda.BuildResult, spec: resources.FunctionSpec
) -> None:
    # Given the function's code asset
    root = lambda_build.root / "functions" / spec.key
    # Then it holds the functions package and only this function's folder
    assert sorted(p.name for p in (root / "functions").iterdir()) == sorted(
        ["__init__.py", spec.code_folder]
    )
    # ... and the handler named in the spec exists there
    module, function = spec.handler.rsplit(".", 1)
    source = root.joinpath(*module.split(".")).with_suffix(".py")
    defined = {n.name for n in ast.parse(source.read_text()).body if hasattr(n, "name")}
    assert function in defined, f"{spec.handler} not defined in {source}"


def test_a_missing_function_folder_fails_the_build_clearly(tmp_path: Path) -> None:
    # Given a source tree without the functions/ package
    (tmp_path / "shared").mkdir()
    (tmp_path / "pyproject.toml").write_text((resources.REPO_ROOT / "pyproject.toml").read_text())
    # When the build runs, Then it names what is missing
    with pytest.raises(
        build_lambda.BuildError, match=r"missing Lambda sources: .*functions/__init__\.py"
    ):
        build_lambda.build(tmp_path / "out", source_root=tmp_path)


def test_layer_requirements_come_from_the_base_dependencies(tmp_path: Path) -> None:
    # Given a pyproject whose base dependencies include boto3
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["boto3>=1.35", "pydantic>=2.7,<3"]\n'
    )
    # Then the layer pins pydantic (as installed) and leaves boto3 to the runtime
    from importlib import metadata

    untraced = tuple(dataclasses.replace(f, tracing=False) for f in resources.FUNCTIONS)
    pins = build_lambda.layer_requirements(pyproject, untraced)
    assert pins == (f"pydantic=={metadata.version('pydantic')}",)
    # ... and a tracing function without the X-Ray SDK among them is refused
    tracer = dataclasses.replace(resources.FUNCTIONS[0], tracing=True)
    with pytest.raises(build_lambda.BuildError, match="add aws-xray-sdk"):
        build_lambda.layer_requirements(pyproject, (tracer,))
