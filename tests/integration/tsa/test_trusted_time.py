"""Trusted time: nothing is signed when NTP servers on loopback say the clock is off.

The NTP servers here are real UDP servers in threads of this process, answering real NTP
packets (built with struct, not with ntplib, which the client uses) from a clock moved by
a chosen offset (support.ntp_server).  Signing goes through the real HSM service, SoftHSM2 and SQLite.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp

from ca import trusted_time
from ca.config import TimeConfig, load_settings, settings_from_dict
from ca.enums import CertKind, ListType
from ca.errors import ConfigError, UntrustedTime
from ca.hsm.client import HSMClient
from ca.hsm.signer import KeyAlgorithm, KeyStore, Signer, SoftwareSigner
from ca.http.client_cert import CLIENT_CERT_ENVIRON
from ca.issuance import Issuer, issue
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Certificate, IssuedCRL, TimeStamp
from ca.storage.store import ReadStore
from ca.trusted_time import ClockGuard
from ca.trusted_time.ntp import Reading, query
from ca.trusted_time.policy import assess
from ca.tsa.certificate import ensure_certificate
from ca.tsa.stamper import CurrentAuthority
from ca.verifiers.registry import add_verifier
from ocsp.responder import Responder
from ocsp.wsgi import build

from support.installation import CeremonyTemplates, Installation, serving_installation
from support.ntp_server import LoopbackNTP
from support.officers import standard_cast
from support.settings import LDAP_BASE
from support.tools import ocsp_request, officers_client, revoca

OPERATOR = standard_cast().login("cast-operator")  # who issues the lists by hand (support.officers)
class FakeNTPs:
    """Fake NTP servers by offset, each made on first use: `ntp[5.0].address`."""

    def __init__(self) -> None:
        self._made: dict[float, LoopbackNTP] = {}

    def __getitem__(self, offset_s: float) -> LoopbackNTP:
        if offset_s not in self._made:
            self._made[offset_s] = LoopbackNTP(offset_s)
        return self._made[offset_s]

    def close(self) -> None:
        for server in self._made.values():
            server.close()


@pytest.fixture
def ntp() -> Iterator[FakeNTPs]:
    servers = FakeNTPs()
    yield servers
    servers.close()


def closed_udp_port() -> str:
    """A loopback UDP address nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(autouse=True)
