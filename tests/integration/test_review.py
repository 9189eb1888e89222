"""Message review: the verdicts, the time budget and fallback, the example word list, and the
service storing exactly what the review decided (moto, real boto3 clients)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from functions.chat import deps
from functions.chat.adapters.review import LambdaReviewer, parse_answer
from functions.chat.domain.ports import Result, ReviewRequest, Verdict
from functions.chat.domain.service import ChatService
from functions.review.handler import handler as wordlist_handler
from functions.review.handler import review as wordlist
from tests.integration.conftest import Chat

REQUEST = ReviewRequest("message", "lobby", "ann", "Ann", "hello there", client_msg_id="m1")


class FakeLambda:
    """boto3's lambda client as the reviewer uses it: invoke -> {Payload, FunctionError?}."""

    def __init__(self, answer: Any = None, *, error: Exception | None = None, function_error: bool = False):
        self.answer, self.error, self.function_error = answer, error, function_error
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        response: dict[str, Any] = {"Payload": io.BytesIO(json.dumps(self.answer).encode())}
        if self.function_error:
            response["FunctionError"] = "Unhandled"
        return response


def reviewer(client: FakeLambda, fallback: Result = Result.ALLOW) -> LambdaReviewer:
    return LambdaReviewer(
        client, "arn:aws:lambda:us-east-1:1:function:review", fallback=fallback, max_text_length=20
    )


@pytest.mark.parametrize(
    ("answer", "result", "text", "reason"),
    [
        ({"result": "allow"}, Result.ALLOW, "hello there", ""),
        ({"result": "ALLOW"}, Result.ALLOW, "hello there", ""),
        ({"result": "deny", "reason": "no greetings"}, Result.DENY, "hello there", "no greetings"),
        ({"result": "deny"}, Result.DENY, "hello there", "refused by the message review"),
        ({"result": "replace", "text": "hi"}, Result.REPLACE, "hi", ""),
    ],
)
def test_answers_become_verdicts(answer: Any, result: Result, text: str, reason: str) -> None:
    client = FakeLambda(answer)
    verdict = reviewer(client).review(REQUEST)
    assert (verdict.result, verdict.text, verdict.reason, verdict.fallback) == (result, text, reason, "")
    call = client.calls[0]
    assert call["InvocationType"] == "RequestResponse"
    assert json.loads(call["Payload"]) == {
        "kind": "message",
        "room": "lobby",
        "user": "ann",
        "name": "Ann",
        "text": "hello there",
        "clientMsgId": "m1",
    }


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        {"result": "maybe"},
        {"result": "replace"},
        {"result": "replace", "text": ""},
        {"result": "replace", "text": "x" * 21},
        {"result": "replace", "text": "\ud800"},
    ],
)
def test_unusable_answers_fall_back(answer: Any) -> None:
    for fallback in (Result.ALLOW, Result.DENY):
        verdict = reviewer(FakeLambda(answer), fallback).review(REQUEST)
        assert verdict.result is fallback and verdict.fallback == "invalid"
        assert verdict.text == REQUEST.text and verdict.outcome == f"fallback-{fallback}"


def test_timeout_error_and_function_error_fall_back() -> None:
    timeout = ReadTimeoutError(endpoint_url="http://x")
    assert reviewer(FakeLambda(error=timeout), Result.DENY).review(REQUEST).fallback == "timeout"
    denied = reviewer(FakeLambda(error=timeout), Result.DENY).review(REQUEST)
    assert not denied.allowed and denied.reason
    throttled = ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "x"}}, "Invoke")
    assert reviewer(FakeLambda(error=throttled)).review(REQUEST).fallback == "error"
    crashed = reviewer(FakeLambda({"errorMessage": "boom"}, function_error=True)).review(REQUEST)
    assert crashed.fallback == "error" and crashed.allowed


def test_parse_answer_keeps_reasons_short() -> None:
    verdict = parse_answer({"result": "deny", "reason": "x" * 2000}, REQUEST, max_text_length=100)
    assert len(verdict.reason) == 500


