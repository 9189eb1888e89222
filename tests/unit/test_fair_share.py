"""The embedded AWS under a flood: a flooder's calls yield to other connections' (YieldingLock),
every request names its tenant, and a send wakes one waiting receive of its own queue only."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from werkzeug.serving import make_server

from dynamowave.local import fair_share, moto_backend
from dynamowave.local.fair_share import BACKLOGGED_SUFFIX, TENANT_HEADER, YieldingLock
from dynamowave.local.moto_backend import SerializedMoto, made_visible

FLOODER = "connection:flooder" + BACKLOGGED_SUFFIX
BYSTANDER = "connection:bystander"


def test_a_backlogged_connection_waits_while_another_connection_is_calling() -> None:
    lock = YieldingLock(gap=0.2, max_yield=5.0)
    order: list[str] = []
    inside = threading.Event()

    def bystander() -> None:
        with lock.held(BYSTANDER):
            inside.set()
            time.sleep(0.2)
            order.append("bystander")

    thread = threading.Thread(target=bystander)
    thread.start()
    inside.wait()
    started = time.monotonic()
    with lock.held(FLOODER):
        order.append("flooder")
    waited = time.monotonic() - started
    thread.join()
    # Not merely after the bystander's call: the gap after it too (its next call is coming).
    assert order == ["bystander", "flooder"] and waited >= 0.35, (order, waited)
    assert lock.yields == 1


def test_a_backlogged_connection_is_slowed_never_stopped() -> None:
    lock = YieldingLock(gap=0.1, max_yield=0.3)
    stop = threading.Event()

    def busy_bystander() -> None:
        while not stop.is_set():
            with lock.held(BYSTANDER):
                time.sleep(0.01)

    thread = threading.Thread(target=busy_bystander)
    thread.start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        with lock.held(FLOODER):
            waited = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
    assert 0.25 <= waited < 1.0, waited


@pytest.mark.parametrize("tenant", [FLOODER, "connection:other", "function:fanout", ""])
def test_alone_or_next_to_functions_nobody_waits(tenant: str) -> None:
    lock = YieldingLock(gap=5.0, max_yield=5.0)
    for function in ("function:fanout", ""):  # functions and pollers never hold anyone back
        with lock.held(function):
            pass
    started = time.monotonic()
    with lock.held(tenant):
        pass
    assert time.monotonic() - started < 1.0 and lock.yields == 0


def test_requests_name_their_connection_and_whether_it_floods() -> None:
    event = {"requestContext": {"connectionId": "abc=", "routeKey": "sendmessage"}}
    assert fair_share.tenant_of("ingress", event) == "connection:abc="
    assert fair_share.tenant_of("fanout", {"Records": []}) == "function:fanout"

    request = SimpleNamespace(headers={})
    fair_share.tag_request(request)
    assert TENANT_HEADER not in request.headers  # not on an invocation's thread: no tenant
    with fair_share.acting_for("connection:abc="):
        fair_share.tag_request(request)
        assert request.headers[TENANT_HEADER] == "connection:abc="
        fair_share.mark_backlogged("abc=")
        fair_share.tag_request(request)
        assert request.headers[TENANT_HEADER] == "connection:abc=" + BACKLOGGED_SUFFIX
        fair_share.forget("abc=")
        fair_share.tag_request(request)
        assert request.headers[TENANT_HEADER] == "connection:abc="
    assert fair_share.current_tenant() is None


def test_what_a_request_makes_receivable() -> None:
    url = "http://127.0.0.1:1/123456789012/jobs"
    assert made_visible("SendMessage", {"QueueUrl": url, "MessageBody": "x"}) == ("jobs", 1)
    entries = [{"Id": str(i), "MessageBody": "x"} for i in range(3)]
    assert made_visible("SendMessageBatch", {"QueueUrl": url, "Entries": entries}) == ("jobs", 3)
    # The fan-out's lease extends visibility (nothing becomes receivable); a release does.
    lease = [{"Id": "a", "ReceiptHandle": "h", "VisibilityTimeout": 30}]
    release = [{"Id": "b", "ReceiptHandle": "h", "VisibilityTimeout": 0}]
    assert made_visible("ChangeMessageVisibilityBatch", {"QueueUrl": url, "Entries": lease + release}) == (
        "jobs",
        1,
    )
    assert made_visible("ChangeMessageVisibility", {"QueueUrl": url, "VisibilityTimeout": 10}) == ("jobs", 0)


class CountingApp:
    """moto's own WSGI app, counting the ReceiveMessage requests that reach it."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self._app = DomainDispatcherApplication(create_backend_app)
        self.receives = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").endswith(".ReceiveMessage"):
            self.receives += 1
        return self._app(environ, start_response)  # type: ignore[no-any-return]


@pytest.fixture
def serialized_moto() -> Iterator[tuple[Any, CountingApp]]:
    app = CountingApp()
    server = make_server("127.0.0.1", 0, SerializedMoto(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sqs = boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        yield sqs, app
    finally:
        server.shutdown()
        thread.join()


def test_a_send_wakes_one_waiting_receive_of_its_own_queue(
    serialized_moto: tuple[Any, CountingApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: every send woke every waiting receive of every queue, each an empty receive under
    the one lock (the fan-out's 4 pollers and the redriver's: 5 receives per message)."""
    sqs, app = serialized_moto
    # No look-again without a wake-up during the test: only wake-ups receive after the send.
    monkeypatch.setattr(moto_backend, "_RECHECK_SECONDS", 30.0)
    jobs = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    dead = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
    got: list[tuple[float, int]] = []

    def poll(url: str) -> None:
        found = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3).get("Messages", [])
        got.append((time.monotonic(), len(found)))

    pollers = [threading.Thread(target=poll, args=(jobs,)) for _ in range(4)]
    pollers.append(threading.Thread(target=poll, args=(dead,)))
    for poller in pollers:
        poller.start()
    time.sleep(0.5)  # all five are waiting (their first, empty receive done)
    before = app.receives
    sent = time.monotonic()
    sqs.send_message(QueueUrl=jobs, MessageBody="hello")
    time.sleep(0.5)
    woken = app.receives - before
    for poller in pollers:
        poller.join()
    first = min(at for at, count in got if count)
    assert sum(count for _, count in got) == 1
    assert first - sent < 0.5, "the waiting receive got the message at once"
    assert woken == 1, f"{woken} receives after one send (one per waiting poller before)"
