"""Runs the registered rows against one deployment and prints a table of results.

A row is ``@row(title, needs=...)`` on an ``async def (ctx: CheckContext) -> None`` that raises
`CheckFailed` (or any AssertionError) when the deployment does not do what docs/protocol.md says.
Everything a row opens through ``ctx`` is left and closed when the row ends, pass or fail.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from dynamowave.admin import AdminClient
from dynamowave.check.probe import CheckFailed, Frame, Probe, frame
from functions.chat.auth import mint_token

RowFunction = Callable[["CheckContext"], Awaitable[None]]
# What a row may need beyond one token: tokens for other users (and rooms claims), or the
# signing secret itself (to mint an expired token).
OTHER_USERS = "other users"
SECRET = "the signing secret"
# Tokens with a `mod` claim (moderator rows); a single token given on the command line cannot.
MODERATOR = "a moderator's token"
# The operator API (docs/operator-api.md): a local runtime's /admin, or --operator-url.
OPERATOR_API = "the operator API"
# What to pass to get what a skipped row needs.
NEEDS_OPTION = {
    OTHER_USERS: "--secret-arn",
    SECRET: "--secret-arn",
    MODERATOR: "--secret-arn",
    OPERATOR_API: "--operator-url",
}


@dataclass(frozen=True)
class Row:
    title: str
    run: RowFunction
    needs: frozenset[str]


ROWS: list[Row] = []
# Modules whose @row functions make up a run, in order (a v2 module goes after the v1 rows).
ROW_MODULES = ("dynamowave.check.rows", "dynamowave.check.rows_v2", "dynamowave.check.rows_operator")


def all_rows() -> list[Row]:
    """Every registered row (importing the row modules registers them)."""
    import importlib

    for module in ROW_MODULES:
        importlib.import_module(module)
    return list(ROWS)


def row(title: str, *, needs: Sequence[str] = ()) -> Callable[[RowFunction], RowFunction]:
    """Register a row; rows run in the order they are defined."""

    def register(function: RowFunction) -> RowFunction:
        ROWS.append(Row(title, function, frozenset(needs)))
        return function

    return register


class Tokens:
    """Where a run's tokens come from; ``capabilities`` says which rows it can serve."""

    capabilities: frozenset[str] = frozenset()

    def user(self, role: str) -> str:
        raise NotImplementedError

    def token(self, role: str, rooms: list[str] | None = None, mod: list[str] | None = None) -> str:
        """A token for `role`: `rooms` its rooms claim, `mod` the rooms it moderates."""
        raise NotImplementedError

    def expired(self, role: str) -> str:
        raise CheckFailed("this token source cannot mint an expired token")


class SecretTokens(Tokens):
    """Minted here with the deployment's signing secret: any user, any claims."""

    capabilities = frozenset({OTHER_USERS, SECRET, MODERATOR})

    def __init__(self, secret: str, run_id: str) -> None:
        self.secret = secret
        self.run_id = run_id

    def user(self, role: str) -> str:
        return f"check-{self.run_id}-{role}"

    def token(self, role: str, rooms: list[str] | None = None, mod: list[str] | None = None) -> str:
        return mint_token(self.secret, self.user(role), rooms=rooms, mod=mod, ttl_seconds=900)

    def expired(self, role: str) -> str:
        return mint_token(self.secret, self.user(role), ttl_seconds=60, now=time.time() - 3600)


class DevTokens(SecretTokens):
    """A local runtime's GET /dev/token (loopback only): any user and rooms, nothing expired."""

    capabilities = frozenset({OTHER_USERS, MODERATOR})

    def __init__(self, url: str, run_id: str) -> None:
        super().__init__("", run_id)
        parts = urllib.parse.urlsplit(url)
        scheme = "https" if parts.scheme == "wss" else "http"
        self.endpoint = urllib.parse.urlunsplit((scheme, parts.netloc, "/dev/token", "", ""))

    def token(self, role: str, rooms: list[str] | None = None, mod: list[str] | None = None) -> str:
        query = {"user": self.user(role), **({"rooms": ",".join(rooms)} if rooms is not None else {})}
        if mod:
            query["mod"] = ",".join(mod)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.endpoint}?{urllib.parse.urlencode(query)}", timeout=10) as response:
                body = json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CheckFailed(f"no development token from {self.endpoint}: {exc}") from None
        return str(body["token"])

    def expired(self, role: str) -> str:
        return Tokens.expired(self, role)


class SingleToken(Tokens):
    """One token given on the command line: every connection is that user."""

    def __init__(self, token: str, subject: str) -> None:
        self._token = token
        self.subject = subject

    def user(self, role: str) -> str:
        return self.subject

    def token(self, role: str, rooms: list[str] | None = None, mod: list[str] | None = None) -> str:
        return self._token


