"""Delegated responder certificates (issue 13): `revoca ocsp renew` by M key managers, the
responders switching to the new certificate without a restart, `revoca status` and /metrics
warning before the last one ends, and no answer ever signed by an expired responder
certificate or, unless CA-signed mode is configured, by the CA key in its place.

Real parts: the HSM service in this process on a copy of the demo ceremony's SoftHSM2 token,
the `revoca` CLI through its entry point, and `openssl ocsp` checking every signed answer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from prometheus_client import generate_latest

from ca import health, hierarchy
from ca.enums import CertKind
from ca.hsm.client import HSMClient
from ca.hsm.signer import KeyAlgorithm
from ca.issuance import issue
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import revoke_certificate
from ca.status_page.metrics import RevocaCollector, make_registries
from ca.storage.audit import AuditReads
from ca.storage.engine import session_scope
from ca.storage.revocations import RevocationStore
from ca.storage.store import Store
from ca.verifiers.registry import add_verifier
from ocsp.keys import ResponderKeys, keys_dir, passphrase_path
from ocsp.responder import RELOAD_EVERY, Responder

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, serving_installation
from support.settings import LDAP_BASE
from support.tools import court_certificate, ocsp_request, officers_client, revoca

TOKYO = "tokyo"
OCSP_RESPONDER_POLICY = ObjectIdentifier("1.2.392.200149.8.5.1.1.300")
OCSP_NO_CHECK = ObjectIdentifier("1.3.6.1.5.5.7.48.1.5")
SERIAL = 0x3039  # any serial: an `unknown` answer is signed like any other


@dataclasses.dataclass
class Site:
    """An installation with its HSM service running, a registered verifier and tokyo's certificate."""

    installation: Installation
    keys: HSMClient
    tokyo_pem: Path
    verifier_der: bytes

    def password(self, name: str) -> str:
        return (self.installation.data_dir / "demo-shares" / f"{name}.password").read_text().splitlines()[-1]

    def revoca(self, *args: str, logins: tuple[str, ...] = ()) -> tuple[int, str, str]:
        """`revoca ARGS` with `--operator` for each login and their passwords on stdin."""
        operators = [a for name in logins for a in ("--operator", name)]
        stdin = "".join(f"{self.password(name)}\n" for name in logins)
        return revoca(self.installation.env(), *args, *operators, stdin=stdin)

    def ask(self, responder: Responder) -> bytes:
        """A response about SERIAL (no nonce) for the verifier (over its TLS client certificate)."""
        tokyo = x509.load_pem_x509_certificate(self.tokyo_pem.read_bytes())
        return responder.respond(ocsp_request(tokyo, SERIAL), tls_client_cert=self.verifier_der).body


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[Site]:
    with serving_installation(ceremony_templates, request.param, tmp_path / "site") as made:
        assert made.socket is not None
        keys = officers_client(made.socket, made.settings)  # renewals are ceremony acts
        with session_scope(made.engine) as s:
            store = Store(s)
            tokyo = store.ca(TOKYO)
            der = store.self_signed_der(tokyo, store.current_key(tokyo))
        pem = tmp_path / "tokyo.pem"
        pem.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
        # valid long enough for the responder's clock to be moved past every responder certificate
        verifier, _ = court_certificate("verifier", days=800)
        add_verifier(made.engine, name="verifier", certificate=verifier, password=None, now=dt.datetime.now(dt.UTC),
                     base_dn=LDAP_BASE, actor="test")
        try:
            yield Site(made, keys, pem, verifier.public_bytes(serialization.Encoding.DER))
        finally:
            keys.close()


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _responder(site: Site, clock: Callable[[], dt.datetime], *, ca_signed: bool = False,
               key_files: bool = False) -> Responder:
    keys = ResponderKeys(site.keys, keys_dir(site.installation.settings), passphrase_path(site.installation.settings))
    return Responder(site.installation.engine, keys, clock=clock, ca_signed=ca_signed, key_files=key_files,
                     time_guard=NO_NTP)


def _openssl_verify(site: Site, body: bytes, path: Path) -> str:
    """`openssl ocsp` reading the response: it checks the signature against tokyo.pem as its only anchor."""
    path.write_bytes(body)
    ca = str(site.tokyo_pem)
    res = subprocess.run(["openssl", "ocsp", "-respin", str(path), "-issuer", ca, "-CAfile", ca,
                          "-serial", f"0x{SERIAL:x}"], capture_output=True, text=True, timeout=30)
    return res.stdout + res.stderr


def _status(body: bytes) -> str:
    return asn1_ocsp.OCSPResponse.load(body)["response_status"].native


