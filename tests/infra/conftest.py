"""Infrastructure tests: each stage configuration is synthesized once per session (jsii is slow)
and shared by every test through the fixtures below."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

from aws_cdk.assertions import Template

from stacks.synth_all import CONFIGURATIONS, SynthResult, synthesize


@pytest.fixture(scope="session", autouse=True)
def _offline_aws_environment() -> Iterator[None]:
    """Nothing here may reach AWS: dummy credentials, a fixed region, no CLI-provided account."""
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "CDK_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ.pop("CDK_DEFAULT_ACCOUNT", None)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], SynthResult]:
    """``synth(name)``: the synthesized configuration ``name`` of stacks.synth_all (cached)."""
    root = tmp_path_factory.mktemp("cdk.out")
    cache: dict[str, SynthResult] = {}

    def get(name: str) -> SynthResult:
        if name not in cache:
            cache[name] = synthesize(name, CONFIGURATIONS[name], root / name)
        return cache[name]

    return get


def only_template(result: SynthResult) -> dict[str, Any]:
    (template,) = result.templates.values()
    return template


@pytest.fixture(scope="session")
def default_result(synth: Callable[[str], SynthResult]) -> SynthResult:
    return synth("default")


@pytest.fixture(scope="session")
def default_json(default_result: SynthResult) -> dict[str, Any]:
    return only_template(default_result)


@pytest.fixture(scope="session")
def default_template(default_json: dict[str, Any]) -> Template:
    return Template.from_json(default_json)


@pytest.fixture(scope="session")
def prod_json(synth: Callable[[str], SynthResult]) -> dict[str, Any]:
    return only_template(synth("prod"))


@pytest.fixture(scope="session")
def prod_template(prod_json: dict[str, Any]) -> Template:
    return Template.from_json(prod_json)


@pytest.fixture(scope="session")
def edge_json(synth: Callable[[str], SynthResult]) -> dict[str, Any]:
    return only_template(synth("edge"))


@pytest.fixture(scope="session")
def edge_template(edge_json: dict[str, Any]) -> Template:
    return Template.from_json(edge_json)


@pytest.fixture(scope="session")
def replicas_json(synth: Callable[[str], SynthResult]) -> dict[str, Any]:
    return only_template(synth("replicas"))
