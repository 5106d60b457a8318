"""The certificate validation server: officials' certificates of an external "government" CA
cross-certified with the bridge, checked over HTTP, every answer signed by the CVS-server key
in the token and verified by `openssl cms -verify` against the bridge root alone.

The government CA and its officials are made here with software keys (their PKI is not ours);
the bridge's cross certificate to it is issued by revoca (ca.hierarchy, as `revoca ca
cross-certify`), the bridge's ARL by revoca's CRL issuance, and the government CA's CRL is put
in the CVS directory for external lists (ca.cvs.material).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import threading
import urllib.error
import urllib.request
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ca import hierarchy
from ca.config import TimeConfig
from ca.crl.issue import issue_list
from ca.cvs.answer import CVS_ANSWER, Status
from ca.cvs.app import ANSWER, make_app
from ca.cvs.material import TrustSource, external_crl_dir
from ca.cvs.request import DER, PEM_CHAIN
from ca.cvs.validate import Validator
from ca.enums import CertKind, ListType
from ca.hsm.signer import KeyAlgorithm
from ca.storage.engine import session_scope
from ca.storage.store import Store
from ca.trusted_time import ClockGuard

from support.installation import CeremonyTemplates, Installation, demo_installation
from support.ntp_server import LoopbackNTP

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
REVOKED_AT = NOW - dt.timedelta(hours=3)


@dataclasses.dataclass(frozen=True)
class CA:
    """A CA of another PKI, with a software key."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def root(cls, cn: str) -> CA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Government PKI"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (_builder(name, name, key.public_key(), NOW - dt.timedelta(days=400), NOW + dt.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                  critical=True))
        return cls(key, builder.sign(key, hashes.SHA256()))

    def official(self, cn: str, *, not_before: dt.datetime = NOW - dt.timedelta(days=30),
                 not_after: dt.datetime = NOW + dt.timedelta(days=365)) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                             x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (_builder(self.cert.subject, subject, ec.generate_private_key(ec.SECP256R1()).public_key(),
                            not_before, not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        return builder.sign(self.key, hashes.SHA256())

    def crl(self, revoked: x509.Certificate) -> x509.CertificateRevocationList:
        entry = (x509.RevokedCertificateBuilder().serial_number(revoked.serial_number).revocation_date(REVOKED_AT)
                 .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False).build())
        return (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                .last_update(NOW - dt.timedelta(hours=1)).next_update(NOW + dt.timedelta(days=1))
                .add_revoked_certificate(entry)
                .add_extension(x509.CRLNumber(7), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False)
                .sign(self.key, hashes.SHA256()))


def _builder(issuer: x509.Name, subject: x509.Name, public: ec.EllipticCurvePublicKey, not_before: dt.datetime,
             not_after: dt.datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().issuer_name(issuer).subject_name(subject).public_key(public)
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))


@dataclasses.dataclass(frozen=True)
class World:
    installation: Installation
    gpki: CA
    bridge_pem: Path
    good: x509.Certificate
    revoked: x509.Certificate
    expired: x509.Certificate


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, ceremony_templates: CeremonyTemplates) -> Iterator[World]:
    """A demo installation whose bridge is cross-certified with `gpki`; its CRL in the CVS directory
    and a fresh bridge ARL."""
    root = tmp_path_factory.mktemp("cvs")
    with demo_installation(ceremony_templates, "sqlite", root / "install") as installation:
        gpki = CA.root("Government Bridge CA")
        guard = ClockGuard(TimeConfig())
        with session_scope(installation.engine) as session:
            store = Store(session)
            ctx = hierarchy.Context(store=store, keys=installation.keys, now=NOW - dt.timedelta(minutes=5),
                                    actor="test", time_guard=guard, algorithm=KeyAlgorithm.P256)
            external = hierarchy.import_external_ca(ctx, "gpki", gpki.cert)
            hierarchy.cross_certify(ctx, store.bridge(), external)
            (bridge_self,) = [c for c in store.certificates(issuer=store.bridge(), kinds=[CertKind.SELF_SIGNED])]
            bridge_der = bridge_self.der
        issue_list(installation.engine, installation.keys, installation.data_dir, "bridge", ListType.ARL,
                   now=NOW, time_guard=guard)
        good, revoked = gpki.official("Official Good"), gpki.official("Official Revoked")
        expired = gpki.official("Official Expired", not_before=NOW - dt.timedelta(days=400),
                                not_after=NOW - dt.timedelta(days=1))
        external_crl_dir(installation.data_dir).mkdir(parents=True, exist_ok=True)
        (external_crl_dir(installation.data_dir) / "gpki.crl").write_bytes(gpki.crl(revoked).public_bytes(Encoding.DER))
        bridge_pem = root / "bridge.pem"
        bridge_pem.write_bytes(x509.load_der_x509_certificate(bridge_der).public_bytes(Encoding.PEM))
        yield World(installation, gpki, bridge_pem, good, revoked, expired)