def _fresh_time_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts as a new process would, and leaves no NTP policy behind for other tests."""
    monkeypatch.chdir(tmp_path)  # settings come from the environment only
    trusted_time.forget_unchecked_warning()
    yield
    trusted_time.forget_unchecked_warning()


# --- configuration --------------------------------------------------------------------------


def test_time_section_and_environment_overrides(tmp_path: Path) -> None:
    conf = tmp_path / "time.toml"
    conf.write_text('[time]\nntp_servers = ["ntp1.example", "10.0.0.1:1123", "[::1]:123"]\nmax_offset_s = 1\n')
    s = load_settings(conf, env={"REVOCA_TIME_RECHECK_S": "15", "REVOCA_TIME_TIMEOUT_S": "0.5"})
    assert s.time == TimeConfig(ntp_servers=("ntp1.example", "10.0.0.1:1123", "[::1]:123"), max_offset_s=1.0,
                                timeout_s=0.5, recheck_s=15.0, ntp_source=str(conf))
    s = load_settings(conf, env={"REVOCA_TIME_NTP_SERVERS": "a.example, b.example:124"})
    assert s.time.ntp_servers == ("a.example", "b.example:124")
    # the embedded default: the machine's own daemon's servers (none under an empty root)
    assert load_settings(env={}, system_root=tmp_path).time.ntp_servers == ()


@pytest.mark.parametrize(("table", "match"), [
    ({"ntp_servers": "ntp.example"}, "must be a list"),
    ({"ntp_servers": ["ntp.example:99999"]}, "no valid UDP port"),
    ({"ntp_servers": ["[::1"]}, "host, host:port or"),
    ({"ntp_servers": ["a.example", "a.example"]}, "listed twice"),
    ({"max_offset_s": 0}, "time.max_offset_s"),
    ({"timeout_s": "2"}, "time.timeout_s"),
    ({"recheck": 60}, "unknown key.*recheck"),
])
def test_bad_time_settings_are_one_line(table: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        settings_from_dict({"time": table})
    assert "\n" not in str(err.value)


def test_bad_environment_override_is_named() -> None:
    with pytest.raises(ConfigError, match="REVOCA_TIME_MAX_OFFSET_S must be a number"):
        load_settings(env={"REVOCA_TIME_MAX_OFFSET_S": "one"})


# --- the policy for several servers ---------------------------------------------------------


def _readings(**offsets: float | None) -> tuple[Reading, ...]:
    return tuple(Reading(name, offset_s=o, delay_s=0.001) if o is not None else Reading(name, error="no answer")
                 for name, o in offsets.items())


def test_one_lying_server_of_three_is_named_and_outvoted() -> None:
    check = assess(_readings(a=0.1, b=10.0, c=0.2), 1.0)
    assert check.trusted and check.outliers == ("b",) and check.offset_s == pytest.approx(0.15)
    assert "b disagrees with the others (+10.000 s)" in check.notes()


def test_a_majority_must_answer() -> None:
    assert assess(_readings(a=0.1, b=None, c=0.2), 1.0).trusted
    check = assess(_readings(a=0.1, b=None, c=None), 1.0)
    assert not check.trusted and check.unreachable == ("b", "c")
    assert "only 1 of 3 NTP servers answered (b no answer; c no answer); 2 needed" in check.refusal


def test_two_servers_that_disagree_are_not_trusted() -> None:
    check = assess(_readings(a=0.0, b=10.0), 1.0)
    assert not check.trusted and "disagree" in check.refusal and "a +0.000 s, b +10.000 s" in check.refusal


def test_agreed_offset_beyond_the_limit_is_refused() -> None:
    check = assess(_readings(a=-5.0, b=-5.1, c=3.0), 1.0)
    assert not check.trusted and check.outliers == ("c",)
    assert "the system clock is 5.050 s ahead of NTP a, b (offset -5.050 s, limit ±1 s)" in check.refusal


# --- the NTP client against a server on loopback --------------------------------------------


def test_query_measures_the_offset_of_a_real_ntp_answer(ntp: FakeNTPs) -> None:
    ahead, behind = query(ntp[3.0].address, 2.0), query(ntp[-3.0].address, 2.0)
    assert ahead.answered and 2.5 < ahead.offset_s < 3.5  # type: ignore[operator]
    assert behind.answered and -3.5 < behind.offset_s < -2.5  # type: ignore[operator]


def test_unusable_answers_are_refused_with_the_reason() -> None:
    with LoopbackNTP(leap=3) as unset, LoopbackNTP(echo=False) as forged:
        assert "is not synchronised itself (leap 3" in query(unset.address, 2.0).error
        assert "origin timestamp mismatch" in query(forged.address, 2.0).error
    assert query(closed_udp_port(), 0.3).error == "no answer within 0.3 s"


def test_a_good_check_is_reused_for_recheck_s(ntp: FakeNTPs) -> None:
    ticks = [0.0]
    guard = ClockGuard(TimeConfig(ntp_servers=(ntp[0.0].address,), recheck_s=60), monotonic=lambda: ticks[0])
    guard.require("test")
    guard.require("test")
    assert ntp[0.0].queries == 1  # reused: the OCSP hot path costs no query
    ticks[0] = 61.0
    guard.require("test")
    assert ntp[0.0].queries == 2


# --- signing refused: CRL/ARL through the CLI -------------------------------------------------


def time_env(installation: Installation, *servers: str, timeout_s: float = 1.0) -> dict[str, str]:
    """The installation's environment with `servers` as its NTP servers."""
    return installation.env(REVOCA_TIME_NTP_SERVERS=",".join(servers), REVOCA_TIME_TIMEOUT_S=str(timeout_s))


