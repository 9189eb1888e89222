"""The fan-out function against moto and a scripted Management API, through the real handler.

Messages are sent through ChatService (as ingress does), their jobs are taken off the real SQS
queue and handed to the handler as an SQS event; what reached each connection is read from the
fake Management API, what was pruned from DynamoDB.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dynamowave.testing.aws import LambdaContext
from functions.chat import deps
from functions.chat.adapters.dynamodb.keys import room_pk, serialize, shard_directory_pk, shard_for, shard_pk
from functions.chat.auth import Identity
from functions.chat.jobs import FanoutJob
from functions.chat.settings import get_settings
from functions.fanout.handler import handler
from functions.fanout.handler import logger as fanout_logger
from tests.fanout.conftest import Deployment
from tests.fanout.support import drain, sqs_event


def identity(user: str) -> Identity:
    return Identity(user, user.title(), None)


def test_warmup_returns_at_once() -> None:
    assert handler({"warmup": True}, LambdaContext()) == {"warmup": True}


def test_every_member_gets_the_message_once(deployment: Deployment) -> None:
    alice = deployment.member("alice")
    alice_phone = deployment.member("alice")
    bob = deployment.member("bob")
    outsider = deployment.member("carol", room="elsewhere")
    deployment.queued()  # presence jobs of the joins

    deployment.send(alice, "hello room")
    jobs = [FanoutJob.from_json(body) for body in deployment.queued()]
    assert len(jobs) == 1 and jobs[0].shard is not None
    response = deployment.fanout([job.to_json() for job in jobs])

    assert response == {"batchItemFailures": []}
    for connection_id in (alice, alice_phone, bob):  # the sender's own connections too
        frames = deployment.messages_to(connection_id)
        assert [(f["room"], f["seq"], f["text"], f["user"]) for f in frames] == [
            ("general", 1, "hello room", "alice")
        ]
    assert deployment.messages_to(outsider) == []
    assert deployment.queued() == [] and deployment.dead_letters() == []


def test_typing_skips_the_excluded_sender(deployment: Deployment) -> None:
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    deployment.queued()
    reply = deployment.frame(alice, identity("alice"), action="typing", room="general")
    assert reply is None
    deployment.pump()
    assert [f["type"] for f in deployment.api.delivered_to(bob)] == ["typing"]
    assert deployment.api.delivered_to(alice) == []


def test_gone_prunes_exactly_the_gone_connection_and_announces_the_leave(deployment: Deployment) -> None:
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    carol = deployment.member("carol")
    deployment.queued()
    deployment.api.gone.add(bob)  # bob's network vanished: API Gateway answers 410

    deployment.send(alice, "anyone there?")
    rounds = deployment.pump()

    store = deps.store()
    assert store.get_connection(bob) is None
    members = {
        m.connection_id
        for shard in store.list_shards("general")
        for m in store.shard_members("general", shard)
    }
    assert members == {alice, carol}  # the sender is untouched (the AWS sample deletes the sender)
    assert store.get_connection(alice) is not None and store.get_connection(carol) is not None
    assert store.room_counters("general", consistent=True) == (1, 2)
    # The 410 was not retried, and the presence `leave` reached the others in a second round.
    assert deployment.api.attempts("POST", bob) == [410]
    assert rounds == 2
    for connection_id in (alice, carol):
        frames = deployment.api.delivered_to(connection_id)
        assert [f["type"] for f in frames if f["type"] != "ack"] == ["message", "presence"]
        assert frames[-1] == {"type": "presence", "room": "general", "user": "bob", "event": "leave"}


def test_gone_connection_of_a_user_still_online_announces_nothing(deployment: Deployment) -> None:
    alice = deployment.member("alice")
    bob_laptop = deployment.member("bob")
    bob_phone = deployment.member("bob")
    deployment.queued()
    deployment.api.gone.add(bob_laptop)

    deployment.send(alice, "hi")
    assert deployment.pump() == 1  # no presence job: bob is still here on his phone

    assert deps.store().get_connection(bob_laptop) is None
    assert len(deployment.messages_to(bob_phone)) == 1
    assert [f["type"] for f in deployment.api.delivered_to(alice)] == [
        "message"
    ]  # the ack is the route response


def test_throttling_and_5xx_bursts_are_retried_then_delivered(deployment_factory: Any) -> None:
    deployment: Deployment = deployment_factory(POST_MAX_RETRIES=6)
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    carol = deployment.member("carol")
    deployment.queued()
    deployment.api.script(bob, 429, 429, 500, 429)
    deployment.api.script(carol, 503)

    deployment.send(alice, "burst")
    assert deployment.pump() == 1  # delivered within the invocation: nothing re-enqueued

    assert deployment.api.attempts("POST", bob) == [429, 429, 500, 429, 200]
    assert deployment.api.attempts("POST", carol) == [503, 200]
    for connection_id in (alice, bob, carol):
        assert [f["text"] for f in deployment.messages_to(connection_id)] == ["burst"]
    assert deployment.dead_letters() == []


def test_persistent_failure_requeues_only_the_failed_recipients_then_dead_letters(
    deployment_factory: Any,
) -> None:
    deployment: Deployment = deployment_factory(POST_MAX_RETRIES=1, FANOUT_MAX_ATTEMPTS=2)
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    carol = deployment.member("carol")
    deployment.queued()
    deployment.api.script(bob, *[429] * 50)

    deployment.send(alice, "are you there")
    first = [FanoutJob.from_json(b) for b in deployment.queued()]
    assert deployment.fanout([job.to_json() for job in first]) == {"batchItemFailures": []}

    attempts_seen = []
    retry_bodies = deployment.queued()
    while retry_bodies:
        (retry,) = [FanoutJob.from_json(b) for b in retry_bodies]
        assert retry.connections == (bob,) and retry.shard is None  # only the failed recipient
        assert retry.frame == first[0].frame and retry.correlation_id == first[0].correlation_id
        attempts_seen.append(retry.attempt)
        assert deployment.fanout(retry_bodies) == {"batchItemFailures": []}
        retry_bodies = deployment.queued()

    assert attempts_seen == [1, 2]
    (dead,) = deployment.dead_letters()
    assert dead.connections == (bob,) and dead.frame["text"] == "are you there"
    assert dead.reason is not None and "LimitExceededException" in dead.reason
    assert dead.attempt == 3
    # Each try of bob's was 1 + POST_MAX_RETRIES posts; the others got the message exactly once.
    assert deployment.api.attempts("POST", bob) == [429] * 6
    assert len(deployment.messages_to(alice)) == 1 and len(deployment.messages_to(carol)) == 1
    assert deps.store().get_connection(bob) is not None  # throttled is not gone


def test_retry_jobs_are_delayed_with_sqs_delay_seconds(deployment_factory: Any) -> None:
    deployment: Deployment = deployment_factory(POST_MAX_RETRIES=0, FANOUT_RETRY_DELAY_SECONDS=3)
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    deployment.queued()
    deployment.api.script(bob, 500)
    sent: list[dict[str, Any]] = []
    deps.sqs_client().meta.events.register(
        "before-parameter-build.sqs.SendMessageBatch", lambda params, **_: sent.extend(params["Entries"])
    )

    deployment.send(alice, "later")
    sent.clear()
    deployment.fanout(deployment.queued())

    assert [(FanoutJob.from_json(e["MessageBody"]).connections, e.get("DelaySeconds")) for e in sent] == [
        ((bob,), 3)
    ]


def test_refused_posts_are_skipped_not_retried(deployment: Deployment) -> None:
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    deployment.queued()
    deployment.api.script(bob, 413)

    deployment.send(alice, "big")
    assert deployment.pump() == 1

    assert deployment.api.attempts("POST", bob) == [413]
    assert deps.store().get_connection(bob) is not None
    assert deployment.dead_letters() == []


def test_out_of_time_recipients_are_requeued_untried_without_using_an_attempt(deployment: Deployment) -> None:
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    deployment.queued()
    deployment.send(alice, "late")
    bodies = deployment.queued()

    # Remaining time below the safety margin (FANOUT_DEADLINE_SAFETY_MS=1000 in these tests).
    assert deployment.fanout(bodies, LambdaContext(remaining_ms=900)) == {"batchItemFailures": []}

    assert deployment.api.attempts("POST", bob) == []
    (retry,) = [FanoutJob.from_json(b) for b in deployment.queued()]
    # The sender's own connection is a recipient like any other (its ack was the route response).
    assert set(retry.connections or ()) == {alice, bob} and retry.attempt == 0
    deployment.fanout([retry.to_json()])
    assert len(deployment.messages_to(alice)) == 1 and len(deployment.messages_to(bob)) == 1


def test_backoff_never_sleeps_past_the_deadline(deployment_factory: Any) -> None:
    deployment: Deployment = deployment_factory(
        POST_MAX_RETRIES=1000, POST_BACKOFF_BASE_MS=200, POST_BACKOFF_CAP_MS=200
    )
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    deployment.queued()
    deployment.api.script(bob, *[429] * 1000)
    deployment.send(alice, "hurry")

    # 100 ms left beyond the margin: a backoff draw over 100 ms ends bob's retries.
    deployment.fanout(deployment.queued(), LambdaContext(remaining_ms=1100))

    (retry,) = [FanoutJob.from_json(b) for b in deployment.queued()]
    assert retry.connections == (bob,) and retry.attempt == 1
    assert retry.reason is not None and "deadline" in retry.reason
    assert 1 <= len(deployment.api.attempts("POST", bob)) < 1000


def test_partial_batch_response_lists_exactly_the_failed_records(deployment: Deployment) -> None:
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    deployment.member("dora", room="broken")
    deployment.queued()
    deployment.send(alice, "fine")
    (good,) = deployment.queued()
    broken = FanoutJob(room="broken", frame={"type": "message", "text": "x"}, shard="0.0").to_json()
    wrong_version = json.dumps({"v": 99, "room": "general", "frame": {}, "shard": "0.0"})

    # DynamoDB fails for the "broken" room only: that record must fail, the rest must not.
    def fail_broken_room(params: dict[str, Any], **_: Any) -> None:
        if params.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S") == shard_pk("broken", "0.0"):
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "Query"
            )

    deps.dynamodb_client().meta.events.register("before-parameter-build.dynamodb.Query", fail_broken_room)
    event = sqs_event([good, "not json at all", broken, wrong_version], deployment.resources.fanout_queue_arn)
    ids = [record["messageId"] for record in event["Records"]]

    response = handler(event, LambdaContext())

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(ids[1:])
    assert len(deployment.messages_to(alice)) == 1 and len(deployment.messages_to(bob)) == 1


def test_a_batchs_records_are_delivered_side_by_side(deployment: Deployment) -> None:
    import threading

    alice = deployment.member("alice")
    carol = deployment.member("carol", room="other")
    deployment.queued()
    deployment.send(alice, "one")
    deployment.send(carol, "two", room="other")
    jobs = deployment.queued()
    assert len(jobs) == 2
    # Each record's shard Query waits until the other record's has started: one after the other,
    # the barrier would time out and both records would fail.
    both_reading = threading.Barrier(2, timeout=10)

    def wait_for_the_other(params: dict[str, Any], **_: Any) -> None:
        if (
            params.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S", "").startswith("ROOM#")
            and "#S#" in (params["ExpressionAttributeValues"][":pk"]["S"])
        ):
            both_reading.wait()

    deps.dynamodb_client().meta.events.register("before-parameter-build.dynamodb.Query", wait_for_the_other)
    try:
        response = handler(sqs_event(jobs, deployment.resources.fanout_queue_arn), LambdaContext())
    finally:
        deps.dynamodb_client().meta.events.unregister(
            "before-parameter-build.dynamodb.Query", wait_for_the_other
        )
    assert response["batchItemFailures"] == []
    assert len(deployment.messages_to(alice)) == 1 and len(deployment.messages_to(carol)) == 1


def test_an_all_failed_batch_is_reported_item_by_item(deployment: Deployment) -> None:
    event = sqs_event(["{}", "[]"], deployment.resources.fanout_queue_arn)
    response = handler(event, LambdaContext())
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        r["messageId"] for r in event["Records"]
    ]


def test_poison_record_reaches_the_dlq_after_max_receive_count(deployment: Deployment) -> None:
    """The event source mapping's loop: receive, invoke, delete what succeeded; the queue's
    redrive policy (maxReceiveCount=3 here) moves the poison record to the DLQ."""
    sqs = deployment.sqs
    queue_url = deployment.resources.fanout_queue_url
    sqs.send_message(QueueUrl=queue_url, MessageBody="{poison")
    for _ in range(5):
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            break
        event = sqs_event([m["Body"] for m in messages], deployment.resources.fanout_queue_arn)
        failed = {f["itemIdentifier"] for f in handler(event, LambdaContext())["batchItemFailures"]}
        assert failed == {r["messageId"] for r in event["Records"]}
        for message in messages:  # a failed record becomes visible again (timeout elapsed)
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    assert drain(deployment.resources.fanout_dlq_url) == ["{poison"]


def test_a_redelivered_job_duplicates_frames_but_corrupts_nothing(deployment: Deployment) -> None:
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    carol = deployment.member("carol")
    deployment.queued()
    deployment.api.gone.add(bob)
    deployment.send(alice, "twice")
    (body,) = deployment.queued()

    deployment.fanout([body])
    presence_jobs = deployment.queued()
    deployment.fanout([body])  # SQS delivered the same record again (e.g. after a crash)

    assert deployment.queued() == []  # bob's leave was announced once
    assert len(presence_jobs) == 1
    assert [f["seq"] for f in deployment.messages_to(carol)] == [1, 1]  # a duplicate, same seq
    store = deps.store()
    assert store.room_counters("general", consistent=True) == (1, 2)
    assert store.online_users("general", 10) == ["alice", "carol"]


def bulk_members(room: str, count: int, shard_size: int) -> list[str]:
    """`count` memberships written in the store's layout, each in the shard `join` would pick
    (shard_for with the member count before it), with the shard directory and room counters.
    Bulk writes because 2,000 transactional joins take minutes in moto; the sender joins for real."""
    client = deps.dynamodb_client()
    table = get_settings().rooms_table
    items: list[dict[str, Any]] = []
    per_shard: Counter[str] = Counter()
    connection_ids = []
    for index in range(count):
        connection_id = f"c{index:05d}="
        shard = shard_for(connection_id, index, shard_size)
        per_shard[shard] += 1
        connection_ids.append(connection_id)
        items.append(
            {"pk": shard_pk(room, shard), "sk": connection_id, "userId": f"user{index}", "joinedAt": 1}
        )
    items += [{"pk": shard_directory_pk(room), "sk": shard, "members": n} for shard, n in per_shard.items()]
    items.append({"pk": room_pk(room), "sk": "META", "members": count, "seq": 0})
    for start in range(0, len(items), 25):
        requests: Any = [{"PutRequest": {"Item": serialize(item)}} for item in items[start : start + 25]]
        assert not client.batch_write_item(RequestItems={table: requests}).get("UnprocessedItems")
    return connection_ids


def test_a_room_of_thousands_is_delivered_completely_without_a_scan(deployment_factory: Any) -> None:
    deployment: Deployment = deployment_factory(SHARD_SIZE=100)
    members = bulk_members("big", 2000, shard_size=100)
    sender = deployment.member("alice", room="big")
    deployment.queued()
    scans: list[str] = []
    deps.dynamodb_client().meta.events.register(
        "before-parameter-build.dynamodb.Scan", lambda params, **_: scans.append(params["TableName"])
    )

    deployment.send(sender, "to all", room="big")
    shard_jobs = deployment.queued()
    assert len(shard_jobs) == len(deps.store().list_shards("big")) >= 2000 // 100
    for start in range(0, len(shard_jobs), 10):
        assert deployment.fanout(shard_jobs[start : start + 10]) == {"batchItemFailures": []}

    received = [target for target, frame in deployment.api.delivered() if frame["type"] == "message"]
    assert sorted(received) == sorted([*members, sender])  # everyone, exactly once
    assert scans == []
    assert deployment.queued() == [] and deployment.dead_letters() == []
    print(f"\n{len(received)} members in {len(shard_jobs)} shard jobs (SHARD_SIZE=100)")


def test_logs_carry_the_message_id_and_metrics_count_deliveries(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = deployment.member("alice")
    bob = deployment.member("bob")
    deployment.member("carol")
    deployment.queued()
    deployment.api.gone.add(bob)
    deployment.send(alice, "observed")
    (body,) = deployment.queued()
    message_id = FanoutJob.from_json(body).correlation_id
    capsys.readouterr()
    log = io.StringIO()
    stream_handler = fanout_logger.registered_handler
    assert isinstance(stream_handler, logging.StreamHandler)
    previous = stream_handler.setStream(log)
    try:
        deployment.fanout([body])
    finally:
        stream_handler.setStream(previous)

    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    (delivered,) = [line for line in lines if line.get("message") == "job delivered"]
    assert delivered["correlation_id"] == message_id and delivered["room"] == "general"
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "DynamoWave"
    # alice (the sender's own copy) and carol delivered, bob gone
    assert (emf["Deliveries"], emf["Gone"]) in (([2.0], [1.0]), (2.0, 1.0))
