"""The local runtime's moto patches change costs, never results: queries and transactions as before."""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from dynamowave.compat.moto_patches import serialize_dynamodb
from dynamowave.testing.aws import create_key_value_table


@pytest.fixture
def table() -> Iterator[Any]:
    serialize_dynamodb()  # process-wide, as in the runtime: every moto test here runs patched
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_key_value_table(client, "t")
        for p in range(5):
            for s in range(20):
                client.put_item(TableName="t", Item={"pk": {"S": f"p{p}"}, "sk": {"S": f"s{s:02d}"}})
        yield client


def _sks(page: dict[str, Any]) -> list[str]:
    return [item["sk"]["S"] for item in page["Items"]]


def test_queries_return_the_partition_in_order_with_pagination(table: Any) -> None:
    first = table.query(
        TableName="t",
        KeyConditionExpression="pk = :p AND sk > :s",
        ExpressionAttributeValues={":p": {"S": "p3"}, ":s": {"S": "s15"}},
        ScanIndexForward=False,
        Limit=3,
    )
    assert _sks(first) == ["s19", "s18", "s17"]
    rest = table.query(
        TableName="t",
        KeyConditionExpression="pk = :p AND sk > :s",
        ExpressionAttributeValues={":p": {"S": "p3"}, ":s": {"S": "s15"}},
        ScanIndexForward=False,
        ExclusiveStartKey=first["LastEvaluatedKey"],
    )
    assert _sks(rest) == ["s16"]
    assert (
        table.query(
            TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "nope"}}
        )["Items"]
        == []
    )
    assert table.scan(TableName="t")["Count"] == 100  # scans still see every partition


def test_a_cancelled_transaction_leaves_every_item_as_it_was(table: Any) -> None:
    table.put_item(TableName="t", Item={"pk": {"S": "c"}, "sk": {"S": "n"}, "v": {"N": "1"}})
    with pytest.raises(ClientError) as refused:
        table.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "new"}, "sk": {"S": "x"}}}},
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "c"}, "sk": {"S": "n"}},
                        "UpdateExpression": "SET v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {"Delete": {"TableName": "t", "Key": {"pk": {"S": "p0"}, "sk": {"S": "s00"}}}},
                {
                    "ConditionCheck": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "p1"}, "sk": {"S": "s01"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"

    def get(pk: str, sk: str) -> Any:
        return table.get_item(TableName="t", Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")

    assert get("new", "x") is None
    assert get("c", "n")["v"] == {"N": "1"}
    assert get("p0", "s00") is not None


def test_a_committed_transaction_applies_every_item(table: Any) -> None:
    table.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "new"}, "sk": {"S": "x"}}}},
            {"Delete": {"TableName": "t", "Key": {"pk": {"S": "p0"}, "sk": {"S": "s00"}}}},
        ]
    )
    assert table.get_item(TableName="t", Key={"pk": {"S": "new"}, "sk": {"S": "x"}}).get("Item") is not None
    assert table.get_item(TableName="t", Key={"pk": {"S": "p0"}, "sk": {"S": "s00"}}).get("Item") is None


