"""Disclosure to the subscriber (seed 004 9.4.7; issue 17): `revoca disclose records` (alias `revoca
cert disclose`) writes every record held about a subscriber's certificates, found by serial or by
the basic four, in Japanese and English, withholds staff names, needs a receptionist and a CA
administrator, is signed by the receipt-signer key and time-stamped by revoca's TSA (checked by
openssl), and is audited as a personal-data read.  `revoca disclose correct|review|decide`: a
correction request passes three different people, each step audited.

One HSM service and one TSA certificate per module (a copy of the worker's demo ceremony)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509

from ca.basic_four import BasicFour
from ca.disclosure import corrections
from ca.disclosure.report import EVENT
from ca.enums import Role
from ca.errors import PermissionDenied
from ca.http.client_cert import CLIENT_CERT_ENVIRON
from ca.ra.app import create_app
from ca.storage.corrections import CorrectionStore
from ca.storage.engine import session_scope
from ca.storage.models import CertificateAuthority
from ocsp.history import QueryHistory
from ocsp.responder import Outcome

from support.cli import Cli, activate_in_process, demo_cli, start_hsm, stop_hsm
from support.installation import CeremonyTemplates
from support.officers import NO_LOGIN
from support.ra_fixtures import (
    PASSWORD,
    CertRef,
    add_operator,
    audit_events,
    basic_auth,
    bridge_roots_pem,
    new_subscriber,
    register_terminals,
    signed_request,
    subscribers,
)


@dataclasses.dataclass
class Setting:
    cli: Cli
    window: CertRef  # revoked at a window by an agent, named in OCSP answers
    other: CertRef  # another subscriber's, filed in the same session
    online: CertRef  # revoked online, signed by the subscriber
    online_cms: bytes
    answer: dict[str, str]  # the RA's answer to the window request
    roots: Path
    tsa_pem: Path


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory, ceremony_templates: CeremonyTemplates) -> Iterator[Setting]:
    root = tmp_path_factory.mktemp("disclosure")
    with demo_cli(ceremony_templates, "sqlite", root) as cli:
        proc = start_hsm(cli)
        try:
            activate_in_process(cli, 1, 2)
            cli.ok("tsa", "certificate")
            yield _records(cli, root)
        finally:
            stop_hsm(proc)


def _records(cli: Cli, root: Path) -> Setting:
    """Requests at a window and online, a list read and OCSP queries: the records a disclosure gathers."""
    engine, keys = cli.engine, cli.officers()
    now = dt.datetime.now(dt.UTC)
    try:
        [terminal] = register_terminals(engine, keys, ["chiyoda-1"], root, now=now)
        add_operator(engine, "clerk-sato", Role.RECEPTIONIST)
        app = create_app(engine, keys).test_client()
        env, auth = {CLIENT_CERT_ENVIRON: terminal.der}, basic_auth("clerk-sato", PASSWORD)
        window, other = subscribers(engine)[0], subscribers(engine)[1]
        filed = app.post("/v1/revocations", environ_base=env, headers=auth, json={
            "issuer_ca": "tokyo", "serial": window.hex_serial, "reason": "keyCompromise", "applicant": "agent",
            "agent_authority": "power-of-attorney", "identity_document_checked": True,
            "idempotency_key": f"key-{uuid.uuid4()}"})
        assert filed.status_code == 201, filed.get_data(as_text=True)
        assert app.post("/v1/revocations", environ_base=env, headers=auth, json={
            "issuer_ca": "tokyo", "serial": other.hex_serial, "reason": "superseded", "applicant": "self",
            "identity_document_checked": True, "idempotency_key": f"key-{uuid.uuid4()}"}).status_code == 201
        assert app.get("/v1/revocations", environ_base=env, headers=auth).status_code == 200
        online, online_key = new_subscriber(engine, keys, now=now)
        cms = signed_request(online.der, online_key, {"reason": "cessationOfOperation"})
        answered = app.post("/v1/online-revocations", data=cms, content_type="application/pkcs7-mime")
        assert answered.status_code == 201, answered.get_data(as_text=True)
    finally:
        keys.close()
    with session_scope(engine, readonly=True) as s:
        tokyo_id = s.scalar(sa.select(CertificateAuthority.id).where(CertificateAuthority.name == "tokyo"))
    history = QueryHistory(engine, thread=False)
    for answers in (f"{window.hex_serial}=good", f"{window.hex_serial}=revoked,ff=good",
                    f"1{window.hex_serial}=good"):  # the last names another serial
        history.record(Outcome(b"", "successful", "signed", None, tokyo_id, False, answers))
    history.close()
    roots = root / "roots.pem"
    roots.write_bytes(bridge_roots_pem(engine))
    return Setting(cli, window, other, online, cms, filed.get_json(), roots, cli.data / "tsa" / "tsa.pem")


def _base64_block(text: str, label: str) -> bytes:
    """The base64 lines printed under `label` in the report."""
    out = []
    for line in text.split(label, 1)[1].split("\n")[1:]:
        if not (line.startswith("    ") and re.fullmatch(r"[A-Za-z0-9+/=]+", line.strip())):
            break
        out.append(line.strip())
    return base64.b64decode("".join(out))


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, check=False)


def _verify_bundle(s: Setting, report: Path) -> None:
    """The signature (receipt-signer key, chained to the bridge) and the time stamp both verify, and
    the signed content is the report byte for byte."""
    signed, stamp = report.with_name(report.name + ".p7m"), report.with_name(report.name + ".p7m.tsr")
    content = report.with_name(report.name + ".content")
    cms = _openssl("cms", "-verify", "-inform", "DER", "-in", str(signed), "-CAfile", str(s.roots),
                   "-purpose", "any", "-out", str(content))
    assert cms.returncode == 0 and "Verification successful" in cms.stderr, cms.stderr
    assert content.read_bytes() == report.read_bytes()
    signer = _openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", str(signed))
    assert "Receipt" in signer.stdout or "receipt" in signer.stdout.lower(), signer.stdout[:2000]
    ts = _openssl("ts", "-verify", "-data", str(signed), "-in", str(stamp), "-CAfile", str(s.roots),
                  "-untrusted", str(s.tsa_pem))
    assert ts.returncode == 0 and "Verification: OK" in ts.stdout, ts.stdout + ts.stderr
    # a bundle changed by one byte no longer verifies against the time stamp
    tampered = report.with_name(report.name + ".tampered")
    tampered.write_bytes(signed.read_bytes()[:-1] + bytes([signed.read_bytes()[-1] ^ 1]))
    assert _openssl("ts", "-verify", "-data", str(tampered), "-in", str(stamp), "-CAfile", str(s.roots),
                    "-untrusted", str(s.tsa_pem)).returncode != 0


def test_records_by_serial_signed_time_stamped_and_audited(setting: Setting, tmp_path: Path) -> None:
    s, cli = setting, setting.cli
    report = tmp_path / "disclosure.txt"
    # a CA administrator alone, or a receptionist alone, may not disclose
    for alone in ("cast-admin", "cast-receptionist"):
        cli.fails("disclose", "records", "--ca", "tokyo", s.window.hex_serial, "--out", str(report),
                  login=cli.cast.login(alone), code=8, match="needs 2 different people")
    cli.fails("disclose", "records", "--ca", "tokyo", s.window.hex_serial, login=NO_LOGIN, code=8, match="")
    assert not report.exists()
    out = cli.ok("disclose", "records", "--ca", "tokyo", s.window.hex_serial, "--out", str(report))
    assert f"wrote {report}: 1 certificate(s), 1 request(s)" in out
    for path in (report, Path(f"{report}.p7m"), Path(f"{report}.p7m.tsr")):
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
    _verify_bundle(s, report)
    text = report.read_text(encoding="utf-8")

    # the certificate, in both languages, and its PEM is the stored certificate
    assert "認証業務情報の開示 / Disclosure of certification records" in text
    assert f"シリアル番号 / Serial number: {s.window.hex_serial} (hex)" in text
    block = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    assert block is not None
    cert = x509.load_pem_x509_certificate("\n".join(line.strip() for line in block[0].splitlines()).encode())
    assert cert.serial_number == s.window.serial
    # the request, with the agent's authority, the terminal, the receipt, and staff by role only
    assert f"申請番号 / Request id: {s.answer['request_id']}" in text
    assert "代理人 / an agent" in text and "委任状 / power of attorney" in text
    assert "受付端末 / Terminal: chiyoda-1" in text and "受付担当者 / Receptionist: (職員 / staff)" in text
    assert "clerk-sato" not in text and "cast-admin" not in text  # staff names withheld, in audit records too
    receipt = _base64_block(text, "受領書 / Receipt")
    assert receipt == base64.b64decode(s.answer["receipt"])
    (tmp_path / "receipt.der").write_bytes(receipt)
    checked = _openssl("cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "receipt.der"),
                       "-CAfile", str(s.roots), "-purpose", "any")
    assert checked.returncode == 0 and s.answer["request_id"] in checked.stdout, checked.stderr
    assert "失効理由 / Reason: 鍵の危殆化 / keyCompromise (1)" in text
    # audit records naming it: the filing, the list read; not the other certificate's filing
    audit_part = text.split("-- 監査記録 / Audit records naming it (")[1].split("\n\n")[0]
    assert "revocation.request_filed" in audit_part and "ra.requests_listed" in audit_part
    assert audit_part.count("revocation.request_filed") == 1
    assert s.other.hex_serial not in text and "1 others withheld" in audit_part
    # OCSP: two queries named it (the third named another serial)
    assert "OCSP 問合せ回数 / OCSP queries naming it: 2" in text and "good 1, revoked 1" in text

    # the read is audited as a personal-data read, by the two people, with the digests of what was handed over
    disclosed = [e for e in audit_events(cli.engine, EVENT) if s.window.hex_serial in e.detail][-1]
    detail = json.loads(disclosed.detail)
    assert set(disclosed.actor.split("+")) == {"cast-admin", "cast-receptionist"}
    assert detail["personal_data"] is True and detail["certificates"] == [f"tokyo:{s.window.hex_serial}"]
    assert detail["report_sha256"] == hashlib.sha256(report.read_bytes()).hexdigest()
    assert detail["sealed_sha256"]["p7m"] == hashlib.sha256(Path(f"{report}.p7m").read_bytes()).hexdigest()
    # never overwritten
    cli.fails("disclose", "records", "--ca", "tokyo", s.window.hex_serial, "--out", str(report), code=None,
              match="never overwritten")


def test_cert_disclose_is_the_same_command_by_subject(setting: Setting, tmp_path: Path) -> None:
    s, cli = setting, setting.cli
    subject = x509.load_der_x509_certificate(s.online.der).subject.rfc4514_string()
    report = tmp_path / "by-subject.txt"
    before = tmp_path / "before.txt"
    cli.ok("disclose", "records", "--ca", "tokyo", "--subject", subject, "--out", str(before))
    assert "CRL: 失効後の発行はまだありません / none issued since the revocation yet" in before.read_text("utf-8")
    issued = cli.json("crl", "issue", "--ca", "tokyo", "--type", "crl")
    cli.ok("cert", "disclose", "--ca", "tokyo", "--subject", subject, "--out", str(report))
    _verify_bundle(s, report)
    text = report.read_text(encoding="utf-8")
    # the CRL issued since lists it, and the report says so with its number
    numbers = re.findall(r"CRL: 失効を掲載した 1 件 / 1 issued listing it, #(\d+) ", text)
    assert [int(n) for n in numbers] == [i["number"] for i in issued["issued"] if i["type"] == "crl"], issued
    assert f"主体者 / Subject: {subject}" in text and "オンライン（本人の署名）/ online" in text
    assert _base64_block(text, "本人が署名した申請") == s.online_cms
    assert "失効理由 / Reason: 利用の終了 / cessationOfOperation (5)" in text


def test_records_found_by_the_basic_four_name_and_date_of_birth(setting: Setting, tmp_path: Path) -> None:
    s, cli = setting, setting.cli
    four = BasicFour.from_certificate(x509.load_der_x509_certificate(s.online.der))
    typed = four.name.replace("\u3000", " ")  # typed at a keyboard: an ASCII space, not the ideographic one
    report = tmp_path / "by-holder.txt"
    out = cli.ok("disclose", "records", "--name", typed, "--birth", four.date_of_birth.isoformat(),
                 "--out", str(report))
    text = report.read_text(encoding="utf-8")
    serials = re.findall(r"シリアル番号 / Serial number: ([0-9a-f]+) \(hex\)", text)
    assert format(s.online.serial, "x") in serials, out
    # every certificate found carries that name and date of birth (namesakes born other days are not found)
    for block in re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S):
        found = BasicFour.from_certificate(x509.load_pem_x509_certificate(
            "\n".join(line.strip() for line in block.splitlines()).encode()))
        assert (found.name, found.date_of_birth) == (four.name, four.date_of_birth)
    assert "the basic four: name and date of birth, every CA" in text
    _verify_bundle(s, report)
    # the gender narrows; the wrong one finds nothing
    wrong = "2" if four.gender == "1" else "1"
    cli.fails("disclose", "records", "--name", typed, "--birth", four.date_of_birth.isoformat(), "--gender", wrong,
              "--out", str(tmp_path / "none.txt"), code=None, match="no subscriber certificate carries")
    cli.fails("disclose", "records", "--name", typed, "--birth",
              (four.date_of_birth + dt.timedelta(days=1)).isoformat(), "--out", str(tmp_path / "none.txt"),
              code=None, match="no subscriber certificate carries")
    assert not (tmp_path / "none.txt").exists()


def test_a_correction_request_needs_three_different_people_and_is_audited(setting: Setting, tmp_path: Path) -> None:
    s, cli = setting, setting.cli
    filed = cli.json("disclose", "correct", "--ca", "tokyo", s.window.hex_serial, "--record",
                     f"request {s.answer['request_id']}: applicant", "--requested", "本人 / the subscriber")
    request_id = filed["request_id"]
    assert filed["status"] == "pending-review"
    assert request_id in cli.ok("disclose", "corrections")
    # no decision before review; the receptionist may not review; the reviewer may not decide
    cli.fails("disclose", "decide", request_id, code=None, match="not waiting for approval")
    cli.fails("disclose", "review", request_id, login=cli.cast.login("cast-receptionist"), code=8, match="")
    assert "pending-approval" in cli.ok("disclose", "review", request_id)
    cli.fails("disclose", "decide", request_id, login=cli.cast.login("cast-reviewer"), code=8, match="")
    assert "completed" in cli.ok("disclose", "decide", request_id, "--note", "records corrected")
    assert request_id not in cli.ok("disclose", "corrections")
    steps = {e.event_type: e for e in audit_events(cli.engine) if request_id in e.detail}
    assert {k: v.actor for k, v in steps.items()} == {
        "disclosure.correction_filed": "cast-receptionist", "disclosure.correction_reviewed": "cast-reviewer",
        "disclosure.correction_approved": "cast-admin"}
    filed_detail = json.loads(steps["disclosure.correction_filed"].detail)
    assert filed_detail["record"] == f"request {s.answer['request_id']}: applicant" and filed_detail["personal_data"]
    # the request is part of the next disclosure
    report = tmp_path / "after.txt"
    cli.ok("disclose", "records", "--ca", "tokyo", s.window.hex_serial, "--out", str(report))
    text = report.read_text(encoding="utf-8")
    assert f"請求番号 / Request id: {request_id} (訂正 / correct)" in text and "完了 / completed" in text


@dataclasses.dataclass(frozen=True)
class _Person:
    """One person holding two roles, which the exclusivity rules keep any real operator from holding:
    the workflow still refuses them a second step on one request."""

    id: int
    name: str
    role_set: frozenset[Role]


def test_one_person_never_takes_two_steps_of_a_correction(setting: Setting) -> None:
    s, cli = setting, setting.cli
    filed = cli.json("disclose", "correct", "--ca", "tokyo", s.other.hex_serial, "--action", "delete",
                     "--record", "an audit record")
    with session_scope(cli.engine) as session:
        store = CorrectionStore(session)
        receptionist_id = store.request(filed["request_id"]).receptionist_id
        both = _Person(receptionist_id, "two-hats", frozenset({Role.RECEPTIONIST, Role.REVIEWER}))
        with pytest.raises(PermissionDenied, match="already took part"):
            corrections.review(store, filed["request_id"], both, accept=True, now=dt.datetime.now(dt.UTC))
