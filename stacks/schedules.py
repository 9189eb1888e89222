"""Schedules: the janitor's EventBridge rule and the optional warmer (the seed's "Lambda warmer")."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.config import DeploymentConfig

WARMUP_EVENT = {"warmup": True}
WARMER_RATE = Duration.minutes(5)


class Schedules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        janitor: lambda_.IFunction,
        warm: tuple[lambda_.IFunction, ...],
    ) -> None:
        super().__init__(scope, construct_id)
        # A missed run is harmless: the janitor resumes from its cursor on the next tick and
        # DynamoDB TTL is the backstop, so the target does not retry into the next run.
        self.janitor_rule = events.Rule(
            self,
            "JanitorSchedule",
            description=f"DynamoWave {config.stage}: prune idle and expired connections",
            schedule=events.Schedule.rate(Duration.minutes(config.janitor_rate_minutes)),
            targets=[targets.LambdaFunction(janitor, retry_attempts=0)],
        )
        self.warmer_rule: events.Rule | None = None
        if config.warmer:
            # Keeps one execution environment of each latency-sensitive function initialised;
            # the handlers return at once on {"warmup": true}.
            self.warmer_rule = events.Rule(
                self,
                "WarmerSchedule",
                description=f"DynamoWave {config.stage}: keep the connect path warm",
                schedule=events.Schedule.rate(WARMER_RATE),
                targets=[
                    targets.LambdaFunction(
                        function, event=events.RuleTargetInput.from_object(WARMUP_EVENT), retry_attempts=0
                    )
                    for function in warm
                ],
            )
