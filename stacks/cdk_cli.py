"""`make synth`'s last step: the real CDK CLI (npm aws-cdk@2, pinned in package.json) synthesizes
app.py with cdk.json as shipped, offline, and must not warn about unconfigured feature flags.

cdk.json's context holds every flag `cdk init` recommends for this aws-cdk-lib, except the values
in FEATURE_FLAG_CHOICES, each with its reason. The template changes the flags brought are listed
in docs/infrastructure.md ("Feature flags").

    python -m stacks.cdk_cli [--outdir cdk.out/cli]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CDK_BINARY = REPO_ROOT / "node_modules" / ".bin" / "cdk"
UNCONFIGURED_FLAGS_WARNING = "feature flags are not configured"

# Flags set to something other than the recommended value, and why.
FEATURE_FLAG_CHOICES: dict[str, str] = {
    "@aws-cdk/core:target-partitions": "Only the aws partition: stacks.config refuses China and GovCloud "
    "regions (the Powertools layer is published there by other accounts).",
    "@aws-cdk/core:annotationsInValidationReport": "Kept false so a cdk-nag finding stays a synthesis "
    "message that `make synth` reports for every configuration, instead of aborting the first synth.",
}


def unconfigured_flags(assembly: Path) -> list[str]:
    """Flags of the assembly's feature-flag report that cdk.json leaves at a non-recommended default
    (what the CLI counts in its "N feature flags are not configured" warning)."""
    manifest: dict[str, Any] = json.loads((assembly / "manifest.json").read_text())
    flags: dict[str, dict[str, Any]] = {}
    for artifact in manifest["artifacts"].values():
        if artifact["type"] == "cdk:feature-flag-report":
            flags.update(artifact["properties"]["flags"])
    return sorted(
        name
        for name, flag in flags.items()
        if "userValue" not in flag
        and flag.get("recommendedValue") != flag.get("unconfiguredBehavesLike", {}).get("v2", False)
    )


def flags_off_recommendation(assembly: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((assembly / "manifest.json").read_text())
    return {
        name: flag["userValue"]
        for artifact in manifest["artifacts"].values()
        if artifact["type"] == "cdk:feature-flag-report"
        for name, flag in artifact["properties"]["flags"].items()
        if "userValue" in flag and flag["userValue"] != flag.get("recommendedValue")
    }


def offline_environment() -> dict[str, str]:
    """No credentials, no profile, no telemetry: the synth must need nothing from outside."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "CDK_DEFAULT_")) and key not in ("CDK_DISABLE_CLI_TELEMETRY",)
    }
    environment["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    return environment


def cli_synth(outdir: Path) -> subprocess.CompletedProcess[str]:
    if not CDK_BINARY.is_file():
        raise FileNotFoundError(
            f"{CDK_BINARY} is missing: `make synth` installs the CLI (npm ci) on first use"
        )
    command = [
        str(CDK_BINARY),
        "synth",
        "--no-notices",
        "--no-version-reporting",
        "--quiet",
        "-o",
        str(outdir),
    ]
    return subprocess.run(  # noqa: S603 - our own pinned CLI, arguments built here
        command,
        cwd=REPO_ROOT,
        env=offline_environment(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.cdk_cli", description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=Path("cdk.out/cli"))
    args = parser.parse_args(argv)
    run = cli_synth(args.outdir)
    output = run.stdout + run.stderr
    problems = []
    if run.returncode != 0:
        problems.append(f"cdk synth exited {run.returncode}")
    if UNCONFIGURED_FLAGS_WARNING in output:
        problems.append("the CLI warns about unconfigured feature flags")
    if not list(args.outdir.glob("*.template.json")):
        problems.append(f"no template in {args.outdir}")
    else:
        unexpected = set(flags_off_recommendation(args.outdir)) - set(FEATURE_FLAG_CHOICES)
        if unconfigured_flags(args.outdir) or unexpected:
            problems.append(
                f"feature flags: unconfigured {unconfigured_flags(args.outdir)}, unexplained {sorted(unexpected)}"
            )
    if problems:
        print(output[-4000:], file=sys.stderr)
        print(f"cdk CLI synth FAILED: {'; '.join(problems)}", file=sys.stderr)
        return 1
    print(f"cdk CLI synth ok (offline, cdk.json as shipped) -> {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
