"""The chat actions (docs/protocol.md): what each route does, over the store, the queue and the gateway.

No boto3 here and no Lambda event shapes: the ingress handler translates API Gateway events into
calls on `ChatService`, and the service returns the frame to send back as the route response
(or None). Fan-out work goes to SQS as `FanoutJob`s, one per non-empty membership shard.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from functions.chat import protocol
from functions.chat.auth import Identity
from functions.chat.clock import Clock, now_ms
from functions.chat.domain import conversations
from functions.chat.domain.lifecycle_service import ChangeOutcome, LifecycleService
from functions.chat.domain.ports import (
    DM_KIND,
    ROOM_KIND,
    ChatStorage,
    ConnectionGone,
    ConnectionRecord,
    JobSink,
    NoReview,
    NotMember,
    Poster,
    RateLimited,
    Restricted,
    Restriction,
    Reviewer,
    ReviewRequest,
    StoreBusy,
    Verdict,
)
from functions.chat.domain.removal import ConnectionRemoval
from functions.chat.domain.room_jobs import room_jobs
from functions.chat.domain.user_delivery import UserDelivery
from functions.chat.jobs import FanoutJob
from functions.chat.protocol import ErrorCode, ProtocolError
from functions.chat.settings import Settings

logger = logging.getLogger(__name__)


def _until(until: int, lifted: str) -> str:
    """How long a ban or mute lasts, for its error message (until 0: until lifted)."""
    return f"until {lifted}" if not until else f"until {until} (ms epoch)"


@dataclass
class FrameOutcome:
    """What one frame did: the route response (if any) and figures for logs and metrics."""

    reply: dict[str, Any] | None
    action: str | None = None
    jobs: int = 0
    stored: bool = False
    duplicate: bool = False
    error: ErrorCode | None = None
    message_id: str | None = None
    seq: int | None = None
    review: Verdict | None = None  # set when a review function judged the text
    rev: int | None = None  # a stored change's rev (edit, delete, react)


@dataclass
class _FrameState:
    """What the limiter knows of the frame being handled."""

    spent: bool = False
    received_ms: int | None = None


# Rounds of re-stamping a ban or mute after a racing change of it (`_stamp_as_stored`): each
# round follows another moderation change of the same user that landed meanwhile.
STAMP_SETTLE_ROUNDS: Final = 4


class ChatService:
    def __init__(
        self,
        store: ChatStorage,
        queue: JobSink,
        settings: Settings,
        post: Poster,
        clock: Clock = now_ms,
        sleep: Callable[[float], None] = time.sleep,
        reviewer: Reviewer | None = None,
        removal: ConnectionRemoval | None = None,
    ) -> None:
        self._store = store
        # Shared with the fan-out and the janitor when deps builds them (one removal piece).
        self.removal = removal or ConnectionRemoval(store, queue)
        self._reviewer = reviewer
        self._queue = queue
        self._settings = settings
        self._post = post
        self._clock = clock
        self._sleep = sleep
        # Frames addressed to a user rather than a room (functions/chat/domain/user_delivery.py).
        self.users = UserDelivery(store, queue, clock)
        self.lifecycle = LifecycleService(
            store.changes,
            lambda room, frame, correlation_id: self._queue_jobs(
                self._room_jobs(room, frame, correlation_id)
            ),
            clock,
            self.review,
        )
        # Per frame, per thread (the local runtime runs invocations side by side on threads).
        self._frames = threading.local()

    @property
    def _frame(self) -> _FrameState:
        state = getattr(self._frames, "state", None)
        if state is None:
            state = self._frames.state = _FrameState()
        return state

    # -- lifecycle -------------------------------------------------------------------------------

    def connect(self, connection_id: str, identity: Identity, *, batch: bool = False) -> None:
        """Record the connection; `batch`: it opted in to coalesced delivery (`?batch=1`)."""
        self._store.put_connection(
            connection_id, identity.user_id, identity.name, identity.rooms, self._clock(), batch=batch
        )

    def disconnect(self, connection_id: str, correlation_id: str = "") -> int:
        """Remove the connection and its memberships; announce users who left their last room."""
        return self.remove_connection(connection_id, correlation_id)

    def remove_connection(self, connection_id: str, correlation_id: str = "") -> int:
        return self.removal.remove(connection_id, correlation_id)

    # -- frames ----------------------------------------------------------------------------------

    def handle(
        self,
        connection_id: str,
        identity: Identity,
        body: str | None,
        correlation_id: str,
        received_ms: int | None = None,
    ) -> FrameOutcome:
        """Run one client frame; every refusal becomes the protocol's error frame.

        Every frame spends one token of the connection's rate limit, valid or not (a flood of
        malformed frames is refused as `rate_limited` like any other), and the limiter counts
        frames by when API Gateway received them (`received_ms`), not by when the function got
        to them: a backlog of frames queued behind a slow integration does not earn new tokens.
        """
        action: str | None = None
        frame = self._frame
        frame.spent, frame.received_ms = False, received_ms
        try:
            request = protocol.parse_frame(body, max_text_length=self._settings.max_text_length)
            action = type(request).__name__.lower()
            return self._dispatch(connection_id, identity, request, correlation_id)
        except ProtocolError as error:
            if not frame.spent:
                try:  # refused before it spent a token: it spends one now
                    self._touch(connection_id, error.action or action or "frame", None)
                except ProtocolError as limited:
                    if limited.code is ErrorCode.RATE_LIMITED:
                        error = limited
            return FrameOutcome(error.frame(), action=error.action or action, error=error.code)

    def _dispatch(
        self, connection_id: str, identity: Identity, request: protocol.Request, correlation_id: str
    ) -> FrameOutcome:
        match request:
            case protocol.Ping():
                self._touch(connection_id, "ping", None)
                return FrameOutcome(protocol.pong_frame(self._clock()), action="ping")
            case protocol.Join():
                return self._join(connection_id, identity, request, correlation_id)
            case protocol.Leave():
                return self._leave(connection_id, identity, request, correlation_id)
            case protocol.SendMessage():
                return self._send(connection_id, identity, request)
            case protocol.History():
                return self._history(connection_id, request)
            case protocol.Typing():
                return self._typing(connection_id, identity, request, correlation_id)
            case protocol.Rooms():
                self._touch(connection_id, "rooms", None)
                return FrameOutcome(self.rooms_of(identity.user_id), action="rooms")
            case protocol.Read():
                return self._read(connection_id, identity, request, correlation_id)
            case protocol.Dm():
                return self._dm(connection_id, identity, request, correlation_id)
            case protocol.Edit() | protocol.Delete() | protocol.React():
                return self._change(connection_id, identity, request)
            case protocol.Moderate():
                return self._moderate(connection_id, identity, request, correlation_id)
        raise AssertionError(f"unhandled request {request!r}")  # pragma: no cover

    def _touch(
        self, connection_id: str, action: str, room: str | None, *, unless_muted: bool = False, **context: Any
    ) -> Any:
        """The frame's one write (liveness, rate limit); with `room`, its condition also needs
        the room joined on this connection and, with `unless_muted`, the user not muted in it."""
        frame = self._frame
        now = self._clock()
        # Never later than now: a frame cannot claim tokens from the future.
        at = now if frame.received_ms is None else min(now, frame.received_ms)
        try:
            record = self._store.touch_connection(
                connection_id, at, member_of=room, unless_muted=unless_muted
            )
            frame.spent = True  # a refusal below spent nothing (the write is conditional)...
            return record
        except Restricted as muted:
            raise ProtocolError(
                ErrorCode.MUTED,
                f"you are muted in {room!r} {_until(muted.until, 'unmuted')}",
                action=action,
                room=room,
                **context,
            ) from None
        except RateLimited:
            frame.spent = True  # ...but a limited frame counts as limited
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"slow down: at most {self._settings.rate_limit_per_second:g} frames/s "
                f"(burst {self._settings.rate_limit_burst})",
                action=action,
                room=room,
                **context,
            ) from None
        except NotMember:
            raise ProtocolError(
                ErrorCode.NOT_MEMBER,
                f"join {room!r} on this connection first",
                action=action,
                room=room,
                **context,
            ) from None
        except ConnectionGone:
            raise ProtocolError(
                ErrorCode.INTERNAL,
                "this connection is not registered; reconnect",
                action=action,
                room=room,
                **context,
            ) from None

    def _join(
        self, connection_id: str, identity: Identity, request: protocol.Join, correlation_id: str
    ) -> FrameOutcome:
        kind, peer = self._room_access(identity, request.room)
        restrictions = self.refuse_if_banned(request.room, identity.user_id, action="join")
        connection = self._touch(connection_id, "join", None)
        return self._subscribe(
            connection,
            identity,
            request.room,
            request.since,
            kind,
            peer,
            "join",
            correlation_id,
            since_rev=request.rev,
            mute_until=restrictions.get(Restriction.MUTE),
        )

    def _room_access(self, identity: Identity, room: str) -> tuple[str, str | None]:
        """(kind, DM peer) of a room the caller may join, else `forbidden` (nothing written)."""
        if not conversations.is_dm_room(room):
            if not identity.may_join(room):
                raise ProtocolError(
                    ErrorCode.FORBIDDEN, f"your token does not allow room {room!r}", action="join", room=room
                )
            return ROOM_KIND, None
        # DM names are reserved: only an open DM's two participants may join one.
        kind, users = self._store.room_kind(room)
        if not identity.dm or kind != DM_KIND or identity.user_id not in users:
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                f"{room!r} is a direct message room of other users",
                action="join",
                room=room,
            )
        return DM_KIND, next((user for user in users if user != identity.user_id), None)

    def _subscribe(
        self,
        connection: ConnectionRecord,
        identity: Identity,
        room: str,
        since: int | None,
        kind: str,
        peer: str | None,
        action: str,
        correlation_id: str,
        since_rev: int | None = None,
        mute_until: int | None = None,
    ) -> FrameOutcome:
        """Subscribe the connection (the user becomes a member) and build the `joined` reply;
        with `since` and `since_rev`, it carries the `updates` since that rev too. A user muted
        in the room (`mute_until`) has the mute stamped on this connection by the same write."""
        try:
            result = self._store.join(
                connection, room, self._clock(), kind=kind, peer=peer, mute_until=mute_until
            )
        except Restricted as banned:
            raise ProtocolError(
                ErrorCode.BANNED,
                f"you are banned from {room!r} {_until(banned.until, 'unbanned')}",
                action=action,
                room=room,
            ) from None
        except ConnectionGone:
            raise ProtocolError(
                ErrorCode.INTERNAL, "this connection is not registered; reconnect", action=action
            ) from None
        except StoreBusy:
            raise ProtocolError(
                ErrorCode.INTERNAL, "the room is busy; retry", action=action, room=room
            ) from None
        if mute_until is not None and Restriction.MUTE not in self._restrictions(room, identity.user_id):
            # Unmuted between the read and the join: the unmute may have missed this stamp.
            self._store.stamp_connection(connection.connection_id, Restriction.MUTE, room, None)
        jobs = 0
        if result.first_connection_of_user:
            frame = protocol.presence_frame(room, identity.user_id, "join")
            jobs = self._queue_jobs(self._room_jobs(room, frame, correlation_id))
        # The rev is read before the messages and changes: everything up to it is in this reply,
        # and every later change reaches this (already subscribed) connection as an `update`.
        rev = self.lifecycle.latest_rev(room)
        if since is not None:
            messages, more = self._store.messages_after(room, since, protocol.JOIN_SINCE_LIMIT)
            keep = "oldest"
        else:
            messages, more = self._store.messages_before(room, None, protocol.HISTORY_DEFAULT_LIMIT)
            keep = "newest"
        seq, _ = self._store.room_counters(room, consistent=True)
        membership = self._store.membership(identity.user_id, room)
        read = 0 if membership is None else min(membership.read, seq)
        members = self._store.online_users(room, self._settings.members_in_joined)
        envelope: dict[str, Any] = {
            "type": "joined",
            "room": room,
            "epoch": self._store.room_epoch(room),
            "seq": seq,
            "rev": rev,
            "read": read,
            "kind": kind,
        }
        if peer is not None:
            envelope["with"] = peer
        envelope["members"] = members
        fitted, more = protocol.fit_messages(envelope, messages, keep=keep, more=more)
        reply = {**envelope, "messages": fitted, "more": more}
        if since is not None and since_rev is not None:
            reply = self._with_updates(reply, room, since, since_rev)
        return FrameOutcome(reply, action=action, jobs=jobs)

    def _with_updates(self, reply: dict[str, Any], room: str, since: int, rev: int) -> dict[str, Any]:
        """Recovery of changes: `updates` for messages up to `since` changed after `rev`. When
        they are cut (by the page or by size), `rev` says how far they go and `more` is set, so
        the client joins again from there (docs/protocol.md, "Recovery")."""
        found = self.lifecycle.updates_after(room, rev, since, protocol.JOIN_SINCE_LIMIT)
        states = [protocol.message_state(message) for message in found.messages]
        budget = protocol.REPLY_BUDGET_BYTES - protocol.frame_size({**reply, "updates": []})
        kept, used = 0, 0
        for state in states:
            used += protocol.frame_size(state) + 1
            if used > budget:
                break
            kept += 1
        complete_through = found.complete_through
        if kept < len(states):
            complete_through = found.first_revs[kept] - 1
        if complete_through is None:
            return {**reply, "updates": states}
        return {**reply, "rev": max(rev, complete_through), "updates": states[:kept], "more": True}

    def _leave(
        self, connection_id: str, identity: Identity, request: protocol.Leave, correlation_id: str
    ) -> FrameOutcome:
        connection = self._touch(connection_id, "leave", None)
        frame = protocol.left_frame(request.room)
        try:
            jobs = self.end_membership(
                identity.user_id, request.room, frame, correlation_id, reply_to=connection
            )
        except StoreBusy:
            raise ProtocolError(
                ErrorCode.INTERNAL, "the room is busy; retry", action="leave", room=request.room
            ) from None
        return FrameOutcome(frame, action="leave", jobs=jobs)

    # -- users and conversations (also the moderation and operator API's entry points) -------

    def end_membership(
        self,
        user_id: str,
        room: str,
        frame: dict[str, Any],
        correlation_id: str = "",
        *,
        reply_to: ConnectionRecord | None = None,
    ) -> int:
        """End `user_id`'s membership of `room` (a leave; a kick or ban with a `kicked` frame):
        every connection of the user is unsubscribed and gets `frame`, except `reply_to`, which
        gets it as its route response; `presence leave` goes to the room if the user was online
        in it. Idempotent. Returns the fan-out jobs queued. Raises `StoreBusy`."""
        connections = self.users.connections(user_id)
        records = {} if reply_to is None else {reply_to.connection_id: reply_to}
        for connection_id in connections:
            if connection_id not in records:
                record = self._store.get_connection(connection_id)
                if record is not None:
                    records[connection_id] = record
        jobs: list[FanoutJob] = []
        for record in records.values():
            result = self._store.leave(record, room)
            if result is not None and result.last_connection_of_user:
                presence = protocol.presence_frame(room, user_id, "leave")
                jobs.extend(self._room_jobs(room, presence, correlation_id))
        # The membership goes last: stopped half-way, the user is still a member and a retry
        # finishes the job.
        self._store.delete_membership(user_id, room)
        queued = self._queue_jobs(jobs)
        others = [c for c in connections if reply_to is None or c != reply_to.connection_id]
        return queued + self.users.deliver_to_connections(others, frame, correlation_id=correlation_id)

    def add_member(self, user_id: str, room: str, by: str, correlation_id: str = "") -> bool:
        """Make `user_id` a member of `room` (no connection is subscribed) and, if the membership
        is new, send them `invited` from `by`. True if it is new."""
        created = self._store.add_membership(user_id, room, self._clock())
        if created:
            self.users.deliver(
                user_id, protocol.invited_frame(room, ROOM_KIND, by), correlation_id=correlation_id
            )
        return created

    # -- moderation (docs/protocol.md, "Moderation"): moderator frames and the operator API ----

    def _restrictions(self, room: str, user_id: str) -> dict[Restriction, int]:
        return self._store.active_restrictions(room, user_id, self._clock())

    def refuse_if_banned(self, room: str, user_id: str, *, action: str) -> dict[Restriction, int]:
        """`banned` if the user is banned from the room; else the user's restrictions there (a
        mute, for the join to stamp). One BatchGetItem per join, none per message."""
        restrictions = self._restrictions(room, user_id)
        if Restriction.BAN in restrictions:
            raise ProtocolError(
                ErrorCode.BANNED,
                f"you are banned from {room!r} {_until(restrictions[Restriction.BAN], 'unbanned')}",
                action=action,
                room=room,
            )
        return restrictions

    def _moderate(
        self, connection_id: str, identity: Identity, request: protocol.Moderate, correlation_id: str
    ) -> FrameOutcome:
        op, room, user = request.op, request.room, request.user
        if conversations.is_dm_room(room) or not identity.may_moderate(room):
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"your token does not let you moderate {room!r}", action=op, room=room
            )
        if user == identity.user_id:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"you cannot {op} yourself", action=op, room=room)
        self._touch(connection_id, op, None)
        try:
            jobs = self.moderate(request, identity.user_id, correlation_id)
        except StoreBusy:
            raise ProtocolError(ErrorCode.INTERNAL, "the room is busy; retry", action=op, room=room) from None
        return FrameOutcome(protocol.moderated_frame(room, user, op), action=op, jobs=jobs)

    def moderate(self, request: protocol.Moderate, by: str, correlation_id: str = "") -> int:
        """Run one moderation op as `by` (a moderator's user id, or the operator); the fan-out
        jobs queued. Idempotent: a kick of a non-member, an unban without a ban change nothing
        but still answer. Raises `StoreBusy`."""
        room, user, op = request.room, request.user, request.op
        if op is protocol.ModerationOp.KICK:
            return self.kick(room, user, by, request.reason, correlation_id)
        if op is protocol.ModerationOp.BAN:
            return self.ban(room, user, by, request.seconds, request.reason, correlation_id)
        if op is protocol.ModerationOp.UNBAN:
            self.unban(room, user)
        elif op is protocol.ModerationOp.MUTE:
            self.mute(room, user, by, request.seconds)
        else:
            self.unmute(room, user)
        return 0

    def kick(self, room: str, user_id: str, by: str, reason: str, correlation_id: str = "") -> int:
        """End a member's membership with `kicked` to each of their connections; the fan-out jobs
        queued. A user who is not a member is told nothing (0): there is nothing to end."""
        if self._store.membership(user_id, room) is None:
            return 0
        return self.end_membership(user_id, room, protocol.kicked_frame(room, by, reason), correlation_id)

    def ban(
        self, room: str, user_id: str, by: str, seconds: int | None, reason: str, correlation_id: str = ""
    ) -> int:
        """Ban (a kick, then `join` refused with `banned` until it expires or is lifted). The ban
        is stored, then stamped on the user's connections, then the kick runs: a join racing
        it is refused by the stamp or its subscription is found and ended by the kick."""
        self._restrict(Restriction.BAN, room, user_id, by, seconds, reason)
        if self._store.membership(user_id, room) is None:
            # Not a member: nothing to end and nobody to tell. (A join committed before the
            # stamp made the membership this read sees; any later one is refused by the stamp.)
            return 0
        frame = protocol.kicked_frame(room, by, reason, banned=True)
        return self.end_membership(user_id, room, frame, correlation_id)

    def unban(self, room: str, user_id: str) -> bool:
        return self._lift(Restriction.BAN, room, user_id)

    def mute(self, room: str, user_id: str, by: str, seconds: int | None) -> None:
        """Mute: the user keeps reading; `sendmessage`, `edit`, `react` and `typing` in the room
        are refused with `muted` until it expires or is lifted. Nothing is sent to the user."""
        self._restrict(Restriction.MUTE, room, user_id, by, seconds, "")

    def unmute(self, room: str, user_id: str) -> bool:
        return self._lift(Restriction.MUTE, room, user_id)

    def _restrict(
        self, kind: Restriction, room: str, user_id: str, by: str, seconds: int | None, reason: str
    ) -> None:
        """Store the ban or mute, then stamp it on every live connection of the user (a
        connection made after the Query reads the stored item when it joins)."""
        now = self._clock()
        until = 0 if seconds is None else now + seconds * 1000
        self._store.put_restriction(kind, room, user_id, until, reason, by, now)
        self._stamp_as_stored(kind, room, user_id, until)

    def _lift(self, kind: Restriction, room: str, user_id: str) -> bool:
        """Delete the item first, then the stamps: a join that read the item before the delete
        re-reads it after stamping and removes its own stamp (`_subscribe`)."""
        existed = self._store.delete_restriction(kind, room, user_id)
        self._stamp_as_stored(kind, room, user_id, None)
        return existed

    def _stamp_as_stored(self, kind: Restriction, room: str, user_id: str, until: int | None) -> None:
        """Stamp `until` (None: remove the stamp) on each live connection of the user, then
        re-read the stored item and stamp again until the two agree. A ban and an unban of one
        user racing each other each write the item, then the stamps, so the stamps of the one
        whose item write lost could land last: a muted user who can send, or an unbanned one
        who cannot. Whoever stamps last re-reads after every item write that came before, so
        the stamps left are the stored item's."""
        connections = self.users.connections(user_id)
        for _ in range(STAMP_SETTLE_ROUNDS):
            for connection_id in connections:
                self._store.stamp_connection(connection_id, kind, room, until)
            stored = self._restrictions(room, user_id).get(kind)
            if stored == until:
                return
            until = stored

    def rooms_of(self, user_id: str) -> dict[str, Any]:
        """The `rooms` reply for a user: one Query of memberships, batched reads of the rooms."""
        memberships = self._store.memberships(user_id)
        states = self._store.room_states([membership.room for membership in memberships])
        return conversations.rooms_frame(memberships, states)

    def _read(
        self, connection_id: str, identity: Identity, request: protocol.Read, correlation_id: str
    ) -> FrameOutcome:
        room, user_id = request.room, identity.user_id
        not_member = ProtocolError(
            ErrorCode.NOT_MEMBER, f"you are not a member of {room!r}; join it first", action="read", room=room
        )
        # Checked before the touch, so a refused `read` writes nothing.
        if self._store.membership(user_id, room) is None:
            raise not_member
        self._touch(connection_id, "read", None)
        latest, _ = self._store.room_counters(room, consistent=True)
        membership, moved = self._store.set_read(user_id, room, min(request.seq, latest))
        if membership is None:  # a leave on another device won the race
            raise not_member
        read = min(membership.read, latest)
        frame = protocol.read_frame(room, read, conversations.unread(latest, read))
        jobs = 0
        if moved:
            # The user's other devices follow the marker; in a DM the other user sees "seen".
            jobs += self.users.deliver(user_id, frame, correlation_id=correlation_id, exclude=[connection_id])
            if membership.kind == DM_KIND and membership.peer:
                receipt = protocol.receipt_frame(room, user_id, read)
                jobs += self.users.deliver(membership.peer, receipt, correlation_id=correlation_id)
        return FrameOutcome(frame, action="read", jobs=jobs)

    def _dm(
        self, connection_id: str, identity: Identity, request: protocol.Dm, correlation_id: str
    ) -> FrameOutcome:
        if not identity.dm:
            raise ProtocolError(ErrorCode.FORBIDDEN, "your token does not allow direct messages", action="dm")
        peer = request.user
        if peer == identity.user_id:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "a direct message needs another user", action="dm")
        room = conversations.dm_room(identity.user_id, peer)
        connection = self._touch(connection_id, "dm", None)
        invite = self._store.membership(peer, room) is None
        self._store.open_dm(room, (identity.user_id, peer), self._clock())
        outcome = self._subscribe(connection, identity, room, None, DM_KIND, peer, "dm", correlation_id)
        if invite:
            frame = protocol.invited_frame(room, DM_KIND, identity.user_id)
            outcome.jobs += self.users.deliver(peer, frame, correlation_id=correlation_id)
        return outcome

    def _send(self, connection_id: str, identity: Identity, request: protocol.SendMessage) -> FrameOutcome:
        ids = {"client_msg_id": request.client_msg_id}
        self._touch(connection_id, "sendmessage", request.room, unless_muted=True, **ids)
        verdict = self.review(
            ReviewRequest(
                "message",
                request.room,
                identity.user_id,
                identity.name,
                request.text,
                client_msg_id=request.client_msg_id,
            )
        )
        if verdict is not None and not verdict.allowed:
            refusal = protocol.error_frame(
                ErrorCode.REJECTED, verdict.reason, action="sendmessage", room=request.room, **ids
            )
            return FrameOutcome(refusal, action="sendmessage", error=ErrorCode.REJECTED, review=verdict)
        try:
            stored = self._store.store_message(
                request.room,
                identity.user_id,
                identity.name,
                request.text if verdict is None else verdict.text,
                request.client_msg_id,
                self._clock(),
            )
        except StoreBusy:
            raise ProtocolError(
                ErrorCode.INTERNAL, "the room is busy; resend", action="sendmessage", room=request.room, **ids
            ) from None
        message = stored.item
        frame = protocol.message_frame(message)
        jobs = 0
        if not stored.fanned_out:
            # Fan-out work is queued before the ack: an acked message is always on its way (or,
            # past every retry, in the DLQ). If queueing fails the sender gets no ack, only an
            # `internal` error, and its resend of the same clientMsgId finds the claim not yet
            # fanned out and queues it then. The sender's connection is a member like any other:
            # its copy comes from the fan-out (docs/protocol.md: ack and own copy).
            try:
                jobs = self._queue_jobs(self._room_jobs(request.room, frame, message["id"]))
            except Exception:
                logger.exception("message %s stored, fan-out not queued", message["id"])
                raise ProtocolError(
                    ErrorCode.INTERNAL,
                    "stored, but delivery could not start; resend the same clientMsgId",
                    action="sendmessage",
                    room=request.room,
                    **ids,
                ) from None
            try:
                self._store.mark_fanned_out(identity.user_id, request.room, request.client_msg_id)
            except Exception:
                # Only costs a second fan-out if the sender resends (duplicates are de-duplicated).
                logger.warning("message %s queued; fannedOut mark not written", message["id"], exc_info=True)
        # The ack is the route response, not a PostToConnection: API Gateway sends it back on the
        # caller's connection itself, so the Management API's throttle cannot eat it.
        ack = protocol.ack_frame(request.room, request.client_msg_id, message["id"], int(message["seq"]))
        return FrameOutcome(
            ack,
            action="sendmessage",
            jobs=jobs,
            stored=not stored.duplicate,
            duplicate=stored.duplicate,
            message_id=str(message["id"]),
            seq=int(message["seq"]),
            review=verdict,
        )

    def review(self, request: ReviewRequest) -> Verdict | None:
        """The review function's verdict on a message or edit, None if none is configured.
        (A resend of a stored clientMsgId is reviewed again, and then acked as first stored.)"""
        if self._reviewer is None or isinstance(self._reviewer, NoReview):
            return None
        return self._reviewer.review(request)

    def _change(
        self,
        connection_id: str,
        identity: Identity,
        request: protocol.Edit | protocol.Delete | protocol.React,
    ) -> FrameOutcome:
        action = type(request).__name__.lower()
        # A muted user may still delete their own messages; edits and reactions are refused.
        self._touch(
            connection_id, action, request.room, unless_muted=not isinstance(request, protocol.Delete)
        )
        outcome: ChangeOutcome
        match request:
            case protocol.Edit():
                outcome = self.lifecycle.edit(identity, request)
            case protocol.Delete():
                outcome = self.lifecycle.delete(identity, request)
            case protocol.React():
                outcome = self.lifecycle.react(identity, request)
        return FrameOutcome(
            outcome.reply,
            action=action,
            jobs=outcome.jobs,
            error=outcome.error,
            review=outcome.review,
            seq=request.seq,
            rev=outcome.rev if outcome.changed else None,
        )

    def _history(self, connection_id: str, request: protocol.History) -> FrameOutcome:
        self._touch(connection_id, "history", request.room)
        return FrameOutcome(self.history_frame(request.room, request.before, request.limit), action="history")

    def history_frame(self, room: str, before: int | None, limit: int) -> dict[str, Any]:
        """The `history` reply: `limit` messages below `before` (or the latest), ascending."""
        messages, more = self._store.messages_before(room, before, limit)
        envelope = {"type": "history", "room": room, "epoch": self._store.room_epoch(room)}
        fitted, more = protocol.fit_messages(envelope, messages, keep="newest", more=more)
        return {**envelope, "messages": fitted, "more": more}

    # -- the operator API's entry points (functions/chat/domain/operator.py) --------------------------

    def publish(
        self, room: str, user_id: str, name: str, text: str, client_msg_id: str, correlation_id: str
    ) -> tuple[str, int, bool]:
        """Store a message as `user_id` (a bot or system user, no connection) and fan it out to
        every subscriber, idempotent on clientMsgId as a send is. (id, seq, duplicate).
        Raises `StoreBusy`; a failure to queue raises and a retry with the same id queues it."""
        stored = self._store.store_message(room, user_id, name, text, client_msg_id, self._clock())
        message = stored.item
        if not stored.fanned_out:
            self._queue_jobs(self._room_jobs(room, protocol.message_frame(message), str(message["id"])))
            self._store.mark_fanned_out(user_id, room, client_msg_id)
        return str(message["id"]), int(message["seq"]), stored.duplicate

    def presence(self, room: str, limit: int) -> tuple[list[str], int]:
        """(users online in the room, up to `limit`; the room's subscribed connections)."""
        _, connections = self._store.room_counters(room, consistent=True)
        return self._store.online_users(room, limit), connections

    def room_event(self, room: str, frame: dict[str, Any], correlation_id: str) -> int:
        """Fan an ephemeral frame out to the room's subscribers (nothing stored); jobs queued."""
        return self._queue_jobs(self._room_jobs(room, frame, correlation_id))

    def _typing(
        self, connection_id: str, identity: Identity, request: protocol.Typing, correlation_id: str
    ) -> FrameOutcome:
        self._touch(connection_id, "typing", request.room, unless_muted=True)
        frame = protocol.typing_frame(request.room, identity.user_id)
        jobs = self._queue_jobs(self._room_jobs(request.room, frame, correlation_id, exclude=connection_id))
        return FrameOutcome(None, action="typing", jobs=jobs)

    # -- helpers ---------------------------------------------------------------------------------

    def _room_jobs(
        self, room: str, frame: dict[str, Any], correlation_id: str, exclude: str | None = None
    ) -> list[FanoutJob]:
        return room_jobs(self._store, room, frame, correlation_id, exclude)

    def _queue_jobs(self, jobs: list[FanoutJob]) -> int:
        if jobs:
            self._queue.enqueue(jobs)
        return len(jobs)
