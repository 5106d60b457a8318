"""The validation server over HTTP: POST a certificate (ca.cvs.request), get the signed answer
(ca.cvs.signed), Content-Type application/cms.

A bare WSGI callable, like the TSA's.  Envelope faults (method, media type, size, a body that
is no certificate) get a short plain-text 4xx and nothing is signed; every certificate that
parses gets a signed answer, whatever its status.  No CVS certificate, the token or the
database down, a clock NTP does not confirm (ca.trusted_time: the answer carries its time):
503, never an unsigned "valid".
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from cryptography import x509

from ca.cvs import request
from ca.cvs.material import TrustSource
from ca.cvs.signed import sign_answer
from ca.errors import InvalidInput, NotFound, RevocaError
from ca.hsm.signer import KeyStore, Signer
from ca.http.der_over_http import BodyRefused, StartResponse, plain
from ca.storage.cvs import CVSReads
from ca.storage.engine import Engine, session_scope
from ca.trusted_time import ClockGuard

log = logging.getLogger("revoca.cvs")

ANSWER = "application/cms"
RELOAD_SECONDS = 60.0  # a renewed CVS certificate is picked up within this
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _CurrentSigner:
    """The current CVS-server certificate, its signer and the bridge certificate above it."""

    def __init__(self, engine: Engine, keys: KeyStore, clock: Clock) -> None:
        self._engine, self._keys, self._clock = engine, keys, clock
        self._lock = threading.Lock()
        self._held: tuple[x509.Certificate, Signer, tuple[x509.Certificate, ...]] | None = None
        self._loaded = 0.0

    def get(self) -> tuple[x509.Certificate, Signer, tuple[x509.Certificate, ...]]:
        with self._lock:
            if self._held is None or time.monotonic() - self._loaded > RELOAD_SECONDS:
                with session_scope(self._engine) as session:
                    found = CVSReads(session).signing_certificate(self._clock())
                if found is None:
                    raise NotFound("revoca has no valid CVS-server certificate with its key in the token "
                                   "(`revoca init` issues one under the bridge)")
                self._held = (x509.load_der_x509_certificate(found.der), self._keys.signer(found.key_label),
                              tuple(x509.load_der_x509_certificate(d) for d in found.chain))
                self._loaded = time.monotonic()
            return self._held

    def forget(self) -> None:
        with self._lock:
            self._held = None


def _body(environ: dict[str, Any]) -> tuple[str, bytes]:
    media_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if media_type not in request.MEDIA_TYPES:
        raise BodyRefused("415 Unsupported Media Type", f"send {' or '.join(request.MEDIA_TYPES)}")
    if length < 0:
        raise BodyRefused("411 Length Required", "Content-Length required")
    if length > request.MAX_REQUEST_BYTES:
        raise BodyRefused("413 Content Too Large", f"requests are at most {request.MAX_REQUEST_BYTES} bytes")
    return media_type, environ["wsgi.input"].read(length)


def make_app(engine: Engine, keys: KeyStore, trust: TrustSource, *, time_guard: ClockGuard,
             clock: Clock = utc_now) -> Callable[..., Iterable[bytes]]:
    current = _CurrentSigner(engine, keys, clock)

    def answer(submission: request.Submission) -> bytes:
        now = clock().replace(microsecond=0)
        result = trust.validator().check(submission.certificate, submission.intermediates, now)
        certificate, signer, chain = current.get()
        time_guard.require("validation answer", actor="cvs", at=now)
        return sign_answer(result.encode(), certificate=certificate, signer=signer, chain=chain, now=now)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return plain(start_response, "405 Method Not Allowed",
                         f"POST a {request.DER} or {request.PEM_CHAIN}", [("Allow", "POST")])
        try:
            submission = request.parse(*_body(environ))
        except BodyRefused as refused:
            return plain(start_response, refused.status, refused.text)
        except InvalidInput as exc:
            return plain(start_response, "400 Bad Request", str(exc))
        try:
            body = answer(submission)
        except RevocaError as exc:  # no CVS certificate, the token not activated, the HSM refusing
            log.warning("validation answer not signed: %s", exc)
            current.forget()
            return plain(start_response, "503 Service Unavailable", f"no signed answer can be made now: {exc}")
        except Exception:  # a bug or the database: no unsigned answer
            log.exception("validation failed")
            current.forget()
            return plain(start_response, "503 Service Unavailable", "internal error of the validation server")
        start_response("200 OK", [("Content-Type", ANSWER), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]

    return app
