"""Creates the tables and queues from functions.chat.schema (the definitions the CDK stack
reads) and the JWT signing secret in Secrets Manager, where the stack keeps it too."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.chat.schema import (
    FANOUT_DLQ,
    FANOUT_PARKED,
    FANOUT_QUEUE,
    REDRIVER_MAX_RECEIVE_COUNT,
    TABLES,
    TableDefinition,
)
from functions.chat.settings import ENV

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Resources:
    tables: dict[str, str]  # logical name -> physical name
    fanout_queue_url: str
    fanout_queue_arn: str
    fanout_dlq_url: str
    fanout_dlq_arn: str
    fanout_parked_url: str = ""
    fanout_parked_arn: str = ""
    jwt_secret_arn: str = ""

    def function_environment(self, *, management_endpoint: str, jwt_secret: str = "") -> dict[str, str]:
        """Where the functions find these resources, in the variables the stack sets on Lambda
        (without a provisioned secret, ``jwt_secret`` is given directly: the tests' harnesses)."""
        secret = (
            {ENV.JWT_SECRET_ARN: self.jwt_secret_arn} if self.jwt_secret_arn else {ENV.JWT_SECRET: jwt_secret}
        )
        return {
            ENV.CONNECTIONS_TABLE: self.tables["connections"],
            ENV.ROOMS_TABLE: self.tables["rooms"],
            ENV.MESSAGES_TABLE: self.tables["messages"],
            ENV.FANOUT_QUEUE_URL: self.fanout_queue_url,
            ENV.FANOUT_DLQ_URL: self.fanout_dlq_url,
            ENV.FANOUT_PARKED_URL: self.fanout_parked_url,
            ENV.MANAGEMENT_API_ENDPOINT: management_endpoint,
            **secret,
        }


def _create_table(client: DynamoDBClient, definition: TableDefinition, name: str) -> None:
    keys = [definition.partition_key] + ([definition.sort_key] if definition.sort_key else [])
    try:
        client.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k.name, "AttributeType": k.type} for k in keys],
            KeySchema=[
                {"AttributeName": k.name, "KeyType": "HASH" if i == 0 else "RANGE"}
                for i, k in enumerate(keys)
            ],
        )
    except client.exceptions.ResourceInUseException:
        return  # --aws-endpoint pointing at a store that already has it
    if definition.ttl_attribute:
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": definition.ttl_attribute},
        )


def _queue(client: SQSClient, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    from botocore.exceptions import ClientError

    try:
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    except ClientError:
        # --aws-endpoint with the queue left from an earlier run, created with other attributes.
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
        client.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _secret(client: SecretsManagerClient, name: str, value: str) -> str:
    """The secret's ARN, holding ``value`` (created, or updated where an earlier run left it)."""
    try:
        return client.create_secret(Name=name, SecretString=value)["ARN"]
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=value)
        return client.describe_secret(SecretId=name)["ARN"]


def provision(
    *,
    prefix: str,
    region: str,
    visibility_timeout: int,
    max_receive_count: int,
    jwt_secret: str = "",
    session: Any = None,
) -> Resources:
    import boto3

    session = session or boto3.session.Session(region_name=region)
    dynamodb: DynamoDBClient = session.client("dynamodb")
    sqs: SQSClient = session.client("sqs")
    tables: dict[str, str] = {}
    for definition in TABLES:
        name = definition.physical_name(prefix)
        _create_table(dynamodb, definition, name)
        tables[definition.logical_name] = name
    # 14 days, as the CDK stack keeps dead letters.
    retention = {"MessageRetentionPeriod": "1209600"}
    parked_url, parked_arn = _queue(sqs, FANOUT_PARKED.physical_name(prefix), retention)
    dlq_url, dlq_arn = _queue(
        sqs,
        FANOUT_DLQ.physical_name(prefix),
        {
            **retention,
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": parked_arn, "maxReceiveCount": REDRIVER_MAX_RECEIVE_COUNT}
            ),
        },
    )
    queue_url, queue_arn = _queue(
        sqs,
        FANOUT_QUEUE.physical_name(prefix),
        {
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
            ),
        },
    )
    # The authorizer reads it as on AWS (functions/chat/adapters/secrets.py), under its own grant.
    secret_arn = _secret(session.client("secretsmanager"), f"{prefix}-jwt", jwt_secret) if jwt_secret else ""
    return Resources(tables, queue_url, queue_arn, dlq_url, dlq_arn, parked_url, parked_arn, secret_arn)
