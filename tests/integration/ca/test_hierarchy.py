"""The hierarchy as `revoca init` builds it with keys in a real SoftHSM2 token, checked by
openssl and pkilint, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ca import ceremony, hierarchy
from ca.config import Settings
from ca.enums import CAKind, CertKind, KeyStatus
from ca.hsm import shares as sharing
from ca.hsm import token_for
from ca.hsm.signer import KeyAlgorithm
from ca.hsm.token import TokenSession
from ca.issuance import Issuer, issue
from ca.storage.engine import ensure_current, make_engine, session_scope
from ca.storage.models import Certificate
from ca.storage.store import Store
from ca.subscribers import generate_subscribers

from support.clock import NO_NTP
from support.database import Databases, sqlite_copy
from support.settings import NOW, make_settings
from support.tools import assert_pkilint_clean, openssl_verify, pkilint_cert, pkilint_chain

AT = NOW + dt.timedelta(days=1)


@pytest.fixture
def token_session(settings: Settings, initialized: ceremony.CeremonyResult) -> Iterator[TokenSession]:
    """The token opened with two of the three demo shares, as the HSM service would."""
    secret = sharing.combine([share for _, share in initialized.shares[:2]])
    session = token_for(settings).open(sharing.user_pin(secret))
    yield session
    session.close()


def _certs(engine: sa.Engine, **filters: object) -> list[Certificate]:
    with session_scope(engine) as s:
        store = Store(s)
        if "issuer" in filters:
            filters["issuer"] = store.ca(str(filters["issuer"]))
        if "subject_ca" in filters:
            filters["subject_ca"] = store.ca(str(filters["subject_ca"]))
        return list(store.certificates(**filters))  # type: ignore[arg-type]


def _one(engine: sa.Engine, kind: CertKind, issuer: str, subject_ca: str | None = None) -> x509.Certificate:
    rows = [c for c in _certs(engine, issuer=issuer, kinds=[kind])
            if subject_ca is None or c.subject_ca_id is not None and _ca_name(engine, c.subject_ca_id) == subject_ca]
    assert rows, f"no {kind} issued by {issuer} for {subject_ca}"
    return x509.load_der_x509_certificate(rows[-1].der)


def _ca_name(engine: sa.Engine, ca_id: int) -> str:
    with session_scope(engine) as s:
        return next(c.name for c in Store(s).cas() if c.id == ca_id)


def _issuer(engine: sa.Engine, session: TokenSession, name: str) -> Issuer:
    with session_scope(engine) as s:
        store = Store(s)
        ca = store.ca(name)
        key = store.current_key(ca)
        return Issuer(name=x509.Name.from_rfc4514_string(ca.subject_dn), signer=session.signer(key.key_label),
                      key_id=key.ski)


def test_init_builds_bridge_and_regional_cas_with_every_certificate(engine: sa.Engine,
                                                                   initialized: ceremony.CeremonyResult) -> None:
    assert initialized.cas == ("bridge", "tokyo", "osaka", "hokkaido")
    with session_scope(engine) as s:
        store = Store(s)
        assert [c.kind for c in store.cas()] == [CAKind.BRIDGE] + [CAKind.REGIONAL] * 3
        kinds = sorted(c.kind.value for c in store.certificates() if c.kind is not CertKind.SUBSCRIBER)
        subscribers = {ca.name: store.count_certificates(ca, CertKind.SUBSCRIBER) for ca in store.cas()}
    # 4 self-signed, 4 responders, 3 pairs of cross certificates, bridge CVS, TLS and receipt signer
    assert kinds == sorted(["self-signed"] * 4 + ["ocsp-responder"] * 4 + ["cross"] * 6
                           + ["cvs-server", "tls", "receipt-signer"])
    # and, for the demo, a few subscribers per regional CA
    assert subscribers == {"bridge": 0, "tokyo": 25, "osaka": 25, "hokkaido": 25}


def test_every_certificate_passes_pkilint(engine: sa.Engine, initialized: ceremony.CeremonyResult) -> None:
    for row in _certs(engine):
        assert_pkilint_clean(pkilint_cert(row.der))


def test_issuer_signee_pairs_pass_pkilint(engine: sa.Engine, initialized: ceremony.CeremonyResult) -> None:
    bridge = _one(engine, CertKind.SELF_SIGNED, "bridge")
    tokyo = _one(engine, CertKind.SELF_SIGNED, "tokyo")
    assert_pkilint_clean(pkilint_chain(bridge, _one(engine, CertKind.CROSS, "bridge", "tokyo")))
    assert_pkilint_clean(pkilint_chain(tokyo, _one(engine, CertKind.CROSS, "tokyo", "bridge")))
    assert_pkilint_clean(pkilint_chain(tokyo, _one(engine, CertKind.OCSP_RESPONDER, "tokyo")))
    assert_pkilint_clean(pkilint_chain(bridge, _one(engine, CertKind.TLS, "bridge")))
    assert_pkilint_clean(pkilint_chain(bridge, _one(engine, CertKind.CVS_SERVER, "bridge")))


def test_regional_certificates_verify_from_the_bridge_through_the_cross(
        engine: sa.Engine, initialized: ceremony.CeremonyResult, token_session: TokenSession) -> None:
    bridge_root = _one(engine, CertKind.SELF_SIGNED, "bridge")
    for name in ("tokyo", "osaka", "hokkaido"):
        cross = _one(engine, CertKind.CROSS, "bridge", name)
        responder = _one(engine, CertKind.OCSP_RESPONDER, name)
        openssl_verify(responder, trusted=[bridge_root], untrusted=[cross], at=AT, purpose="ocsphelper")
        subscriber, _key = next(generate_subscribers(_issuer(engine, token_session, name), 1, now=NOW,
                                                     time_guard=NO_NTP))
        openssl_verify(subscriber, trusted=[bridge_root], untrusted=[cross], at=AT)
        openssl_verify(subscriber, trusted=[_one(engine, CertKind.SELF_SIGNED, name)], at=AT)
        with pytest.raises(AssertionError):  # and not without the cross certificate
            openssl_verify(subscriber, trusted=[bridge_root], at=AT)


def test_bridge_certificates_verify_from_a_regional_root_through_the_reverse_cross(
        engine: sa.Engine, initialized: ceremony.CeremonyResult) -> None:
    tokyo_root = _one(engine, CertKind.SELF_SIGNED, "tokyo")
    reverse = _one(engine, CertKind.CROSS, "tokyo", "bridge")
    openssl_verify(_one(engine, CertKind.TLS, "bridge"), trusted=[tokyo_root], untrusted=[reverse], at=AT,
                   purpose="sslserver")
    # and a subscriber of Osaka from Tokyo's root: tokyo -> bridge -> osaka
    osaka_responder = _one(engine, CertKind.OCSP_RESPONDER, "osaka")
    openssl_verify(osaka_responder, trusted=[tokyo_root],
                   untrusted=[reverse, _one(engine, CertKind.CROSS, "bridge", "osaka")], at=AT)


def test_rollover_links_old_and_new_keys_both_ways(engine: sa.Engine, initialized: ceremony.CeremonyResult,
                                                   token_session: TokenSession) -> None:
    old_root = _one(engine, CertKind.SELF_SIGNED, "tokyo")
    old_subscriber, _ = next(generate_subscribers(_issuer(engine, token_session, "tokyo"), 1, now=NOW,
                                                  time_guard=NO_NTP))
    later = NOW + dt.timedelta(days=400)
    with session_scope(engine) as s:
        ctx = hierarchy.Context(store=Store(s), keys=token_session, now=later, actor="test",
                                algorithm=KeyAlgorithm.P256, time_guard=NO_NTP)
        new_key = hierarchy.rollover(ctx, "tokyo")
        assert new_key.generation == 2
    with session_scope(engine) as s:
        store = Store(s)
        keys = store.ca("tokyo").keys
        assert [(k.generation, k.status) for k in keys] == [(1, KeyStatus.RETIRED), (2, KeyStatus.ACTIVE)]
    new_root = _one(engine, CertKind.SELF_SIGNED, "tokyo")
    assert new_root.serial_number != old_root.serial_number
    old_with_new = _one(engine, CertKind.LINK_OLD_WITH_NEW, "tokyo")
    new_with_old = _one(engine, CertKind.LINK_NEW_WITH_OLD, "tokyo")
    # seed 004 7.1(4): validity of the links
    assert old_with_new.not_valid_before_utc == NOW.replace(microsecond=0)
    assert new_with_old.not_valid_before_utc == later.replace(microsecond=0)
    assert old_with_new.not_valid_after_utc == new_with_old.not_valid_after_utc == old_root.not_valid_after_utc
    for link in (old_with_new, new_with_old):
        assert_pkilint_clean(pkilint_cert(link))
    at = later + dt.timedelta(days=1)
    new_subscriber, _ = next(generate_subscribers(_issuer(engine, token_session, "tokyo"), 1, now=later,
                                                  time_guard=NO_NTP))
    # a relying party that still trusts only the old root accepts the new key through NewWithOld
    openssl_verify(new_subscriber, trusted=[old_root], untrusted=[new_with_old], at=at)
    # one that trusts only the new root accepts what the old key signed through OldWithNew
    openssl_verify(old_subscriber, trusted=[new_root], untrusted=[old_with_new], at=at)
    # the bridge cross-certified the new key, so the bridge path works for new certificates
    new_cross = _one(engine, CertKind.CROSS, "bridge", "tokyo")
    openssl_verify(new_subscriber, trusted=[_one(engine, CertKind.SELF_SIGNED, "bridge")], untrusted=[new_cross],
                   at=at)
    openssl_verify(_one(engine, CertKind.OCSP_RESPONDER, "tokyo"), trusted=[new_root], at=at)


def test_bridge_rollover_recrosses_every_regional_ca(engine: sa.Engine, initialized: ceremony.CeremonyResult,
                                                     token_session: TokenSession) -> None:
    with session_scope(engine) as s:
        hierarchy.rollover(hierarchy.Context(store=Store(s), keys=token_session, now=NOW + dt.timedelta(days=1),
                                             actor="test", algorithm=KeyAlgorithm.P256, time_guard=NO_NTP), "bridge")
    new_bridge = _one(engine, CertKind.SELF_SIGNED, "bridge")
    for name in ("tokyo", "osaka", "hokkaido"):
        openssl_verify(_one(engine, CertKind.OCSP_RESPONDER, name), trusted=[new_bridge],
                       untrusted=[_one(engine, CertKind.CROSS, "bridge", name)], at=AT + dt.timedelta(days=1))


def _migrated_sqlite(databases: Databases, url: str) -> sa.Engine:
    """An engine on a copy of this worker's migrated SQLite database at `url` (migrations have tests
    of their own)."""
    sqlite_copy(databases.migrated("sqlite"), url)
    engine = make_engine(url)
    ensure_current(engine)
    return engine


def test_default_rsa_2048_keys_and_sha256(tmp_path: Path, databases: Databases) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'rsa.db'}", hsm={"key_algorithm": "rsa2048"},
                             hierarchy={"regional": ["Tokyo"]})
    engine = _migrated_sqlite(databases, settings.db_url)
    ceremony.run(settings, engine, demo=True, now=NOW, demo_subscribers=2)
    responders = 0
    for row in _certs(engine):
        cert = x509.load_der_x509_certificate(row.der)
        if row.kind is CertKind.OCSP_RESPONDER:  # [ocsp] responder_algorithm: P-256 by default (issue 16)
            responders += 1
            assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
            assert cert.public_key().curve.name == "secp256r1"
        else:
            assert isinstance(cert.public_key(), rsa.RSAPublicKey) and cert.public_key().key_size == 2048
        assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
        assert_pkilint_clean(pkilint_cert(cert))
    assert responders == 2  # the bridge's and tokyo's
    engine.dispose()


def test_responder_keys_follow_their_own_setting(tmp_path: Path, databases: Databases) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'rsa.db'}", hsm={"key_algorithm": "p256"},
                             ocsp={"responder_algorithm": "rsa2048"}, hierarchy={"regional": ["Tokyo"]})
    engine = _migrated_sqlite(databases, settings.db_url)
    ceremony.run(settings, engine, demo=True, now=NOW, demo_subscribers=0)
    kinds = {}
    for row in _certs(engine):
        key = x509.load_der_x509_certificate(row.der).public_key()
        kinds.setdefault(row.kind, set()).add("rsa2048" if isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
                                              else key.curve.name if isinstance(key, ec.EllipticCurvePublicKey)
                                              else "other")
    assert kinds[CertKind.OCSP_RESPONDER] == {"rsa2048"}
    assert kinds[CertKind.SELF_SIGNED] == {"secp256r1"}
    engine.dispose()


@pytest.mark.slow
def test_all_47_prefectural_cas(tmp_path: Path, db_url: str, engine: sa.Engine) -> None:
    # `engine`: a copy of this worker's migrated database (migrations have tests of their own)
    settings = make_settings(tmp_path, db_url, hierarchy={"regional": "all"})
    result = ceremony.run(settings, engine, demo=True, now=NOW, demo_subscribers=0)
    assert len(result.cas) == 48
    bridge_root = _one(engine, CertKind.SELF_SIGNED, "bridge")
    crosses = {_ca_name(engine, c.subject_ca_id): c for c in _certs(engine, issuer="bridge", kinds=[CertKind.CROSS])}
    assert len(crosses) == 47
    for name in ("hokkaido", "tokyo", "okinawa"):
        openssl_verify(_one(engine, CertKind.OCSP_RESPONDER, name), trusted=[bridge_root],
                       untrusted=[crosses[name].der], at=AT)


def test_issued_certificates_chain_to_their_signing_key(engine: sa.Engine, initialized: ceremony.CeremonyResult,
                                                        token_session: TokenSession) -> None:
    """What the store records as issuer key is the key that really signed."""
    with session_scope(engine) as s:
        store = Store(s)
        keys = {k.id: k for k in store.keys()}
        for row in store.certificates():
            cert = x509.load_der_x509_certificate(row.der)
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
            assert aki == keys[row.issuer_key_id].ski
    # and a certificate issued outside the hierarchy functions is checked the same way
    tls = issue(CertKind.TLS, issuer=_issuer(engine, token_session, "bridge"),
                subject=x509.Name.from_rfc4514_string("CN=extra,O=JPKI,C=JP"),
                public_key=token_session.signer(_issuer(engine, token_session, "tokyo").signer.key_label).public_key(),
                not_before=NOW, dns_names=("extra.example",), time_guard=NO_NTP)
    assert_pkilint_clean(pkilint_cert(tls))