def _signed_by(body: bytes) -> list[int]:
    """Serials of the certificates the response carries: the delegated responder's, [] when the CA signed."""
    return [c.serial_number for c in x509_ocsp.load_der_ocsp_response(body).certificates]


def _tokyo_responders(site: Site) -> list[tuple[int, dt.datetime]]:
    with session_scope(site.installation.engine) as s:
        store = Store(s)
        rows = store.certificates(issuer=store.ca(TOKYO), kinds=[CertKind.OCSP_RESPONDER])
        return [(r.serial, r.not_after) for r in rows]


def _short_lived_responder(site: Site, *, not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    """A tokyo responder certificate (key in the token) ending at `not_after`, as a real one nearing its end."""
    with session_scope(site.installation.engine) as s:
        store = Store(s)
        ca = store.ca(TOKYO)
        key = store.current_key(ca)
        label = hierarchy.ee_key_label(CertKind.OCSP_RESPONDER, ca.name, 99)
        public = site.keys.generate(label, KeyAlgorithm.P256)
        cert = issue(CertKind.OCSP_RESPONDER, issuer=hierarchy.issuer_for(site.keys, ca, key),
                     subject=hierarchy.responder_subject(ca), public_key=public, not_before=not_before,
                     not_after=not_after, time_guard=NO_NTP)
        store.add_certificate(cert, kind=CertKind.OCSP_RESPONDER, issuer_key=key, key_label=label, now=not_before)
    return cert


def _revoke_tokyo_responders(site: Site) -> None:
    with session_scope(site.installation.engine) as s:
        store = RevocationStore(s)
        for cert in store.certificates(issuer=store.ca(TOKYO), kinds=[CertKind.OCSP_RESPONDER]):
            revoke_certificate(store, cert, RevocationReason.SUPERSEDED, dt.datetime.now(dt.UTC))


# --- renewal ----------------------------------------------------------------------------------------


def test_renew_without_the_key_managers_logins_is_refused(site: Site) -> None:
    before = _tokyo_responders(site)
    for logins in ((), ("keymanager1",)):  # the share set's threshold is 2
        code, _, err = site.revoca("ocsp", "renew", "--ca", TOKYO, logins=logins)
        assert code == 8 and err.startswith("revoca: error: ") and err.count("\n") == 1, err
        assert "key-manager" in err
    code, _, err = revoca(site.installation.env(), "ocsp", "renew", "--ca", TOKYO, "--operator", "keymanager1",
                          "--operator", "keymanager1", stdin=f"{site.password('keymanager1')}\n" * 2)
    assert code == 8 and "the same operator cannot count as two people" in err, err
    assert _tokyo_responders(site) == before


def test_renew_issues_a_delegated_responder_certificate_the_responders_switch_to(site: Site, tmp_path: Path) -> None:
    clock = Clock(dt.datetime.now(dt.UTC))
    responder = _responder(site, clock)
    old_body = site.ask(responder)
    [(old_serial, old_not_after)] = _tokyo_responders(site)
    assert _signed_by(old_body) == [old_serial]

    code, out, err = site.revoca("ocsp", "renew", "--ca", TOKYO, logins=("keymanager1", "keymanager2"))
    assert code == 0, err
    [(new_serial, new_not_after)] = [r for r in _tokyo_responders(site) if r[0] != old_serial]
    assert f"responder certificate {new_serial:x} for tokyo (key generation 1)" in out and "key in the token" in out
    assert f"{old_serial:x} stays valid until {old_not_after:%Y-%m-%d}" in out

    with session_scope(site.installation.engine) as s:
        store = Store(s)
        row = store.certificate(store.ca(TOKYO), new_serial)
        cert = x509.load_der_x509_certificate(row.der)
        assert row.key_label is not None and row.key_label.startswith("ocsp-responder/tokyo/")
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.OCSP_SIGNING])
    assert cert.extensions.get_extension_for_oid(OCSP_NO_CHECK)
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [OCSP_RESPONDER_POLICY]
    assert 365 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 366  # one year (6.3.2.1)
    assert cert.issuer == x509.load_pem_x509_certificate(site.tokyo_pem.read_bytes()).subject
    events = _audit(site, "ocsp.responder_renewed")
    assert [(actor, detail["serial"], detail["replaces"], detail["key_store"]) for actor, detail in events] == [
        ("keymanager1+keymanager2", f"{new_serial:x}", f"{old_serial:x}", "token")]

    # the running responder switches at its next reading of the index, without a restart
    assert _signed_by(site.ask(responder)) == [old_serial]  # within RELOAD_EVERY: the index it has
    clock.now += RELOAD_EVERY
    new_body = site.ask(responder)
    assert _signed_by(new_body) == [new_serial]
    out = _openssl_verify(site, new_body, tmp_path / "new.der")
    assert "Response verify OK" in out and f"0x{SERIAL:x}: unknown" in out, out
    # what the old certificate signed still verifies: it stays valid until its own end
    assert "Response verify OK" in _openssl_verify(site, old_body, tmp_path / "old.der")
    assert new_not_after > old_not_after


