#!/usr/bin/env python3
"""CDK entry point (cdk.json: "app"). Options are CDK context: see docs/deploy.md."""

from stacks.application import build_app

if __name__ == "__main__":
    app, _ = build_app()
    app.synth()
