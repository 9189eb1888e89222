"""The local runtime's attack surface (docs/operations.md, threat model): Host, Origin, loopback.

Against a real `dynamowave serve`: DNS rebinding (a foreign Host header), cross-site requests
to /dev, /admin and the Management API, WebSocket upgrades from foreign origins, and a page on
another origin in real Chromium that tries to post to a connection, mint a token and run the
janitor. The policy itself is `dynamowave.local.guard.AccessPolicy`.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from dynamowave.local.guard import AccessPolicy
from tests.browser.chat_page import CHROMIUM, CHROMIUM_ARGS
from tests.clients.local_runtime import LocalRuntime, runtime_available, start_local_runtime

pytestmark = pytest.mark.skipif(
    runtime_available() is not None, reason=f"runtime missing: {runtime_available()}"
)

ALLOWED_ORIGIN = "http://localhost:5173"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    server = start_local_runtime(
        Path(tmp_path_factory.mktemp("local-surface")),
        *("--allowed-origin", ALLOWED_ORIGIN, "--allowed-host", "chat.test", "--quiet"),
    )
    yield server
    server.stop()


def port_of(runtime: LocalRuntime) -> int:
    return int(runtime.ws_url.rsplit(":", 1)[1])


def request(
    runtime: LocalRuntime, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, Any]:
    """One request with exactly these headers (urllib would set Host itself)."""
    connection = http.client.HTTPConnection("127.0.0.1", port_of(runtime), timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body or b"")))
        connection.endheaders(body)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode(errors="replace")


def own_host(runtime: LocalRuntime) -> str:
    return f"127.0.0.1:{port_of(runtime)}"


def invocations(runtime: LocalRuntime) -> int:
    """Function invocations so far, once nothing is running any more (earlier tests' $disconnects)."""
    last = -1
    while True:
        status, info = request(runtime, "GET", "/dev/info", {"Host": own_host(runtime)})
        assert status == 200, info
        if int(info["invocations"]) == last:
            return last
        last = int(info["invocations"])
        time.sleep(0.5)


# ----- the policy, case by case -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bound", "host", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:8765", True),
        ("127.0.0.1", "localhost:8765", True),
        ("127.0.0.1", "LOCALHOST", True),
        ("127.0.0.1", "[::1]:8765", True),
        ("127.0.0.1", "evil.example:8765", False),
        ("127.0.0.1", "127.0.0.1.evil.example", False),
        ("127.0.0.1", "localhost.evil.example:8765", False),
        ("127.0.0.1", "192.168.1.20:8765", False),
        ("127.0.0.1", "", False),
        ("192.168.1.20", "192.168.1.20:8765", True),
        ("0.0.0.0", "192.168.1.20:8765", True),  # wildcard: any IP literal, never a name
        ("0.0.0.0", "evil.example:8765", False),
        ("::", "[fe80::1]:8765", True),
        ("127.0.0.1", "chat.test:8765", True),  # --allowed-host
    ],
)
def test_host_allow_list(bound: str, host: str, allowed: bool) -> None:
    assert AccessPolicy(bound_host=bound, allowed_hosts=("chat.test",)).host_allowed(host) is allowed


# ----- DNS rebinding: the Host header ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/dev/token?user=alice"),
        ("POST", "/dev/janitor"),
        ("GET", "/dev/info"),
        ("GET", "/"),
        ("GET", "/static/app.js"),
        ("POST", "/local/@connections/abc"),
        ("POST", "/admin/rooms/general/messages"),
    ],
)
def test_a_foreign_host_header_is_refused_everywhere(runtime: LocalRuntime, method: str, path: str) -> None:
    status, body = request(runtime, method, path, {"Host": f"evil.example:{port_of(runtime)}"})
    assert status == 403, body
    assert "host" in body["message"]


def test_the_runtimes_own_hosts_are_served(runtime: LocalRuntime) -> None:
    port = port_of(runtime)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"chat.test:{port}"):
        status, body = request(runtime, "GET", "/dev/token?user=alice", {"Host": host})
        assert status == 200 and body["token"], (host, status, body)


UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def test_a_foreign_host_gets_no_websocket(runtime: LocalRuntime) -> None:
    path = "/?" + urllib.parse.urlencode({"token": runtime.token("rebound")})
    status, body = request(runtime, "GET", path, {"Host": f"evil.example:{port_of(runtime)}", **UPGRADE})
    assert status == 403, body
    # The same handshake with the runtime's own Host is upgraded.
    status, _ = request(runtime, "GET", path, {"Host": own_host(runtime), **UPGRADE})
    assert status == 101


# ----- cross-site requests: the Origin header --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/dev/token?user=mallory"),
        ("POST", "/dev/janitor"),
        ("PUT", "/dev/faults"),
        ("PUT", "/dev/iam"),  # a page revoking the functions' grants
        ("POST", "/local/@connections/abc"),
        ("DELETE", "/local/@connections/abc"),
        ("POST", "/admin/rooms/general/messages"),
        ("POST", "/2015-03-31/functions/ingress/invocations"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:5173"},  # allowed to open sockets, not to call /dev or /admin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["foreign", "null", "socket-origin", "fetch-cross-site", "fetch-same-site"],
)
def test_cross_origin_requests_to_dev_admin_and_management_are_refused(
    runtime: LocalRuntime, method: str, path: str, headers: dict[str, str]
) -> None:
    status, body = request(runtime, method, path, {"Host": own_host(runtime), **headers}, b"{}")
    assert status == 403, body
    assert "cross" in body["message"]


def test_same_origin_or_absent_origin_is_served(runtime: LocalRuntime) -> None:
    host = own_host(runtime)
    for headers in (
        {},
        {"Origin": f"http://{host}"},
        {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
    ):
        status, body = request(runtime, "GET", "/dev/token?user=alice", {"Host": host, **headers})
        assert status == 200, (headers, body)
    # A page read from anywhere stays readable (it is the public web client).
    status, _ = request(runtime, "GET", "/", {"Host": host, "Origin": "http://evil.example"})
    assert status == 200


@pytest.mark.parametrize(
    ("origin", "opens"),
    [
        (None, True),  # not a browser
        ("own", True),
        (ALLOWED_ORIGIN, True),  # --allowed-origin
        ("http://evil.example", False),
        ("null", False),
        ("http://localhost:5174", False),
    ],
)
def test_websocket_upgrade_origin_policy(runtime: LocalRuntime, origin: str | None, opens: bool) -> None:
    token = runtime.token("origin-check")
    sent = None if origin is None else Origin(f"http://{own_host(runtime)}" if origin == "own" else origin)
    if opens:
        with connect(runtime.socket_url(token), origin=sent, open_timeout=20) as ws:
            ws.send(json.dumps({"action": "ping"}))
            assert json.loads(ws.recv(timeout=20))["type"] == "pong"
        return
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(runtime.socket_url(token), origin=sent, open_timeout=20),
    ):
        pass
    assert refused.value.response.status_code == 403


# ----- a cross-origin page in real Chromium ------------------------------------------------------------

ATTACK = """
async ({base, wsUrl, connectionId}) => {
  const body = JSON.stringify({type: "message", room: "general", text: "forged", seq: 1});
  const tries = [
    fetch(`${base}/local/@connections/${encodeURIComponent(connectionId)}`,
          {method: "POST", mode: "no-cors", body}),
    fetch(`${base}/@connections/${encodeURIComponent(connectionId)}`,
          {method: "POST", mode: "no-cors", body}),
    fetch(`${base}/dev/token?user=mallory`, {mode: "no-cors"}),
    fetch(`${base}/dev/janitor`, {method: "POST", mode: "no-cors"}),
  ];
  await Promise.allSettled(tries);
  const opened = await new Promise((resolve) => {
    const ws = new WebSocket(wsUrl);
    ws.onopen = () => { ws.close(); resolve(true); };
    ws.onerror = () => resolve(false);
  });
  let readable = null;
  try {
    readable = await (await fetch(`${base}/dev/token?user=mallory`)).text();
  } catch (error) {
    readable = null;  // CORS: the page cannot read it either way
  }
  return {opened, readable};
}
"""


# Chromium's Private Network Access would stop a public page's requests to loopback before
# they leave the browser; Firefox and Safari have no such rule, so the runtime must refuse them
# itself. The test turns it off to see what reaches the runtime.
NO_PRIVATE_NETWORK_ACCESS = (
    "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
    "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks"
)


