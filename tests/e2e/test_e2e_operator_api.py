"""The operator API under `dynamowave serve`: SigV4-signed HTTP (the typed client, the CLI and
curl --aws-sigv4) reaching live WebSocket clients; unsigned or wrongly signed calls refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from botocore.credentials import Credentials

from dynamowave.admin import AdminClient, AdminError
from dynamowave.testing.serve import REPO
from tests.e2e.conftest import Server, start_server
from tests.e2e.test_e2e_chat import chat, run, unique

KEY, SECRET_KEY, TOKEN = "testing", "testing", "testing"  # the runtime's printed local credentials


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_server(tmp_path_factory.mktemp("operator"), "--janitor-interval", "0")
    yield server
    server.stop()


def admin(server: Server, **overrides: Any) -> AdminClient:
    credentials = overrides.pop("credentials", Credentials(KEY, SECRET_KEY, TOKEN))
    return AdminClient(f"http://127.0.0.1:{server.port}/admin", region="us-east-1", credentials=credentials)


def test_unsigned_and_wrongly_signed_calls_are_refused_and_change_nothing(server: Server) -> None:
    room = unique("locked")
    body = json.dumps({"user": "bot", "text": "x", "clientMsgId": "c1"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/admin/rooms/{room}/messages", data=body, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(request, timeout=10)
    assert unsigned.value.code == 403
    assert json.loads(unsigned.value.read())["code"] == "forbidden"
    with pytest.raises(AdminError) as wrong:
        admin(server, credentials=Credentials(KEY, "not-the-secret", TOKEN)).publish(
            room, user="bot", text="x"
        )
    assert (wrong.value.status, wrong.value.code) == (403, "forbidden")
    assert admin(server).history(room)["messages"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/admin/rooms/lobby/nothing"), ("PATCH", "/admin/rooms/lobby/messages"), ("GET", "/admin/")],
)
def test_a_path_no_route_matches_is_api_gateways_404_before_any_signature_check(
    server: Server, method: str, path: str
) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method)
    with pytest.raises(urllib.error.HTTPError) as unmatched:
        urllib.request.urlopen(request, timeout=10)
    assert unmatched.value.code == 404
    assert json.loads(unmatched.value.read()) == {"message": "Not Found"}
    with pytest.raises(AdminError) as signed:
        admin(server).call(method, path.removeprefix("/admin"))
    assert (signed.value.status, signed.value.code, signed.value.message) == (404, "not_found", "Not Found")


def test_publish_event_history_and_presence_reach_live_clients(server: Server) -> None:
    room, user = unique("ops"), unique("ann")
    client = admin(server)

    async def scenario() -> None:
        async with chat(server, user) as ann:
            await ann.join(room)
            answer = client.publish(
                room, user="system", name="System", text="Maintenance at 5", client_msg_id="m1"
            )
            message = await ann.expect("message", room=room, seq=answer["seq"])
            assert (message["user"], message["name"], message["text"]) == (
                "system",
                "System",
                "Maintenance at 5",
            )
            assert client.publish(room, user="system", text="Maintenance at 5", client_msg_id="m1") == answer
            client.room_event(room, "poll.open", {"question": "tea?"})
            event = await ann.expect("event", room=room)
            assert (event["name"], event["data"]) == ("poll.open", {"question": "tea?"})
            assert client.presence(room) == {"users": [user], "connections": 1}
            assert [m["text"] for m in client.history(room, limit=10)["messages"]] == ["Maintenance at 5"]

    run(scenario())


def admin_cli(server: Server) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`dynamowave admin --url <this server's /admin> ARGS...` as a subprocess, signed with the
    local credentials from its environment."""
    url = f"http://127.0.0.1:{server.port}/admin"
    env = {
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": TOKEN,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": "/usr/bin:/bin",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "dynamowave.cli", "admin", "--url", url, *args]
        return subprocess.run(
            command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )

    return cli


def test_cli_publishes_and_reports_refusals(server: Server) -> None:
    room = unique("cli")
    cli = admin_cli(server)
    published = cli("publish", room, "from the CLI", "--user", "bot")
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["seq"] == 1
    history = cli("history", room)
    assert [m["text"] for m in json.loads(history.stdout)["messages"]] == ["from the CLI"]
    refused = cli("history", "no spaces allowed")
    assert refused.returncode == 2 and "400 bad_request" in refused.stderr


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_aws_sigv4_is_accepted(server: Server) -> None:
    room = unique("curl")
    command = [
        "curl",
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--aws-sigv4",
        "aws:amz:us-east-1:execute-api",
        "--user",
        f"{KEY}:{SECRET_KEY}",
        "-H",
        f"x-amz-security-token: {TOKEN}",
        "-H",
        "Content-Type: application/json",
        "--data",
        json.dumps({"user": "bot", "text": "via curl", "clientMsgId": "k1"}),
        f"http://127.0.0.1:{server.port}/admin/rooms/{room}/messages",
    ]
    output = subprocess.run(command, check=False, capture_output=True, text=True, timeout=30).stdout
    body, status = output.rsplit("\n", 1)
    assert status == "200", body
    assert json.loads(body)["seq"] == 1


def test_ban_takes_effect_on_a_live_connection(server: Server) -> None:
    room, user = unique("banroom"), unique("eve")
    client = admin(server)

    async def scenario() -> None:
        async with chat(server, user) as eve, chat(server, unique("ann")) as ann:
            await eve.join(room)
            await ann.join(room)
            client.ban(room, user, reason="spam")
            banned = await eve.expect("banned", room=room)
            assert (banned["by"], banned["reason"]) == ("operator", "spam")
            await ann.expect("presence", room=room, user=user, event="leave")
            await eve.send(action="join", room=room)
            assert (await eve.expect("error", room=room))["code"] == "banned"
            await eve.send(action="sendmessage", room=room, text="still here?", clientMsgId="x1")
            assert (await eve.expect("error", clientMsgId="x1"))["code"] == "not_member"
            client.unban(room, user)
            await eve.join(room)

    run(scenario())


def test_disconnect_closes_every_connection_of_the_user(server: Server) -> None:
    import websockets

    user = unique("dan")
    client = admin(server)

    async def scenario() -> None:
        phone = await websockets.connect(server.url(server.token(user)))
        laptop = await websockets.connect(server.url(server.token(user)))
        async with chat(server, unique("other")) as other:
            assert client.disconnect(user) == {"closed": 2}
            for ws in (phone, laptop):
                await ws.wait_closed()
                assert ws.close_code == 1000
            await other.send(action="ping")
            await other.expect("pong")  # nobody else was closed

    run(scenario())