class Server:
    """The CVS WSGI app on a loopback port, in a thread of this process."""

    def __init__(self, installation: Installation) -> None:
        app = make_app(installation.engine, installation.keys, TrustSource(installation.engine, installation.data_dir),
                       time_guard=ClockGuard(TimeConfig()))
        self.httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def post(self, body: bytes, content_type: str) -> tuple[int, str, bytes]:
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": content_type}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.headers["Content-Type"], resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Server]:
    s = Server(world.installation)
    yield s
    s.close()


def _verified(world: World, answer: bytes, tmp_path: Path) -> dict[str, object]:
    """The answer's document, after `openssl cms -verify` checked the signature and the signer's
    chain to the bridge root (and nothing else trusted)."""
    (tmp_path / "answer.p7").write_bytes(answer)
    proc = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "answer.p7"),
                           "-CAfile", str(world.bridge_pem), "-purpose", "any", "-out", str(tmp_path / "doc.json")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "Verification successful" in proc.stderr, proc.stderr
    info = cms.ContentInfo.load(answer)
    assert info["content"]["encap_content_info"]["content_type"].dotted == CVS_ANSWER
    names = sorted(c.chosen.subject.native["common_name"] for c in info["content"]["certificates"])
    assert [n.endswith("CVS Server") for n in names] == [False, True], names  # the bridge's, the signer's
    doc = json.loads((tmp_path / "doc.json").read_bytes())
    assert isinstance(doc, dict)
    return doc


def _ask(server: Server, world: World, tmp_path: Path, *certs: x509.Certificate) -> dict[str, object]:
    if len(certs) == 1:
        status, media, body = server.post(certs[0].public_bytes(Encoding.DER), DER)
    else:
        status, media, body = server.post(b"".join(c.public_bytes(Encoding.PEM) for c in certs), PEM_CHAIN)
    assert (status, media) == (200, ANSWER), body[:300]
    return _verified(world, body, tmp_path)


def _subjects(doc: dict[str, object]) -> list[str]:
    return [p["subject"] for p in doc["path"]]  # type: ignore[index, union-attr]


def test_a_good_officials_certificate_is_valid_through_the_bridges_cross_certificate(
        server: Server, world: World, tmp_path: Path) -> None:
    doc = _ask(server, world, tmp_path, world.good)
    assert doc["status"] == "valid", doc
    assert "why" not in doc and "revocation" not in doc
    # bridge root -> cross certificate to gpki -> the official
    bridge = x509.load_pem_x509_certificate(world.bridge_pem.read_bytes())
    assert _subjects(doc) == [bridge.subject.rfc4514_string(), world.gpki.cert.subject.rfc4514_string(),
                              world.good.subject.rfc4514_string()]
    assert doc["path"][1]["issuer"] == doc["path"][0]["subject"]  # type: ignore[index]
    assert doc["certificate"]["serial"] == format(world.good.serial_number, "x")  # type: ignore[index]
    # the lists that decided it: the bridge's ARL (the cross certificate) and gpki's CRL (the official)
    used = {(r["issuer"], r["crl_number"]) for r in doc["revocation_data"]}  # type: ignore[union-attr, index]
    assert (world.gpki.cert.subject.rfc4514_string(), 7) in used
    assert any(issuer == doc["path"][0]["subject"] for issuer, _ in used), used  # type: ignore[index]
    assert all(r["this_update"].endswith("Z") for r in doc["revocation_data"])  # type: ignore[union-attr, index]