def crl_numbers(installation: Installation, ca: str, list_type: ListType = ListType.CRL) -> list[int]:
    with session_scope(installation.engine) as s:
        ca_id = ReadStore(s).ca(ca).id
        return list(s.scalars(sa.select(IssuedCRL.number).where(IssuedCRL.ca_id == ca_id,
                                                                IssuedCRL.list_type == list_type)
                              .order_by(IssuedCRL.number)))


def time_events(installation: Installation,
                event_type: str = "time.untrusted") -> list[tuple[str, str, dict[str, object]]]:
    with session_scope(installation.engine) as s:
        rows = s.scalars(sa.select(AuditEvent).where(AuditEvent.event_type == event_type)
                         .order_by(AuditEvent.id)).all()
        return [(r.result, r.actor, json.loads(r.detail)) for r in rows]


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    """A demo installation with the HSM service running in this process, activated with two shares."""
    with serving_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("time"), prefix="rvt") as made:
        yield made


def test_crl_issue_refuses_a_clock_5_s_off_and_issues_at_0_2_s(installation: Installation,
                                                               ntp: FakeNTPs) -> None:
    before = crl_numbers(installation, "tokyo")
    files = set((installation.data_dir / "crls").rglob("*.crl"))
    code, out, err = revoca(time_env(installation, ntp[5.0].address), "crl", "issue", "--ca", "tokyo", "--type", "crl",
                            login=OPERATOR)
    assert code == UntrustedTime.exit_code and out == ""
    (line,) = err.splitlines()
    assert line.startswith("revoca: error: tokyo CRL: not issued: untrusted time, nothing signed: ")
    assert re.search(rf"behind NTP {ntp[5.0].address} \(offset \+(4\.[5-9]|5\.[0-4])\d* s, limit ±1 s\)", line), line
    assert crl_numbers(installation, "tokyo") == before
    assert set((installation.data_dir / "crls").rglob("*.crl")) == files
    ((result, actor, detail),) = time_events(installation)
    assert (result, actor, detail["purpose"]) == ("failure", "cast-operator", "tokyo CRL")
    assert 4.5 < detail["offsets_s"][ntp[5.0].address] < 5.5  # type: ignore[index,operator]

    code, out, err = revoca(time_env(installation, ntp[0.2].address), "crl", "issue", "--ca", "tokyo", "--type", "crl",
                            login=OPERATOR)
    assert code == 0, err
    # the refusal spent no number
    assert crl_numbers(installation, "tokyo") == [*before, (before[-1] if before else 0) + 1]
    assert len(time_events(installation)) == 1


def test_an_unreachable_lone_server_is_named_and_nothing_signed(installation: Installation) -> None:
    closed = closed_udp_port()
    before = crl_numbers(installation, "osaka", ListType.ARL)
    code, _, err = revoca(time_env(installation, closed, timeout_s=0.3), "crl", "issue", "--ca", "osaka", "--type",
                          "arl", login=OPERATOR)
    assert code == UntrustedTime.exit_code
    assert err.splitlines() == [f"revoca: error: osaka ARL: not issued: untrusted time, nothing signed: only 0 of 1 "
                                f"NTP servers answered ({closed} no answer within 0.3 s); 1 needed: check that the "
                                "servers are reachable, or fix [time] ntp_servers"]
    assert crl_numbers(installation, "osaka", ListType.ARL) == before
    assert time_events(installation)[-1][2]["unreachable"] == [closed]


def test_a_lying_and_a_silent_server_are_outvoted_and_named(installation: Installation, ntp: FakeNTPs,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    closed = closed_udp_port()
    servers = (ntp[0.0].address, ntp[10.0].address, ntp[0.1].address, closed, ntp[-0.1].address)
    before = crl_numbers(installation, "hokkaido")
    with caplog.at_level(logging.WARNING, logger="revoca.time"):
        code, _, err = revoca(time_env(installation, *servers, timeout_s=0.3), "crl", "issue", "--ca", "hokkaido",
                              "--type", "crl", login=OPERATOR)
    assert code == 0, err
    assert len(crl_numbers(installation, "hokkaido")) == len(before) + 1
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "revoca.time"]
    assert f"{closed} no answer within 0.3 s" in warning
    assert re.search(rf"{ntp[10.0].address} disagrees with the others \(\+(9\.[5-9]|10\.[0-4])\d* s\)", warning)
    ((result, _, detail),) = time_events(installation, "time.degraded")
    assert result == "success" and detail["outliers"] == [ntp[10.0].address] and detail["unreachable"] == [closed]


