"""The admin guard's rule: which listener counts as loopback, who may call an admin route and
/metrics for each combination of listener, token and settings, and what the start log says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.admin.guard import AdminGuard, Kind, is_loopback
from sidecar.config import ConfigError, Settings, load_settings

LOOPBACK = ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LocalHost",
            "::ffff:127.0.0.1"]
NETWORK = ["0.0.0.0", "::", "[::]", "", "10.1.2.3", "192.168.0.7", "fe80::1", "my-pod",
           "localhost.example.com", "::ffff:10.0.0.1"]
REGISTERED: list[tuple[str, str, Kind]] = [("GET", "/metrics", "metrics"),
                                           ("GET", "/sidecar/usage", "admin"),
                                           ("DELETE", "/sidecar/cache", "admin"),
                                           ("GET", "/sidecar/ui", "page")]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts(host: str) -> None:
    """127.0.0.0/8, ::1 (bracketed or not, or IPv4-mapped) and localhost are loopback."""
    assert is_loopback(host)


@pytest.mark.parametrize("host", NETWORK)
def test_every_other_host_is_the_network(host: str) -> None:
    """0.0.0.0 and :: (every interface), other addresses and other names are not loopback."""
    assert not is_loopback(host)


def guard(**admin: Any) -> AdminGuard:
    listen = admin.pop("listen_host", "127.0.0.1")
    return AdminGuard.of(Settings.model_validate({"listen": {"host": listen}, "admin": admin}))


# (admin settings, access of an admin route, of the page, of /metrics)
TABLE: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "loopback, no token": ({"host": "127.0.0.1", "port": 4142}, "open", "open", "open"),
    "localhost, no token": ({"host": "localhost", "port": 4142}, "open", "open", "open"),
    "network, no token": ({"host": "0.0.0.0", "port": 4142}, "locked", "locked", "open"),
    "dual stack, no token": ({"host": "::", "port": 4142}, "locked", "locked", "open"),
    "main listener on the network": ({"listen_host": "0.0.0.0"}, "locked", "locked", "open"),
    "main listener on loopback, admin port elsewhere": (
        {"listen_host": "127.0.0.1", "host": "0.0.0.0", "port": 4142},
        "locked", "locked", "open"),
    "network, opt-out": ({"host": "0.0.0.0", "port": 4142,
                          "insecure_no_token_on_network": True}, "open", "open", "open"),
    "network, token": ({"host": "0.0.0.0", "port": 4142, "token": "t"},
                       "token", "token", "open"),
    "loopback, token": ({"token": "t"}, "token", "token", "open"),
    "network, token, metrics too": ({"host": "0.0.0.0", "port": 4142, "token": "t",
                                     "metrics_require_token": True}, "token", "token", "token"),
    "token and the opt-out: the token wins": (
        {"host": "0.0.0.0", "port": 4142, "token": "t", "insecure_no_token_on_network": True},
        "token", "token", "open"),
}


@pytest.mark.parametrize("case", list(TABLE))
def test_the_access_table(case: str) -> None:
    """Each row of the guard's table: open, token or locked for admin routes, the page and
    /metrics."""
    admin, expected_admin, expected_page, expected_metrics = TABLE[case]
    rule = guard(**admin)
    assert (rule.access("admin"), rule.access("page"), rule.access("metrics")) == (
        expected_admin, expected_page, expected_metrics)


def test_the_listener_that_decides() -> None:
    """Without admin.port the main listener's host decides; with it, admin.host does."""
    assert guard(listen_host="0.0.0.0", host="127.0.0.1").host_setting == "listen.host"
    own = guard(listen_host="0.0.0.0", host="127.0.0.1", port=4142)
    assert (own.host, own.host_setting, own.access("admin")) == ("127.0.0.1", "admin.host",
                                                                  "open")


def test_locked_notice_names_the_setting_and_the_refused_routes() -> None:
    """On the network without a token, the start log names admin.token, the opt-out, and every
    refused route (not /metrics, which stays open)."""
    notice = guard(host="0.0.0.0", port=4142).notice(REGISTERED)
    assert notice is not None
    assert notice.event == "admin_routes_need_token"
    assert notice.fields["setting"] == "admin.token"
    assert notice.fields["refused"] == ["GET /sidecar/usage", "DELETE /sidecar/cache",
                                        "GET /sidecar/ui"]
    assert "admin.insecure_no_token_on_network" in notice.fields["note"]
    assert "admin.host to 127.0.0.1" in notice.fields["note"]


def test_locked_message_on_the_main_listener_suggests_an_admin_port() -> None:
    """When the main listener decides, the message suggests a loopback admin listener rather
    than taking the proxy off the network."""
    message = guard(listen_host="0.0.0.0").locked_message()
    assert "listen.host" in message and "admin.port" in message


def test_opt_out_notice_says_what_it_exposes() -> None:
    """The opt-out on a network listener is a warning listing what it exposes."""
    notice = guard(host="0.0.0.0", port=4142, insecure_no_token_on_network=True).notice(
        REGISTERED)
    assert notice is not None
    assert notice.event == "admin_routes_open_without_token"
    assert notice.fields["exposes"] == ["GET /sidecar/usage", "DELETE /sidecar/cache",
                                        "GET /sidecar/ui"]
    assert "purge the cache" in notice.fields["note"]


@pytest.mark.parametrize("admin", [{"token": "t", "insecure_no_token_on_network": True},
                                   {"insecure_no_token_on_network": True}])
def test_an_opt_out_that_does_nothing_is_reported(admin: dict[str, Any]) -> None:
    """The opt-out with a token set, or on loopback, changes nothing, and the log says so."""
    notice = guard(**admin).notice(REGISTERED)
    assert notice is not None and notice.event == "admin_opt_out_unused"


@pytest.mark.parametrize("admin", [{}, {"token": "t"}, {"host": "0.0.0.0", "port": 4142,
                                                        "token": "t"}])
def test_nothing_to_say(admin: dict[str, Any]) -> None:
    """Loopback without a token, or any listener with one: no start notice."""
    assert guard(**admin).notice(REGISTERED) is None


def test_metrics_require_token_without_a_token_is_refused(tmp_path: Path) -> None:
    """admin.metrics_require_token without admin.token is a config error naming admin (every
    scrape would be refused)."""
    path = tmp_path / "c.yaml"
    path.write_text("admin: {metrics_require_token: true}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert "admin" in str(caught.value)
    assert "metrics_require_token" in str(caught.value)
