"""`make synth`: synthesize every stage configuration into cdk.out/<name>/ and check each one.

For each configuration: cdk-nag (AwsSolutions + Serverless packs, CSV reports next to the
templates) must report no unsuppressed finding, cfn-lint must report no error on any template,
and checkov no failed check that stacks/checkov.py does not skip with a reason. Exit status 1
otherwise. Offline and without Docker (see stacks.bundling).

    python -m stacks.synth_all [--outdir cdk.out] [--only default edge ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import cx_api as cxapi

from stacks.application import build_app
from stacks.bundling import REPO_ROOT
from stacks.checkov import CheckovFinding, failed_checks
from stacks.nag import NAG_PACK_PREFIXES

SYNTH_REGION = "us-east-1"
EXAMPLE_ACCOUNT = "123456789012"  # only the replicas configuration needs one (its key ARNs)
EXAMPLE_REVIEW_FUNCTION_ARN = f"arn:aws:lambda:{SYNTH_REGION}:{EXAMPLE_ACCOUNT}:function:dynamowave-review"

# name -> CDK context. Every optional feature appears in at least one configuration.
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    # The explicit production configuration (stacks.config.PROFILES) as docs/deploy.md deploys it,
    # with a message review function (its ARN from context: the ingress may invoke it, nothing else).
    "prod": {
        "profile": "production",
        "alarmEmail": "alarms@example.com",
        "reviewFunctionArn": EXAMPLE_REVIEW_FUNCTION_ARN,
    },
    "edge": {"edge": "true"},
    "replicas": {
        "stage": "global",
        "account": EXAMPLE_ACCOUNT,
        "replicaRegions": "us-west-2,eu-west-1",
        "replicaKeyArns": json.dumps(
            {
                "us-west-2": f"arn:aws:kms:us-west-2:{EXAMPLE_ACCOUNT}:key/mrk-0123456789abcdef0123456789abcdef",
                "eu-west-1": f"arn:aws:kms:eu-west-1:{EXAMPLE_ACCOUNT}:key/mrk-0123456789abcdef0123456789abcdef",
            }
        ),
    },
}

# cfn-lint warnings that come from aws-cdk-lib itself, with why they are harmless.
EXPLAINED_CFN_LINT_WARNINGS: dict[str, str] = {
    "W3005": "aws-cdk-lib's Function adds DependsOn its role (to wait for the role's DefaultPolicy too); "
    "the role part duplicates the GetAtt. Redundant, not wrong.",
}


@dataclass(frozen=True)
class LintFinding:
    template: str
    rule: str
    message: str
    path: str

    def __str__(self) -> str:
        return f"{self.template}: {self.rule} {self.message} at {self.path}"


@dataclass
class SynthResult:
    name: str
    outdir: Path
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    nag_findings: list[str] = field(default_factory=list)
    other_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lint_errors: list[LintFinding] = field(default_factory=list)
    lint_warnings: list[LintFinding] = field(default_factory=list)
    checkov_findings: list[CheckovFinding] = field(default_factory=list)

    @property
    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))

    @property
    def unexplained_lint_warnings(self) -> list[LintFinding]:
        return [w for w in self.lint_warnings if w.rule not in EXPLAINED_CFN_LINT_WARNINGS]

    @property
    def ok(self) -> bool:
        return not (self.nag_findings or self.other_errors or self.lint_errors or self.checkov_findings)


def project_context(cdk_json: Path = REPO_ROOT / "cdk.json") -> dict[str, Any]:
    """The "context" of cdk.json, which the CDK CLI would pass to app.py."""
    if not cdk_json.is_file():
        return {}
    context = json.loads(cdk_json.read_text()).get("context", {})
    return dict(context) if isinstance(context, dict) else {}


def synthesize(name: str, context: Mapping[str, Any], outdir: Path, *, lint: bool = True) -> SynthResult:
    """Synthesize one configuration (over cdk.json's context) into ``outdir``; collect the checks."""
    if outdir.exists():
        shutil.rmtree(outdir)
    app, _ = build_app(
        {**project_context(), "region": SYNTH_REGION, **context}, outdir=str(outdir), environ={}
    )
    assembly = app.synth()
    result = SynthResult(name=name, outdir=outdir)
    for artifact in assembly.stacks:
        result.templates[artifact.stack_name] = dict(artifact.template)
        collect_messages(artifact, result)
        if lint:
            _lint(outdir / artifact.template_file, result)
    return result


def collect_messages(artifact: cxapi.CloudFormationStackArtifact, result: SynthResult) -> None:
    """Sort a stack's synthesis messages: cdk-nag findings, other errors, other warnings."""
    for message in artifact.messages:
        text = f"{message.id}: {message.entry.data}"
        level = str(message.level)
        if str(message.entry.data).startswith(NAG_PACK_PREFIXES):
            # Unsuppressed nag findings are errors or warnings; both count.
            result.nag_findings.append(text)
        elif level.endswith("ERROR"):
            result.other_errors.append(text)
        elif level.endswith("WARNING"):
            result.warnings.append(text)


def _lint(template: Path, result: SynthResult) -> None:
    from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]

    for match in lint_file(template, ManualArgs(regions=[SYNTH_REGION])):
        finding = LintFinding(
            template=template.name,
            rule=match.rule.id,
            message=match.message,
            path="/".join(str(part) for part in getattr(match, "path", []) or []),
        )
        if match.rule.id.startswith("E"):
            result.lint_errors.append(finding)
        elif match.rule.id.startswith("W"):
            result.lint_warnings.append(finding)


def run_checkov(results: Sequence[SynthResult]) -> None:
    """One checkov run over every template of ``results``; findings go to their configuration."""
    by_file = {template.resolve(): result for result in results for template in result.template_files}
    for finding in failed_checks(list(by_file)):
        by_file[Path(finding.file).resolve()].checkov_findings.append(finding)


def _report(result: SynthResult) -> None:
    status = "ok" if result.ok else "FAILED"
    print(f"[{result.name}] {status}: {', '.join(result.templates)} -> {result.outdir}")
    for line in result.nag_findings:
        print(f"  cdk-nag: {line}")
    for line in result.other_errors:
        print(f"  error: {line}")
    for line in result.warnings:
        print(f"  warning: {line}")
    for finding in result.lint_errors:
        print(f"  cfn-lint error: {finding}")
    for finding in result.unexplained_lint_warnings:
        print(f"  cfn-lint warning: {finding}")
    for checkov_finding in result.checkov_findings:
        print(f"  checkov: {checkov_finding}")
    explained = sorted(
        {w.rule for w in result.lint_warnings} - {w.rule for w in result.unexplained_lint_warnings}
    )
    for rule in explained:
        print(f"  cfn-lint {rule} (explained): {EXPLAINED_CFN_LINT_WARNINGS[rule]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.synth_all", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--outdir", type=Path, default=Path("cdk.out"), help="parent of one folder per configuration"
    )
    parser.add_argument("--only", nargs="+", choices=sorted(CONFIGURATIONS), help="synthesize only these")
    args = parser.parse_args(argv)
    names = args.only or list(CONFIGURATIONS)
    results = [synthesize(name, CONFIGURATIONS[name], args.outdir / name) for name in names]
    run_checkov(results)
    for result in results:
        _report(result)
    failed = [result.name for result in results if not result.ok]
    if failed:
        print(f"synth failed for: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(results)} configurations synthesized; cdk-nag, cfn-lint and checkov clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
