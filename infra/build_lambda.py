"""Build the Lambda assets without Docker: `python -m infra.build_lambda build/lambda`.

Layout written under the destination (what infra/constructs/functions.py reads):

    functions/<key>/functions/__init__.py        one code asset per FunctionSpec: the package
    functions/<key>/functions/<code_folder>/...  root plus that function's own folder only
    layer/python/shared/...                      the library every Lambda ships with
    layer/python/<dependencies>                  pyproject's base dependencies minus boto3,
                                                 wheels for the Lambda runtime's platform
    manifest.json                                runtime, architecture, pins, sizes

The dependency wheels come from `pip install --target --platform ... --only-binary=:all:`
so the compiled pydantic-core matches Lambda's Python and CPU, not this machine's. The pins
are the versions installed in this environment (what the tests ran against). The pip step is
skipped when an earlier build already holds the same pins for the same platform.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from shared import resources

#: The Lambda runtime and architecture the wheels are built for (infra/constructs reads these).
PYTHON_VERSION = "3.12"
ARCHITECTURE = "arm64"  # Graviton: cheaper per GB-second; every dependency ships aarch64 wheels
_PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}

#: In the Lambda runtime already, or never allowed in a Lambda package.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
#: Heavy SDKs and data libraries, and the project's own non-Lambda code and tools: the
#: local cloud, the CDK app, the definition builder, the benchmarks, CDK and moto. None of
#: them is in a Lambda package, so an import of one (even a lazy one, inside a function:
#: the AST scan sees those) passes locally and fails only on AWS.
FORBIDDEN = frozenset(
    {"sagemaker", "stepfunctions", "numpy", "pandas"}
    | {"sfn_mlops", "infra", "state_machine", "benchmarks", "aws_cdk", "moto"}
)
#: Unzipped size limit we hold the layer to (Lambda's own limit is 250 MB for all layers).
LAYER_LIMIT_BYTES = 15 * 1024 * 1024

_PRUNE_DIRS = {"__pycache__", "tests"}
_PRUNE_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
_PRUNE_SUFFIXES = {".pyc", ".pyo", ".pyi"}


class BuildError(RuntimeError):
    """The Lambda assets cannot be built as asked (missing code, a forbidden package...)."""


@dataclass(frozen=True)
class BuildResult:
    root: Path
    layer_bytes: int
    function_bytes: dict[str, int]
    requirements: tuple[str, ...]


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise BuildError(f"cannot read a package name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def layer_requirements(
    pyproject: Path = resources.REPO_ROOT / "pyproject.toml",
    functions: tuple[resources.FunctionSpec, ...] = resources.FUNCTIONS,
) -> tuple[str, ...]:
    """`name==version` for each base dependency of pyproject.toml (what every Lambda ships
    with) minus what the runtime provides, pinned to the version installed here."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    names = [_name(d) for d in deps if _name(d) not in RUNTIME_PROVIDED]
    tracing = [f.key for f in functions if f.tracing]
    if tracing and "aws-xray-sdk" not in names:
        raise BuildError(
            f"functions {tracing} trace (Powertools Tracer needs the X-Ray SDK): add "
            "aws-xray-sdk to [project].dependencies in pyproject.toml"
        )
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError as exc:
            raise BuildError(f"{name} is not installed here; run `make test` set-up first") from exc
    return tuple(sorted(pins))


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _prune(root: Path) -> None:
    """Drop what no import needs: bytecode, stubs, test suites, console scripts, RECORD."""
    shutil.rmtree(root / "bin", ignore_errors=True)
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in _PRUNE_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and (
            path.suffix in _PRUNE_SUFFIXES
            or (path.parent.name.endswith(".dist-info") and path.name in _PRUNE_FILES)
        ):
            path.unlink()


def _copy_package(src: Path, dst: Path) -> None:
    if not src.is_dir():
        raise BuildError(f"{src} does not exist")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests", ".*"))


