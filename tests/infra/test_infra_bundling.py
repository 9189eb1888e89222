"""The Lambda asset is built on this machine: functions/ plus pyjwt, no Docker, no pip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aws_cdk import BundlingOptions, DockerImage

from functions.chat.schema import FUNCTIONS
from stacks.bundling import LocalFunctionsBundler


def _bundle(tmp_path: Path) -> Path:
    out = tmp_path / "asset"
    out.mkdir()
    bundled = LocalFunctionsBundler().try_bundle(
        str(out), BundlingOptions(image=DockerImage.from_registry("unused"))
    )
    assert bundled is True
    return out


def test_the_asset_holds_every_handler_the_domain_package_and_pyjwt(tmp_path: Path) -> None:
    out = _bundle(tmp_path)
    for spec in FUNCTIONS:
        assert (out / "functions" / spec.name / "handler.py").is_file(), spec.handler
    assert (out / "functions" / "chat" / "schema.py").is_file()
    assert (out / "jwt" / "__init__.py").is_file()
    assert list(out.glob("*.dist-info")), "pyjwt's metadata travels with it"


def test_the_asset_has_no_caches_or_tests(tmp_path: Path) -> None:
    source = tmp_path / "functions"
    for relative in (
        "__init__.py",
        "chat/store.py",
        "chat/__pycache__/store.cpython-311.pyc",
        "tests/test_x.py",
    ):
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text("# x\n")
    out = tmp_path / "asset"
    out.mkdir()
    LocalFunctionsBundler(source).try_bundle(
        str(out), BundlingOptions(image=DockerImage.from_registry("unused"))
    )
    copied = sorted(
        p.relative_to(out / "functions").as_posix() for p in (out / "functions").rglob("*") if p.is_file()
    )
    assert copied == ["__init__.py", "chat/store.py"]


def test_pyjwt_imports_from_the_asset_alone(tmp_path: Path) -> None:
    """Only the asset on sys.path (plus the standard library): the bundled jwt signs and verifies."""
    out = _bundle(tmp_path)
    code = (
        "import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; sys.path.insert(0, sys.argv[1]);"
        "import jwt; t = jwt.encode({'sub': 'a'}, 'k' * 32, algorithm='HS256');"
        "assert jwt.decode(t, 'k' * 32, algorithms=['HS256'])['sub'] == 'a';"
        "assert jwt.__file__.startswith(sys.argv[1]), jwt.__file__"
    )
    subprocess.run([sys.executable, "-S", "-c", code, str(out)], check=True, timeout=60)
