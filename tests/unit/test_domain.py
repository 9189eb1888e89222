"""Pure domain pieces: shard assignment, job encoding, settings parsing, identity context."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from functions.chat.adapters.dynamodb.keys import shard_for
from functions.chat.adapters.secrets import secret_from_string
from functions.chat.auth import Identity, ModeratorScope, TokenRefused, mint_token, verify_token
from functions.chat.jobs import FanoutJob, InvalidJob
from functions.chat.settings import ENV, Settings


def test_small_rooms_live_in_one_shard() -> None:
    assert {shard_for(f"c{i}", members_before=i, shard_size=250) for i in range(250)} == {"0.0"}


def test_shards_grow_with_the_room_and_stay_near_the_shard_size() -> None:
    shard_size = 100
    counts = Counter(shard_for(f"conn-{i}", members_before=i, shard_size=shard_size) for i in range(20_000))
    assert len(counts) > 20_000 // shard_size  # many shards, one Query each
    assert max(counts.values()) <= 2 * shard_size  # none grossly over the target size
    levels = {shard.split(".")[0] for shard in counts}
    assert "0" in levels and max(int(level) for level in levels) == 8  # ceil(log2(20000/100)) = 8


def test_shard_is_stable_for_a_connection() -> None:
    assert shard_for("abc", 5000, 100) == shard_for("abc", 5000, 100)


def test_job_round_trip_and_retry() -> None:
    job = FanoutJob(room="r", frame={"type": "message", "seq": 1}, shard="0.0", correlation_id="m1")
    again = FanoutJob.from_json(job.to_json())
    assert again == job
    retry = job.retry(["c1", "c2"], "throttled")
    assert (retry.shard, retry.connections, retry.attempt, retry.reason) == (
        None,
        ("c1", "c2"),
        1,
        "throttled",
    )
    assert FanoutJob.from_json(retry.to_json()) == retry


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"v": 2, "room": "r", "frame": {}, "shard": "0.0"}),
        json.dumps({"v": 1, "room": "r", "frame": {}}),
        json.dumps({"v": 1, "room": "r", "frame": {}, "shard": "0.0", "connections": ["c"]}),
        json.dumps({"v": 1, "room": 5, "frame": {}, "shard": "0.0"}),
        json.dumps({"v": 1, "room": "r", "frame": {}, "connections": [1]}),
        json.dumps({"v": 1, "room": "r", "frame": {}, "shard": "0.0", "attempt": -1}),
    ],
)
def test_poison_jobs_are_invalid(body: str) -> None:
    with pytest.raises(InvalidJob):
        FanoutJob.from_json(body)


def test_settings_parse_and_refuse_bad_values() -> None:
    settings = Settings.from_env({ENV.SHARD_SIZE: "50", ENV.RATE_LIMIT_PER_SECOND: "2.5"})
    assert (settings.shard_size, settings.rate_limit_per_second, settings.max_text_length) == (50, 2.5, 4000)
    with pytest.raises(ValueError, match="SHARD_SIZE"):
        Settings.from_env({ENV.SHARD_SIZE: "zero"})
    with pytest.raises(ValueError, match="RATE_LIMIT_BURST"):
        Settings.from_env({ENV.RATE_LIMIT_BURST: "0"})
    assert "jwt_secret='" not in repr(Settings.from_env({ENV.JWT_SECRET: "hidden-value"}))


def test_identity_context_round_trip() -> None:
    identity = Identity("u1", "U One", ("a", "b"))
    assert Identity.from_context(identity.to_context()) == identity
    assert Identity.from_context({"userId": "u2", "rooms": "*"}) == Identity("u2", "u2", None)
    with pytest.raises(TokenRefused):
        Identity.from_context({})
    moderator = Identity("m", "M", None, mod=ModeratorScope.of(["a"]))
    assert Identity.from_context(moderator.to_context()) == moderator
    everywhere = Identity("m", "M", None, mod=ModeratorScope(every_room=True))
    assert Identity.from_context(everywhere.to_context()).may_moderate("zzz")
    with pytest.raises(TokenRefused):
        Identity.from_context({"userId": "m", "mod": "[not json"})


def test_mint_refuses_what_the_authorizer_would_refuse() -> None:
    with pytest.raises(TokenRefused):
        mint_token("s" * 32, "bad user")
    with pytest.raises(TokenRefused):
        mint_token("s" * 32, "ok", rooms=["bad room"])
    token = mint_token("s" * 32, "ok", rooms=["a"], name="Okay")
    assert verify_token(token, "s" * 32) == Identity("ok", "Okay", ("a",))


def test_secret_string_forms() -> None:
    assert secret_from_string("raw-secret") == "raw-secret"
    assert secret_from_string('{"secret": "inner"}') == "inner"
    assert secret_from_string("{not json") == "{not json"