@contextlib.contextmanager
def attacker_site() -> Iterator[str]:
    """A page on another loopback port: another origin that Private Network Access allows."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><p>cute cats</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"BROWSER TESTS DID NOT RUN: {CHROMIUM} is absent")
@pytest.mark.parametrize("attack", ["other-port", "foreign-site", "rebinding"])
def test_a_cross_origin_page_can_neither_post_nor_mint_nor_run_the_janitor(
    runtime: LocalRuntime, attack: str
) -> None:
    from playwright.sync_api import sync_playwright

    port = port_of(runtime)
    token = runtime.token("victim")
    with connect(runtime.socket_url(token), open_timeout=20) as victim, attacker_site() as other_port:
        victim.send(json.dumps({"action": "ping"}))
        assert json.loads(victim.recv(timeout=20))["type"] == "pong"
        _, listing = request(runtime, "GET", "/dev/connections", {"Host": own_host(runtime)})
        (connection_id,) = listing["connections"]
        before = invocations(runtime)
        base, fulfilled, flags = f"http://127.0.0.1:{port}", "", [NO_PRIVATE_NETWORK_ACCESS]
        if attack == "other-port":
            page_url = other_port
        elif attack == "foreign-site":
            page_url = fulfilled = "http://evil.example/"
        else:
            # evil.example now resolves to the runtime, as after a DNS rebinding: to Chromium the
            # page and the runtime share one origin, so only the Host check stands in the way.
            page_url = fulfilled = f"http://evil.example:{port}/"
            base = f"http://evil.example:{port}"
            flags.append("--host-resolver-rules=MAP evil.example 127.0.0.1")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *flags])
            try:
                page = browser.new_page()
                statuses: list[tuple[str, int]] = []
                page.on("response", lambda r: statuses.append((r.url, r.status)))
                if fulfilled:  # the attacker's own document, as its server would send it
                    page.route(
                        fulfilled,
                        lambda route: route.fulfill(status=200, content_type="text/html", body="<p>hi</p>"),
                    )
                page.goto(page_url)
                ws_url = base.replace("http://", "ws://") + "/?" + urllib.parse.urlencode({"token": token})
                outcome = page.evaluate(
                    ATTACK, {"base": base, "wsUrl": ws_url, "connectionId": connection_id}
                )
            finally:
                browser.close()
        assert outcome["opened"] is False, "a foreign page opened a WebSocket"
        assert outcome["readable"] is None or "token" not in outcome["readable"], outcome
        fetched = [(url, code) for url, code in statuses if url != page_url]
        assert len(fetched) >= 4, statuses  # the four no-cors requests reached the runtime
        assert all(code == 403 for _, code in fetched), fetched
        # Nothing reached a function: no post, no token, no janitor run, no $connect.
        assert invocations(runtime) == before
        with pytest.raises(TimeoutError):
            victim.recv(timeout=1.0)


# ----- the embedded AWS (moto) endpoint ---------------------------------------------------------------


def aws_request(url: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.putrequest("POST", parts.path or "/", skip_host=True, skip_accept_encoding=True)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},  # a page's fetch or form POST
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
        {"Host": "evil.example"},  # DNS rebinding: the page's own host name
    ],
    ids=["origin", "sec-fetch", "rebound-host"],
)
def test_the_embedded_aws_endpoint_refuses_browsers(runtime: LocalRuntime, headers: dict[str, str]) -> None:
    """Before: moto answered every request (with CORS open to every origin), a browser's too: a
    page that found the port could call any table or queue. Now 403 before moto sees it."""
    import boto3

    info = json.loads(urllib.request.urlopen(f"{runtime.http_url}dev/info", timeout=30).read())
    endpoint, queue = info["aws_endpoint"], info["fanout_queue_url"]
    form = urllib.parse.urlencode({"Action": "SendMessage", "MessageBody": "forged"})
    host = urllib.parse.urlsplit(endpoint).netloc
    status, body = aws_request(
        queue,  # SQS's query protocol: a form POST to the queue's URL
        {"Host": host, "Content-Type": "application/x-www-form-urlencoded", **headers},
        form.encode(),
    )
    assert status == 403, body
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=info["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"  # the SDK is still served