def test_renew_into_a_key_file_for_responders_with_key_files(site: Site, tmp_path: Path) -> None:
    code, out, err = site.revoca("ocsp", "renew", "--ca", TOKYO, "--key-store", "file",
                                 logins=("keymanager2", "keymanager3"))
    assert code == 0, err
    [(serial, _)] = [r for r in _tokyo_responders(site)
                     if f"responder certificate {r[0]:x} for tokyo (key generation 1)" in out]
    key_file = keys_dir(site.installation.settings) / "ocsp-tokyo-2.key"
    assert f"key {key_file}" in out and key_file.stat().st_mode & 0o077 == 0
    body = site.ask(_responder(site, Clock(dt.datetime.now(dt.UTC)), key_files=True))
    assert _signed_by(body) == [serial]
    assert "Response verify OK" in _openssl_verify(site, body, tmp_path / "file.der")
    [(actor, detail)] = _audit(site, "ocsp.responder_renewed")
    assert actor == "keymanager2+keymanager3" and detail["key_store"] == "file"


def test_renew_refuses_a_key_generation_the_ca_does_not_have(site: Site) -> None:
    code, _, err = site.revoca("ocsp", "renew", "--ca", TOKYO, "--key-generation", "7",
                               logins=("keymanager1", "keymanager2"))
    assert code == 3 and "CA tokyo has no key generation 7" in err, err


def test_renew_for_a_retired_key_whose_certificates_ocsp_still_answers_for(site: Site, tmp_path: Path) -> None:
    with session_scope(site.installation.engine) as s:  # a rollover: tokyo's key generation 1 is retired
        hierarchy.rollover(hierarchy.Context(store=Store(s), keys=site.keys, now=dt.datetime.now(dt.UTC),
                                             actor="test", algorithm=KeyAlgorithm.P256, time_guard=NO_NTP), TOKYO)
    code, out, err = site.revoca("ocsp", "renew", "--ca", TOKYO, "--key-generation", "1",
                                 logins=("keymanager1", "keymanager2"))
    assert code == 0, err
    [serial] = [r[0] for r in _tokyo_responders(site) if f"responder certificate {r[0]:x} for tokyo (key "
                                                          f"generation 1)" in out]
    clock = Clock(dt.datetime.now(dt.UTC))
    body = site.ask(_responder(site, clock))  # a CertID of the old key (tokyo.pem is its certificate)
    assert _signed_by(body) == [serial]
    assert "Response verify OK" in _openssl_verify(site, body, tmp_path / "retired.der")


def _audit(site: Site, event_type: str) -> list[tuple[str, dict[str, object]]]:
    with session_scope(site.installation.engine) as s:
        return [(e.actor, json.loads(e.detail)) for e in AuditReads(s).newest_events(limit=10, event_type=event_type)]


# --- warnings ahead ---------------------------------------------------------------------------------


def _metric(site: Site, now: dt.datetime) -> dict[str, float]:
    """revoca_ocsp_responder_not_after_seconds by CA (key generation 1) as /metrics shows it."""
    named, _ = make_registries(RevocaCollector(site.installation.engine, clock=lambda: now))
    values = {}
    for line in generate_latest(named).decode().splitlines():
        if line.startswith("revoca_ocsp_responder_not_after_seconds{"):
            labels, value = line.split("} ")
            if 'generation="1"' in labels:
                values[labels.split('ca="')[1].split('"')[0]] = float(value)
    return values


