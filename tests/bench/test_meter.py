"""The AWS meter: request counts and DynamoDB capacity units by DynamoDB's rules, from real calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dynamowave.bench.meter import AwsMeter, item_size, meter_every_client
from dynamowave.bench.prices import PRICES, UsagePerMessage, apigw_floor_usd
from dynamowave.testing.aws import create_key_value_table


def test_item_size_follows_dynamodb_rules() -> None:
    # Names count, strings are UTF-8 bytes, numbers ~1 byte per 2 digits + 1, maps/lists 3 + entries.
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"n": {"N": "12345"}}) == 1 + 4
    assert item_size({"ok": {"BOOL": True}}) == 2 + 1
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert item_size({"é": {"S": "é"}}) == 4


@pytest.fixture
def metered() -> Iterator[tuple[AwsMeter, Any]]:
    meter = AwsMeter()
    undo = meter_every_client(meter)
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(
                TableName="t",
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            )
            yield meter, client
    finally:
        undo()


def test_writes_are_one_unit_per_kilobyte_and_transactions_twice(metered: tuple[AwsMeter, Any]) -> None:
    meter, client = metered
    meter.reset()
    client.put_item(TableName="t", Item={"pk": {"S": "small"}})
    client.put_item(TableName="t", Item={"pk": {"S": "big"}, "blob": {"S": "x" * 2500}})  # 3 KB -> 3 WRU
    client.transact_write_items(
        TransactItems=[{"Put": {"TableName": "t", "Item": {"pk": {"S": f"tx{i}"}}}} for i in range(2)]
    )
    usage = meter.snapshot()
    assert usage["dynamodb_wru"] == 1 + 3 + 2 * 2
    assert usage["calls"]["dynamodb.PutItem"] == 2
    assert usage["calls"]["dynamodb.TransactWriteItems"] == 1


def test_a_filtered_scan_pays_for_every_item_it_reads(metered: tuple[AwsMeter, Any]) -> None:
    meter, client = metered
    for i in range(100):
        client.put_item(TableName="t", Item={"pk": {"S": f"item-{i:03d}"}, "pad": {"S": "p" * 300}})
    meter.reset()
    page = client.scan(
        TableName="t", FilterExpression="pk = :one", ExpressionAttributeValues={":one": {"S": "item-007"}}
    )
    assert len(page["Items"]) == 1
    # 100 items of ~316 bytes evaluated: 31.6 KB -> 8 x 4 KB, eventually consistent: 4 RRU.
    assert meter.snapshot()["dynamodb_rru"] == 4.0
    meter.reset()
    client.get_item(TableName="t", Key={"pk": {"S": "item-001"}}, ConsistentRead=True)
    client.get_item(TableName="t", Key={"pk": {"S": "absent"}})
    assert meter.snapshot()["dynamodb_rru"] == 1.0 + 0.5


def test_a_projected_query_weighs_its_own_partition_not_the_table(metered: tuple[AwsMeter, Any]) -> None:
    # One table, two kinds of item: 200 small ones in partition "shard", 20 large ones elsewhere.
    meter, client = metered
    client.delete_table(TableName="t")
    client.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    for i in range(200):
        client.put_item(
            TableName="t", Item={"pk": {"S": "shard"}, "sk": {"S": f"{i:03d}"}, "u": {"S": "u" * 35}}
        )
    for i in range(20):
        client.put_item(
            TableName="t", Item={"pk": {"S": f"user{i}"}, "sk": {"S": "x"}, "pad": {"S": "p" * 2000}}
        )

    def projected_query() -> float:
        meter.reset()
        client.query(
            TableName="t",
            KeyConditionExpression="#p = :pk",
            ExpressionAttributeNames={"#p": "pk"},
            ExpressionAttributeValues={":pk": {"S": "shard"}},
            ProjectionExpression="sk",
            ConsistentRead=True,
        )
        return float(meter.snapshot()["dynamodb_rru"])

    # The table's mean (~227 bytes x 200 = 45 KB -> 12 RRU) overstates a shard of 200 x 48 bytes.
    assert projected_query() == 12.0
    meter.use_partition_keys({"t": "pk"})
    for i in range(200):  # learned again, now per partition
        client.put_item(
            TableName="t", Item={"pk": {"S": "shard"}, "sk": {"S": f"{i:03d}"}, "u": {"S": "u" * 35}}
        )
    assert projected_query() == 3.0  # 200 x 48 bytes = 9.4 KB -> 3 x 4 KB


def test_cost_of_a_message_adds_every_service_at_list_price() -> None:
    usage = UsagePerMessage(
        apigw_messages=101,
        lambda_invocations=2,
        lambda_gb_seconds=0.1,
        sqs_requests=3,
        dynamodb_rru=4,
        dynamodb_wru=8,
    )
    expected = (
        101 * 1.00
        + 2 * 0.20
        + 0.1 * 1e6 * PRICES["lambda_gb_second_arm64"].usd
        + 3 * 0.40
        + 4 * 0.125
        + 8 * 0.625
    ) / 1e6
    assert usage.usd() == pytest.approx(expected)
    assert apigw_floor_usd(100) == pytest.approx(101 / 1e6)


def test_writes_are_counted_per_item_and_cancelled_transactions_by_reason() -> None:
    meter = AwsMeter()
    undo = meter_every_client(meter)
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            create_key_value_table(client, "bench-rooms")  # shaped as schema.py's rooms table
            meta = {"pk": {"S": "ROOM#r"}, "sk": {"S": "META"}}
            client.put_item(TableName="bench-rooms", Item={**meta, "seq": {"N": "0"}})
            for _ in range(3):
                client.update_item(
                    TableName="bench-rooms", Key=meta, UpdateExpression="ADD seq :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )  # fmt: skip
            stale: Any = {
                "Update": {
                    "TableName": "bench-rooms", "Key": meta, "UpdateExpression": "SET seq = :n",
                    "ConditionExpression": "seq = :old",
                    "ExpressionAttributeValues": {":n": {"N": "9"}, ":old": {"N": "0"}},
                }
            }  # fmt: skip
            other: Any = {
                "Put": {"TableName": "bench-rooms", "Item": {"pk": {"S": "ROOM#r"}, "sk": {"S": "X"}}}
            }
            with pytest.raises(client.exceptions.TransactionCanceledException):
                client.transact_write_items(TransactItems=[stale, other])
            usage = meter.snapshot()
    finally:
        undo()
    # The refused transaction still loads both items: 1 put + 3 updates + 1 attempt on META.
    assert usage["busiest_items"] == {"rooms ROOM#r / META": 5, "rooms ROOM#r / X": 1}
    assert usage["transactions_cancelled"] == {"ConditionalCheckFailed": 1}