def _answers_from_both_serializers(call: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same call answered through the direct JSON path and through moto's own serializer."""
    from dynamowave.compat import moto_patches

    direct = call()
    operations = moto_patches.DIRECT_JSON_OPERATIONS
    moto_patches.DIRECT_JSON_OPERATIONS = frozenset()
    try:
        generic = call()
    finally:
        moto_patches.DIRECT_JSON_OPERATIONS = operations
    for answer in (direct, generic):
        answer.pop("ResponseMetadata")
    return direct, generic


@pytest.mark.parametrize(
    "operation",
    ["query", "scan", "get_item", "update_item", "put_item", "transact_write_items", "batch_get_item"],
)
def test_item_answers_written_directly_equal_motos_serializer(table: Any, operation: str) -> None:
    key = {"pk": {"S": "rich"}, "sk": {"S": "item"}}
    rich = {
        **key,
        "n": {"N": "12.50"},
        "m": {"M": {"nested": {"L": [{"S": "ü"}, {"NULL": True}, {"BOOL": False}]}}},
        "ss": {"SS": ["a", "b"]},
    }
    table.put_item(TableName="t", Item=rich)
    calls = {
        "query": lambda: table.query(
            TableName="t",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p1"}},
            Limit=7,
            ReturnConsumedCapacity="TOTAL",
        ),
        "scan": lambda: table.scan(TableName="t", Limit=30),
        "get_item": lambda: table.get_item(TableName="t", Key=key, ConsistentRead=True),
        "update_item": lambda: table.update_item(
            TableName="t",
            Key=key,
            UpdateExpression="SET n = n + :one",
            ExpressionAttributeValues={":one": {"N": "0"}},
            ReturnValues="ALL_NEW",
        ),
        "put_item": lambda: table.put_item(TableName="t", Item=rich, ReturnValues="ALL_OLD"),
        "transact_write_items": lambda: table.transact_write_items(
            TransactItems=[
                {
                    "ConditionCheck": {
                        "TableName": "t",
                        "Key": key,
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
            ]
        ),
        "batch_get_item": lambda: table.batch_get_item(RequestItems={"t": {"Keys": [key]}}),
    }
    direct, generic = _answers_from_both_serializers(calls[operation])
    assert direct == generic
    assert direct  # the answer has content to compare, not two empty dicts


ITEM: dict[str, Any] = {
    "pk": {"S": "ROOM#r#S#0.0"},
    "sk": {"S": "conn="},
    "userId": {"S": "ann"},
    "joinedAt": {"N": "1764650000000"},
    "zero": {"N": "0"},
    "padded": {"N": "007"},
    "negative": {"N": "-3"},
    "fraction": {"N": "1.50"},
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "tags": {"SS": ["b", "a"]},
    "nested": {"M": {"a": {"L": [{"S": "x"}, {"N": "2"}]}}},
    "blob": {"B": "AAEC"},
}


@pytest.mark.parametrize(
    "paths",
    [
        [["sk"], ["userId"]],  # the fan-out's shard Query
        [["joinedAt"], ["zero"], ["flag"], ["nothing"], ["missing"]],
        [["padded"]],
        [["negative"], ["fraction"]],
        [["tags"]],
        [["nested"]],
        [["nested", "a"]],
        [["blob"]],
        [["sk"], ["sk"]],
    ],
)
def test_a_projection_keeps_what_motos_own_keeps(paths: list[list[str]]) -> None:
    serialize_dynamodb()
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    item = Item(hash_key=DynamoType(ITEM["pk"]), range_key=DynamoType(ITEM["sk"]), attrs=ITEM)
    motos_own = inspect.unwrap(Item.project)
    assert motos_own is not Item.project  # the patch is in place
    assert Item.project(item, paths).to_json() == motos_own(item, paths).to_json()


CONDITIONS = [
    "attribute_not_exists(pk)",
    "#s = :current AND attribute_exists(pk)",
    "(begins_with(sk, :p) OR size(#n) > :z) AND NOT contains(#t, :v)",
    "#a BETWEEN :lo AND :hi OR #b IN (:x, :y)",
]


@pytest.mark.parametrize("expression", CONDITIONS)
def test_a_condition_lexed_once_parses_as_motos_own(expression: str) -> None:
    serialize_dynamodb()
    from moto.dynamodb.comparisons import ConditionExpressionParser

    motos_own = inspect.unwrap(ConditionExpressionParser._lex_condition_expression)
    assert motos_own is not ConditionExpressionParser._lex_condition_expression  # the patch is in place
    expected = list(motos_own(ConditionExpressionParser(expression, None, None)))
    names = {f"#{name}": name for name in "stnab"}
    values = {f":{name}": {"S": name} for name in ("current", "p", "z", "v", "lo", "hi", "x", "y")}
    trees = []
    for _ in range(2):  # the second parse reads the cache: it must not see the first parse's changes
        parser = ConditionExpressionParser(expression, names, values)
        assert list(parser._lex_condition_expression()) == expected
        trees.append(repr(parser.parse()))
    assert trees[0] == trees[1]


def test_a_condition_that_does_not_lex_is_refused_every_time(table: Any) -> None:
    for _ in range(2):  # a failed lex is not cached as a success
        with pytest.raises((ClientError, ValueError)):
            table.put_item(
                TableName="t",
                Item={"pk": {"S": "bad"}, "sk": {"S": "x"}},
                ConditionExpression="attribute_not_exists(pk) ; DROP",
            )
    assert "Item" not in table.get_item(TableName="t", Key={"pk": {"S": "bad"}, "sk": {"S": "x"}})


def test_receives_keep_the_queues_retention_period(monkeypatch: pytest.MonkeyPatch) -> None:
    serialize_dynamodb()
    from moto.sqs import models

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="kept")
        sqs.send_message(QueueUrl=url, MessageBody="expires")
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
        assert [m["Body"] for m in first] == ["kept"]
        later = time.time() + 61
        monkeypatch.setattr(models, "unix_time", lambda: later)
        assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