def test_status_and_metrics_warn_before_the_last_responder_certificate_ends(site: Site) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert _status_findings(site) == ([], [])  # the ceremony's certificates have most of a year left
    assert all(v > 300 * 86400 for v in _metric(site, now).values())

    _revoke_tokyo_responders(site)  # none left: OCSP answers tryLater for tokyo, and status says so
    code, errors, warnings = _status_json(site)
    assert code == 9
    assert [e for e in errors if "tokyo" in e] == [
        "OCSP for tokyo (key generation 1) has no valid responder certificate (expired, revoked or never issued): "
        "its queries are answered tryLater; run `revoca ocsp renew --ca tokyo`"]
    assert _metric(site, now)["tokyo"] == 0

    ends = now + dt.timedelta(days=20)
    cert = _short_lived_responder(site, not_before=now, not_after=ends)
    code, errors, warnings = _status_json(site)
    assert errors == [] and [w for w in warnings if "responder" in w] == [
        f"the OCSP responder certificate {cert.serial_number:x} of tokyo (key generation 1) ends "
        f"{ends:%Y-%m-%d %H:%MZ} (in 20 days) and none is valid after it: run `revoca ocsp renew --ca tokyo` "
        "before then"]
    code, _, err = revoca(site.installation.env(), "status")
    assert f"WARNING: the OCSP responder certificate {cert.serial_number:x} of tokyo" in err
    assert _metric(site, now)["tokyo"] == pytest.approx(20 * 86400, abs=5)
    # the warning period is [ocsp] responder_warn_days (30 by default)
    findings = health.responder_certificates(site.installation.engine, now, warn_before=dt.timedelta(days=10))
    assert findings == health.ResponderFindings()
    # signing with the CA keys uses no responder certificate: nothing to warn of
    assert health.responder_certificates(site.installation.engine, now, warn_before=dt.timedelta(days=30),
                                         ca_signed=True) == health.ResponderFindings()

    code, out, err = site.revoca("ocsp", "renew", "--ca", TOKYO, logins=("keymanager1", "keymanager3"))
    assert code == 0, err
    assert _status_findings(site) == ([], [])


def _status_json(site: Site) -> tuple[int, list[str], list[str]]:
    code, out, _ = revoca(site.installation.env(), "status", "--json")
    data = json.loads(out)
    return code, data["errors"], data["warnings"]


def _status_findings(site: Site) -> tuple[list[str], list[str]]:
    _, errors, warnings = _status_json(site)
    return errors, [w for w in warnings if "responder" in w]


# --- never an expired certificate, never the CA key in its place ---------------------------------------


def test_an_expired_responder_certificate_never_signs_and_the_ca_key_does_not_stand_in(
        site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    [(ceremony_serial, ceremony_not_after)] = _tokyo_responders(site)
    short = _short_lived_responder(site, not_before=start, not_after=start + dt.timedelta(seconds=30))
    clock = Clock(start + dt.timedelta(seconds=1))
    responder = _responder(site, clock)
    assert _signed_by(site.ask(responder)) == [short.serial_number]  # the newest valid one
    # it ends before the index would be read again for its age: read again at its end all the same
    clock.now = start + dt.timedelta(seconds=30)
    assert clock.now - start < RELOAD_EVERY
    assert _signed_by(site.ask(responder)) == [ceremony_serial]

    # past the end of every responder certificate tokyo has: nothing signs, not even the CA key
    clock.now = ceremony_not_after + dt.timedelta(days=1)
    with caplog.at_level(logging.INFO, logger="revoca.ocsp"):
        answers = [site.ask(responder) for _ in range(2)]
        clock.now += RELOAD_EVERY  # read again: still none, and not logged again
        answers.append(site.ask(responder))
    assert {_status(body) for body in answers} == {"try_later"}
    assert all(asn1_ocsp.OCSPResponse.load(body)["response_bytes"].native is None for body in answers)  # unsigned
    lines = [r.getMessage() for r in caplog.records if "tokyo (key generation 1)" in r.getMessage()]
    assert lines == ["OCSP for tokyo (key generation 1): no valid delegated responder certificate (expired, revoked "
                     "or never issued); its queries are answered tryLater, never signed with the CA key. Issue one "
                     "with `revoca ocsp renew --ca tokyo --key-generation 1`, or set [ocsp] ca_signed to sign with "
                     "the CA key"]
    assert [r.levelname for r in caplog.records if r.getMessage() == lines[0]] == ["ERROR"]


def test_ca_signed_mode_signs_with_the_ca_key_even_without_a_responder_certificate(site: Site,
                                                                                   tmp_path: Path) -> None:
    _revoke_tokyo_responders(site)
    clock = Clock(dt.datetime.now(dt.UTC))
    assert _status(site.ask(_responder(site, clock))) == "try_later"
    body = site.ask(_responder(site, clock, ca_signed=True))  # RFC 6960 2.6: the CA itself answers
    assert _status(body) == "successful" and _signed_by(body) == []
    tokyo = x509.load_pem_x509_certificate(site.tokyo_pem.read_bytes())
    parsed = x509_ocsp.load_der_ocsp_response(body)
    assert parsed.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(tokyo.public_key()).digest
    out = _openssl_verify(site, body, tmp_path / "ca-signed.der")
    assert "Response verify OK" in out and f"0x{SERIAL:x}: unknown" in out, out
