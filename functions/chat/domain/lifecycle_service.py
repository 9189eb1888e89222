"""The lifecycle actions (edit, delete, react) and their recovery, over the `ChangeLog` port and the fan-out.

`ChatService` checks the connection (rate limit, membership) and hands the request here; the
operator API can call `delete` the same way with ``moderator=True``. Every change is stored
before anything is sent; its `update` (the message's whole current state) is queued for every
subscriber of the room, through the same sharded fan-out as messages, before the caller gets
`changed`. If queueing fails the caller gets `internal`, and repeating the change (a no-op on
the stored state) queues the `update` that was missed: the log entry remembers whether it was.
An edit is reviewed (functions/chat/adapters/review.py) at one point, in `LifecycleService.edit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from functions.chat import protocol
from functions.chat.auth import Identity
from functions.chat.domain.ports import (
    ChangeLog,
    ChangeResult,
    MessageNotFound,
    ReviewRequest,
    StoreBusy,
    Updates,
    Verdict,
)
from functions.chat.lifecycle import (
    ChangeRefused,
    check_edit,
    decide_delete,
    decide_edit,
    decide_react,
)
from functions.chat.protocol import ErrorCode, ProtocolError

logger = logging.getLogger(__name__)

# Queues the frame for every subscriber of the room; returns the number of jobs.
RoomFanout = Callable[[str, dict[str, Any], str], int]
# The review function's verdict (ChatService.review), None when no review is configured.
Review = Callable[[ReviewRequest], Verdict | None]


def no_review(request: ReviewRequest) -> Verdict | None:
    return None


class EditRejected(Exception):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


@dataclass(frozen=True)
class ChangeOutcome:
    reply: dict[str, Any]  # `changed`, or the `rejected` error of a reviewed edit
    jobs: int
    changed: bool
    rev: int
    review: Verdict | None = None
    error: ErrorCode | None = None


class LifecycleService:
    def __init__(
        self,
        changes: ChangeLog,
        fan_out: RoomFanout,
        clock: Callable[[], int],
        review: Review = no_review,
    ) -> None:
        self._changes = changes
        self._fan_out = fan_out
        self._clock = clock
        self._review = review

    def edit(self, identity: Identity, request: protocol.Edit) -> ChangeOutcome:
        """The one review point of the edit path: once the author may edit, before any write."""
        verdicts: list[Verdict | None] = []

        def decide(message: dict[str, Any]) -> Any:
            check_edit(message, identity.user_id)  # review only what may be stored
            if not verdicts:
                review = ReviewRequest(
                    "edit", request.room, identity.user_id, identity.name, request.text, seq=request.seq
                )
                verdicts.append(self._review(review))
            verdict = verdicts[0]
            if verdict is not None and not verdict.allowed:
                raise EditRejected(verdict)
            text = request.text if verdict is None else verdict.text
            return decide_edit(message, identity.user_id, text, self._clock())

        try:
            outcome = self._change("edit", request.room, request.seq, decide)
        except EditRejected as rejected:
            refusal = protocol.error_frame(
                ErrorCode.REJECTED, rejected.verdict.reason, action="edit", room=request.room
            )
            return ChangeOutcome(refusal, 0, False, 0, review=rejected.verdict, error=ErrorCode.REJECTED)
        verdict = verdicts[0] if verdicts else None
        return ChangeOutcome(outcome.reply, outcome.jobs, outcome.changed, outcome.rev, review=verdict)

    def delete(
        self, identity: Identity, request: protocol.Delete, *, moderator: bool | None = None
    ) -> ChangeOutcome:
        """`moderator` defaults to the token's `mod` claim for this room."""
        may_moderate = identity.may_moderate(request.room) if moderator is None else moderator
        return self._change(
            "delete",
            request.room,
            request.seq,
            lambda message: decide_delete(message, identity.user_id, moderator=may_moderate),
        )

    def react(self, identity: Identity, request: protocol.React) -> ChangeOutcome:
        return self._change(
            "react",
            request.room,
            request.seq,
            lambda message: decide_react(message, identity.user_id, request.emoji, request.on),
        )

    def latest_rev(self, room: str) -> int:
        return self._changes.latest_rev(room)

    def updates_after(self, room: str, rev: int, since: int, max_messages: int) -> Updates:
        return self._changes.updates_after(room, rev, since, max_messages)

    def _change(
        self, action: str, room: str, seq: int, decide: Callable[[dict[str, Any]], Any]
    ) -> ChangeOutcome:
        def refuse(code: ErrorCode, message: str) -> ProtocolError:
            return ProtocolError(code, message, action=action, room=room)

        try:
            result = self._changes.apply(room, seq, decide)
        except MessageNotFound:
            raise refuse(ErrorCode.NOT_FOUND, f"no message {seq} in {room!r}") from None
        except ChangeRefused as refused:
            raise refuse(refused.code, refused.message) from None
        except StoreBusy:
            raise refuse(ErrorCode.INTERNAL, "the message is busy; retry") from None
        jobs = 0
        if not result.fanned_out:
            jobs = self._queue_update(action, room, result)
        return ChangeOutcome(protocol.changed_frame(room, seq, result.rev), jobs, result.changed, result.rev)

    def _queue_update(self, action: str, room: str, result: ChangeResult) -> int:
        frame = protocol.update_frame(result.message)
        correlation_id = f"{result.message.get('id', '')}@{result.rev}"
        try:
            jobs = self._fan_out(room, frame, correlation_id)
        except Exception:
            logger.exception("change %s stored, its update not queued", correlation_id)
            raise ProtocolError(
                ErrorCode.INTERNAL,
                "stored, but delivery could not start; repeat the same change",
                action=action,
                room=room,
            ) from None
        try:
            self._changes.mark_fanned_out(room, result.rev)
        except Exception:
            # Only costs a second `update` if the change is repeated (clients keep the newest rev).
            logger.warning("update %s queued; fannedOut mark not written", correlation_id, exc_info=True)
        return jobs
