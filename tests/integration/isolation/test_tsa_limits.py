"""The time-stamp authority answers only the clients it is told to, and at a bounded rate (issue 12).

Found: the TSA had no rate limit; every token costs an HSM signature and a row kept for years.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from asn1crypto import tsp

from ca.config import settings_from_dict
from ca.errors import ConfigError
from ca.http.client_filter import ClientFilter
from ca.http.rate_limit import RateLimiter
from ca.tsa.app import QUERY, REPLY, make_app

from support.clock import NO_NTP
from support.installation import Installation

REQUEST = tsp.TimeStampReq({
    "version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                         "hashed_message": hashlib.sha256(b"minutes").digest()},
    "cert_req": True}).dump()


def _post(app: object, address: str) -> tuple[str, dict[str, str]]:
    got: dict[str, object] = {}
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": QUERY, "CONTENT_LENGTH": str(len(REQUEST)),
               "wsgi.input": io.BytesIO(REQUEST), "REMOTE_ADDR": address}
    b"".join(app(environ, lambda status, headers: got.update(status=status, headers=dict(headers))))  # type: ignore[operator]
    return got["status"], got["headers"]  # type: ignore[return-value]


def test_only_listed_networks_are_answered(installation: Installation) -> None:
    app = make_app(installation.engine, installation.keys, clients=ClientFilter(["10.0.0.0/8", "2001:db8::/32"]),
                   time_guard=NO_NTP)
    assert _post(app, "127.0.0.1")[0] == "403 Forbidden"
    assert _post(app, "192.0.2.7")[0] == "403 Forbidden"
    status, headers = _post(app, "10.20.30.40")
    assert status == "200 OK" and headers["Content-Type"] == REPLY
    assert _post(app, "2001:db8::5")[0] == "200 OK"
    assert _post(app, "::ffff:10.0.0.1")[0] == "200 OK"  # an IPv4 client on a dual-stack socket
    assert _post(app, "")[0] == "403 Forbidden"


def test_an_address_beyond_its_rate_gets_429(installation: Installation) -> None:
    app = make_app(installation.engine, installation.keys, address_limit=RateLimiter(0.01, burst=2), time_guard=NO_NTP)
    assert [_post(app, "10.0.0.1")[0] for _ in range(2)] == ["200 OK"] * 2
    status, headers = _post(app, "10.0.0.1")
    assert status == "429 Too Many Requests" and int(headers["Retry-After"]) >= 1
    assert _post(app, "10.0.0.2")[0] == "200 OK"


def test_the_defaults_limit_the_rate_and_a_bad_network_is_a_config_error() -> None:
    settings = settings_from_dict({})
    assert settings.tsa.rate_per_address > 0 and settings.tsa.allowed_clients == ()
    assert settings.ocsp.rate_per_address > 0 and settings.ocsp.rate_per_verifier > 0
    with pytest.raises(ConfigError, match="tsa.allowed_clients"):
        settings_from_dict({"tsa": {"allowed_clients": ["10.0.0.0/33"]}})
    with pytest.raises(ConfigError, match="ocsp.rate_per_verifier"):
        settings_from_dict({"ocsp": {"rate_per_verifier": -1}})


def test_gunicorn_masters_open_no_shared_control_socket() -> None:
    """Found: all gunicorn masters shared one control socket in root's home directory."""
    from ca.http.gunicorn import GunicornServer

    server = GunicornServer({"bind": "127.0.0.1:0", "workers": 1}, lambda: None)
    assert server.cfg.control_socket_disable is True
