"""A typed client for the operator API (docs/operator-api.md), local or deployed alike.

Requests are signed with botocore's SigV4 (service ``execute-api``), as every AWS SDK signs
them, with the caller's usual AWS credentials (environment, profile, role). Against
``dynamowave serve`` those are the local credentials it prints at start-up; the region is read
from a deployed URL (``...execute-api.{region}.amazonaws.com``) or taken from the session.

    from dynamowave.admin import AdminClient
    admin = AdminClient("http://127.0.0.1:8765/admin")
    admin.publish("lobby", user="bot", text="Welcome!", client_msg_id="welcome-1")
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from typing import Any, Final
from urllib.parse import quote, urlencode

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE: Final = "execute-api"
_REGION_IN_URL: Final = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


class AdminError(Exception):
    """The operator API refused the call: its HTTP status and JSON error {code, message}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _segment(value: str) -> str:
    return quote(value, safe="")


class AdminClient:
    def __init__(
        self,
        url: str,
        *,
        region: str | None = None,
        credentials: Credentials | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise AdminError(0, "bad_url", f"the operator API URL must be http(s)://..., got {url!r}")
        self.url = url.rstrip("/")
        session = botocore.session.get_session()
        match = _REGION_IN_URL.search(self.url)
        self.region = (
            region
            or (match.group(1) if match else None)
            or session.get_config_variable("region")
            or "us-east-1"
        )
        resolved = credentials or session.get_credentials()
        if resolved is None:
            raise AdminError(
                0, "no_credentials", "no AWS credentials to sign with (set AWS_ACCESS_KEY_ID etc.)"
            )
        self._credentials = resolved
        self._timeout = timeout

    # -- routes (docs/operator-api.md) -----------------------------------------------------------

    def publish(
        self, room: str, *, user: str, text: str, client_msg_id: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"user": user, "text": text, "clientMsgId": client_msg_id or uuid.uuid4().hex}
        if name is not None:
            body["name"] = name
        return self.call("POST", f"/rooms/{_segment(room)}/messages", body)

    def delete(self, room: str, seq: int) -> dict[str, Any]:
        return self.call("DELETE", f"/rooms/{_segment(room)}/messages/{seq}")

    def add_member(self, room: str, user: str) -> dict[str, Any]:
        return self.call("POST", f"/rooms/{_segment(room)}/members/{_segment(user)}")

    def remove_member(self, room: str, user: str, *, reason: str | None = None) -> dict[str, Any]:
        """Ends the user's membership as a kick does (`kicked` carries the reason)."""
        body = None if reason is None else {"reason": reason}
        return self.call("DELETE", f"/rooms/{_segment(room)}/members/{_segment(user)}", body)

    def ban(
        self, room: str, user: str, *, seconds: int | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if seconds is not None:
            body["seconds"] = seconds
        if reason is not None:
            body["reason"] = reason
        return self.call("PUT", f"/rooms/{_segment(room)}/bans/{_segment(user)}", body)

    def unban(self, room: str, user: str) -> dict[str, Any]:
        return self.call("DELETE", f"/rooms/{_segment(room)}/bans/{_segment(user)}")

    def mute(self, room: str, user: str, *, seconds: int | None = None) -> dict[str, Any]:
        """The user keeps reading; sends, edits, reactions and typing are refused with `muted`."""
        body: dict[str, Any] = {} if seconds is None else {"seconds": seconds}
        return self.call("PUT", f"/rooms/{_segment(room)}/mutes/{_segment(user)}", body)

    def unmute(self, room: str, user: str) -> dict[str, Any]:
        return self.call("DELETE", f"/rooms/{_segment(room)}/mutes/{_segment(user)}")

    def room_event(self, room: str, name: str, data: Any = None) -> dict[str, Any]:
        return self.call("POST", f"/rooms/{_segment(room)}/events", {"name": name, "data": data})

    def user_event(self, user: str, name: str, data: Any = None) -> dict[str, Any]:
        return self.call("POST", f"/users/{_segment(user)}/events", {"name": name, "data": data})

    def disconnect(self, user: str) -> dict[str, Any]:
        return self.call("DELETE", f"/users/{_segment(user)}/connections")

    def history(self, room: str, *, before: int | None = None, limit: int | None = None) -> dict[str, Any]:
        query = {k: str(v) for k, v in (("before", before), ("limit", limit)) if v is not None}
        return self.call("GET", f"/rooms/{_segment(room)}/messages", query=query)

    def presence(self, room: str) -> dict[str, Any]:
        return self.call("GET", f"/rooms/{_segment(room)}/presence")

    def rooms(self, user: str) -> dict[str, Any]:
        return self.call("GET", f"/users/{_segment(user)}/rooms")

    # -- transport -------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One signed request; the JSON answer, or `AdminError` for any non-2xx status."""
        url = self.url + path + (f"?{urlencode(sorted((query or {}).items()))}" if query else "")
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self._credentials.get_frozen_credentials(), SERVICE, self.region).add_auth(request)
        prepared = urllib.request.Request(  # noqa: S310 (http(s), checked in __init__)
            url, data=data or None, method=method, headers=dict(request.headers.items())
        )
        try:
            with urllib.request.urlopen(prepared, timeout=self._timeout) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except urllib.error.URLError as error:
            raise AdminError(0, "unreachable", f"{self.url}: {error.reason}") from None
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"message": raw.decode("utf-8", "replace")[:200]}
        if not 200 <= status < 300:
            # API Gateway's own refusals (403 of IAM, 429 of throttling) carry only a message.
            code = str(
                answer.get("code")
                or {403: "forbidden", 429: "rate_limited", 404: "not_found"}.get(status, "error")
            )
            raise AdminError(status, code, str(answer.get("message", "")))
        return answer if isinstance(answer, dict) else {"result": answer}
