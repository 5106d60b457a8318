"""Answers signed ahead by `ocsp.presigner` and served by every responder without signing (issue 16).

Real token, real database (SQLite and PostgreSQL); answers checked by `openssl ocsp` against the
CA certificate.  A KeyStore that counts the signatures it passes on to the real token tells
whether a responder signed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp

from ca.enums import CertKind
from ca.hsm.signer import KeyStore, Signer
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import revoke_certificate
from ca.storage.engine import session_scope
from ca.storage.leases import Lease
from ca.storage.models import Certificate, PresignedResponse
from ca.storage.revocations import RevocationStore
from ca.verifiers.registry import add_verifier
from ocsp import shared_answers
from ocsp.issuers import public_key_bits
from ocsp.presigner import Presigner
from ocsp.responder import Responder
from ocsp.shared_answers import SharedAnswers

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation, subscriber_rows
from support.settings import LDAP_BASE
from support.tools import court_certificate

TOKYO = "tokyo"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def installation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, request.param, tmp_path_factory.mktemp(request.param)) as made:
        yield made


@dataclasses.dataclass
class Verifier:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    tokyo: x509.Certificate
    tokyo_pem: Path


@pytest.fixture(scope="module")
def verifier(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Verifier:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = court_certificate("presigned-verifier", key, days=365)[0]
    add_verifier(installation.engine, name="presigned-verifier", certificate=cert, password=None,
                 now=dt.datetime.now(dt.UTC), base_dn=LDAP_BASE, actor="test")
    with session_scope(installation.engine) as s:
        tokyo_id = RevocationStore(s).ca(TOKYO).id
        der = s.scalar(sa.select(Certificate.der).where(Certificate.issuer_ca_id == tokyo_id,
                                                        Certificate.kind == CertKind.SELF_SIGNED))
    assert der is not None
    tokyo = x509.load_der_x509_certificate(der)
    pem = tmp_path_factory.mktemp("presigned") / "tokyo.pem"
    pem.write_bytes(tokyo.public_bytes(serialization.Encoding.PEM))
    return Verifier(cert, key, tokyo, pem)


class CountingKeys:
    """The installation's token, counting the signatures made through it."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self.signed = 0

    def generate(self, label, algorithm):  # type: ignore[no-untyped-def]
        return self.keys.generate(label, algorithm)

    def signer(self, label: str) -> Signer:
        inner = self.keys.signer(label)
        outer = self

        class Counting:
            algorithm = inner.algorithm
            key_label = label

            def public_key(self):  # type: ignore[no-untyped-def]
                return inner.public_key()

            def sign(self, data: bytes) -> bytes:
                outer.signed += 1
                return inner.sign(data)

        return Counting()  # type: ignore[return-value]


def request(v: Verifier, serial: int, *, nonce: bytes | None = None, digest: str = "sha1") -> bytes:
    """A request signed by the verifier (RFC 6960 4.1.2), one CertID."""
    spki = v.tokyo.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    algorithm = hashes.SHA1() if digest == "sha1" else hashes.SHA256()
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        hashlib.new(digest, v.tokyo.subject.public_bytes()).digest(),
        hashlib.new(digest, public_key_bits(spki)).digest(), serial, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    unsigned = asn1_ocsp.OCSPRequest.load(builder.build().public_bytes(serialization.Encoding.DER))
    signer = asn1_x509.Certificate.load(v.cert.public_bytes(serialization.Encoding.DER))
    tbs = unsigned["tbs_request"]
    tbs["requestor_name"] = asn1_x509.GeneralName(name="directory_name", value=signer.subject)
    signature = v.key.sign(tbs.dump(force=True), ec.ECDSA(hashes.SHA256()))
    return asn1_ocsp.OCSPRequest({
        "tbs_request": tbs,
        "optional_signature": {"signature_algorithm": {"algorithm": "sha256_ecdsa"}, "signature": signature,
                               "certs": [signer]},
    }).dump()


