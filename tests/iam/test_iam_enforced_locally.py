"""`dynamowave serve --iam`: the stack's grants (stacks/grants.py) enforced on real boto3 calls.

The e2e suite runs every server with --iam (tests/e2e/conftest.py), so the chat protocol tests
prove that each function's code works within its grants; here, that what is not granted is
refused as AWS refuses it, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from dynamowave.local.iam import Call, IamEnforcer, function_credentials, local_policies
from tests.ports import closed_port

TABLES = {
    "connections": "dynamowave-connections",
    "rooms": "dynamowave-rooms",
    "messages": "dynamowave-messages",
}
QUEUE = "arn:aws:sqs:us-east-1:123456789012:dynamowave-fanout"
DLQ = "arn:aws:sqs:us-east-1:123456789012:dynamowave-fanout-dlq"
PARKED = "arn:aws:sqs:us-east-1:123456789012:dynamowave-fanout-parked"
REVIEW = "arn:aws:lambda:us-east-1:123456789012:function:review"


@pytest.fixture
def enforcer() -> Iterator[IamEnforcer]:
    policies = local_policies(
        region="us-east-1",
        account_id="123456789012",
        api_id="local",
        stage="local",
        tables=TABLES,
        queue_arns={"queue": QUEUE, "dlq": DLQ, "parked": PARKED},
        function_arns={"review": REVIEW},
        functions=["authorizer", "ingress", "fanout", "janitor", "redriver", "review"],
    )
    names = ("authorizer", "ingress", "fanout", "janitor", "redriver")
    enforcer = IamEnforcer(policies, {function_credentials(n).access_key: n for n in names})
    enforcer.install()
    yield enforcer
    enforcer.uninstall()


def client(function: str, service: str) -> Any:
    """A client signing as `function` (its role), aimed where nothing listens: a call that is
    allowed fails to connect, one that is denied never leaves the process."""
    credentials = function_credentials(function)
    session: Any = boto3.session.Session(
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
        region_name="us-east-1",
    )
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=1)
    return session.client(service, endpoint_url=f"http://127.0.0.1:{closed_port()}", config=config)


def denied(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    return str(caught.value.response["Error"]["Message"])


def test_a_call_outside_the_functions_grants_is_access_denied(enforcer: IamEnforcer) -> None:
    ingress = client("ingress", "dynamodb")
    message = denied(ingress.scan, TableName="dynamowave-connections")  # only the janitor scans
    assert "is not authorized to perform: dynamodb:Scan" in message
    assert "table/dynamowave-connections" in message
    with pytest.raises(EndpointConnectionError):  # granted: it goes to the network
        ingress.put_item(TableName="dynamowave-messages", Item={"pk": {"S": "x"}})
    fanout = client("fanout", "dynamodb")
    denied(fanout.put_item, TableName="dynamowave-messages", Item={"pk": {"S": "x"}})
    assert enforcer.policies.denials()[-1] == Call(
        "fanout", "dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:123456789012:table/dynamowave-messages"
    )


def test_transactions_are_authorized_item_by_item(enforcer: IamEnforcer) -> None:
    janitor = client("janitor", "dynamodb")
    items = [
        {"Delete": {"TableName": "dynamowave-rooms", "Key": {"pk": {"S": "a"}}}},
        {"Put": {"TableName": "dynamowave-messages", "Item": {"pk": {"S": "b"}}}},  # not the janitor's
    ]
    assert "dynamodb:PutItem" in denied(janitor.transact_write_items, TransactItems=items)
    with pytest.raises(EndpointConnectionError):
        janitor.transact_write_items(TransactItems=items[:1])


def test_queues_secrets_and_lambda_follow_the_grants(enforcer: IamEnforcer) -> None:
    url = "http://127.0.0.1/123456789012/"
    denied(client("ingress", "sqs").send_message, QueueUrl=url + "dynamowave-fanout-dlq", MessageBody="x")
    with pytest.raises(EndpointConnectionError):
        client("fanout", "sqs").send_message(QueueUrl=url + "dynamowave-fanout-dlq", MessageBody="x")
    # The fan-out's lease extends visibility in batches: ChangeMessageVisibility authorizes them.
    entries = [{"Id": "1", "ReceiptHandle": "r", "VisibilityTimeout": 30}]
    with pytest.raises(EndpointConnectionError):
        client("fanout", "sqs").change_message_visibility_batch(
            QueueUrl=url + "dynamowave-fanout", Entries=entries
        )
    denied(
        client("ingress", "sqs").change_message_visibility_batch,
        QueueUrl=url + "dynamowave-fanout",
        Entries=entries,
    )
    denied(client("ingress", "secretsmanager").get_secret_value, SecretId="dynamowave-jwt")
    denied(client("janitor", "lambda").invoke, FunctionName=REVIEW)  # only the ingress invokes it
    with pytest.raises(EndpointConnectionError):
        client("ingress", "lambda").invoke(FunctionName=REVIEW)


def test_the_runtimes_own_calls_are_not_governed(enforcer: IamEnforcer) -> None:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    runtime = session.client("dynamodb", endpoint_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(EndpointConnectionError):
        runtime.scan(TableName="dynamowave-connections")