def test_a_revoked_officials_certificate_is_revoked_with_reason_and_time(
        server: Server, world: World, tmp_path: Path) -> None:
    doc = _ask(server, world, tmp_path, world.revoked)
    assert doc["status"] == "revoked", doc
    assert doc["revocation"] == {"reason": "keyCompromise", "time": REVOKED_AT.strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert len(doc["path"]) == 3  # type: ignore[arg-type]


def test_an_expired_officials_certificate_is_invalid_expired(server: Server, world: World, tmp_path: Path) -> None:
    doc = _ask(server, world, tmp_path, world.expired)
    assert doc["status"] == "invalid", doc
    assert str(doc["why"]).startswith("expired:"), doc


def test_a_certificate_of_a_ca_the_bridge_did_not_cross_certify_has_no_path(
        server: Server, world: World, tmp_path: Path) -> None:
    stranger = CA.root("Uncrossed Ministry CA")
    # even with the stranger's own root sent along: only revoca's anchors are trusted
    for certs in ((stranger.official("Someone"),), (stranger.official("Someone Else"), stranger.cert)):
        doc = _ask(server, world, tmp_path, *certs)
        assert doc["status"] == "invalid", doc
        assert "no path" in str(doc["why"]), doc
        assert doc["path"] == []


def test_a_broken_chain_is_invalid(server: Server, world: World, tmp_path: Path) -> None:
    # an official of a gpki sub-CA: without the sub-CA there is no path; with an impostor "sub-CA"
    # (same name and key identifier, another key) the path is built and its signature check fails
    sub_key, impostor_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    sub_name = x509.Name.from_rfc4514_string("CN=Ministry Sub CA,O=Government PKI,C=JP")
    sub_ski = x509.SubjectKeyIdentifier.from_public_key(sub_key.public_key())

    def sub_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        builder = (x509.CertificateBuilder().issuer_name(world.gpki.cert.subject).subject_name(sub_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=300))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(sub_ski, critical=False))
        return builder.sign(world.gpki.key, hashes.SHA256())

    official = CA(sub_key, sub_ca(sub_key)).official("Official Of The Sub CA")
    doc = _ask(server, world, tmp_path, official)
    assert (doc["status"], doc["path"]) == ("invalid", []), doc
    assert "no path" in str(doc["why"])
    doc = _ask(server, world, tmp_path, official, sub_ca(impostor_key))
    assert doc["status"] == "invalid", doc
    assert "signature of the end-entity certificate could not be verified" in str(doc["why"]), doc
    assert len(doc["path"]) == 4  # type: ignore[arg-type]  # bridge, cross, the impostor, the official
    # and a certificate whose signature was tampered with
    der = bytearray(world.good.public_bytes(Encoding.DER))
    der[-3] ^= 0x01
    doc = _ask(server, world, tmp_path, x509.load_der_x509_certificate(bytes(der)))
    assert doc["status"] == "invalid", doc
    assert "signature" in str(doc["why"]), doc


def test_without_the_external_cas_crl_the_official_is_unknown(world: World) -> None:
    held = TrustSource(world.installation.engine, world.installation.data_dir).validator()
    gpki = world.gpki.cert.subject
    without = Validator(held.anchors, held.intermediates, [c for c in held.lists if c.issuer != gpki])
    assert len(without.lists) == len(held.lists) - 1
    answer = without.check(world.good, (), NOW)
    assert answer.status is Status.UNKNOWN and len(answer.path) == 3, answer
    assert "revocation" in answer.why.lower() or "crl" in answer.why.lower(), answer.why
    assert held.check(world.good, (), NOW).status is Status.VALID


def test_on_a_clock_ntp_does_not_confirm_nothing_is_signed(world: World) -> None:
    with LoopbackNTP(offset_s=30.0) as ntp:
        guard = ClockGuard(TimeConfig(ntp_servers=(ntp.address,), timeout_s=1.0))
        app = make_app(world.installation.engine, world.installation.keys,
                       TrustSource(world.installation.engine, world.installation.data_dir), time_guard=guard)
        httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        req = urllib.request.Request(f"http://127.0.0.1:{httpd.server_port}/", data=world.good.public_bytes(
            Encoding.DER), headers={"Content-Type": DER}, method="POST")
        try:
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(req, timeout=30)
        finally:
            httpd.shutdown()
            httpd.server_close()
    assert refused.value.code == 503
    assert b"no signed answer can be made now" in refused.value.read()


def test_garbage_gets_a_plain_4xx_and_nothing_signed(server: Server) -> None:
    assert server.post(b"not a certificate", DER)[0] == 400
    assert server.post(b"x", "application/json")[0] == 415
