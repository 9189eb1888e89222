"""`dynamowave serve --host ::1`: the functions reach the runtime where it listens.

The runtime gives the functions its Management API endpoint (and Lambda's, for the reviewer);
bound to the IPv6 loopback only, an endpoint on 127.0.0.1 would refuse every call they make over
HTTP (the janitor's GetConnection and DeleteConnection).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, start_server
from tests.e2e.test_e2e_chat import assert_the_janitor_prunes_a_dropped_connection


@pytest.fixture(scope="module")
def ipv6_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("ipv6"), "--host", "::1", "--idle-timeout", "3", "--janitor-interval", "0"
    )
    yield server
    server.stop()


def test_the_management_endpoint_is_where_the_runtime_listens(ipv6_server: Server) -> None:
    assert ipv6_server.ws_url.startswith("ws://[::1]:")
    assert ipv6_server.info()["management_endpoint"] == f"http://[::1]:{ipv6_server.port}/local"


def test_the_janitor_reaches_the_management_api_on_ipv6(ipv6_server: Server) -> None:
    assert_the_janitor_prunes_a_dropped_connection(ipv6_server, idle_timeout=3)
