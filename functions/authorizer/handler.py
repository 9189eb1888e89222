"""API Gateway REQUEST authorizer for `$connect`: HS256 JWT from the `token` query parameter.

Raising "Unauthorized" makes API Gateway answer 401; a Deny policy makes it answer 403 (also
for a browser page whose ``Origin`` is not in ``ALLOWED_ORIGINS``, when that list is set). The
identity goes to every route as `requestContext.authorizer` (userId, name, rooms). Behind the
edge (an origin secret is configured) a handshake that did not come through CloudFront, i.e.
without the right ORIGIN_HEADER, is denied before the token is looked at.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.chat.adapters.secrets import jwt_secret, origin_secret
from functions.chat.auth import Identity, TokenRefused, origin_allowed, verify_token
from functions.chat.observability import is_warmup, observability
from functions.chat.schema import ORIGIN_HEADER, TOKEN_QUERY_PARAMETER
from functions.chat.settings import get_settings

logger, tracer, _ = observability("authorizer")


def policy(principal_id: str, effect: str, resource: str, identity: Identity | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }
    if identity is not None:
        response["context"] = identity.to_context()
    return response


def came_through_the_edge(headers: Mapping[str, Any] | None) -> bool:
    """True without an origin secret (no edge), else only with the secret in ORIGIN_HEADER."""
    expected = origin_secret()
    if expected is None:
        return True
    wanted = ORIGIN_HEADER.lower()
    sent = next((str(v) for k, v in (headers or {}).items() if str(k).lower() == wanted), "")
    return hmac.compare_digest(sent.encode(), expected.encode())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_warmup(event):
        return {"warmup": True}
    if not came_through_the_edge(event.get("headers")):
        logger.info("handshake refused", extra={"reason": f"no valid {ORIGIN_HEADER}: not via CloudFront"})
        return policy("anonymous", "Deny", event["methodArn"])
    token = (event.get("queryStringParameters") or {}).get(TOKEN_QUERY_PARAMETER)
    if not token:
        # API Gateway refuses a missing identity source itself; this covers a direct call.
        raise Exception("Unauthorized")
    if not origin_allowed(event.get("headers"), get_settings().allowed_origins):
        logger.info("origin refused", extra={"reason": "Origin not in ALLOWED_ORIGINS"})
        return policy("anonymous", "Deny", event["methodArn"])
    try:
        identity = verify_token(str(token), jwt_secret())
    except TokenRefused as refused:
        logger.info("token refused", extra={"reason": str(refused)})
        return policy("anonymous", "Deny", event["methodArn"])
    logger.append_keys(user_id=identity.user_id)
    return policy(identity.user_id, "Allow", event["methodArn"], identity)
