"""JWT verification and minting (HS256, pyjwt). Pure, apart from the secret loader at the end.

The algorithm is pinned: a token whose header says ``none``, ``RS256`` or anything but HS256 is
refused before its signature is even considered (the alg-confusion attacks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

from functions.chat.protocol import ROOM_PATTERN, USER_ID_PATTERN
from functions.chat.settings import normalize_origin

ALGORITHM: Final = "HS256"
MAX_NAME_LENGTH: Final = 64
MAX_ROOMS_IN_TOKEN: Final = 100
# The longest token `mint_token` signs: with `token=`, the stage path and a few other parameters
# it stays under CloudFront's 8,192-byte URL limit, so any minted token also connects through the
# edge (whose WAF query-string rule is sized from this). 100 rooms of 20 characters fit easily.
MAX_TOKEN_LENGTH: Final = 7936


class TokenRefused(Exception):
    """The token is malformed, expired, not yet valid, wrongly signed or has bad claims."""


EVERY_ROOM: Final = "*"


@dataclass(frozen=True)
class ModeratorScope:
    """The token's ``mod`` claim: the rooms this user moderates (docs/protocol.md, "Moderators").

    The one place the claim is parsed and checked; every moderator action (delete, kick, ban,
    mute) asks `Identity.may_moderate`. The claim is a list of room names or ``"*"`` (every
    room); absent means none. Anything else refuses the whole token.
    """

    rooms: frozenset[str] = frozenset()
    every_room: bool = False

    def covers(self, room: str) -> bool:
        return self.every_room or room in self.rooms

    @classmethod
    def from_claim(cls, value: object) -> ModeratorScope:
        if value is None:
            return NO_MODERATION
        if value == EVERY_ROOM:
            return cls(every_room=True)
        if (
            not isinstance(value, list)
            or len(value) > MAX_ROOMS_IN_TOKEN
            or not all(isinstance(room, str) and ROOM_PATTERN.match(room) for room in value)
        ):
            raise TokenRefused(f"'mod' must be \"*\" or a list of at most {MAX_ROOMS_IN_TOKEN} room names")
        return cls(rooms=frozenset(value))

    def to_claim(self) -> str | list[str] | None:
        if self.every_room:
            return EVERY_ROOM
        return sorted(self.rooms) or None

    def to_context(self) -> str:
        """Authorizer context values are strings: "" (none), "*", or a JSON list."""
        claim = self.to_claim()
        return "" if claim is None else claim if isinstance(claim, str) else json.dumps(claim)

    @classmethod
    def from_context(cls, raw: object) -> ModeratorScope:
        if raw in (None, ""):
            return NO_MODERATION
        text = str(raw)
        try:
            return cls.from_claim(text if text == EVERY_ROOM else json.loads(text))
        except ValueError:
            raise TokenRefused("authorizer context has an invalid 'mod'") from None

    @classmethod
    def of(cls, rooms: Iterable[str]) -> ModeratorScope:
        return cls.from_claim(list(rooms))


NO_MODERATION: Final = ModeratorScope()


@dataclass(frozen=True)
class Identity:
    """Who is on a connection: the authorizer's context, passed to every route by API Gateway."""

    user_id: str
    name: str
    rooms: tuple[str, ...] | None  # None: any room
    dm: bool = True  # the token's `dm` claim: false forbids direct messages
    mod: ModeratorScope = field(default=NO_MODERATION)

    def may_join(self, room: str) -> bool:
        return self.rooms is None or room in self.rooms

    def may_moderate(self, room: str) -> bool:
        """True if the token's ``mod`` claim names this room (or is ``"*"``)."""
        return self.mod.covers(room)

    def to_context(self) -> dict[str, str]:
        """Authorizer context values must be strings, numbers or booleans: rooms travel as JSON."""
        rooms = "*" if self.rooms is None else json.dumps(list(self.rooms))
        context = {"userId": self.user_id, "name": self.name, "rooms": rooms, "mod": self.mod.to_context()}
        if not self.dm:
            context["dm"] = "false"
        return context

    @classmethod
    def from_context(cls, context: dict[str, Any]) -> Identity:
        user_id = str(context.get("userId") or context.get("principalId") or "")
        if not USER_ID_PATTERN.fullmatch(user_id):
            raise TokenRefused("authorizer context has no valid userId")
        raw_rooms = context.get("rooms", "*")
        rooms: tuple[str, ...] | None
        if raw_rooms in ("*", None, ""):
            rooms = None
        else:
            parsed = json.loads(str(raw_rooms))
            rooms = tuple(str(room) for room in parsed)
        dm = str(context.get("dm", "true")).lower() != "false"
        return cls(
            user_id=user_id,
            name=str(context.get("name") or user_id),
            rooms=rooms,
            dm=dm,
            mod=ModeratorScope.from_context(context.get("mod")),
        )


