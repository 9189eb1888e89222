"""Message review (docs/protocol.md, "Message review"): a function the operator supplies that
sees every message and edit before it is stored, and allows, denies or replaces it.

The ingress calls it synchronously within a time budget. On AWS it is a Lambda function
(CDK context ``reviewFunctionArn``) invoked with ``lambda:Invoke`` (RequestResponse); locally
``dynamowave serve --review-handler MODULE.ATTR`` runs the same kind of handler in the runtime's
Lambda runner behind the same Invoke API, so this module cannot tell the two apart. When the
reviewer times out, fails or answers something unreadable, the configured fallback (allow or
deny) decides, and the verdict says so (logged and counted by the ingress).

The reviewer's event and answer (the contract a reviewer implements)::

    {"kind": "message" | "edit", "room", "user", "name", "text", "clientMsgId"?, "seq"?}
    -> {"result": "allow"} | {"result": "deny", "reason": "..."} | {"result": "replace", "text": "..."}
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from functions.chat.domain.ports import Result, ReviewRequest, Verdict
from functions.chat.protocol import text_problem

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH: Final = 500
DEFAULT_DENY_REASON: Final = "refused by the message review"


def parse_answer(answer: object, request: ReviewRequest, *, max_text_length: int) -> Verdict:
    """The reviewer's answer as a verdict; `ValueError` if it is not one of the three forms (or a
    replacement the protocol would refuse as a message)."""
    if not isinstance(answer, dict):
        raise ValueError("the answer must be a JSON object")
    result = str(answer.get("result", "")).lower()
    if result == Result.ALLOW:
        return Verdict(Result.ALLOW, request.text)
    if result == Result.DENY:
        reason = answer.get("reason")
        reason = reason.strip()[:MAX_REASON_LENGTH] if isinstance(reason, str) and reason.strip() else ""
        return Verdict(Result.DENY, request.text, reason or DEFAULT_DENY_REASON)
    if result == Result.REPLACE:
        text = answer.get("text")
        if not isinstance(text, str):
            raise ValueError("'replace' needs a string 'text'")
        problem = text_problem(text, max_text_length)
        if problem is not None:
            raise ValueError(f"replacement refused: {problem[1]}")
        return Verdict(Result.REPLACE, text)
    raise ValueError(f"'result' must be allow, deny or replace, got {answer.get('result')!r}")


class LambdaReviewer:
    """Invokes the review function synchronously; its client's read timeout is the budget."""

    def __init__(
        self,
        client: Any,
        function_arn: str,
        *,
        fallback: Result,
        max_text_length: int,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._client = client
        self._function_arn = function_arn
        self._fallback = fallback
        self._max_text_length = max_text_length
        self._timer = timer

    def review(self, request: ReviewRequest) -> Verdict:
        started = self._timer()
        try:
            response = self._client.invoke(
                FunctionName=self._function_arn,
                InvocationType="RequestResponse",
                Payload=json.dumps(request.event()).encode("utf-8"),
            )
            payload = response["Payload"].read()
            if response.get("FunctionError"):
                return self._fall_back(request, "error", started, f"the reviewer failed: {payload[:200]!r}")
            verdict = parse_answer(json.loads(payload), request, max_text_length=self._max_text_length)
        except (ReadTimeoutError, ConnectTimeoutError):
            return self._fall_back(
                request, "timeout", started, "the reviewer did not answer within the budget"
            )
        except (ClientError, BotoCoreError) as error:
            return self._fall_back(request, "error", started, f"invoking the reviewer failed: {error}")
        except ValueError as error:
            return self._fall_back(request, "invalid", started, f"the reviewer's answer is unusable: {error}")
        return Verdict(verdict.result, verdict.text, verdict.reason, elapsed_ms=self._elapsed(started))

    def _elapsed(self, started: float) -> float:
        return (self._timer() - started) * 1000

    def _fall_back(self, request: ReviewRequest, why: str, started: float, detail: str) -> Verdict:
        logger.warning("message review fell back to %s (%s): %s", self._fallback, why, detail)
        reason = "" if self._fallback is Result.ALLOW else "the message review is unavailable; try again"
        return Verdict(self._fallback, request.text, reason, fallback=why, elapsed_ms=self._elapsed(started))