def test_without_servers_one_warning_and_signing_goes_on(installation: Installation,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    before = crl_numbers(installation, "bridge", ListType.ARL)
    with caplog.at_level(logging.WARNING, logger="revoca.time"):
        for _ in range(2):
            code, _, err = revoca(time_env(installation), "crl", "issue", "--ca", "bridge", "--type", "arl",
                                  login=OPERATOR)
            assert code == 0, err
    assert len(crl_numbers(installation, "bridge", ListType.ARL)) == len(before) + 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "revoca.time"]
    assert len(warnings) == 1 and warnings[0].startswith("no NTP server configured ([time] ntp_servers)")


# --- signing refused: certificates ----------------------------------------------------------


def test_no_certificate_is_signed_on_untrusted_time(ntp: FakeNTPs, tmp_path: Path) -> None:
    guard = trusted_time.guard_for(settings_from_dict({"data_dir": str(tmp_path),
                                                       "time": {"ntp_servers": [ntp[-5.0].address]}}))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=Time Test CA,O=JPKI,C=JP")
    issuer = Issuer.from_signer(name, SoftwareSigner(key))
    with pytest.raises(UntrustedTime, match=r"the system clock is [0-9.]+ s ahead of NTP 127\.0\.0\.1:\d+ \(offset -"):
        issue(CertKind.SELF_SIGNED, issuer=issuer, time_guard=guard, subject=name, public_key=key.public_key(),
              not_before=dt.datetime.now(dt.UTC))


# --- signing refused: time-stamps -----------------------------------------------------------


def test_no_time_stamp_on_untrusted_time_and_the_refusal_is_audited_after_the_rollback(
        installation: Installation, ntp: FakeNTPs, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = officers_client(installation.socket, installation.settings)  # a TSA key: a ceremony act
    ensure_certificate(installation.settings, installation.engine, keys,
                       now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
                       actor="test")
    guard = trusted_time.guard_for(dataclasses.replace(installation.settings,
                                                       time=TimeConfig(ntp_servers=(ntp[5.0].address,))))
    before = len(time_events(installation))
    with session_scope(installation.engine, readonly=True) as s:
        stamps = s.scalar(sa.select(sa.func.count()).select_from(TimeStamp))
    # Inside a write transaction, as the scheduler and the TSA's HTTP app stamp: on SQLite the
    # refusal's own audit record can only be written once this transaction has rolled back.  The
    # refusal waits AUDIT_WAIT_S for that record before it is raised, here always in vain: the
    # same path with a shorter wait, rather than two seconds of it.
    monkeypatch.setattr(trusted_time.guard, "AUDIT_WAIT_S", 0.1)
    with pytest.raises(UntrustedTime, match="nothing signed"), session_scope(installation.engine) as s:
        CurrentAuthority(keys, guard).stamp(s, hashlib.sha256(b"x").digest(), "sha256", "test")
    deadline = time.monotonic() + 60
    while len(time_events(installation)) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    (result, actor, detail) = time_events(installation)[-1]
    assert (result, actor, detail["purpose"]) == ("failure", "tsa for test", "time-stamp token")
    with session_scope(installation.engine, readonly=True) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(TimeStamp)) == stamps


# --- signing refused: OCSP ------------------------------------------------------------------


