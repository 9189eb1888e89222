"""Build the CDK app for one configuration: what app.py, stacks.synth_all and the tests share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# jsii's warning for a Node.js past its end of life is left on: docs/deploy.md asks for an
# active LTS (22+), and whoever deploys with an older one should hear it. Only the test suite
# silences it (tests/conftest.py), for machines that still run Node 20.
from aws_cdk import App

from stacks.config import DeploymentConfig
from stacks.nag import apply_nag_packs, suppress_justified_findings
from stacks.stack import DynamoWaveStack


def build_app(
    context: Mapping[str, Any] | None = None,
    *,
    outdir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[App, DynamoWaveStack]:
    """An App with the DynamoWave stack for ``context`` (plus cdk.json/-c context), checked by cdk-nag."""
    app = App(context=dict(context or {}), outdir=outdir)
    config = DeploymentConfig.from_context(app.node.try_get_context, environ)
    stack = DynamoWaveStack(app, config=config)
    suppress_justified_findings(stack)
    apply_nag_packs(app)
    return app, stack
