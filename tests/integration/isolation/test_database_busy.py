"""A busy or full database: readers go on, writers get 503 (never 500), nothing half-stored (issue 12).

Found in an attack: with a 45 s write held elsewhere, a nonce OCSP query failed with
internal_error after 30 s and the RA answered 500 after 44 s.  Now OCSP reads never wait for
the writer (WAL, deferred read transactions), the RA answers 503 with Retry-After once the
wait (busy_timeout, short here) is over, and the CLI says one line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp

from ca.enums import Role
from ca.errors import DatabaseUnavailable
from ca.ra.app import create_app
from ca.storage.engine import make_engine, session_scope
from ca.storage.revocations import RevocationReadStore
from ca.storage.store import Store
from ca.verifiers.registry import add_verifier
from ocsp.responder import Responder

from support.clock import NO_NTP
from support.installation import Installation
from support.ra_fixtures import add_operator, basic_auth, register_terminals, revocations, subscribers
from support.settings import LDAP_BASE
from support.tools import court_certificate, ocsp_request

NOW = dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def write_lock_held(installation: Installation) -> Iterator[None]:
    """Another process's writer in the middle of a long transaction (BEGIN IMMEDIATE, not committed)."""
    path = installation.engine.url.database
    assert path
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE cas SET name = name")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _verifier(installation: Installation) -> bytes:
    cert, _ = court_certificate("busy-verifier")
    add_verifier(installation.engine, name="busy-verifier", certificate=cert, password=None, now=NOW,
                 base_dn=LDAP_BASE, actor="test")
    return cert.public_bytes(serialization.Encoding.DER)


def test_ocsp_answers_at_once_while_a_writer_holds_the_lock(installation: Installation) -> None:
    verifier = _verifier(installation)
    with session_scope(installation.engine, readonly=True) as s:
        store = RevocationReadStore(s)
        tokyo = x509.load_der_x509_certificate(store.self_signed_der(store.ca("tokyo"),
                                                                     store.current_key(store.ca("tokyo"))))
    responder = Responder(installation.engine, installation.keys, time_guard=NO_NTP)
    serial = subscribers(installation.engine, "tokyo")[0].serial
    with write_lock_held(installation):
        for nonce in (None, b"fresh-nonce-1234"):
            started = time.monotonic()
            outcome = responder.respond(ocsp_request(tokyo, serial, nonce=nonce), tls_client_cert=verifier)
            assert time.monotonic() - started < 1.0
            assert outcome.response_status == "successful"
            assert x509_ocsp.load_der_ocsp_response(outcome.body).certificate_status == x509_ocsp.OCSPCertStatus.GOOD


def test_the_ra_answers_503_with_retry_after_and_stores_nothing(installation: Installation, tmp_path: Path) -> None:
    [terminal] = register_terminals(installation.engine, installation.keys, [f"t-{uuid.uuid4().hex[:8]}"],
                                    tmp_path, now=NOW)
    add_operator(installation.engine, "busy-clerk", Role.RECEPTIONIST)
    impatient = make_engine(installation.settings.db_url, busy_timeout_ms=500)
    app = create_app(impatient, installation.keys)
    target = subscribers(installation.engine, "tokyo")[3]
    body = {"issuer_ca": "tokyo", "serial": target.hex_serial, "reason": "keyCompromise", "applicant": "self",
            "identity_document_checked": True, "idempotency_key": f"busy-{uuid.uuid4()}"}

    def file() -> tuple[int, dict[str, str], dict[str, object]]:
        answer = app.test_client().post("/v1/revocations", json=body, headers=basic_auth("busy-clerk"),
                                        environ_base={"revoca.client_cert_der": terminal.der})
        return answer.status_code, dict(answer.headers), answer.get_json()

    with write_lock_held(installation):
        started = time.monotonic()
        status, headers, answer = file()
        waited = time.monotonic() - started
    assert status == 503, answer
    assert headers["Retry-After"] == "5" and "busy" in str(answer["error"])
    assert waited < 5
    assert target.id not in revocations(installation.engine)  # nothing acknowledged, nothing stored
    status, _, answer = file()  # the same filing once the lock is gone
    assert status == 201 and target.id in revocations(installation.engine)
    impatient.dispose()


def test_a_writer_that_waits_too_long_gets_one_line_and_nothing_is_stored(installation: Installation) -> None:
    """What the CLI prints (`revoca: error: ...`) and the RA answers 503 for: DatabaseUnavailable."""
    impatient = make_engine(installation.settings.db_url, busy_timeout_ms=200)
    with write_lock_held(installation), pytest.raises(DatabaseUnavailable) as refused:
        with session_scope(impatient) as s:
            add_operator_row(s)
    assert str(refused.value).startswith("the database is busy") and "\n" not in str(refused.value)
    with session_scope(installation.engine, readonly=True) as s:
        assert s.scalar(sa.text("SELECT count(*) FROM operators WHERE name = 'late-clerk'")) == 0
    with session_scope(impatient, readonly=True) as s:  # reading never waits for the writer
        with write_lock_held(installation):
            assert s.scalar(sa.text("SELECT count(*) FROM cas")) > 0
    impatient.dispose()


def add_operator_row(session: Any) -> None:
    Store(session).add_operator(name="late-clerk", display_name="Late", credential_hash="x", roles=[Role.RECEPTIONIST],
                                now=NOW)
