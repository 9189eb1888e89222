"""Messaging: the fan-out queue and its dead-letter queue (KMS, TLS only, redrive policy)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.chat.schema import FANOUT_DLQ, FANOUT_QUEUE, VISIBILITY_TIMEOUT_FACTOR
from stacks.config import DeploymentConfig


class Messaging(Construct):
    """Fan-out jobs. ``fanout_timeout`` is the consuming function's timeout: the queue's
    visibility timeout is ``VISIBILITY_TIMEOUT_FACTOR`` times it, as AWS advises for Lambda."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        key: kms.IKey,
        fanout_timeout: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "FanoutDlq",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            # The longest SQS keeps anything: time for an operator to inspect and redrive.
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "FanoutQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(fanout_timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=config.max_receive_count
            ),
        )
        self.description = {
            FANOUT_QUEUE.logical_name: self.queue,
            FANOUT_DLQ.logical_name: self.dead_letter_queue,
        }
