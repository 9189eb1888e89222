"""Messaging: the fan-out queue, its dead-letter queue and the parked queue (KMS, TLS only, redrive policies)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.chat.schema import FANOUT_DLQ, FANOUT_PARKED, FANOUT_QUEUE, REDRIVER_MAX_RECEIVE_COUNT
from stacks.config import DeploymentConfig

# At least the redriver's timeout (Lambda refuses an event source with a shorter one).
REDRIVER_VISIBILITY_SECONDS = 60


class Messaging(Construct):
    """Fan-out jobs. ``visibility_timeout`` is short (schema.FANOUT_VISIBILITY_TIMEOUT_SECONDS):
    the fan-out renews it while it works, and a crashed batch is back within it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        key: kms.IKey,
        visibility_timeout: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        # What outlived auto-redrive (or is no job at all): the one queue that pages someone.
        # 14 days (the longest SQS keeps anything): time for an operator to inspect and redrive.
        self.parked_queue = self._queue("FanoutParked", key, retention=Duration.days(14))
        # The redriver's event source; a dead letter it keeps failing on is parked by SQS itself.
        self.dead_letter_queue = self._queue(
            "FanoutDlq",
            key,
            retention=Duration.days(14),
            visibility_timeout=Duration.seconds(REDRIVER_VISIBILITY_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.parked_queue, max_receive_count=REDRIVER_MAX_RECEIVE_COUNT
            ),
        )
        self.queue = self._queue(
            "FanoutQueue",
            key,
            retention=Duration.days(4),
            visibility_timeout=visibility_timeout,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=config.max_receive_count
            ),
        )
        self.description = {
            FANOUT_QUEUE.logical_name: self.queue,
            FANOUT_DLQ.logical_name: self.dead_letter_queue,
            FANOUT_PARKED.logical_name: self.parked_queue,
        }

    def _queue(
        self,
        construct_id: str,
        key: kms.IKey,
        *,
        retention: Duration,
        visibility_timeout: Duration | None = None,
        dead_letter_queue: sqs.DeadLetterQueue | None = None,
    ) -> sqs.Queue:
        """A queue under the data key, refusing plain HTTP."""
        return sqs.Queue(
            self,
            construct_id,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=retention,
            visibility_timeout=visibility_timeout,
            dead_letter_queue=dead_letter_queue,
        )
