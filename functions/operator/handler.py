"""Operator API: API Gateway HTTP API (IAM-authorized) events in, JSON out (docs/operator-api.md).

A thin adapter over `functions.chat.domain.operator.Operator`: Powertools' HTTP resolver routes the
request, path parameters and bodies are validated there, and every refusal is {code, message}
with its HTTP status. Locally the runtime verifies SigV4 and invokes this same handler with
the same event shape (payload format 2.0) for the paths under ``/admin``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.chat import deps
from functions.chat.domain.operator import Operator, OperatorError, json_body, room_of, user_of
from functions.chat.observability import observability
from functions.chat.settings import get_settings

logger, tracer, metrics = observability("operator")
app = APIGatewayHttpResolver()
HTTP_METHODS: Final = ("get", "put", "post", "delete", "patch")


def _json(status: int, body: Any) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def operator() -> Operator:
    endpoint = deps.management_endpoint()
    return Operator(
        deps.chat_service(endpoint),
        max_text_length=get_settings().max_text_length,
        close_connection=deps.management_api(endpoint).delete,
    )


def _request_id() -> str:
    return str(app.current_event.request_context.request_id or "")


def _body(*, required: bool = True) -> dict[str, Any]:
    return json_body(app.current_event.decoded_body, required=required)


@app.post("/rooms/<room>/messages")
def publish(room: str) -> Response[str]:
    return _json(200, operator().publish(room_of(room), _body(), _request_id()))


@app.get("/rooms/<room>/messages")
def history(room: str) -> Response[str]:
    query = app.current_event.query_string_parameters or {}
    return _json(200, operator().history(room_of(room), query.get("before"), query.get("limit")))


@app.get("/rooms/<room>/presence")
def presence(room: str) -> Response[str]:
    return _json(200, operator().presence(room_of(room)))


@app.post("/rooms/<room>/events")
def room_event(room: str) -> Response[str]:
    return _json(200, operator().room_event(room_of(room), _body(), _request_id()))


@app.delete("/rooms/<room>/messages/<seq>")
def delete_message(room: str, seq: str) -> Response[str]:
    return _json(200, operator().delete_message(room_of(room), seq))


@app.post("/rooms/<room>/members/<user>")
def add_member(room: str, user: str) -> Response[str]:
    return _json(200, operator().add_member(room_of(room), user_of(user), _request_id()))


@app.delete("/rooms/<room>/members/<user>")
def remove_member(room: str, user: str) -> Response[str]:
    return _json(
        200, operator().remove_member(room_of(room), user_of(user), _body(required=False), _request_id())
    )


@app.put("/rooms/<room>/bans/<user>")
def ban(room: str, user: str) -> Response[str]:
    return _json(200, operator().ban(room_of(room), user_of(user), _body(required=False), _request_id()))


@app.delete("/rooms/<room>/bans/<user>")
def unban(room: str, user: str) -> Response[str]:
    return _json(200, operator().unban(room_of(room), user_of(user)))


@app.put("/rooms/<room>/mutes/<user>")
def mute(room: str, user: str) -> Response[str]:
    return _json(200, operator().mute(room_of(room), user_of(user), _body(required=False)))


@app.delete("/rooms/<room>/mutes/<user>")
def unmute(room: str, user: str) -> Response[str]:
    return _json(200, operator().unmute(room_of(room), user_of(user)))


@app.post("/users/<user>/events")
def user_event(user: str) -> Response[str]:
    return _json(200, operator().user_event(user_of(user), _body(), _request_id()))


@app.delete("/users/<user>/connections")
def disconnect(user: str) -> Response[str]:
    return _json(200, operator().disconnect(user_of(user)))


@app.get("/users/<user>/rooms")
def rooms(user: str) -> Response[str]:
    return _json(200, operator().rooms(user_of(user)))


@app.exception_handler(OperatorError)  # type: ignore[untyped-decorator]
def refused(error: OperatorError) -> Response[str]:
    logger.info("operator call refused", extra={"status": error.status, "code": error.code})
    return _json(error.status, error.body())


@app.not_found
def not_found(_: NotFoundError) -> Response[str]:
    event = app.current_event
    return _json(404, {"code": "not_found", "message": f"no route {event.http_method} {event.path}"})


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def failed(error: Exception) -> Response[str]:
    logger.exception("operator call failed")
    return _json(500, {"code": "internal", "message": "internal error; retry later"})


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="OperatorCalls", unit=MetricUnit.Count, value=1)
    return app.resolve(event, context)


def routes() -> tuple[tuple[str, str], ...]:
    """Every route above as (METHOD, /path/{param}): the HTTP API's routes on AWS
    (stacks/operator_api.py) and the local /admin's (dynamowave/local/admin_api.py)."""
    paths = app.get_openapi_schema().paths or {}
    return tuple(
        sorted(
            (method.upper(), path)
            for path, item in paths.items()
            for method in HTTP_METHODS
            if getattr(item, method, None) is not None
        )
    )
