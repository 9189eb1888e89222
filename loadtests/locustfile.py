"""Locust load test for DynamoWave: chat users over real WebSockets (websocket-client, gevent).

Each user connects with a token (``?token=``), joins its room, sends ``sendmessage`` at a steady
pace and reports to locust's statistics (request type ``WS``):

==================  ===========================================================================
name                what is timed / counted
==================  ===========================================================================
connect             the WebSocket handshake (authorizer + ``$connect``)
join                ``join`` -> ``joined``
ack                 ``sendmessage`` -> ``ack``
deliver             a member's arrival of someone else's message, from the message's ``ts``
                    (server clock: exact locally, skewed by the clock offset against AWS)
deliver own         ``sendmessage`` -> the sender's own copy of the message
error <code>        an error frame (failure), by protocol error code
gateway <message>   an API Gateway frame such as ``Too Many Requests`` (failure)
close               the server closed the socket while the user was running (failure)
ack timeout         no ack within ``--ack-timeout`` seconds (failure)
missing delivery    a seq gap after de-duplication, checked when the test stops, once the
                    sockets have been quiet for 1.5 s (at most ``--drain`` s) (failure)
==================  ===========================================================================

Local runtime: ``locust -f loadtests/locustfile.py --host ws://127.0.0.1:8765`` (tokens minted
from ``DYNAMOWAVE_JWT_SECRET`` or the runtime's dev secret). Deployed stack: ``--host
wss://{api}.execute-api.{region}.amazonaws.com/{stage}`` with ``DYNAMOWAVE_SECRET_ARN`` or
``DYNAMOWAVE_TOKEN_FILE`` (see loadtests/token_source.py). ``make loadtest`` runs it headless.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import gevent
import websocket
from gevent.event import Event
from locust import User, events, task
from locust.env import Environment
from locust.exception import StopUser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `loadtests` and `functions`

from functions.chat.protocol import unbatch
from loadtests.token_source import TokenSource, token_source
from loadtests.tracking import PendingSends, RoomTracker

log = logging.getLogger("dynamowave.loadtest")
REQUEST_TYPE = "WS"
_user_numbers = itertools.count()
_tokens: TokenSource | None = None
# Set when the test is stopping: users stop sending, and deliveries still in flight get until the
# sockets go quiet (QUIET_SECONDS without a frame, at most `--drain` seconds) before gaps count.
_draining = Event()
QUIET_SECONDS = 1.5
_last_frame_at = [0.0]


def _options(parser: Any) -> None:
    group = parser.add_argument_group("DynamoWave chat load")
    group.add_argument("--rooms", type=int, default=5, env_var="DYNAMOWAVE_LOAD_ROOMS", help="rooms (5)")
    group.add_argument(
        "--members-per-room",
        type=int,
        default=0,
        env_var="DYNAMOWAVE_LOAD_MEMBERS",
        help="users per room before the next room fills; 0 spreads users round-robin (0)",
    )
    group.add_argument(
        "--send-interval",
        type=float,
        default=2.0,
        env_var="DYNAMOWAVE_LOAD_SEND_INTERVAL",
        help="seconds between one user's messages (2.0)",
    )
    group.add_argument(
        "--room-prefix", default="load", env_var="DYNAMOWAVE_LOAD_ROOM_PREFIX", help="room name prefix"
    )
    group.add_argument("--text-size", type=int, default=64, help="characters per message (64)")
    group.add_argument(
        "--batch",
        action="store_true",
        default=False,
        env_var="DYNAMOWAVE_LOAD_BATCH",
        help="connect with ?batch=1: coalesced delivery, `batch` frames (docs/protocol.md)",
    )
    group.add_argument(
        "--conversation-weight",
        type=int,
        default=1,
        env_var="DYNAMOWAVE_LOAD_CONVERSATION_WEIGHT",
        help="v2 mix: `rooms` + `read` (and now and then a `dm`) per N sends, see ChatUser.converse (1 per 4)",
    )
    group.add_argument(
        "--ack-timeout", type=float, default=10.0, help="seconds before a send without ack fails"
    )
    group.add_argument(
        "--drain",
        type=float,
        default=20.0,
        help="at most this many seconds for deliveries in flight at stop, until 1.5 s pass without a frame (20)",
    )


def _test_start(environment: Environment, **_: Any) -> None:
    global _tokens  # noqa: PLW0603 - one token source per locust process
    _draining.clear()
    _tokens = token_source(environment.host or "")
    log.info("DynamoWave load test against %s (%s)", environment.host, _tokens.describes)


def _test_stopping(environment: Environment, **_: Any) -> None:
    # Users stop sending; messages already acked get time to arrive before gaps are counted.
    _draining.set()
    limit = float(environment.parsed_options.drain) if environment.parsed_options else 0.0
    deadline = time.monotonic() + max(0.0, limit)
    while time.monotonic() < deadline and time.monotonic() - _last_frame_at[0] < QUIET_SECONDS:
        gevent.sleep(0.1)


# Plain calls, not decorators: locust's hooks are untyped, and a decorator would erase our types.
_hooks: Any = events
_hooks.init_command_line_parser.add_listener(_options)
_hooks.test_start.add_listener(_test_start)
_hooks.test_stopping.add_listener(_test_stopping)


class ChatUser(User):
    """One chat member: a connection, a room, a steady stream of messages."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        options = environment.parsed_options
        self.number = next(_user_numbers)
        self.user_id = f"load-{uuid.uuid4().hex[:8]}-{self.number}"
        rooms = max(1, int(getattr(options, "rooms", 5)))
        per_room = int(getattr(options, "members_per_room", 0))
        index = (self.number // per_room) % rooms if per_room > 0 else self.number % rooms
        self.room = f"{getattr(options, 'room_prefix', 'load')}-{index}"
        self.interval = float(getattr(options, "send_interval", 2.0))
        self.text = "x" * max(1, int(getattr(options, "text_size", 64)))
        self.ack_timeout = float(getattr(options, "ack_timeout", 10.0))
        self.ws: websocket.WebSocket | None = None
        self.tracker = RoomTracker()
        self.pending = PendingSends()
        self.joined = Event()
        self.join_started = 0.0
        self.closing = False
        self.sent = 0
        self.conversation_weight = max(0, int(getattr(options, "conversation_weight", 1)))
        self.asked: dict[str, float] = {}  # v2 request kind -> when it was sent (one in flight each)
        self.latest_seen = 0
        self.ticks = 0

    def wait_time(self) -> float:
        return self.interval * random.uniform(0.9, 1.1)

    # -- reporting -------------------------------------------------------------------------------

    def _report(self, name: str, started: float, *, length: int = 0, error: str | None = None) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=max(0.0, (time.time() - started) * 1000),
            response_length=length,
            exception=None if error is None else RuntimeError(error),
            context={"user": self.user_id, "room": self.room},
        )

    def _report_ms(self, name: str, milliseconds: float, length: int) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=max(0.0, milliseconds),
            response_length=length,
            exception=None,
            context={"user": self.user_id, "room": self.room},
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def on_start(self) -> None:
        assert _tokens is not None, "test_start did not run"
        host = (self.host or "").rstrip("/")
        query = {"token": _tokens.token(self.number, self.user_id)}
        options = self.environment.parsed_options
        if options is not None and getattr(options, "batch", False):
            query["batch"] = "1"
        url = f"{host}/?{urlencode(query)}"
        started = time.time()
        try:
            self.ws = websocket.create_connection(url, timeout=30, enable_multithread=True)
        except Exception as error:
            self._report("connect", started, error=f"{type(error).__name__}: {error}")
            raise StopUser() from None
        self._report("connect", started)
        self.ws.settimeout(None)
        gevent.spawn(self._receive)
        self.join_started = time.time()
        self.ws.send(json.dumps({"action": "join", "room": self.room}))
        if not self.joined.wait(timeout=30):
            self._report("join", self.join_started, error="no joined frame within 30 s")
            raise StopUser()

    def on_stop(self) -> None:
        for seq in self.tracker.missing():
            self._report("missing delivery", time.time(), error=f"{self.room} seq {seq} never arrived")
        self.closing = True
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception as error:  # already closed by the server: nothing left to release
                log.debug("close: %s", error)

    @task
    def tick(self) -> None:
        """Four sends, then (with --conversation-weight 1) one round of the v2 user mix."""
        self.ticks += 1
        if self.conversation_weight and self.ticks % (4 + self.conversation_weight) >= 4:
            self.converse()
        else:
            self.send_message()

    def converse(self) -> None:
        """v2: list the rooms, mark the room read, and every third round open a DM with another
        load user; each reply's latency is reported as `rooms`, `read` and `dm`."""
        if _draining.is_set() or self.ws is None:
            return
        frames: list[dict[str, Any]] = [
            {"action": "rooms"},
            {"action": "read", "room": self.room, "seq": self.latest_seen},
        ]
        if self.ticks % 3 == 0 and self.number > 0:
            frames.append({"action": "dm", "user": f"{self.user_id.rsplit('-', 1)[0]}-peer"})
        for frame in frames:
            kind = str(frame["action"])
            if kind in self.asked:
                continue  # the previous one has not been answered yet
            self.asked[kind] = time.time()
            try:
                self.ws.send(json.dumps(frame))
            except Exception as error:
                self.asked.pop(kind, None)
                self._report(kind, time.time(), error=f"{type(error).__name__}: {error}")

    def send_message(self) -> None:
        now = time.time()
        for client_msg_id in self.pending.overdue(now, self.ack_timeout):
            self._report("ack timeout", now, error=f"no ack for {client_msg_id}")
        if _draining.is_set() or self.ws is None:
            return
        self.sent += 1
        client_msg_id = f"{self.user_id}-{self.sent}"
        frame = {"action": "sendmessage", "room": self.room, "text": self.text, "clientMsgId": client_msg_id}
        self.pending.sent(client_msg_id, now)
        try:
            self.ws.send(json.dumps(frame))
        except Exception as error:
            self.pending.refused(client_msg_id)
            self._report("send", now, error=f"{type(error).__name__}: {error}")

    # -- frames ----------------------------------------------------------------------------------

    def _receive(self) -> None:
        assert self.ws is not None
        while True:
            try:
                raw = self.ws.recv()
            except Exception as error:
                if not self.closing:
                    self._report("close", time.time(), error=f"socket closed: {type(error).__name__} {error}")
                return
            if not raw:  # a close frame
                if not self.closing:
                    status = getattr(self.ws, "status", None)
                    self._report("close", time.time(), error=f"closed by the server (status {status})")
                return
            _last_frame_at[0] = time.monotonic()
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            try:
                frame = json.loads(text)
            except ValueError:
                self._report("unparseable frame", time.time(), error=text[:200])
                continue
            if isinstance(frame, dict):
                # Coalesced delivery: each frame a `batch` carries counts as if it had come alone.
                carried = unbatch(frame)
                for inner in carried:
                    self._on_frame(inner, len(text) // max(1, len(carried)))

    def _on_frame(self, frame: dict[str, Any], length: int) -> None:
        now = time.time()
        kind = frame.get("type")
        if kind == "message" and frame.get("room") == self.room:
            self._on_message(frame, now, length)
        elif kind == "ack":
            started = self.pending.acked(str(frame.get("clientMsgId")))
            if started is not None:
                self._report_ms("ack", (now - started) * 1000, length)
        elif kind in ("rooms", "read") or (kind == "joined" and frame.get("kind") == "dm"):
            name = "dm" if kind == "joined" else str(kind)
            started = self.asked.pop(name, None)
            if started is not None:
                self._report_ms(name, (now - started) * 1000, length)
        elif kind == "joined" and frame.get("room") == self.room and not self.joined.is_set():
            self.tracker.joined_seq = int(frame.get("seq", 0))
            self._report("join", self.join_started, length=length)
            self.joined.set()
        elif kind == "error":
            self.asked.pop(str(frame.get("action")), None)
            client_msg_id = frame.get("clientMsgId")
            if isinstance(client_msg_id, str):
                self.pending.refused(client_msg_id)
            self._report(f"error {frame.get('code')}", now, error=str(frame.get("message")))
        elif kind is None and "message" in frame:
            # API Gateway's own frames: {"message": "Too Many Requests" | "Internal server error", ...}
            self._report(f"gateway {frame['message']}", now, error=json.dumps(frame)[:200])

    def _on_message(self, frame: dict[str, Any], now: float, length: int) -> None:
        seq = frame.get("seq")
        if isinstance(seq, int):
            self.latest_seen = max(self.latest_seen, seq)
        if isinstance(seq, int) and not self.tracker.delivered(seq):
            return  # a duplicate (at-least-once delivery): counted, not timed twice
        started = self.pending.delivered(str(frame.get("clientMsgId")))
        if started is not None:
            self._report_ms("deliver own", (now - started) * 1000, length)
        elif isinstance(frame.get("ts"), int):
            self._report_ms("deliver", now * 1000 - int(frame["ts"]), length)
