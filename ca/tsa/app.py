"""RFC 3161 over HTTP (section 3.4): POST application/timestamp-query, answer application/timestamp-reply.

A bare WSGI callable, like the OCSP responder's.  HTTP-level mistakes (method, content type,
size) get a short 4xx; every body that reaches the TSA gets a TimeStampResp: granted, or
rejection with the PKIFailureInfo that names the fault.  Never a 500: a failure of the HSM,
the database or a bug is a rejection with systemFailure.  A token is sent only after its
row is committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ca.errors import RevocaError
from ca.hsm.signer import KeyStore
from ca.http.client_filter import ClientFilter
from ca.http.der_over_http import BodyRefused, StartResponse, der_body, plain
from ca.http.rate_limit import RateLimiter, retry_after_header
from ca.storage.engine import Engine, session_scope
from ca.trusted_time import ClockGuard
from ca.tsa import errors, response
from ca.tsa.authority import Clock, TimeStampAuthority, utc_now
from ca.tsa.request import MAX_REQUEST_BYTES, parse_request

log = logging.getLogger("revoca.tsa")

QUERY = "application/timestamp-query"
REPLY = "application/timestamp-reply"
RELOAD_SECONDS = 60.0  # a renewed TSA certificate is picked up within this



class _CurrentAuthority:
    """The authority of the current TSA certificate, loaded again every RELOAD_SECONDS (renewals)."""

    def __init__(self, keys: KeyStore, clock: Clock, time_guard: ClockGuard) -> None:
        self._keys = keys
        self._time_guard = time_guard
        self._clock = clock
        self._lock = threading.Lock()
        self._authority: TimeStampAuthority | None = None
        self._loaded = 0.0

    def get(self, session: Any) -> TimeStampAuthority:
        with self._lock:
            if self._authority is None or time.monotonic() - self._loaded > RELOAD_SECONDS:
                self._authority = TimeStampAuthority.load(session, self._keys, time_guard=self._time_guard,
                                                          clock=self._clock)
                self._loaded = time.monotonic()
            return self._authority

    def forget(self) -> None:
        with self._lock:
            self._authority = None


def make_app(engine: Engine, keys: KeyStore, *, time_guard: ClockGuard, clock: Clock = utc_now,
             clients: ClientFilter | None = None,
             address_limit: RateLimiter | None = None) -> Callable[..., Iterable[bytes]]:
    """`clients`: the addresses answered at all (403 for others); `address_limit`: requests per
    second per address (429 beyond it).  Both act before the body is read: every token costs an
    HSM signature and a row that is kept for years."""
    current = _CurrentAuthority(keys, clock, time_guard)
    clients = clients or ClientFilter()
    limit = address_limit or RateLimiter(0)

    def answer(der: bytes, requester: str) -> bytes:
        try:
            request = parse_request(der)
            with session_scope(engine) as session:
                row = current.get(session).stamp(session, request.imprint, request.hash_name, requester,
                                                 nonce=request.nonce, cert_req=request.cert_req)
                token = row.token
            return response.granted(token)  # committed: only now is the token handed out
        except RevocaError as exc:  # the request's fault, untrusted time, no TSA certificate, HSM trouble, ...
            fail_info = errors.fail_info_of(exc)
            if fail_info == errors.SYSTEM_FAILURE:
                log.warning("time-stamp refused: %s", exc)
                current.forget()
            return response.rejection(fail_info, str(exc))
        except Exception:  # a bug or the database: the client still gets a TimeStampResp
            log.exception("time-stamp failed")
            current.forget()
            return response.rejection(errors.SYSTEM_FAILURE, "internal error of the time-stamp authority")

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        address = environ.get("REMOTE_ADDR", "")
        if not clients.allows(address):
            return plain(start_response, "403 Forbidden", "this address may not ask for time stamps")
        if limit.enabled and (wait := limit.retry_after(address)):
            return plain(start_response, "429 Too Many Requests", "too many time-stamp requests from this address; "
                         "retry later", [retry_after_header(wait)])
        if environ.get("REQUEST_METHOD") != "POST":
            return plain(start_response, "405 Method Not Allowed", f"POST a {QUERY}", [("Allow", "POST")])
        try:
            der = der_body(environ, QUERY, MAX_REQUEST_BYTES)
        except BodyRefused as refused:
            return plain(start_response, refused.status, refused.text)
        body = answer(der, f"http:{address or '?'}")
        start_response("200 OK", [("Content-Type", REPLY), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]

    return app
