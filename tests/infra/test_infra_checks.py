"""Every configuration passes cdk-nag (no unsuppressed finding) and cfn-lint (no error)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sns as sns

from stacks.cdk_cli import FEATURE_FLAG_CHOICES, flags_off_recommendation, unconfigured_flags
from stacks.checkov import SKIPPED_CHECKS, failed_checks
from stacks.nag import apply_nag_packs
from stacks.synth_all import (
    CONFIGURATIONS,
    EXPLAINED_CFN_LINT_WARNINGS,
    SynthResult,
    collect_messages,
    main,
    run_checkov,
)


@pytest.fixture(scope="session")
def checked(synth: Callable[[str], SynthResult]) -> dict[str, SynthResult]:
    """Every configuration, with one checkov run over all their templates."""
    results = {name: synth(name) for name in CONFIGURATIONS}
    for result in results.values():
        result.checkov_findings.clear()
    run_checkov(list(results.values()))
    return results


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_checkov_has_no_failed_check_that_is_not_skipped_with_a_reason(
    checked: dict[str, SynthResult], name: str
) -> None:
    result = checked[name]
    assert result.template_files
    assert [str(f) for f in result.checkov_findings] == []
    assert all(len(reason) >= 60 for reason in SKIPPED_CHECKS.values())


def test_checkov_reports_a_new_failure(tmp_path: Path) -> None:
    """The detection itself: an unencrypted queue is a failed check nobody skipped."""
    template = tmp_path / "Bad.template.json"
    template.write_text(
        json.dumps({"Resources": {"PlainQueue": {"Type": "AWS::SQS::Queue", "Properties": {}}}})
    )
    findings = failed_checks([template])
    assert "CKV_AWS_27" in {f.check_id for f in findings}


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_cdk_nag_has_no_unsuppressed_finding(synth: Callable[[str], SynthResult], name: str) -> None:
    result = synth(name)
    assert result.nag_findings == []
    assert result.other_errors == []


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_cdk_nag_writes_its_reports_and_every_suppression_has_a_reason(
    synth: Callable[[str], SynthResult], name: str
) -> None:
    result = synth(name)
    for pack in ("AwsSolutions", "Serverless"):
        (report,) = result.outdir.glob(f"{pack}-*-NagReport.csv")
        rows = list(csv.DictReader(report.read_text().splitlines()))
        assert rows, f"{report.name} is empty"
        assert not [row for row in rows if row["Compliance"] == "Non-Compliant"]
        for row in rows:
            if row["Compliance"] == "Suppressed":
                assert len(row["Exception Reason"]) >= 60, row
    for template in result.templates.values():
        for resource in template["Resources"].values():
            for suppression in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                assert len(suppression["reason"]) >= 60, suppression


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_cfn_lint_reports_no_error_and_only_explained_warnings(
    synth: Callable[[str], SynthResult], name: str
) -> None:
    result = synth(name)
    assert result.lint_errors == []
    assert result.unexplained_lint_warnings == []
    assert set(EXPLAINED_CFN_LINT_WARNINGS) >= {w.rule for w in result.lint_warnings}


def test_synth_all_fails_on_an_unsuppressed_finding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`make synth` must exit non-zero when a check fails, not just print it."""
    import stacks.synth_all as synth_all

    def failing(name: str, context: object, outdir: object, *, lint: bool = True) -> SynthResult:
        result = SynthResult(name=name, outdir=tmp_path)
        result.nag_findings.append("AwsSolutions-XYZ: pretend finding")
        return result

    monkeypatch.setattr(synth_all, "synthesize", failing)
    assert main(["--only", "default", "--outdir", str(tmp_path)]) == 1


def test_an_unsuppressed_nag_finding_is_reported(tmp_path: Path) -> None:
    """The detection itself: a topic without TLS enforcement must show up as a finding."""
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Bad", env=cdk.Environment(region="us-east-1"))
    sns.Topic(stack, "PlainTopic")
    apply_nag_packs(app)
    artifact = app.synth().get_stack_artifact(stack.artifact_id)
    result = SynthResult(name="bad", outdir=tmp_path)
    collect_messages(artifact, result)
    assert any("AwsSolutions-SNS3" in finding for finding in result.nag_findings)
    assert not result.ok


def test_cdk_json_configures_every_recommended_feature_flag(default_result: SynthResult) -> None:
    """What the CDK CLI warns about ("N feature flags are not configured") is empty, and every
    value off the recommendation has its reason in stacks/cdk_cli.py."""
    assert unconfigured_flags(default_result.outdir) == []
    assert set(flags_off_recommendation(default_result.outdir)) == set(FEATURE_FLAG_CHOICES)


@pytest.mark.slow
def test_the_cdk_cli_synthesizes_cdk_json_as_shipped_offline(tmp_path: Path) -> None:
    """`make synth` runs this too (stacks.cdk_cli): npm's aws-cdk@2 against cdk.json."""
    from stacks.cdk_cli import main as cli_main

    assert cli_main(["--outdir", str(tmp_path / "cli")]) == 0
