"""What an OCSP worker keeps from requests is bounded, and outsiders leave nothing in it (issue 12).

Found in an attack: unsigned requests without a nonce were parsed and kept before anyone was
authorized; 1,500 requests of 60 KB grew a worker by 92 MB.  Now only a registered verifier's
requests are kept, every cache is bounded in bytes, and rate limits answer 429 (per address)
and tryLater (per verifier).  The RSS figure under a 1 GB stream is in bench/ocsp_memory.py.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp
from hypothesis import given
from hypothesis import strategies as st

from ca.enums import CAKind
from ca.http.rate_limit import RateLimiter
from ca.storage.engine import session_scope
from ca.storage.revocations import RevocationReadStore
from ca.verifiers.registry import add_verifier
from ocsp.app import make_app
from ocsp.bounded_cache import BoundedCache
from ocsp.responder import Responder

from support.clock import NO_NTP
from support.installation import Installation
from support.settings import LDAP_BASE
from support.tools import court_certificate, ocsp_request


@pytest.fixture(scope="module")
def verifier(installation: Installation) -> bytes:
    """A registered verifier's certificate (DER), presented over TLS."""
    cert, _ = court_certificate("bounds-verifier")
    add_verifier(installation.engine, name="bounds-verifier", certificate=cert, password=None,
                 now=dt.datetime.now(dt.UTC), base_dn=LDAP_BASE, actor="test")
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def tokyo(installation: Installation) -> x509.Certificate:
    with session_scope(installation.engine, readonly=True) as s:
        store = RevocationReadStore(s)
        ca = store.ca("tokyo")
        assert ca.kind == CAKind.REGIONAL
        der = store.self_signed_der(ca, store.current_key(ca))
    return x509.load_der_x509_certificate(der)


def _padded_outsider_request(tokyo: x509.Certificate, serial: int, size: int) -> bytes:
    """A signed request of about `size` bytes from an outsider: a real CertID, an outsider's
    certificate and a signature blob that fills the rest (what the attack sent)."""
    outsider, _ = court_certificate("outsider")
    request = asn1_ocsp.OCSPRequest.load(ocsp_request(tokyo, serial))
    cert = asn1_x509.Certificate.load(outsider.public_bytes(serialization.Encoding.DER))
    blob = os.urandom(max(1, size - 1200))
    return asn1_ocsp.OCSPRequest({"tbs_request": request["tbs_request"], "optional_signature": {
        "signature_algorithm": {"algorithm": "sha256_ecdsa"}, "signature": blob, "certs": [cert]}}).dump()


def test_an_outsiders_large_requests_leave_nothing_in_the_worker(installation: Installation,
                                                                  tokyo: x509.Certificate) -> None:
    responder = Responder(installation.engine, installation.keys, time_guard=NO_NTP)
    for serial in range(1, 201):
        request = _padded_outsider_request(tokyo, serial, 60_000)
        assert len(request) > 55_000
        assert responder.respond(request).response_status == "unauthorized"
        plain = ocsp_request(tokyo, serial)  # unsigned, no TLS certificate: nobody
        assert responder.respond(plain).response_status == "unauthorized"
    assert responder.cache_sizes() == {"requests": (0, 0), "presigned": (0, 0)}


def test_a_verifiers_requests_are_kept_within_the_byte_bounds(installation: Installation, tokyo: x509.Certificate,
                                                              verifier: bytes) -> None:
    responder = Responder(installation.engine, installation.keys, requests_max_bytes=20_000,
                          presigned_max_bytes=30_000, time_guard=NO_NTP)
    for serial in range(1, 121):
        outcome = responder.respond(ocsp_request(tokyo, serial), tls_client_cert=verifier)
        assert outcome.response_status == "successful"
        sizes = responder.cache_sizes()
        assert sizes["requests"][1] <= 20_000 and sizes["presigned"][1] <= 30_000
    assert 0 < sizes["requests"][0] < 120 and 0 < sizes["presigned"][0] < 120  # kept, and bounded
    newest = ocsp_request(tokyo, 120)  # the newest stays; the oldest went first
    again = responder.respond(newest, tls_client_cert=verifier)
    assert again.presigned
    oldest = responder.respond(ocsp_request(tokyo, 1), tls_client_cert=verifier)
    assert not oldest.presigned and oldest.response_status == "successful"