def openssl_check(v: Verifier, body: bytes, serial: int, tmp_path: Path) -> str:
    """`openssl ocsp -respin`: the signature verified under the CA certificate, and the status line."""
    path = tmp_path / f"{serial:x}.der"
    path.write_bytes(body)
    out = subprocess.run(["openssl", "ocsp", "-respin", str(path), "-issuer", str(v.tokyo_pem), "-CAfile",
                          str(v.tokyo_pem), "-serial", f"0x{serial:x}"], capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    assert "Response verify OK" in text, text
    return text


def subscribers(installation: Installation) -> list[Certificate]:
    return subscriber_rows(installation.engine, TOKYO)


def revoke(installation: Installation, cert: Certificate, reason: RevocationReason) -> None:
    with session_scope(installation.engine) as s:
        revoke_certificate(RevocationStore(s), s.get(Certificate, cert.id), reason,  # type: ignore[arg-type]
                           dt.datetime.now(dt.UTC))


def presigner(installation: Installation) -> Presigner:
    assert installation.keys is not None
    keys = installation.keys
    return Presigner(installation.engine, lambda: keys, threads=1,
                     lease=Lease(installation.engine, f"ocsp-signer-test-{time.monotonic_ns()}"), time_guard=NO_NTP)


def test_every_certificate_is_signed_ahead_and_served_without_a_signature(
        installation: Installation, verifier: Verifier, tmp_path: Path) -> None:
    assert installation.keys is not None
    certs = subscribers(installation)
    good, revoked = certs[0], certs[1]
    revoke(installation, revoked, RevocationReason.KEY_COMPROMISE)
    report = presigner(installation).sign_all()
    assert report.signed >= 2
    with session_scope(installation.engine) as s:
        stored = {(row.serial, row.revocation_id is not None) for row in s.scalars(sa.select(PresignedResponse))}
    assert (good.serial, False) in stored and (revoked.serial, True) in stored
    assert presigner(installation).sign_all().signed == 0  # nothing missing or stale any more

    keys = CountingKeys(installation.keys)
    for responder in (Responder(installation.engine, keys, time_guard=NO_NTP),
                      Responder(installation.engine, keys, time_guard=NO_NTP)):  # two machines
        for cert, line in ((good, "good"), (revoked, "revoked")):
            outcome = responder.respond(request(verifier, cert.serial))
            assert outcome.presigned and outcome.response_status == "successful"
            text = openssl_check(verifier, outcome.body, cert.serial, tmp_path)
            assert f"0x{cert.serial:x}: {line}" in text, text
    assert keys.signed == 0
    assert "Reason: keyCompromise" in openssl_check(verifier, Responder(installation.engine, keys,
                                                                        time_guard=NO_NTP).respond(
        request(verifier, revoked.serial)).body, revoked.serial, tmp_path)


def test_a_nonce_another_cert_id_or_an_unknown_serial_is_signed_on_demand(
        installation: Installation, verifier: Verifier, tmp_path: Path) -> None:
    assert installation.keys is not None
    cert = subscribers(installation)[2]
    presigner(installation).sign_all()
    keys = CountingKeys(installation.keys)
    responder = Responder(installation.engine, keys, time_guard=NO_NTP)
    for body, signed in ((request(verifier, cert.serial, nonce=b"n" * 16), 1),
                         (request(verifier, cert.serial, digest="sha256"), 2),
                         (request(verifier, (1 << 120) + 7), 3)):
        outcome = responder.respond(body)
        assert outcome.response_status == "successful" and not outcome.presigned
        assert keys.signed == signed
    # the unknown serial again: the bounded negative cache of the worker, no second signature
    assert responder.respond(request(verifier, (1 << 120) + 7)).response_status == "successful"
    assert keys.signed == 3


def test_a_revocation_is_never_answered_from_an_answer_signed_before_it(
        installation: Installation, verifier: Verifier, tmp_path: Path) -> None:
    assert installation.keys is not None
    cert = subscribers(installation)[3]
    presigner(installation).sign_all()
    responder = Responder(installation.engine, installation.keys, time_guard=NO_NTP)
    assert responder.respond(request(verifier, cert.serial)).presigned
    revoke(installation, cert, RevocationReason.CESSATION_OF_OPERATION)
    # at once, before the signer has caught up: signed on demand, revoked
    outcome = responder.respond(request(verifier, cert.serial))
    assert not outcome.presigned
    assert f"0x{cert.serial:x}: revoked" in openssl_check(verifier, outcome.body, cert.serial, tmp_path)


def test_the_running_signer_signs_a_revocation_ahead_within_a_second(
        installation: Installation, verifier: Verifier, tmp_path: Path) -> None:
    assert installation.keys is not None
    cert = subscribers(installation)[4]
    signer = presigner(installation)
    signer.sign_all()
    stop = threading.Event()
    thread = threading.Thread(target=signer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        responder = Responder(installation.engine, installation.keys, time_guard=NO_NTP)
        revoke(installation, cert, RevocationReason.AFFILIATION_CHANGED)
        start = time.monotonic()
        while not (outcome := responder.respond(request(verifier, cert.serial))).presigned:
            assert time.monotonic() - start < 5, "not signed ahead after 5 s"
            time.sleep(0.02)
        took = time.monotonic() - start
    finally:
        stop.set()
        thread.join(10)
    text = openssl_check(verifier, outcome.body, cert.serial, tmp_path)
    assert f"0x{cert.serial:x}: revoked" in text and "Reason: affiliationChanged" in text, text
    assert took < 1.5, f"signed ahead {took:.2f} s after the revocation"


def test_an_answer_near_its_next_update_or_from_another_responder_is_not_served(
        installation: Installation, verifier: Verifier) -> None:
    assert installation.keys is not None
    cert = subscribers(installation)[5]
    presigner(installation).sign_all()
    responder = Responder(installation.engine, installation.keys, time_guard=NO_NTP)
    assert responder.respond(request(verifier, cert.serial)).presigned
    table = PresignedResponse.__table__
    where = table.c.serial == cert.serial
    with installation.engine.begin() as conn:
        conn.execute(sa.update(table).where(where).values(next_update=dt.datetime.now(dt.UTC)
                                                          + dt.timedelta(minutes=30)))
    assert not responder.respond(request(verifier, cert.serial)).presigned  # too little validity left
    with installation.engine.begin() as conn:
        conn.execute(sa.update(table).where(where).values(next_update=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                                                          responder_serial=12345))
    # (a fresh responder: the first keeps what it just signed on demand in its own bounded cache)
    assert not Responder(installation.engine, installation.keys, time_guard=NO_NTP).respond(
        request(verifier, cert.serial)).presigned  # not the current responder's
    assert presigner(installation).sign_all().signed >= 1  # the signer mends both
    assert Responder(installation.engine, installation.keys,
                     time_guard=NO_NTP).respond(request(verifier, cert.serial)).presigned


def test_an_answer_whose_refresh_time_came_is_signed_again(installation: Installation) -> None:
    cert = subscribers(installation)[7]
    signer = presigner(installation)
    signer.sign_all()
    table = PresignedResponse.__table__
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with installation.engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.serial == cert.serial).values(refresh_at=past))
    assert signer.round() == 1  # the refresh, not a walk: that one is done
    with installation.engine.begin() as conn:
        refresh_at = conn.scalar(sa.select(table.c.refresh_at).where(table.c.serial == cert.serial))
    assert refresh_at > dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)


