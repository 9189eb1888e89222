"""The Lambda code asset, bundled on this machine: no Docker, no network.

What the functions import, and where it comes from on Lambda:

* ``functions/`` (this repository): copied into the asset root, so handler strings are
  ``functions.<name>.handler.handler``.
* ``pyjwt``: pure Python, copied file by file from the installed distribution (the version
  pyproject.toml pins), so the asset matches what the tests ran against.
* ``aws-lambda-powertools`` (with the X-Ray SDK): the AWS-managed Powertools v3 layer
  (see :mod:`stacks.functions`), built per runtime and architecture by AWS.
* ``boto3`` (with botocore and urllib3, which ``SignedPoster`` uses directly): part of the
  Lambda Python runtime.

Nothing here calls pip, so ``cdk synth`` works offline and gives the same asset every time.
"""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import cast

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO_ROOT / "functions"
# Distributions copied into the asset (top-level import names are read from their RECORD).
VENDORED_DISTRIBUTIONS: tuple[str, ...] = ("PyJWT",)
_SKIPPED_PARTS = frozenset({"__pycache__", "tests", ".pytest_cache", ".mypy_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def _skip(relative: PurePosixPath) -> bool:
    return bool(_SKIPPED_PARTS.intersection(relative.parts)) or relative.name.endswith(_SKIPPED_SUFFIXES)


def copy_functions(source: Path, destination: Path) -> None:
    """Copy the ``functions`` package (without tests and caches) to ``destination/functions``."""
    for path in sorted(source.rglob("*")):
        relative = PurePosixPath(path.relative_to(source).as_posix())
        if path.is_dir() or _skip(relative):
            continue
        target = destination / "functions" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def copy_distribution(name: str, destination: Path) -> None:
    """Copy an installed pure-Python distribution (its modules and dist-info) into ``destination``."""
    distribution = metadata.distribution(name)
    files = distribution.files or []
    copied = 0
    for entry in files:
        relative = PurePosixPath(str(entry))
        if relative.is_absolute() or ".." in relative.parts or _skip(relative):
            continue  # scripts installed outside site-packages, caches
        if relative.suffix in (".so", ".pyd"):
            raise RuntimeError(f"{name} has compiled extensions; it cannot be copied into an arm64 asset")
        source = Path(str(distribution.locate_file(entry)))
        if not source.is_file():
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied += 1
    if copied == 0:
        raise RuntimeError(f"distribution {name} is installed but has no files to bundle")


@jsii.implements(ILocalBundling)
class LocalFunctionsBundler:
    """ILocalBundling: CDK calls this instead of starting the (never used) Docker image."""

    def __init__(self, functions_dir: Path = FUNCTIONS_DIR) -> None:
        self._functions_dir = functions_dir

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        del options  # everything this bundler needs is on this machine
        destination = Path(output_dir)
        copy_functions(self._functions_dir, destination)
        for name in VENDORED_DISTRIBUTIONS:
            copy_distribution(name, destination)
        return True


def functions_code(functions_dir: Path = FUNCTIONS_DIR) -> lambda_.Code:
    """One asset for every function; share the returned object so a stack bundles it once."""
    return lambda_.Code.from_asset(
        str(functions_dir),
        # The hash covers the bundled output (functions and the vendored pyjwt version), so an
        # upgrade of either ships new code; bundling is a file copy, cheap enough to redo.
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.14"),  # never pulled
            # jsii calls try_bundle(output_dir, options) positionally; the generated Protocol spells
            # the struct as keyword arguments, which mypy cannot match to a jsii implementation.
            local=cast(ILocalBundling, LocalFunctionsBundler(functions_dir)),
        ),
    )