def test_word_list_denies_masks_and_allows() -> None:
    deny, mask = frozenset({"free-crypto"}), frozenset({"darn"})
    assert wordlist("get FREE-CRYPTO now", deny, mask)["result"] == "deny"
    assert wordlist("free-cryptocurrency is a word", deny, mask) == {"result": "allow"}
    assert wordlist("Darn it, darn!", deny, mask) == {"result": "replace", "text": "**** it, ****!"}
    assert wordlist("darning socks", deny, mask) == {"result": "allow"}
    assert wordlist("anything", frozenset(), frozenset()) == {"result": "allow"}


def test_word_list_handler_reads_its_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVIEW_DENY_WORDS", "spam, eggs")
    monkeypatch.setenv("REVIEW_MASK_WORDS", "")
    assert wordlist_handler({"text": "Eggs!"}, None)["result"] == "deny"
    assert wordlist_handler({"text": "darn"}, None) == {"result": "allow"}
    assert wordlist_handler({}, None)["result"] == "deny"


class Scripted:
    """A reviewer that answers from a script (the service's side of the contract)."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.seen: list[ReviewRequest] = []

    def review(self, request: ReviewRequest) -> Verdict:
        self.seen.append(request)
        return self.verdict


def reviewed_chat(chat: Chat, verdict: Verdict) -> tuple[Chat, Scripted]:
    scripted = Scripted(verdict)
    chat.service = ChatService(
        deps.store(), deps.job_queue(), chat.settings, chat.recorder, reviewer=scripted
    )
    return chat, scripted


def test_denied_message_is_rejected_and_nothing_is_stored(chat: Chat) -> None:
    chat, scripted = reviewed_chat(chat, Verdict(Result.DENY, "", "not here"))
    connection, identity = chat.connect("ann")
    chat.frame(connection, identity, action="join", room="lobby")
    outcome = chat.service.handle(
        connection,
        identity,
        json.dumps({"action": "sendmessage", "room": "lobby", "text": "hi", "clientMsgId": "c1"}),
        "r",
    )
    assert outcome.reply == {
        "type": "error",
        "code": "rejected",
        "message": "not here",
        "action": "sendmessage",
        "clientMsgId": "c1",
        "room": "lobby",
    }
    assert outcome.review is not None and outcome.review.result is Result.DENY
    assert chat.table_items("messages") == []
    assert scripted.seen[0].text == "hi" and scripted.seen[0].user == "ann"


def test_replaced_message_is_stored_and_fanned_out_with_the_replacement(chat: Chat) -> None:
    chat, _ = reviewed_chat(chat, Verdict(Result.REPLACE, "h*"))
    connection, identity = chat.connect("ann")
    chat.frame(connection, identity, action="join", room="lobby")
    chat.drain_jobs()
    chat.frame(connection, identity, action="sendmessage", room="lobby", text="hi", clientMsgId="c1")
    [stored] = chat.table_items("messages")
    assert stored["text"] == {"S": "h*"}
    assert [job.frame["text"] for job in chat.drain_jobs()] == ["h*"]
    # The sender's own copy is in that job too; the ingress posts nothing (the ack is its reply).
    assert [f for f in chat.recorder.to(connection) if f["type"] == "message"] == []


def test_budget_bounds_a_slow_reviewer_end_to_end(chat: Chat) -> None:
    """The real boto3 client with the budget as its read timeout, against a server that stalls."""
    import socket
    import threading

    import boto3
    from botocore.config import Config

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    client = boto3.client(
        "lambda",
        endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.3, read_timeout=0.3),
    )
    started = time.perf_counter()
    verdict = LambdaReviewer(client, "review", fallback=Result.DENY, max_text_length=100).review(REQUEST)
    assert verdict.fallback == "timeout" and not verdict.allowed
    assert time.perf_counter() - started < 5
    listener.close()
