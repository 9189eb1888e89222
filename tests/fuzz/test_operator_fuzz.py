"""Fuzz the operator API's routes: any path segment, query and body. Every answer is JSON
{code, message} with a 4xx status, or a 2xx; never a 500; and a refused call changes no table
and queues nothing (docs/operator-api.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamowave.testing.aws import LambdaContext
from functions.operator.handler import handler
from tests.fuzz.support import IngressHarness, fuzz_settings, ingress_harness
from tests.integration.events import http_api_event

ROUTES = [
    ("POST", "/rooms/{a}/messages"),
    ("GET", "/rooms/{a}/messages"),
    ("DELETE", "/rooms/{a}/messages/{b}"),
    ("POST", "/rooms/{a}/members/{b}"),
    ("DELETE", "/rooms/{a}/members/{b}"),
    ("PUT", "/rooms/{a}/bans/{b}"),
    ("DELETE", "/rooms/{a}/bans/{b}"),
    ("PUT", "/rooms/{a}/mutes/{b}"),
    ("DELETE", "/rooms/{a}/mutes/{b}"),
    ("POST", "/rooms/{a}/events"),
    ("POST", "/users/{a}/events"),
    ("DELETE", "/users/{a}/connections"),
    ("GET", "/rooms/{a}/presence"),
    ("GET", "/users/{a}/rooms"),
]
segments = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9_.@-]{1,64}\Z"),
    st.text(min_size=1, max_size=80).map(lambda s: s.replace("/", "%2F")),
    st.sampled_from(["%00", "a%0A", "x" * 65, "..", "%2e%2e", "0", "-1", "9007199254740993"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "user": st.one_of(st.from_regex(r"\A[a-z]{1,8}\Z"), json_values),
        "name": json_values,
        "text": st.one_of(st.text(max_size=30), json_values),
        "clientMsgId": st.one_of(st.from_regex(r"\A[a-z0-9]{1,8}\Z"), json_values),
        "seconds": json_values,
        "reason": json_values,
        "data": json_values,
    },
)
bodies = st.one_of(st.none(), fields.map(json.dumps), st.text(max_size=40), json_values.map(json.dumps))
queries = st.one_of(
    st.just(""), st.sampled_from(["limit=0", "limit=5", "before=x", "limit=101&before=3", "limit=%00"])
)


@pytest.fixture(scope="module")
def harness() -> Iterator[IngressHarness]:
    with ingress_harness() as harness:
        yield harness


@fuzz_settings(scale=0.5)
@given(route=st.sampled_from(ROUTES), a=segments, b=segments, body=bodies, query=queries)
def test_operator_routes_answer_json_and_refusals_change_nothing(
    harness: IngressHarness, route: tuple[str, str], a: str, b: str, body: Any, query: str
) -> None:
    method, template = route
    before = harness.snapshot()
    response = handler(http_api_event(method, template.format(a=a, b=b), body, query), LambdaContext())
    status = response["statusCode"]
    answer = json.loads(response["body"])
    assert status != 500, answer
    if status >= 400:
        assert status in (400, 404, 409, 413) and set(answer) == {"code", "message"}, (status, answer)
        assert harness.snapshot() == before
    harness.purge_queue()