def _install_dependencies(site: Path, pins: tuple[str, ...], platform: str) -> None:
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(site), "--platform", platform, "--implementation", "cp",
        "--python-version", PYTHON_VERSION, "--only-binary=:all:", "--no-compile",
        "--upgrade", *pins,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode:
        raise BuildError(f"pip could not fetch the layer's wheels:\n{result.stderr.strip()}")
    # Some dependencies declare botocore (aws-xray-sdk does), which the runtime provides.
    for name in RUNTIME_PROVIDED:
        for path in site.glob(f"{name.replace('-', '_')}*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def forbidden_packages(site: Path) -> list[str]:
    """Top-level packages, modules or distributions in `site` that no Lambda may ship."""
    found = []
    for path in site.iterdir():
        stem = re.split(r"[-.]", path.name, maxsplit=1)[0].lower()
        if stem in FORBIDDEN:
            found.append(path.name)
    return sorted(found)


def forbidden_imports(root: Path) -> list[str]:
    """`file: module` for every import of a forbidden package in the .py files under `root`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [
                f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN
            ]
    return found


def build(
    dest: Path,
    *,
    source_root: Path = resources.REPO_ROOT,
    architecture: str = ARCHITECTURE,
) -> BuildResult:
    """Write the function code assets and the dependency layer under `dest`."""
    dest = dest.resolve()
    platform = _PLATFORMS[architecture]
    package_init = source_root / "functions" / "__init__.py"
    missing = [str(p) for p in (package_init, source_root / "shared") if not p.exists()] + [
        str(source_root / "functions" / spec.code_folder)
        for spec in resources.FUNCTIONS
        if not (source_root / "functions" / spec.code_folder).is_dir()
    ]
    if missing:
        raise BuildError(f"missing Lambda sources: {', '.join(missing)}")
    pins = layer_requirements(source_root / "pyproject.toml")
    fingerprint = hashlib.sha256(json.dumps([pins, platform, PYTHON_VERSION]).encode()).hexdigest()

    # Dependencies: reinstalled only when the pins or the platform change.
    layer_site = dest / "layer" / "python"
    stamp = dest / "layer" / ".dependencies.sha256"
    if not stamp.is_file() or stamp.read_text() != fingerprint:
        shutil.rmtree(dest / "layer", ignore_errors=True)
        layer_site.mkdir(parents=True)
        _install_dependencies(layer_site, pins, platform)
        _prune(layer_site)
        stamp.write_text(fingerprint)
    shutil.rmtree(layer_site / "shared", ignore_errors=True)
    _copy_package(source_root / "shared", layer_site / "shared")

    # Code: one asset per function, holding only its own folder.
    code_root = dest / "functions"
    shutil.rmtree(code_root, ignore_errors=True)
    for spec in resources.FUNCTIONS:
        target = code_root / spec.key / "functions"
        _copy_package(source_root / "functions" / spec.code_folder, target / spec.code_folder)
        shutil.copy2(package_init, target / "__init__.py")

    bad = (
        forbidden_packages(layer_site)
        + forbidden_imports(layer_site / "shared")
        + forbidden_imports(code_root)
    )
    if bad:
        raise BuildError(f"forbidden packages in the Lambda assets: {bad}")
    layer_bytes = _size(dest / "layer")
    if layer_bytes > LAYER_LIMIT_BYTES:
        raise BuildError(f"layer is {layer_bytes / 2**20:.1f} MiB unzipped (limit 15 MiB)")
    result = BuildResult(
        root=dest,
        layer_bytes=layer_bytes,
        function_bytes={s.key: _size(code_root / s.key) for s in resources.FUNCTIONS},
        requirements=pins,
    )
    manifest = {
        "python_version": PYTHON_VERSION,
        "architecture": architecture,
        "platform": platform,
        "requirements": list(pins),
        "layer_bytes": layer_bytes,
        "function_bytes": result.function_bytes,
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="build directory, e.g. build/lambda")
    parser.add_argument("--architecture", choices=sorted(_PLATFORMS), default=ARCHITECTURE)
    args = parser.parse_args(argv)
    try:
        result = build(args.dest, architecture=args.architecture)
    except BuildError as exc:
        print(f"build_lambda: {exc}", file=sys.stderr)
        return 1
    print(
        f"layer {result.layer_bytes / 2**20:.2f} MiB unzipped ({', '.join(result.requirements)}); "
        f"{len(result.function_bytes)} function assets in {result.root / 'functions'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
