"""The OCSP signer deletes the stored answers of expired certificates in its hourly walk, in
batches (issue 16), and OCSP still answers for them, signed on demand from the certificate row.

Real token, SQLite and PostgreSQL; the answer checked by `openssl ocsp` against the CA
certificate.  On PostgreSQL with a role per service the OCSP identity may not delete
(ca.storage.grants): the signer then keeps them, says so once, and signs on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import subprocess
import time
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
from ca.hsm.signer import KeyStore
from ca.status_page.metrics import RevocaCollector
from ca.storage import grants
from ca.storage.engine import make_engine, session_scope
from ca.storage.leases import Lease
from ca.storage.models import Certificate, PresignedResponse
from ca.storage.presigned import PresignedStore
from ca.storage.revocations import RevocationStore
from ca.verifiers.registry import add_verifier
from ocsp.issuers import public_key_bits
from ocsp.presigner import Presigner
from ocsp.responder import Responder

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation, subscriber_rows
from support.settings import LDAP_BASE
from support.tools import court_certificate

DAY = dt.timedelta(days=1)



def signer(engine: sa.Engine, keys: KeyStore) -> Presigner:
    return Presigner(engine, lambda: keys, threads=1, lease=Lease(engine, f"ocsp-signer-prune-{time.monotonic_ns()}"),
                     time_guard=NO_NTP)



def expire(engine: sa.Engine, certs: list[Certificate], now: dt.datetime) -> None:
    """As if their notAfter had passed: the row says so (the DER is what the responder never reads)."""
    with session_scope(engine) as s:
        s.execute(sa.update(Certificate).where(Certificate.id.in_([c.id for c in certs]))
                  .values(not_after=now - DAY))


def stored(engine: sa.Engine, certs: list[Certificate]) -> int:
    with session_scope(engine, readonly=True) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(PresignedResponse).where(
            sa.tuple_(PresignedResponse.key_id, PresignedResponse.serial).in_(
                [(c.issuer_key_id, c.serial) for c in certs]))) or 0


@dataclasses.dataclass
class Asker:
    """A registered verifier asking tokyo, checked by openssl."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    tokyo: x509.Certificate
    tokyo_pem: Path

    def request(self, serial: int) -> bytes:
        spki = self.tokyo.public_key().public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        unsigned = asn1_ocsp.OCSPRequest.load(x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            hashlib.sha1(self.tokyo.subject.public_bytes()).digest(), hashlib.sha1(public_key_bits(spki)).digest(),
            serial, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER))
        signer_cert = asn1_x509.Certificate.load(self.cert.public_bytes(serialization.Encoding.DER))
        tbs = unsigned["tbs_request"]
        tbs["requestor_name"] = asn1_x509.GeneralName(name="directory_name", value=signer_cert.subject)
        signature = self.key.sign(tbs.dump(force=True), ec.ECDSA(hashes.SHA256()))
        return asn1_ocsp.OCSPRequest({"tbs_request": tbs, "optional_signature": {
            "signature_algorithm": {"algorithm": "sha256_ecdsa"}, "signature": signature,
            "certs": [signer_cert]}}).dump()

    def check(self, body: bytes, serial: int, tmp_path: Path) -> str:
        path = tmp_path / f"{serial:x}.der"
        path.write_bytes(body)
        out = subprocess.run(["openssl", "ocsp", "-respin", str(path), "-issuer", str(self.tokyo_pem), "-CAfile",
                              str(self.tokyo_pem), "-serial", f"0x{serial:x}"], capture_output=True, text=True,
                             timeout=30)
        assert "Response verify OK" in out.stdout + out.stderr, out.stdout + out.stderr
        return out.stdout


def asker(installation: Installation, tmp_path: Path) -> Asker:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = court_certificate("prune-verifier", key, days=365)[0]
    add_verifier(installation.engine, name="prune-verifier", certificate=cert, password=None,
                 now=dt.datetime.now(dt.UTC), base_dn=LDAP_BASE, actor="test")
    with session_scope(installation.engine) as s:
        tokyo_id = RevocationStore(s).ca("tokyo").id
        der = s.scalar(sa.select(Certificate.der).where(Certificate.issuer_ca_id == tokyo_id,
                                                        Certificate.kind == CertKind.SELF_SIGNED))
    assert der is not None
    tokyo = x509.load_der_x509_certificate(der)
    pem = tmp_path / "tokyo.pem"
    pem.write_bytes(tokyo.public_bytes(serialization.Encoding.PEM))
    return Asker(cert, key, tokyo, pem)


