"""Cached factories: one boto3 client of each kind per process, built on first use.

Handlers call these instead of constructing clients, so a warm Lambda reuses its connections.
`reset()` forgets everything (tests and the local runtime call it after changing the
environment).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache, wraps
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import boto3
from botocore.config import Config

from functions.chat.adapters.dynamodb.store import ChatStore
from functions.chat.adapters.management_client import ManagementClient, SignedPoster
from functions.chat.adapters.queue import JobQueue
from functions.chat.adapters.review import LambdaReviewer
from functions.chat.domain.fanout import Fanout
from functions.chat.domain.janitor import Janitor
from functions.chat.domain.ports import NoReview, Result, Reviewer
from functions.chat.domain.removal import ConnectionRemoval
from functions.chat.domain.service import ChatService
from functions.chat.settings import Settings, clear_settings, environment_key, get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


POST_CONNECT_TIMEOUT = 2
POST_READ_TIMEOUT = 5
# GetConnection/DeleteConnection calls in flight: they share the account's API Gateway throttle
# with the fan-out, so the janitor stays modest.
JANITOR_CONCURRENCY: Final = 8

T_co = TypeVar("T_co", covariant=True)


class Factory(Protocol[T_co]):
    def __call__(self, *args: Any) -> T_co: ...

    def cache_clear(self) -> None: ...


def per_environment(factory: Callable[..., T_co]) -> Factory[T_co]:
    """One instance per distinct environment (`get_settings`), made on first use: on Lambda one
    per process; where functions with different environments share a process (the local
    runtime), each gets its own, built from its own settings."""

    @cache
    def cached(environment: tuple[tuple[str, str | None], ...], *args: Any) -> T_co:
        return factory(*args)

    @wraps(factory)
    def wrapper(*args: Any) -> T_co:
        return cached(environment_key(), *args)

    wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


@per_environment
def _session() -> boto3.session.Session:
    return boto3.session.Session()


@per_environment
def dynamodb_client() -> DynamoDBClient:
    settings = get_settings()
    config = Config(
        retries={"mode": "standard", "max_attempts": 4},
        max_pool_connections=max(10, settings.fanout_pool_size),
        connect_timeout=3,
        read_timeout=5,
    )
    return _session().client("dynamodb", config=config)


@per_environment
def sqs_client() -> SQSClient:
    config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)
    return _session().client("sqs", config=config)


@per_environment
def store() -> ChatStore:
    return ChatStore(dynamodb_client(), get_settings())


@per_environment
def job_queue() -> JobQueue:
    settings = get_settings()
    return JobQueue(
        sqs_client(), settings.fanout_queue_url, settings.fanout_dlq_url, settings.fanout_parked_url
    )


@per_environment
def management_api(endpoint: str) -> ManagementClient:
    """One client and one poster per endpoint, each with a connection pool as large as the
    fan-out's thread pool."""
    settings: Settings = get_settings()
    config = Config(
        retries={"total_max_attempts": 1},  # the fan-out does its own backoff; 410 is final
        max_pool_connections=settings.fanout_pool_size,
        connect_timeout=POST_CONNECT_TIMEOUT,
        read_timeout=POST_READ_TIMEOUT,
    )
    client = _session().client("apigatewaymanagementapi", endpoint_url=endpoint, config=config)
    credentials = _session().get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials to sign Management API calls with")
    poster = SignedPoster(
        client,
        credentials,
        pool_size=settings.fanout_pool_size,
        connect_timeout=POST_CONNECT_TIMEOUT,
        read_timeout=POST_READ_TIMEOUT,
    )
    return ManagementClient(client, poster)


def management_endpoint(domain_name: str | None = None, stage: str | None = None) -> str:
    """The configured endpoint, else the one API Gateway's event names (AWS only)."""
    configured = get_settings().management_api_endpoint
    if configured:
        return configured
    if not domain_name or not stage:
        raise RuntimeError("MANAGEMENT_API_ENDPOINT is not set and the event names no domain")
    return f"https://{domain_name}/{stage}"


@per_environment
def reviewer() -> Reviewer:
    """The message review function, if one is configured: one synchronous Lambda invoke per
    message or edit, bounded by REVIEW_TIMEOUT_MS end to end (no SDK retries within it)."""
    settings = get_settings()
    if not settings.review_function_arn:
        return NoReview()
    budget = settings.review_timeout_ms / 1000
    config = Config(
        retries={"total_max_attempts": 1},
        connect_timeout=budget,
        read_timeout=budget,
        max_pool_connections=max(10, settings.fanout_pool_size),
    )
    return LambdaReviewer(
        _session().client("lambda", config=config),
        settings.review_function_arn,
        fallback=Result(settings.review_fallback),
        max_text_length=settings.max_text_length,
    )


@per_environment
def connection_removal() -> ConnectionRemoval:
    """The one way a connection is removed: $disconnect, a 410 in the fan-out, the janitor."""
    return ConnectionRemoval(store(), job_queue())


@per_environment
def chat_service(endpoint: str) -> ChatService:
    """The chat actions, replying to callers through the Management API at `endpoint`."""
    return ChatService(
        store(),
        job_queue(),
        get_settings(),
        management_api(endpoint).post,
        reviewer=reviewer(),
        removal=connection_removal(),
    )


@cache
def thread_pool(name: str, size: int) -> ThreadPoolExecutor:
    """One bounded pool per purpose and size, per process (a warm Lambda keeps it; an
    environment change does not need a new one)."""
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)


@per_environment
def fanout(endpoint: str) -> Fanout:
    """The fan-out, posting through the Management API at `endpoint` over the `fanout-post` pool."""
    settings = get_settings()
    return Fanout(
        store=store(),
        queue=job_queue(),
        api=management_api(endpoint),
        prune=connection_removal().remove,
        settings=settings,
        executor=thread_pool("fanout-post", settings.fanout_pool_size),
    )


@per_environment
def janitor(endpoint: str) -> Janitor:
    return Janitor(
        store=store(),
        api=management_api(endpoint),
        prune=connection_removal().remove,
        settings=get_settings(),
        executor=thread_pool("janitor", JANITOR_CONCURRENCY),
    )


def reset() -> None:
    clear_settings()
    for factory in (
        _session,
        dynamodb_client,
        sqs_client,
        store,
        job_queue,
        management_api,
        reviewer,
        connection_removal,
        chat_service,
        fanout,
        janitor,
    ):
        factory.cache_clear()
