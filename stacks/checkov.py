"""checkov on every synthesized template: each failed check is fixed in the stack or skipped
here, once, with the reason it does not apply. A check that fails and is not skipped fails
`make synth` and tests/infra.

checkov pins boto3 and packaging to versions the rest of the toolchain cannot share (pytest 9
needs packaging>=24), so it lives in its own virtualenv, .venv-checkov, installed by make from
the ``checkov`` extra of pyproject.toml.

    python -m stacks.checkov --requirement     # what make installs into .venv-checkov
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKOV_VENV = REPO_ROOT / ".venv-checkov"

NO_ASYNC_EVENT = (
    "authorizer and ingress are invoked synchronously by API Gateway, the fan-out by an SQS event "
    "source whose redrive policy is its alarmed DLQ, the janitor by a data-less schedule that the next "
    "run repeats (the same reasons cdk-nag's Serverless-LambdaDLQ suppressions give)"
)
SKIPPED_CHECKS: dict[str, str] = {
    "CKV_AWS_115": "Function-level reserved concurrency is opt-in: a new account (limit 10) cannot "
    "reserve any, so the default reserves none; profile=production reserves ingress and fan-out "
    "(docs/deploy.md, production).",
    "CKV_AWS_116": f"No Lambda DLQ: {NO_ASYNC_EVENT}.",
    "CKV_AWS_117": "No VPC by design: the functions call only AWS APIs (DynamoDB, SQS, the API Gateway "
    "Management API, Secrets Manager) and reach no private resource; a VPC would add NAT or endpoints "
    "and cold-start time for nothing.",
    "CKV_AWS_158": "Log groups use CloudWatch Logs' own encryption at rest: the functions log ids, "
    "status and reasons, never message text or tokens, and API Gateway data tracing is off.",
    "CKV_AWS_173": "The functions' environment holds only resource names, URLs, ARNs and tunables; "
    "the signing and origin secrets are read from Secrets Manager under customer-managed keys. "
    "Lambda encrypts the environment at rest with its AWS-managed key.",
    "CKV_AWS_174": "edge=true uses the default *.cloudfront.net certificate, whose TLS policy CloudFront "
    "fixes; a custom domain with TLSv1.2_2021 is a deployment choice (cdk-nag AwsSolutions-CFR4).",
    "CKV_AWS_86": "Every viewer request is one WebSocket upgrade, already in the API stage's access log; "
    "WAF keeps sampled requests and metrics per rule (cdk-nag AwsSolutions-CFR3).",
}


@dataclass(frozen=True)
class CheckovFinding:
    check_id: str
    name: str
    resource: str
    file: str

    def __str__(self) -> str:
        return f"{Path(self.file).name}: {self.check_id} {self.name} ({self.resource})"


def requirement(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The checkov requirement of pyproject.toml's ``checkov`` extra (one source for make)."""
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["checkov"]
    (spec,) = extras
    return str(spec)


def checkov_binary() -> Path:
    override = os.environ.get("DYNAMOWAVE_CHECKOV")
    binary = Path(override) if override else CHECKOV_VENV / "bin" / "checkov"
    if not binary.is_file():
        raise FileNotFoundError(
            f"checkov is not installed at {binary}: `make checkov` installs it (make synth and make test do)"
        )
    return binary


def failed_checks(templates: Sequence[Path]) -> list[CheckovFinding]:
    """Run checkov (offline) on ``templates``; every failed check that is not skipped here."""
    if not templates:
        return []
    command = [
        str(checkov_binary()),
        "--framework",
        "cloudformation",
        "--output",
        "json",
        "--quiet",
        "--compact",
        "--skip-download",  # offline: no guideline or policy download
        "--skip-check",
        ",".join(SKIPPED_CHECKS),
    ]
    for template in templates:
        command += ["--file", str(template)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    # checkov exits 1 when a check fails; anything else, or no JSON, is checkov itself failing.
    if run.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({run.returncode}): {run.stderr[-2000:]}")
    try:
        reports: Any = json.loads(run.stdout) if run.stdout.strip() else []
    except ValueError as exc:
        raise RuntimeError(f"checkov printed no JSON: {run.stdout[:500]} {run.stderr[-1000:]}") from exc
    if isinstance(reports, dict):
        reports = [reports]
    findings = [
        CheckovFinding(
            c["check_id"], c.get("check_name", ""), c.get("resource", ""), c.get("file_abs_path", "")
        )
        for report in reports
        for c in report.get("results", {}).get("failed_checks", [])
    ]
    passed = sum(int(report.get("summary", {}).get("passed", 0)) for report in reports)
    if run.returncode == 0 and passed == 0:
        raise RuntimeError(f"checkov checked nothing in {[str(t) for t in templates]}")
    return findings


if __name__ == "__main__":
    if sys.argv[1:] == ["--requirement"]:
        print(requirement())
        sys.exit(0)
    print(__doc__)
    sys.exit(2)