def test_the_hourly_walk_deletes_expired_certificates_answers_and_ocsp_still_answers_them(
        installation: Installation, tmp_path: Path) -> None:
    assert installation.keys is not None
    engine, keys = installation.engine, installation.keys
    certs = subscriber_rows(engine)
    gone, kept = certs[:3], certs[3:]
    assert kept
    assert signer(engine, keys).sign_all().signed >= len(certs)
    assert stored(engine, certs) == len(certs)

    now = dt.datetime.now(dt.UTC)
    expire(engine, gone, now)
    report = signer(engine, keys).sign_all()  # a start, like every hour, walks and prunes
    assert report.pruned == len(gone) and report.signed == 0
    assert stored(engine, gone) == 0 and stored(engine, kept) == len(kept)

    # still answered, as good, signed now by the responder certificate: nothing a verifier sees changed
    who = asker(installation, tmp_path)
    outcome = Responder(engine, keys, time_guard=NO_NTP).respond(who.request(gone[0].serial))
    assert outcome.response_status == "successful" and not outcome.presigned
    assert f"0x{gone[0].serial:x}: good" in who.check(outcome.body, gone[0].serial, tmp_path)
    assert stored(engine, gone) == 0  # and not signed ahead again
    again = Responder(engine, keys, time_guard=NO_NTP).respond(who.request(kept[0].serial))
    assert again.presigned and f"0x{kept[0].serial:x}: good" in who.check(again.body, kept[0].serial, tmp_path)


def test_pruning_goes_in_batches(installation: Installation) -> None:
    assert installation.keys is not None
    engine = installation.engine
    certs = subscriber_rows(engine)
    signer(engine, installation.keys).sign_all()
    now = dt.datetime.now(dt.UTC)
    expire(engine, certs, now)
    store = PresignedStore(engine)
    batches = []
    while n := store.prune_expired(now, limit=2):
        batches.append(n)
    assert batches == [2] * (len(certs) // 2) + ([len(certs) % 2] if len(certs) % 2 else [])
    assert stored(engine, certs) == 0


def test_the_ocsp_role_prunes_its_own_answers_on_postgresql(tmp_path: Path,
                                                           ceremony_templates: CeremonyTemplates) -> None:
    with demo_installation(ceremony_templates, "postgresql", tmp_path) as made:
        assert made.keys is not None
        grants.apply(made.engine, made.settings.identities)
        per_service = dataclasses.replace(made.settings, database_role_per_service=True)
        ocsp = make_engine(made.settings.db_url, role=grants.role_for(per_service, "ocsp"))
        try:
            certs = subscriber_rows(made.engine)
            signer(ocsp, made.keys).sign_all()
            expire(made.engine, certs[:2], dt.datetime.now(dt.UTC))
            assert signer(ocsp, made.keys).sign_all().pruned == 2
            assert stored(made.engine, certs[:2]) == 0 and stored(made.engine, certs[2:]) == len(certs) - 2
        finally:
            ocsp.dispose()


def test_without_the_right_to_delete_the_signer_keeps_them_says_so_once_and_signs_on(
        tmp_path: Path, ceremony_templates: CeremonyTemplates, caplog: pytest.LogCaptureFixture) -> None:
    """Roles granted by a revoca from before the signer pruned (no DELETE): nothing breaks."""
    with demo_installation(ceremony_templates, "postgresql", tmp_path) as made:
        assert made.keys is not None
        grants.apply(made.engine, made.settings.identities)
        with made.engine.begin() as conn:
            conn.execute(sa.text(f"REVOKE DELETE ON ocsp_presigned FROM {grants.role_name('ocsp')}"))
        per_service = dataclasses.replace(made.settings, database_role_per_service=True)
        ocsp = make_engine(made.settings.db_url, role=grants.role_for(per_service, "ocsp"))
        status = make_engine(made.settings.db_url, role=grants.role_for(per_service, "status"))
        try:
            certs = subscriber_rows(made.engine)
            signer(ocsp, made.keys).sign_all()
            now = dt.datetime.now(dt.UTC)
            expire(made.engine, certs[:2], now)
            caplog.clear()
            running = signer(ocsp, made.keys)
            with caplog.at_level(logging.WARNING, logger="revoca.ocsp.presigner"):
                report = running.sign_all()
                assert running.sign_all().pruned == 0  # the next walk does not try again
            assert report.pruned == 0 and stored(made.engine, certs[:2]) == 2
            refusals = [r.getMessage() for r in caplog.records if "answers of expired certificates are kept" in
                        r.getMessage()]
            assert len(refusals) == 1 and "may not delete from ocsp_presigned" in refusals[0], refusals
            # /metrics reads how fresh they are as the status page's role (its grant: no `signed` column)
            got = {(s.name, tuple(s.labels.values())): s.value
                   for m in RevocaCollector(status, clock=lambda: now).collect() for s in m.samples}
            assert got["revoca_ocsp_presigned_served", ()] == 1
            assert 0 <= got["revoca_ocsp_presigned_oldest_age_seconds", ()] < 600
        finally:
            ocsp.dispose()
            status.dispose()
