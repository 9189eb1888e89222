"""Conformance rows for the operator API (docs/operator-api.md): a SigV4-signed publish and
history round trip, and an unsigned call refused with 403. Against `dynamowave serve` they call
``/admin`` with the local credentials the runtime prints; against a deployed stage, the
stack's ``OperatorApiUrl`` (``--operator-url``) with the caller's AWS credentials, whose
policy needs ``execute-api:Invoke`` on the POST and GET ``/rooms/*/messages`` routes."""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.error
import urllib.request

from dynamowave.check.probe import frame as f
from dynamowave.check.rows import check
from dynamowave.check.runner import OPERATOR_API, CheckContext, row


@row(
    "operator API: a signed publish reaches joined clients, is idempotent and in history",
    needs=[OPERATOR_API],
)
async def _signed_publish(ctx: CheckContext) -> None:
    admin = ctx.operator()
    room, bot = ctx.room("opspublish"), ctx.user("bot")
    alice = await ctx.connect("alice")
    await ctx.join(alice, room)
    client_msg_id = secrets.token_hex(8)
    published = await asyncio.to_thread(
        admin.publish, room, user=bot, text="from ops", client_msg_id=client_msg_id
    )
    message = await alice.expect(f("message", room=room, user=bot, text="from ops"), "the published message")
    check(message.get("seq") == published.get("seq"), f"publish answered {published}, clients got {message}")
    again = await asyncio.to_thread(
        admin.publish, room, user=bot, text="from ops", client_msg_id=client_msg_id
    )
    check(again == published, f"a repeated clientMsgId must answer as first stored: {again} != {published}")
    page = await asyncio.to_thread(admin.history, room)
    stored = [m for m in page.get("messages", []) if m.get("user") == bot]
    check(
        [m.get("seq") for m in stored] == [published.get("seq")],
        f"history holds the message once: {page.get('messages')}",
    )


@row("operator API: an unsigned call is refused with 403 and stores nothing", needs=[OPERATOR_API])
async def _unsigned_refused(ctx: CheckContext) -> None:
    admin = ctx.operator()
    room = ctx.room("opsunsigned")
    body = json.dumps({"user": ctx.user("bot"), "text": "unsigned", "clientMsgId": "unsigned-1"}).encode()
    request = urllib.request.Request(  # noqa: S310 (the operator URL is http(s), checked by AdminClient)
        f"{admin.url}/rooms/{room}/messages",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )

    def unsigned_status() -> int:
        try:
            with urllib.request.urlopen(request, timeout=ctx.timeout) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    status = await asyncio.to_thread(unsigned_status)
    check(status == 403, f"an unsigned publish must be refused with 403, got {status}")
    page = await asyncio.to_thread(admin.history, room)
    check(page.get("messages") == [], f"nothing stored by the refused call: {page.get('messages')}")
