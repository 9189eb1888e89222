"""The terminal chat client behind `dynamowave chat`.

It speaks PROTOCOL v1 (docs/protocol.md) over one WebSocket with the `websockets` asyncio
client, against the local runtime (ws://) or a deployed stage (wss://) alike. Lines read from
the input become `sendmessage` frames (or slash commands); frames from the server become printed
lines. On a dropped connection it reconnects with exponential backoff and re-joins every room
with `since` so that messages sent meanwhile are printed once, in seq order per room.

The pieces: pure helpers (URLs, tokens, formatting), `RoomState` (what this client has seen in a
room), and `ChatClient`, which owns the connection loop. Output goes through a callable so tests
can collect it; input comes from an async iterator of lines.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import re
import secrets
import sys
import threading
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from dynamowave.client_core import Outbox, Outgoing, RoomLog, reconnect_delay
from functions.chat import protocol

PING_EVERY_SECONDS: Final = 240.0  # API Gateway closes connections idle for 10 minutes
EOF_GRACE_SECONDS: Final = 10.0  # after end of input, wait this long for outstanding acks
TYPING_REPEAT_SECONDS: Final = 3.0  # print "X is typing" at most this often per user
HISTORY_DEFAULT: Final = 20
OPEN_TIMEOUT_SECONDS: Final = 10.0
# docs/protocol.md's room names and user ids: the server's own patterns (one source).
ROOM_PATTERN: Final = protocol.ROOM_PATTERN
USER_PATTERN: Final = protocol.USER_ID_PATTERN
HELP: Final = """\
commands:
  /history [N]   N older messages of the current room (default 20)
  /join ROOM     join ROOM and make it the current room
  /leave [ROOM]  leave ROOM (default: the current room)
  /rooms         your rooms, from every device, with unread counts (* marks the current one)
  /dm USER       open the direct message room with USER and make it the current room
  /read          mark the current room read up to its latest message
  /edit SEQ TEXT replace the text of your message SEQ in the current room
  /delete SEQ    delete message SEQ (yours, or any if you moderate the room)
  /react SEQ E   add reaction E to message SEQ (again: take it back)
  /who           members online in the current room