def test_a_full_pass_signs_each_answer_once(installation: Installation) -> None:
    """Also when a bulk loader wrote a revocation time in another text form (SQLite keeps text):
    found by bench/ocsp.py, whose first pass signed every revoked certificate three times."""
    cert = subscribers(installation)[6]
    revoke(installation, cert, RevocationReason.SUPERSEDED)
    with installation.engine.begin() as conn:
        if installation.engine.dialect.name == "sqlite":
            conn.execute(sa.text("UPDATE revocations SET revocation_time = substr(revocation_time, 1, 19) "
                                 "WHERE serial = :serial"), {"serial": format(cert.serial, "042x")})
        conn.execute(sa.delete(PresignedResponse.__table__))
        certificates = conn.scalar(sa.select(sa.func.count()).select_from(Certificate.__table__))
    report = presigner(installation).sign_all()
    with installation.engine.begin() as conn:
        stored = conn.scalar(sa.select(sa.func.count()).select_from(PresignedResponse.__table__))
    assert 0 < report.signed == stored <= certificates
    assert presigner(installation).sign_all().signed == 0


def test_one_signer_at_a_time(installation: Installation) -> None:
    assert installation.keys is not None
    keys = installation.keys
    name = f"ocsp-signer-lease-{time.monotonic_ns()}"
    first = Presigner(installation.engine, lambda: keys, lease=Lease(installation.engine, name), time_guard=NO_NTP)
    second = Presigner(installation.engine, lambda: keys, lease=Lease(installation.engine, name), time_guard=NO_NTP)
    assert first.lease.try_acquire()
    try:
        assert not second.lease.try_acquire()
    finally:
        first.lease.release()
    assert second.lease.try_acquire()
    second.lease.release()


def test_workers_share_what_one_of_them_signed_on_demand(
        installation: Installation, verifier: Verifier, tmp_path: Path) -> None:
    """The shared negative cache (ocsp.shared_answers): an unknown serial or a SHA-256 CertID signed by one
    worker is served by the other without a signature; a status read now that differs is never served
    from it."""
    assert installation.keys is not None
    cert = subscribers(installation)[8]
    presigner(installation).sign_all()
    path = shared_answers.create(tmp_path)
    keys = CountingKeys(installation.keys)
    worker_1, worker_2 = (Responder(installation.engine, keys, time_guard=NO_NTP, shared=SharedAnswers(path))
                          for _ in range(2))
    unknown = (1 << 121) + 5
    first = worker_1.respond(request(verifier, unknown))
    assert (first.response_status, first.presigned, keys.signed) == ("successful", False, 1)
    second = worker_2.respond(request(verifier, unknown))
    assert (second.presigned, keys.signed) == (True, 1)
    assert f"0x{unknown:x}: unknown" in openssl_check(verifier, second.body, unknown, tmp_path)

    assert not worker_1.respond(request(verifier, cert.serial, digest="sha256")).presigned
    assert keys.signed == 2
    assert worker_2.respond(request(verifier, cert.serial, digest="sha256")).presigned
    assert keys.signed == 2
    revoke(installation, cert, RevocationReason.AFFILIATION_CHANGED)
    after = worker_2.respond(request(verifier, cert.serial, digest="sha256"))
    assert after.response_status == "successful" and after.answers.endswith("=revoked")
    assert (after.presigned, keys.signed) == (False, 3)  # the revocation read now: signed again, never the old
    assert worker_1.respond(request(verifier, cert.serial, digest="sha256")).presigned  # and that one is shared

    single = x509_ocsp.load_der_ocsp_response(after.body)  # a SHA-256 CertID: openssl -serial asks by SHA-1
    assert (single.certificate_status, single.revocation_reason) == (x509_ocsp.OCSPCertStatus.REVOKED,
                                                                      x509.ReasonFlags.affiliation_changed)
    # a nonce is never shared
    assert not worker_2.respond(request(verifier, unknown, nonce=b"n" * 16)).presigned
    assert keys.signed == 4
