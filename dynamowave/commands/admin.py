"""`dynamowave admin`: the operator API from the command line (docs/operator-api.md).

Signs with the usual AWS credentials (against `dynamowave serve`: the local ones it prints).
Prints the JSON answer; a refusal prints `dynamowave: error: STATUS CODE: message`, exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from dynamowave.cli import CommandError

if TYPE_CHECKING:
    from dynamowave.admin import AdminClient


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("DYNAMOWAVE_ADMIN_URL"),
        help="operator API URL: the stack's OperatorApiUrl, or http://127.0.0.1:8765/admin (env DYNAMOWAVE_ADMIN_URL)",
    )
    parser.add_argument("--region", help="signing region (default: from the URL, else the AWS session's)")
    sub = parser.add_subparsers(dest="op", metavar="OP", required=True)

    publish = sub.add_parser("publish", help="post a message as a bot or system user")
    publish.add_argument("room")
    publish.add_argument("text")
    publish.add_argument("--user", required=True, help="the (bot) user id the message is from")
    publish.add_argument("--name", help="display name (default: the user id)")
    publish.add_argument("--client-msg-id", help="idempotency key (default: a fresh one)")

    delete = sub.add_parser("delete", help="delete a message as a moderator would")
    delete.add_argument("room")
    delete.add_argument("seq", type=int)

    ban = sub.add_parser("ban", help="ban a user from a room (kicks them too)")
    ban.add_argument("room")
    ban.add_argument("user")
    ban.add_argument("--seconds", type=int, help="ban length (default: until unban)")
    ban.add_argument("--reason")

    for name, text in (("unban", "lift a ban"), ("unmute", "lift a mute")):
        op = sub.add_parser(name, help=text)
        op.add_argument("room")
        op.add_argument("user")

    kick = sub.add_parser("kick", help="end a user's membership (every connection gets `kicked`)")
    kick.add_argument("room")
    kick.add_argument("user")
    kick.add_argument("--reason")

    mute = sub.add_parser("mute", help="mute a user in a room")
    mute.add_argument("room")
    mute.add_argument("user")
    mute.add_argument("--seconds", type=int, help="mute length (default: until unmuted)")

    disconnect = sub.add_parser("disconnect", help="close every connection of a user")
    disconnect.add_argument("user")

    history = sub.add_parser("history", help="a room's messages, newest page first")
    history.add_argument("room")
    history.add_argument("--before", type=int)
    history.add_argument("--limit", type=int)

    presence = sub.add_parser("presence", help="who is online in a room")
    presence.add_argument("room")

    rooms = sub.add_parser("rooms", help="a user's rooms, as their `rooms` reply")
    rooms.add_argument("user")

    event = sub.add_parser("event", help="an ephemeral event to a room's subscribers or to a user")
    target = event.add_mutually_exclusive_group(required=True)
    target.add_argument("--room")
    target.add_argument("--user")
    event.add_argument("name")
    event.add_argument("--data", default="null", help="the event's data, as JSON (default null)")


def _call(admin: AdminClient, args: argparse.Namespace) -> dict[str, Any]:
    op = args.op
    if op == "publish":
        return admin.publish(
            args.room, user=args.user, text=args.text, client_msg_id=args.client_msg_id, name=args.name
        )
    if op == "delete":
        return admin.delete(args.room, args.seq)
    if op == "ban":
        return admin.ban(args.room, args.user, seconds=args.seconds, reason=args.reason)
    if op == "unban":
        return admin.unban(args.room, args.user)
    if op == "kick":
        return admin.remove_member(args.room, args.user, reason=args.reason)
    if op == "mute":
        return admin.mute(args.room, args.user, seconds=args.seconds)
    if op == "unmute":
        return admin.unmute(args.room, args.user)
    if op == "disconnect":
        return admin.disconnect(args.user)
    if op == "history":
        return admin.history(args.room, before=args.before, limit=args.limit)
    if op == "presence":
        return admin.presence(args.room)
    if op == "rooms":
        return admin.rooms(args.user)
    # event
    try:
        data = json.loads(args.data)
    except ValueError:
        raise CommandError(f"--data is not valid JSON: {args.data!r}") from None
    if args.room:
        return admin.room_event(args.room, args.name, data)
    return admin.user_event(args.user, args.name, data)


def run(args: argparse.Namespace) -> int:
    from dynamowave.admin import AdminClient, AdminError

    if not args.url:
        raise CommandError("--url is required (or set DYNAMOWAVE_ADMIN_URL)")
    try:
        admin = AdminClient(args.url, region=args.region)
        answer = _call(admin, args)
    except AdminError as error:
        raise CommandError(str(error)) from None
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0