def test_a_verifier_beyond_its_rate_gets_try_later(installation: Installation, tokyo: x509.Certificate,
                                                   verifier: bytes) -> None:
    responder = Responder(installation.engine, installation.keys, verifier_limit=RateLimiter(0.01, burst=3),
                          time_guard=NO_NTP)
    got = [responder.respond(ocsp_request(tokyo, serial), tls_client_cert=verifier) for serial in range(1, 6)]
    assert [o.response_status for o in got] == ["successful"] * 3 + ["try_later"] * 2
    answer = x509_ocsp.load_der_ocsp_response(got[-1].body)
    assert answer.response_status == x509_ocsp.OCSPResponseStatus.TRY_LATER
    assert got[-1].verifier_id == got[0].verifier_id  # recorded in the history as that verifier's


def test_an_address_beyond_its_rate_gets_429_with_retry_after(installation: Installation,
                                                              tokyo: x509.Certificate) -> None:
    responder = Responder(installation.engine, installation.keys, time_guard=NO_NTP)
    app = make_app(responder, None, RateLimiter(0.5, burst=2))
    body = ocsp_request(tokyo, 7)

    def post(address: str) -> tuple[str, dict[str, str]]:
        seen: dict[str, object] = {}
        environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/ocsp-request",
                   "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": address, "wsgi.input": _Body(body)}
        b"".join(app(environ, lambda status, headers: seen.update(status=status, headers=dict(headers))))
        return seen["status"], seen["headers"]  # type: ignore[return-value]

    assert [post("192.0.2.1")[0] for _ in range(2)] == ["200 OK"] * 2
    status, headers = post("192.0.2.1")
    assert status == "429 Too Many Requests" and int(headers["Retry-After"]) >= 1
    assert post("192.0.2.2")[0] == "200 OK"  # another address has its own budget


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        out, self.data = (self.data, b"") if n < 0 else (self.data[:n], self.data[n:])
        return out


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 400)), max_size=200),
       st.integers(1, 20), st.integers(1, 1000))
def test_the_cache_never_holds_more_than_its_bounds(puts: list[tuple[int, int]], max_entries: int,
                                                    max_bytes: int) -> None:
    cache: BoundedCache[int] = BoundedCache(max_entries=max_entries, max_bytes=max_bytes)
    for key, size in puts:
        cache.put(key, size, size)
        assert len(cache) <= max_entries and cache.size_bytes <= max_bytes
        assert cache.size_bytes == sum(cache.get(k) or 0 for k in range(31))
        if size <= max_bytes:
            assert cache.get(key) == size  # what was just put is there


def test_rate_limiter_refills_and_forgets_the_oldest_keys() -> None:
    now = [0.0]
    limiter = RateLimiter(2, burst=2, max_keys=10, clock=lambda: now[0])
    assert [limiter.retry_after("a") for _ in range(3)] == [0, 0, 0.5]
    now[0] += 0.5
    assert limiter.retry_after("a") == 0
    for key in range(100):
        limiter.retry_after(key)
    assert len(limiter._buckets) <= 10
    assert RateLimiter(0).retry_after("x") == 0 and not RateLimiter(0).enabled


def test_nothing_from_an_outsider_is_cached_even_on_the_second_try(installation: Installation,
                                                                    tokyo: x509.Certificate, tmp_path: Path) -> None:
    """The same outsider bytes twice are parsed twice: the work is bounded by the rate limits, not by memory."""
    responder = Responder(installation.engine, installation.keys, time_guard=NO_NTP)
    request = _padded_outsider_request(tokyo, 3, 10_000)
    assert responder.respond(request).response_status == "unauthorized"
    assert responder.respond(request).response_status == "unauthorized"
    assert responder.cache_sizes()["requests"] == (0, 0)


def test_the_query_history_waits_bounded_while_the_database_is_away(tmp_path: Path) -> None:
    """Found: the history queue in memory was unbounded while the database was away."""
    from ca.storage.engine import make_engine
    from ocsp.history import QueryHistory
    from ocsp.responder import Outcome

    away = make_engine(f"sqlite:///{tmp_path / 'gone' / 'x.db'}")  # never migrated: every insert fails
    history = QueryHistory(away, thread=False, max_pending=100)
    for i in range(1_000):
        history.record(Outcome(b"", "unauthorized", answers=str(i)))
        if i % 250 == 0:
            assert history.flush() == 0  # the write fails; the rows are kept, within the bound
    assert len(history._rows) == 100 and history.dropped == 900
    assert [row[-1] for row in history._rows][-1] == "999"  # the newest are the ones kept
    away.dispose()
