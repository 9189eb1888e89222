"""The local signing secret and token minting (the verification side lives in functions.chat.auth)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from functions.chat import protocol

JWT_SECRET_ENV = "DYNAMOWAVE_JWT_SECRET"
STATE_DIR_ENV = "DYNAMOWAVE_STATE_DIR"
SECRET_FILE = "jwt-secret"
# The authorizer's own patterns (one source: functions.chat.protocol), named for this module's checks.
USER_PATTERN = protocol.USER_ID_PATTERN
ROOM_PATTERN = protocol.ROOM_PATTERN


class TokenRequestError(ValueError):
    """A user id, room list or TTL the authorizer would refuse."""


def state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or ".dynamowave")


def dev_secret(directory: Path | None = None) -> str:
    """The dev secret kept in the state folder, created (0600) on first use."""
    folder = directory or state_dir()
    path = folder / SECRET_FILE
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must not both write different secrets.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    return secret


def local_secret(directory: Path | None = None) -> str:
    """DYNAMOWAVE_JWT_SECRET if set, else the state folder's dev secret."""
    return os.environ.get(JWT_SECRET_ENV) or dev_secret(directory)


def parse_rooms(raw: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None or empty -> None (any room)."""
    if raw is None or not raw.strip():
        return None
    rooms = [room.strip() for room in raw.split(",") if room.strip()]
    for room in rooms:
        if not ROOM_PATTERN.fullmatch(room):
            raise TokenRequestError(f"invalid room name {room!r}: letters, digits and _ . - (1 to 64)")
    return rooms


def parse_mod(raw: str | None) -> str | list[str] | None:
    """The ``mod`` claim from ``"*"`` (every room) or ``"a,b"``; None or empty -> no claim."""
    if raw is not None and raw.strip() == "*":
        return "*"
    return parse_rooms(raw)


def validate_user(user: str) -> str:
    if not USER_PATTERN.fullmatch(user):
        raise TokenRequestError(f"invalid user id {user!r}: letters, digits and _ . @ - (1 to 64)")
    return user


def mint(
    secret: str,
    user: str,
    *,
    name: str | None = None,
    rooms: list[str] | None = None,
    mod: str | list[str] | None = None,
    ttl_seconds: int = 3600,
) -> str:
    from functions.chat.auth import TokenRefused, mint_token

    validate_user(user)
    if ttl_seconds <= 0:
        raise TokenRequestError("ttl must be a positive number of seconds")
    try:
        return mint_token(secret, user, name=name, rooms=rooms, mod=mod, ttl_seconds=ttl_seconds)
    except TokenRefused as exc:
        raise TokenRequestError(str(exc)) from None
