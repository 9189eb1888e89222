"""botocore-level fault injection for the functions' own clients (DynamoDB, SQS, Management API).

Installed on a client's event system, so only the clients the handlers use are affected (the
test's own clients read the truth). Two kinds of fault:

* refused (``before-call``): the call fails without reaching the service, as a call does when
  the SDK's retries are exhausted: ProvisionedThroughputExceeded, ThrottlingException,
  InternalServerError (DynamoDB); throttling and 500s (SQS); 429 and 500 (Management API).
* ambiguous (``after-call``, TransactWriteItems only): the write was applied, but the caller
  gets a 500 (a reply lost on the way back). The code must treat the outcome as unknown.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from botocore.awsrequest import AWSResponse, HTTPHeaders

from dynamowave.local.management_api import BytesBody

# (HTTP status, error code) per service, the ones the app must survive.
ERRORS: dict[str, list[tuple[int, str]]] = {
    "dynamodb": [
        (400, "ProvisionedThroughputExceededException"),
        (400, "ThrottlingException"),
        (500, "InternalServerError"),
    ],
    "sqs": [(400, "ThrottlingException"), (500, "InternalError"), (503, "ServiceUnavailable")],
    "apigatewaymanagementapi": [(429, "LimitExceededException"), (500, "InternalServerErrorException")],
}


@dataclass
class BotoFaults:
    """Per-operation failure probabilities; `rates` keys are "service" or "service.Operation"."""

    rates: dict[str, float]
    ambiguous_rate: float = 0.0
    seed: int = 7
    enabled: bool = True
    # Connections API Gateway has lost: every Management API call about them answers 410.
    gone: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def install(self, client: Any) -> None:
        if client.meta.service_model.service_name == "apigatewaymanagementapi":
            # The functions post through SignedPoster, which emits only `before-send` (as the
            # client does once a request is signed): faults there reach both kinds of call.
            client.meta.events.register("before-send.apigatewaymanagementapi", self._before_send)
            return
        client.meta.events.register("before-call", self._before_call)
        client.meta.events.register("after-call", self._after_call)

    def _draw(self) -> float:
        with self._lock:
            return self._random.random()

    def _choice(self, options: list[tuple[int, str]]) -> tuple[int, str]:
        with self._lock:
            return self._random.choice(options)

    def _rate(self, service: str, operation: str) -> float:
        return self.rates.get(f"{service}.{operation}", self.rates.get(service, 0.0))

    def _fault_for(self, service: str, operation: str, connection_id: str) -> tuple[int, str] | None:
        """The (status, code) to fail this call with, counted, or None to let it through."""
        if service == "apigatewaymanagementapi" and connection_id in self.gone:
            with self._lock:
                self.counts[f"{service}.{operation}:GoneException"] += 1
            return 410, "GoneException"
        if not self.enabled or service not in ERRORS:
            return None
        if self._draw() >= self._rate(service, operation):
            return None
        status, code = self._choice(ERRORS[service])
        with self._lock:
            self.counts[f"{service}.{operation}:{code}"] += 1
            self.counts[f"{service}:refused"] += 1
        return status, code

    def _before_call(
        self, model: Any, params: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        # `params` is the serialized request: for the Management API the id ends the URL.
        connection_id = unquote(str(params.get("url_path", "")).rsplit("/", 1)[-1])
        fault = self._fault_for(model.service_model.endpoint_prefix, model.name, connection_id)
        return None if fault is None else _error(*fault)

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        connection_id = unquote(request.url.rsplit("/", 1)[-1])
        fault = self._fault_for("apigatewaymanagementapi", event_name.rsplit(".", 1)[-1], connection_id)
        if fault is None:
            return None
        status, code = fault
        # As API Gateway answers: the code in x-amzn-ErrorType and the body, where botocore and
        # SignedPoster read it.
        body = json.dumps({"message": f"injected fault: {code}", "__type": code}).encode()
        headers = HTTPHeaders.from_dict({"x-amzn-ErrorType": code, "Content-Type": "application/json"})
        return AWSResponse(request.url, status, headers, BytesBody(body))

    def _after_call(self, model: Any, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if not self.enabled or model.name != "TransactWriteItems" or http_response.status_code >= 300:
            return
        if self._draw() >= self.ambiguous_rate:
            return
        # The transaction committed; the caller is told it failed.
        http_response.status_code = 500
        parsed["Error"] = {"Code": "InternalServerError", "Message": "injected: reply lost after commit"}
        parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = 500
        with self._lock:
            self.counts["dynamodb.TransactWriteItems:ambiguous"] += 1

    def summary(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))


def _error(status: int, code: str) -> tuple[AWSResponse, dict[str, Any]]:
    http = AWSResponse(url="https://injected.invalid/", status_code=status, headers=HTTPHeaders(), raw=None)
    parsed = {
        "Error": {"Code": code, "Message": f"injected fault: {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 3},
    }
    return http, parsed