@dataclass
class CheckContext:
    url: str
    tokens: Tokens
    run_id: str
    timeout: float
    fanout: int
    max_text_length: int
    proxy: bool
    # The operator API's client (signed with the caller's or the local credentials), if any.
    admin: AdminClient | None = None
    probes: list[Probe] = field(default_factory=list)
    joined_rooms: dict[int, set[str]] = field(default_factory=dict)

    @property
    def capabilities(self) -> frozenset[str]:
        return self.tokens.capabilities | ({OPERATOR_API} if self.admin is not None else frozenset())

    def operator(self) -> AdminClient:
        if self.admin is None:
            raise CheckFailed("no operator API URL (--operator-url)")
        return self.admin

    def room(self, label: str) -> str:
        """A room of this run only (nothing another client or run uses)."""
        return f"check-{self.run_id}-{label}"

    def user(self, role: str) -> str:
        return self.tokens.user(role)

    async def connect(
        self, role: str = "alice", rooms: list[str] | None = None, mod: list[str] | None = None
    ) -> Probe:
        probe = await Probe.open(
            f"{role}#{len(self.probes) + 1}",
            self.url,
            self.tokens.token(role, rooms, mod),
            timeout=self.timeout,
            proxy=self.proxy,
        )
        self.probes.append(probe)
        return probe

    async def joined_connections(self, room: str, *roles: str) -> list[Probe]:
        """One new connection per role, each joined to ``room``."""
        probes = [await self.connect(role) for role in roles]
        for probe in probes:
            await self.join(probe, room)
        return probes

    async def join(self, probe: Probe, room: str, **fields: Any) -> Frame:
        joined = await probe.request(
            {"action": "join", "room": room, **fields}, frame("joined", room=room), f"joined {room}"
        )
        self.joined_rooms.setdefault(id(probe), set()).add(room)
        return joined

    async def send(self, probe: Probe, room: str, text: str, client_msg_id: str | None = None) -> Frame:
        """sendmessage, and the sender's ack."""
        msg_id = client_msg_id or secrets.token_hex(8)
        await probe.send({"action": "sendmessage", "room": room, "text": text, "clientMsgId": msg_id})
        return await probe.expect(frame("ack", room=room, clientMsgId=msg_id), f"ack for {msg_id}")

    async def cleanup(self) -> None:
        """Leave every room a row joined and close every connection it opened."""
        for probe in self.probes:
            for room in sorted(self.joined_rooms.get(id(probe), ())):
                if probe.close_code is None:
                    try:
                        await probe.send({"action": "leave", "room": room})
                        await probe.expect(frame("left", room=room), f"left {room}", timeout=5)
                    except Exception:  # noqa: S110 - cleanup is best effort; the row's result stands
                        pass
            await probe.close()
        self.probes.clear()
        self.joined_rooms.clear()


@dataclass(frozen=True)
class Result:
    title: str
    status: str  # pass, FAIL, skip
    seconds: float
    detail: str = ""


async def run_rows(
    make_context: Callable[[], CheckContext], rows: Sequence[Row], row_timeout: float
) -> list[Result]:
    results: list[Result] = []
    for check in rows:
        context = make_context()
        missing = sorted(check.needs - context.capabilities)
        if missing:
            options = ", ".join(sorted({NEEDS_OPTION[need] for need in missing}))
            results.append(Result(check.title, "skip", 0.0, f"needs {', '.join(missing)} ({options})"))
            continue
        started = time.monotonic()
        try:
            await asyncio.wait_for(check.run(context), row_timeout)
            result = Result(check.title, "pass", time.monotonic() - started)
        except TimeoutError:
            result = Result(
                check.title, "FAIL", time.monotonic() - started, f"no result in {row_timeout:.0f}s"
            )
        except AssertionError as exc:
            result = Result(check.title, "FAIL", time.monotonic() - started, str(exc) or "assertion failed")
        except Exception as exc:
            result = Result(check.title, "FAIL", time.monotonic() - started, f"{type(exc).__name__}: {exc}")
        finally:
            await context.cleanup()
        results.append(result)
    return results


def print_table(results: Sequence[Result], out: TextIO) -> None:
    width = max(len(r.title) for r in results)
    print(f"{'row'.ljust(width)}  result  time    detail", file=out)
    for r in results:
        print(
            f"{r.title.ljust(width)}  {r.status.ljust(6)}  {r.seconds:5.1f}s  {r.detail}".rstrip(), file=out
        )
    counts = {status: sum(1 for r in results if r.status == status) for status in ("pass", "FAIL", "skip")}
    print(f"{counts['pass']} passed, {counts['FAIL']} failed, {counts['skip']} skipped", file=out)