class CountingKeys:
    """The real HSM client, counting the signatures it is asked for."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys, self.signatures = keys, 0

    def generate(self, label: str, algorithm: KeyAlgorithm) -> object:
        return self.keys.generate(label, algorithm)

    def signer(self, label: str) -> Signer:
        keys, inner = self, self.keys.signer(label)

        class Counting:
            key_label, algorithm = inner.key_label, inner.algorithm

            def public_key(self):  # type: ignore[no-untyped-def]
                return inner.public_key()

            def sign(self, data: bytes) -> bytes:
                keys.signatures += 1
                return inner.sign(data)

            def sign_digest(self, digest: bytes) -> bytes:
                keys.signatures += 1
                return inner.sign_digest(digest)

        return Counting()  # type: ignore[return-value]


@pytest.fixture(scope="module")
def verifier(installation: Installation) -> bytes:
    """DER of a registered verifier's certificate (presented as a TLS client certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name.from_rfc4514_string("CN=time-verifier,O=Court,C=JP")
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    add_verifier(installation.engine, name="time-verifier", certificate=cert, password=None, now=now, base_dn=LDAP_BASE,
                 actor="test")
    return cert.public_bytes(serialization.Encoding.DER)


def _ocsp_request(installation: Installation, serial: int, *, nonce: bytes | None = None) -> bytes:
    with session_scope(installation.engine) as s:
        tokyo = ReadStore(s).ca("tokyo")
        der = s.scalar(sa.select(Certificate.der).where(Certificate.issuer_ca_id == tokyo.id,
                                                        Certificate.kind == CertKind.SELF_SIGNED))
    return ocsp_request(x509.load_der_x509_certificate(der), serial, nonce=nonce)  # type: ignore[arg-type]


def test_ocsp_answers_try_later_and_signs_nothing_on_untrusted_time(installation: Installation, verifier: bytes,
                                                                    ntp: FakeNTPs) -> None:
    bad = trusted_time.guard_for(settings_from_dict({"time": {"ntp_servers": [ntp[5.0].address]}}))
    keys = CountingKeys(HSMClient(installation.socket))
    responder = Responder(installation.engine, keys, time_guard=bad)  # type: ignore[arg-type]
    for request in (_ocsp_request(installation, 0x1234), _ocsp_request(installation, 0x1234, nonce=b"n" * 16)):
        outcome = responder.respond(request, tls_client_cert=verifier)
        assert outcome.response_status == "try_later"
        assert x509_ocsp.load_der_ocsp_response(outcome.body).response_status == \
            x509_ocsp.OCSPResponseStatus.TRY_LATER
    assert keys.signatures == 0
    ((_, actor, detail),) = [e for e in time_events(installation) if e[1] == "ocsp"]
    assert detail["purpose"] == "OCSP response" and ntp[5.0].address in detail["offsets_s"]  # type: ignore[operator]

    good = trusted_time.guard_for(settings_from_dict({"time": {"ntp_servers": [ntp[0.2].address]}}))
    responder = Responder(installation.engine, keys, time_guard=good)  # type: ignore[arg-type]
    outcome = responder.respond(_ocsp_request(installation, 0x1234), tls_client_cert=verifier)
    assert outcome.response_status == "successful" and keys.signatures == 1
    assert x509_ocsp.load_der_ocsp_response(outcome.body).certificate_status == x509_ocsp.OCSPCertStatus.UNKNOWN


def test_ocsp_workers_take_the_time_policy_from_their_settings(installation: Installation, verifier: bytes,
                                                               ntp: FakeNTPs) -> None:
    settings = dataclasses.replace(installation.settings, time=TimeConfig(ntp_servers=(ntp[-5.0].address,)),
                                   hsm=dataclasses.replace(installation.settings.hsm, socket=str(installation.socket)))
    app = build(settings, ca_signed=False, key_files=False, history=False)
    body = _ocsp_request(installation, 0x99)
    seen: list[str] = []
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/ocsp-request", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), CLIENT_CERT_ENVIRON: verifier}
    answer = b"".join(app(environ, lambda status, headers: seen.append(status)))
    assert seen == ["200 OK"]
    assert x509_ocsp.load_der_ocsp_response(answer).response_status == x509_ocsp.OCSPResponseStatus.TRY_LATER