moderators of the current room (the token's `mod` claim):
  /kick USER [REASON]            end USER's membership of the room
  /ban USER [DURATION] [REASON]  kick USER and refuse their joins (DURATION: 90, 90s, 10m, 2h, 1d;
                                 absent: until /unban)
  /unban USER                    lift a ban
  /mute USER [DURATION]          USER may read but not send, edit, react or type (until /unmute)
  /unmute USER                   lift a mute
  /quit          leave the chat (so does end of input, once sent lines are acknowledged)
  //text         send a message that starts with /"""

Output = Callable[[str], None]


class ChatError(Exception):
    """A failure the user must act on (bad URL, refused token): the client stops."""


class HandshakeRefused(ChatError):
    def __init__(self, status: int, url: str) -> None:
        reason = {
            401: "no token was presented",
            403: "the token was rejected (malformed, expired, wrongly signed or not allowed)",
        }.get(status, "the endpoint refused the WebSocket upgrade")
        super().__init__(f"handshake refused by {url}: HTTP {status}: {reason}")
        self.status = status


# ---------------------------------------------------------------------------------------------
# URLs and tokens


def normalise_url(url: str) -> str:
    """Return a ws:// or wss:// URL (http(s) is accepted and converted); raise ChatError."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ChatError(f"not a WebSocket URL: {url!r} (expected ws://HOST:PORT/ or wss://HOST/STAGE)")
    try:
        _ = parts.port  # raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise ChatError(f"bad port in URL {url!r}: {exc}") from None
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "token"]
    return urllib.parse.urlunsplit(
        (scheme, parts.netloc, parts.path or "/", urllib.parse.urlencode(query), "")
    )


def with_token(url: str, token: str, *, batch: bool = False) -> str:
    """The URL with the token (and, with `batch`, the coalesced-delivery opt-in `batch=1`)."""
    parts = urllib.parse.urlsplit(url)
    query = [*urllib.parse.parse_qsl(parts.query), ("token", token)]
    if batch:
        query.append((protocol.BATCH_QUERY_PARAMETER, "1"))
    return urllib.parse.urlunsplit((*parts[:3], urllib.parse.urlencode(query), ""))


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_dev_token(url: str, user: str, name: str | None = None, timeout: float = 5.0) -> str:
    """Ask a local runtime for a development token (GET /dev/token; loopback only)."""
    parts = urllib.parse.urlsplit(url)
    http_scheme = "https" if parts.scheme == "wss" else "http"
    query = urllib.parse.urlencode({"user": user, **({"name": name} if name else {})})
    endpoint = urllib.parse.urlunsplit((http_scheme, parts.netloc, "/dev/token", query, ""))
    # Loopback: never through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(endpoint, timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()[:200]
        raise ChatError(f"{endpoint} answered HTTP {exc.code}: {detail or exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChatError(f"cannot fetch a development token from {endpoint}: {reason}") from None
    except ValueError:
        raise ChatError(f"{endpoint} did not answer with JSON") from None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise ChatError(f"{endpoint} answered without a token")
    return token


def token_subject(token: str) -> str | None:
    """The `sub` claim, read without verifying (the server verifies): to recognise our own events."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else None


def new_client_msg_id() -> str:
    return secrets.token_urlsafe(16)  # 22 characters of [A-Za-z0-9_-]


# ---------------------------------------------------------------------------------------------
# Formatting


def printable(text: str) -> str:
    """Neutralise control characters so that message text cannot drive the terminal.

    An ESC in a message would otherwise let any member rewrite the screen (ANSI escapes), the
    terminal's counterpart of HTML injection. Tabs stay; other controls show as \\xNN.
    """
    return "".join(
        ch if ch == "\t" or unicodedata.category(ch) != "Cc" else f"\\x{ord(ch):02x}" for ch in text
    )


def format_message(message: dict[str, Any], *, show_room: bool = False) -> str:
    """`[seq] user: text`, with continuation lines indented; `#room [seq] ...` for other rooms."""
    head = f"[{message.get('seq')}] {printable(str(message.get('user', '?')))}: "
    if show_room:
        head = f"#{message.get('room')} {head}"
    lines = str(message.get("text", "")).split("\n")
    indent = " " * len(head)
    return head + "\n".join([printable(lines[0]), *(indent + printable(line) for line in lines[1:])])


def format_change(
    update: dict[str, Any], author: str | None, me: str | None, *, show_room: bool = False
) -> str:
    """An `update` as one line: `[seq] user: text (edited)`, `[seq] (message deleted)`, then
    the reactions with counts; `*` marks the ones that are yours."""
    if update.get("deleted") is True:
        line = f"[{update.get('seq')}] (message deleted)"
    else:
        edited = " (edited)" if update.get("editedAt") is not None else ""
        line = format_message({**update, "user": author or "?"}) + edited
    raw = update.get("reactions")
    reactions: dict[str, Any] = raw if isinstance(raw, dict) else {}
    shown = [
        f"{emoji} {len(users)}{'*' if me in users else ''}"
        for emoji, users in reactions.items()
        if isinstance(users, list)
    ]
    if shown:
        line += "  [" + ", ".join(printable(item) for item in shown) + "]"
    return f"#{update.get('room')} {line}" if show_room else line


def format_error(frame: dict[str, Any]) -> str:
    where = ", ".join(
        f"{label} {frame[key]}"
        for key, label in (("action", "action"), ("room", "room"), ("clientMsgId", "clientMsgId"))
        if frame.get(key)
    )
    text = f"! {frame.get('code', 'error')}: {frame.get('message', '')}"
    return printable(f"{text} ({where})" if where else text)


# ---------------------------------------------------------------------------------------------
# State


@dataclass
class RoomState(RoomLog):
    """The core's room log (dynamowave/client_core.py) plus what this terminal prints."""

    members: set[str] = field(default_factory=set)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # first join answered
    typing_printed: dict[str, float] = field(default_factory=dict)
    peer: str | None = None  # a DM's other user (v2)
    authors: dict[int, str] = field(default_factory=dict)  # seq -> user, to print updates

    def forget(self) -> None:
        super().forget()
        self.authors.clear()

    @property
    def label(self) -> str:
        return f"@{self.peer}" if self.peer else f"#{self.name}"


@dataclass
class ChatOptions:
    url: str
    room: str
    token: str | None = None
    user: str | None = None  # for fetching a development token (loopback)
    name: str | None = None
    since: int | None = None


# ---------------------------------------------------------------------------------------------
# The client


class ChatClient:
    def __init__(self, options: ChatOptions, output: Output) -> None:
        self.url = normalise_url(options.url)
        self.options = options
        self.out = output
        self.token = options.token
        self.me = (token_subject(options.token) if options.token else None) or options.user or ""
        self.rooms: dict[str, RoomState] = {options.room: RoomState(options.room, since=options.since)}
        self.current: str | None = options.room
        self._outbox = Outbox()
        self.outbox: dict[str, Outgoing] = self._outbox.pending  # clientMsgId -> unacknowledged send
        self.connection: ClientConnection | None = None
        self.connection_number = 0
        self.stop = asyncio.Event()
        # Input waits for the first `joined`, so piped lines act on a joined room, in order.
        self.ready = asyncio.Event()
        self.exit_code = 0
        self._input_ended = False
        self.pending_dm: str | None = None  # the user of our last /dm, made current on `joined`

    # -- connection loop ------------------------------------------------------------------

    async def run(self, lines: AsyncIterator[str]) -> int:
        """Chat until /quit, end of input (once outstanding messages are acked), or a fatal error."""
        if self.token is None:
            if not is_loopback(self.url):
                raise ChatError(
                    "--token is required for a non-loopback URL (mint one: dynamowave token USER)"
                )
            self.token = await self._fetch_token()
            self.me = token_subject(self.token) or self.me
        input_task = asyncio.create_task(self._consume(lines))
        attempt = 0
        try:
            while not self.stop.is_set():
                try:
                    connection = await self._open()
                except ChatError:
                    raise
                except (OSError, TimeoutError, InvalidHandshake) as exc:
                    if self.connection_number == 0:
                        raise ChatError(f"cannot connect to {self.url}: {describe(exc)}") from None
                    attempt += 1
                    await self._backoff(attempt, f"reconnect failed ({describe(exc)})")
                    continue
                attempt = 0
                await self._session(connection)
                if not self.stop.is_set():
                    attempt += 1
                    await self._backoff(attempt, "connection lost")
        finally:
            input_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await input_task
        return self.exit_code

    async def _fetch_token(self) -> str:
        user = self.options.user
        if not user:
            raise ChatError("--user is needed to fetch a development token (or pass --token)")
        return await asyncio.to_thread(fetch_dev_token, self.url, user, self.options.name)

    async def _open(self) -> ClientConnection:
        assert self.token is not None
        refreshed = False
        while True:
            try:
                return await connect(
                    # batch=1: coalesced delivery (docs/protocol.md); `batch` frames are unwrapped.
                    with_token(self.url, self.token, batch=True),
                    open_timeout=OPEN_TIMEOUT_SECONDS,
                    proxy=None if is_loopback(self.url) else True,
                    user_agent_header="dynamowave-chat",
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                # A development token may have expired during a long session: fetch a fresh one once.
                if status == 403 and self.options.token is None and not refreshed:
                    self.token = await self._fetch_token()
                    refreshed = True
                    continue
                raise HandshakeRefused(status, self.url) from None
            except InvalidURI as exc:
                raise ChatError(f"bad URL {self.url}: {exc}") from None

    async def _backoff(self, attempt: int, why: str) -> None:
        # Exponential backoff with full jitter: a restarted server is not hit by every client at once.
        delay = reconnect_delay(attempt)
        self.out(f"* {why}; reconnecting in {delay:.1f}s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), delay)

    async def _session(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.connection_number += 1
        if self.connection_number > 1:
            self.out("* reconnected")
        for room in self.rooms.values():
            await self._send(room.join_frame())
        pinger = asyncio.create_task(self._ping_forever())
        stopper = asyncio.create_task(self.stop.wait())
        receiver = asyncio.create_task(self._receive(connection))
        try:
            await asyncio.wait({receiver, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pinger, stopper, receiver):
                task.cancel()
            await asyncio.gather(pinger, stopper, receiver, return_exceptions=True)
            self.connection = None
            for room in self.rooms.values():
                room.joined = False
            await connection.close()

    async def _receive(self, connection: ClientConnection) -> None:
        try:
            async for data in connection:
                text = data if isinstance(data, str) else data.decode("utf-8", "replace")
                try:
                    frame = json.loads(text)
                except ValueError:
                    self.out(f"! the server sent a frame that is not JSON: {printable(text[:200])}")
                    continue
                if isinstance(frame, dict):
                    for inner in protocol.unbatch(frame):
                        await self.handle_frame(inner)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1009:
                self.out("! the server closed the connection: a frame was too large (1009)")

    async def _ping_forever(self) -> None:
        while True:
            await asyncio.sleep(PING_EVERY_SECONDS)
            await self._send({"action": "ping"})

    async def _send(self, frame: dict[str, Any]) -> bool:
        """Send if connected; frames that cannot go now are redone after the next (re)join."""
        if self.connection is None:
            return False
        try:
            await self.connection.send(json.dumps(frame, ensure_ascii=False))
        except ConnectionClosed:
            return False
        return True

    # -- input ----------------------------------------------------------------------------

    async def _consume(self, lines: AsyncIterator[str]) -> None:
        await self.ready.wait()
        async for line in lines:
            await self.handle_line(line.rstrip("\r\n"))
            if self.stop.is_set():
                return
        self._input_ended = True
        if not self.outbox:
            self.stop.set()
            return
        # End of input: give outstanding messages a chance to be acknowledged.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), EOF_GRACE_SECONDS)
        if self.outbox:
            self.out(f"! {len(self.outbox)} message(s) were not acknowledged before end of input")
            self.exit_code = 1
            self.stop.set()

    async def handle_line(self, line: str) -> None:
        if not line.strip():
            return
        if line.startswith("/") and not line.startswith("//"):
            await self._command(line)
            return
        text = line[1:] if line.startswith("//") else line
        if self.current is None:
            self.out("! not in a room: /join ROOM first")
            return
        outgoing = self._outbox.add(self.current, text, new_client_msg_id())
        await self._transmit(outgoing)

    async def _transmit(self, outgoing: Outgoing) -> None:
        room = self.rooms.get(outgoing.room)
        if room is None or not self._outbox.due(
            outgoing, room_joined=room.joined, connection=self.connection_number
        ):
            return
        if await self._send(outgoing.frame()):
            outgoing.sent_on = self.connection_number

    async def _command(self, line: str) -> None:
        name, _, rest = line.partition(" ")
        arg = rest.strip()
        if name == "/quit":
            self.stop.set()
        elif name == "/help":
            self.out(HELP)
        elif name == "/join":
            await self._join(arg)
        elif name == "/leave":
            await self._leave(arg or self.current)
        elif name == "/history":
            await self._history(arg)
        elif name == "/rooms":
            # The server's list (v2): every room of the user, from any device, with unread counts.
            if not await self._send({"action": "rooms"}):
                self.out("! not connected: try /rooms again once reconnected")
        elif name == "/dm":
            await self._dm(arg)
        elif name == "/read":
            room = self.rooms.get(self.current or "")
            if room is None:
                self.out("! not in a room: /join ROOM first")
            elif not await self._send({"action": "read", "room": room.name, "seq": room.latest}):
                self.out("! not connected: try /read again once reconnected")
        elif name in ("/edit", "/delete", "/react"):
            await self._change(name, arg)
        elif name in MODERATION_COMMANDS:
            await self._moderate(name[1:], arg)
        elif name == "/who":
            room = self.rooms.get(self.current or "")
            members = ", ".join(sorted(room.members)) if room else ""
            self.out(f"* online in #{self.current}: {printable(members) or '(nobody)'}")
        else:
            self.out(f"! unknown command {printable(name)}; /help lists them")

    async def _change(self, name: str, arg: str) -> None:
        room = self.rooms.get(self.current or "")
        seq_text, _, rest = arg.partition(" ")
        usage = {"/edit": "/edit SEQ TEXT", "/delete": "/delete SEQ", "/react": "/react SEQ EMOJI"}[name]
        if room is None:
            self.out("! not in a room: /join ROOM first")
            return
        if not seq_text.isdigit() or int(seq_text) < 1 or (name != "/delete" and not rest.strip()):
            self.out(f"! usage: {usage}")
            return
        seq = int(seq_text)
        frame: dict[str, Any] = {"action": name[1:], "room": room.name, "seq": seq}
        if name == "/edit":
            frame["text"] = rest.strip()
        elif name == "/react":
            emoji = rest.strip()
            mine = room.versions.get(seq, {}).get("reactions", {}).get(emoji, [])
            frame.update(emoji=emoji, on=self.me not in mine)
        if not await self._send(frame):
            self.out(f"! not connected: try {name} again once reconnected")

    async def _moderate(self, op: str, arg: str) -> None:
        room = self.rooms.get(self.current or "")
        if room is None:
            self.out("! not in a room: /join ROOM first")
            return
        frame = moderation_frame(op, room.name, arg)
        if frame is None:
            self.out(f"! usage: {MODERATION_COMMANDS['/' + op]}")
        elif not await self._send(frame):
            self.out(f"! not connected: try /{op} again once reconnected")

    async def _join(self, name: str) -> None:
        if not ROOM_PATTERN.fullmatch(name):
            self.out("! usage: /join ROOM  (letters, digits and _ . - up to 64)")
            return
        self.current = name
        if name in self.rooms:
            self.out(f"* now talking in #{name}")
            return
        room = self.rooms[name] = RoomState(name)
        if await self._send(room.join_frame()):
            # Wait for the answer so that the next lines (piped input) go to a joined room.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(room.settled.wait(), OPEN_TIMEOUT_SECONDS)

    async def _dm(self, user: str) -> None:
        if not USER_PATTERN.fullmatch(user) or user == self.me:
            self.out("! usage: /dm USER  (another user's id)")
            return
        self.pending_dm = user
        if not await self._send({"action": "dm", "user": user}):
            self.out("! not connected: try /dm again once reconnected")

    async def _leave(self, name: str | None) -> None:
        if not name or name not in self.rooms:
            self.out("! usage: /leave [ROOM] (a room you joined)")
            return
        del self.rooms[name]
        for key in [k for k, o in self.outbox.items() if o.room == name]:
            del self.outbox[key]
        await self._send({"action": "leave", "room": name})
        if self.current == name:
            self.current = next(iter(self.rooms), None)
            if self.current is not None:
                self.out(f"* now talking in #{self.current}")

    async def _history(self, arg: str) -> None:
        room = self.rooms.get(self.current or "")
        if room is None:
            self.out("! not in a room: /join ROOM first")
            return
        try:
            limit = max(1, min(100, int(arg))) if arg else HISTORY_DEFAULT
        except ValueError:
            self.out("! usage: /history [N]  (N = 1..100)")
            return
        lowest = room.lowest()
        if lowest == 1 or room.history_exhausted:
            self.out(f"* no older messages in #{room.name}")
            return
        frame: dict[str, Any] = {"action": "history", "room": room.name, "limit": limit}
        if lowest:
            frame["before"] = lowest
        if not room.joined or not await self._send(frame):
            self.out("! not connected: try /history again once reconnected")

    # -- frames ---------------------------------------------------------------------------

    async def handle_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        room = self.rooms.get(str(frame.get("room")))
        if (
            kind == "joined"
            and room is None
            and frame.get("kind") == "dm"
            and isinstance(frame.get("room"), str)
        ):
            # The answer to /dm: a room this client did not know.
            room = self.rooms[frame["room"]] = RoomState(frame["room"], peer=str(frame.get("with")))
            if self.pending_dm == room.peer:
                self.pending_dm = None
                self.current = room.name
        if kind == "joined" and room is not None:
            if frame.get("kind") == "dm" and isinstance(frame.get("with"), str):
                room.peer = frame["with"]
            await self._on_joined(room, frame)
        elif kind == "rooms":
            self._on_rooms(frame.get("rooms") or [], more=frame.get("more") is True)
        elif kind == "read" and room is not None:
            self.out(
                f"* {room.label} read up to {_int(frame.get('seq'))} ({_int(frame.get('unread'))} unread)"
            )
        elif kind == "receipt" and room is not None:
            self.out(printable(f"* {frame.get('user')} has seen {room.label} up to {_int(frame.get('seq'))}"))
        elif kind == "invited" and isinstance(frame.get("room"), str) and ROOM_PATTERN.match(frame["room"]):
            await self._on_invited(frame)
        elif kind in ("kicked", "banned") and room is not None:
            # A moderator ended our membership (every device of ours gets this).
            del self.rooms[room.name]
            how = "kicked from" if kind == "kicked" else "banned from"
            reason = str(frame.get("reason") or "")
            self.out(
                printable(
                    f"* you were {how} {room.label} by {frame.get('by')}" + (f": {reason}" if reason else "")
                )
            )
            if self.current == room.name:
                self.current = next(iter(self.rooms), None)
        elif kind == "moderated":
            done = {"kick": "kicked from", "ban": "banned from", "unban": "unbanned in", "mute": "muted in"}
            what = done.get(str(frame.get("op")), "unmuted in")
            self.out(printable(f"* {frame.get('user')} {what} #{frame.get('room')}"))
        elif kind == "left" and room is not None:
            # v2: the membership ended, here or on another device.
            del self.rooms[room.name]
            self.out(f"* left {room.label}")
            if self.current == room.name:
                self.current = next(iter(self.rooms), None)
        elif kind == "message" and room is not None:
            if frame.get("user") == self.me:
                # Our own copy (from the fan-out) may overtake the ack: it acknowledges the send.
                self._acknowledged(str(frame.get("clientMsgId")))
            self._print_new(room, [frame])
        elif kind == "history" and room is not None:
            if room.new_epoch(frame.get("epoch")):
                self.out(f"* {room.label} was reset (new history epoch)")
            shown = self._print_new(room, frame.get("messages") or [], header=f"* history of #{room.name}:")
            if frame.get("more") is not True:
                room.history_exhausted = True
            if not shown:
                self.out(f"* no older messages in #{room.name}")
        elif kind == "update" and room is not None:
            self._on_update(room, frame)
        elif kind == "changed":
            pass  # the change is stored; its `update` (to every connection) shows it
        elif kind == "ack":
            self._acknowledged(str(frame.get("clientMsgId")))
        elif kind == "presence" and room is not None:
            self._on_presence(room, str(frame.get("user")), frame.get("event"))
        elif kind == "typing" and room is not None:
            self._on_typing(room, str(frame.get("user")))
        elif kind == "error":
            self._on_error(frame)
        elif kind is None and isinstance(frame.get("message"), str):
            # API Gateway's own replies (e.g. throttling) carry only a message.
            self.out(printable(f"! gateway: {frame['message']}"))

    def _acknowledged(self, client_msg_id: str) -> None:
        self._outbox.acknowledged(client_msg_id)
        if self._input_ended and not self.outbox:
            self.stop.set()

    async def _on_joined(self, room: RoomState, frame: dict[str, Any]) -> None:
        self.ready.set()
        room.settled.set()
        reset = room.new_epoch(frame.get("epoch"))
        recovering = room.ever_joined and not reset
        room.joined = room.ever_joined = True
        room.latest = max(room.latest, _int(frame.get("seq")))
        if reset:
            # A recovery `since` counted in the old history: the new one starts afresh.
            self.out(f"* {room.label} was reset (new history epoch): showing it anew")
            if frame.get("messages") == [] and _int(frame.get("seq")) > 0:
                await self._send({"action": "history", "room": room.name, "limit": HISTORY_DEFAULT})
        room.members = {str(m) for m in frame.get("members") or []}
        messages = frame.get("messages") or []
        if not recovering:
            others = sorted(room.members - {self.me})
            online = f"; online: {', '.join(others)}" if others else ""
            self.out(printable(f"* joined {room.label} (latest seq {room.latest}{online})"))
        if recovering:
            missed = len(room.unseen(messages))
            self.out(f"* rejoined #{room.name}: {missed} missed message(s)")
        shown = self._print_new(room, messages)
        for update in frame.get("updates") or []:
            if isinstance(update, dict):
                self._on_update(room, update)
        if isinstance(frame.get("rev"), int):
            room.rev = max(room.rev, frame["rev"])
        # Recovery replies are capped (100 messages or 128 KB): ask again from where this one ended.
        if recovering and frame.get("more") is True and (shown or frame.get("updates")):
            await self._send(room.join_frame())
        for outgoing in self._outbox.for_room(room.name):
            await self._transmit(outgoing)

    def _on_rooms(self, entries: list[Any], *, more: bool) -> None:
        if not entries:
            self.out("* rooms: (none)")
            return
        self.out("* your rooms (newest activity first):")
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            name = str(entry.get("room"))
            label = f"@{entry['with']}" if entry.get("kind") == "dm" and entry.get("with") else f"#{name}"
            mark = "*" if name == self.current else " "
            unread = _int(entry.get("unread"))
            last = entry.get("last") if isinstance(entry.get("last"), dict) else None
            tail = f"  {last.get('user')}: {str(last.get('text'))[:60]}" if last else ""
            counts = f"{unread} unread" if unread else "read"
            self.out(printable(f"  {mark}{label}  {counts}  (seq {_int(entry.get('seq'))}){tail}"))
        if more:
            self.out("  ... and more")

    async def _on_invited(self, frame: dict[str, Any]) -> None:
        name, sender = frame["room"], str(frame.get("from"))
        dm = frame.get("kind") == "dm"
        self.out(printable(f"* {sender} " + ("sent you a direct message" if dm else f"added you to #{name}")))
        if name not in self.rooms:
            room = self.rooms[name] = RoomState(name, peer=sender if dm else None)
            await self._send(room.join_frame())

    def _print_new(self, room: RoomState, messages: list[Any], header: str | None = None) -> int:
        """Print the messages not seen yet in `room`, in seq order; return how many."""
        fresh = room.unseen(messages)
        if fresh and header:
            self.out(header)
        for message in fresh:
            room.record(message["seq"])
            room.authors[message["seq"]] = str(message.get("user", "?"))
            if isinstance(message.get("rev"), int):  # a changed message, in its current state
                room.apply({**message, "reactions": message.get("reactions") or {}})
            self.out(format_message(message, show_room=room.name != self.current))
        return len(fresh)

    def _on_update(self, room: RoomState, update: dict[str, Any]) -> None:
        if not room.apply(update):
            return  # an older or repeated state
        room.rev = max(room.rev, int(update["rev"]))
        author = room.authors.get(int(update["seq"]))
        self.out(format_change(update, author, self.me, show_room=room.name != self.current))

    def _on_presence(self, room: RoomState, user: str, event: object) -> None:
        if event == "join":
            room.members.add(user)
        elif event == "leave":
            room.members.discard(user)
        else:
            return
        if user != self.me:  # our own arrival is the `* joined` line
            self.out(f"* {printable(user)} {'joined' if event == 'join' else 'left'} #{room.name}")

    def _on_typing(self, room: RoomState, user: str) -> None:
        if user == self.me:
            return
        now = asyncio.get_running_loop().time()
        if now - room.typing_printed.get(user, float("-inf")) >= TYPING_REPEAT_SECONDS:
            room.typing_printed[user] = now
            self.out(f"* {printable(user)} is typing in #{room.name}")

    def _on_error(self, frame: dict[str, Any]) -> None:
        self.out(format_error(frame))
        dropped = self.outbox.pop(str(frame.get("clientMsgId")), None)
        if dropped is not None:
            self.out(printable(f"! not sent: {dropped.text[:80]}"))
            if self._input_ended and not self.outbox:
                self.stop.set()
        room_name = str(frame.get("room"))
        room = self.rooms.get(room_name)
        if frame.get("action") == "join" and room is not None and not room.ever_joined:
            room.settled.set()
            del self.rooms[room_name]
            if self.current == room_name:
                self.current = next(iter(self.rooms), None)
            self.ready.set()  # let the user /join another room


MODERATION_COMMANDS: Final = {
    "/kick": "/kick USER [REASON]",
    "/ban": "/ban USER [DURATION] [REASON]  (DURATION: 90, 90s, 10m, 2h, 1d)",
    "/unban": "/unban USER",
    "/mute": "/mute USER [DURATION]",
    "/unmute": "/unmute USER",
}
_DURATION: Final = re.compile(r"\A([1-9][0-9]{0,9})([smhd]?)\Z")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def moderation_frame(op: str, room: str, arg: str) -> dict[str, Any] | None:
    """The frame of a moderation command (`arg`: "USER [DURATION] [REASON]"), or None if the
    arguments do not fit the command's usage."""
    user, _, rest = arg.strip().partition(" ")
    if not USER_PATTERN.fullmatch(user):
        return None
    frame: dict[str, Any] = {"action": op, "room": room, "user": user}
    rest = rest.strip()
    if op in ("ban", "mute"):
        first, _, after = rest.partition(" ")
        duration = _DURATION.fullmatch(first)
        if duration:
            frame["seconds"] = int(duration.group(1)) * _UNIT_SECONDS[duration.group(2)]
            rest = after.strip()
    if op in ("kick", "ban"):
        if rest:
            frame["reason"] = rest
    elif rest:
        return None
    return frame


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


# ---------------------------------------------------------------------------------------------
# Standard input


async def stdin_lines() -> AsyncIterator[str]:
    """Lines from standard input, without blocking the event loop.

    A daemon thread does the blocking reads: it works the same for a terminal, a pipe and a
    file, and never keeps the process alive after /quit (unlike an executor thread).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


def print_line(line: str) -> None:
    print(line, flush=True)