def origin_allowed(headers: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> bool:
    """The handshake's ``Origin`` against the deployment's allow-list (docs/operations.md).

    An empty list allows every origin; a request without ``Origin`` is not a browser page's, so
    the list does not apply (a script can send any Origin it likes: this guards browsers' users).
    """
    if not allowed:
        return True
    origins = [str(v) for k, v in (headers or {}).items() if str(k).lower() == "origin"]
    return not origins or all(normalize_origin(origin) in allowed for origin in origins)


def verify_token(token: str, secret: str) -> Identity:
    """Return the token's identity or raise `TokenRefused` with a reason fit for logs."""
    if not secret:
        raise TokenRefused("no signing secret configured")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"malformed token: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise TokenRefused(f"algorithm {header.get('alg')!r} is not allowed")
    try:
        # exp and nbf are verified when present; exp and sub must be present.
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"invalid token: {exc}") from None
    for claim in ("exp", "nbf", "iat"):
        # pyjwt accepts "9999999999" (it calls int()); RFC 7519 NumericDate is a JSON number.
        value = claims.get(claim)
        if claim in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TokenRefused(f"'{claim}' must be a number")
    return identity_from_claims(claims)


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not USER_ID_PATTERN.fullmatch(sub):
        raise TokenRefused("'sub' must match ^[A-Za-z0-9_.@-]{1,64}$")
    name = claims.get("name", sub)
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise TokenRefused(f"'name' must be a non-empty string of at most {MAX_NAME_LENGTH} characters")
    dm = claims.get("dm", True)
    if not isinstance(dm, bool):
        raise TokenRefused("'dm' must be true or false")
    mod = ModeratorScope.from_claim(claims.get("mod"))
    rooms = claims.get("rooms")
    if rooms is not None:
        if (
            not isinstance(rooms, list)
            or len(rooms) > MAX_ROOMS_IN_TOKEN
            or not all(isinstance(room, str) and ROOM_PATTERN.fullmatch(room) for room in rooms)
        ):
            raise TokenRefused("'rooms' must be a list of valid room names")
        return Identity(sub, name, tuple(dict.fromkeys(rooms)), dm, mod)
    return Identity(sub, name, None, dm, mod)


def mint_token(
    secret: str,
    user_id: str,
    *,
    name: str | None = None,
    rooms: list[str] | None = None,
    mod: str | list[str] | None = None,
    ttl_seconds: int = 3600,
    now: float | None = None,
    dm: bool | None = None,
) -> str:
    """A token the authorizer accepts (for the CLI, the web client's dev endpoint and load tests)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": user_id, "iat": issued, "exp": issued + ttl_seconds}
    if name is not None:
        claims["name"] = name
    if rooms is not None:
        claims["rooms"] = rooms
    if dm is not None:
        claims["dm"] = dm
    if mod is not None:
        claims["mod"] = mod
    identity_from_claims(claims)  # refuse to mint what the authorizer would refuse
    token = jwt.encode(claims, secret, algorithm=ALGORITHM)
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRefused(
            f"the token would be {len(token)} bytes, over {MAX_TOKEN_LENGTH} (a URL must carry it): "
            "name fewer or shorter rooms"
        )
    return token
