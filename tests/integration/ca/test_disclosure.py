"""Disclosure to the subscriber (seed 004 9.4.7.1; issue 17): `revoca cert disclose` writes every
record held about a certificate (the certificate, its requests with their receipts, the
revocation, the archived signed online request, the audit records naming it, the OCSP queries
about it) in Japanese and English, withholds staff names, needs a CA administrator and an
operator, and is audited as a personal-data read."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import subprocess
import uuid
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509

from ca import ceremony
from ca.config import Settings
from ca.disclosure.report import EVENT
from ca.enums import Role
from ca.http.client_cert import CLIENT_CERT_ENVIRON
from ca.ra.app import create_app
from ca.storage.engine import session_scope
from ca.storage.models import CertificateAuthority
from ocsp.history import QueryHistory
from ocsp.responder import Outcome

from support.installation import open_token
from support.officers import NO_LOGIN, standard_cast
from support.ra_fixtures import (
    PASSWORD,
    add_operator,
    audit_events,
    basic_auth,
    bridge_roots_pem,
    new_subscriber,
    register_terminals,
    signed_request,
    subscribers,
)
from support.settings import NOW
from support.tools import revoca

AT = NOW + dt.timedelta(days=1)


def _env(settings: Settings) -> dict[str, str]:
    return {"REVOCA_DATA_DIR": str(settings.data_dir), "REVOCA_DATABASE_URL": settings.db_url,
            "REVOCA_HSM_TOKEN_LABEL": settings.hsm.token_label}


def _base64_block(text: str, label: str) -> bytes:
    """The base64 lines printed under `label` in the report."""
    return base64.b64decode("".join(_lines(text.split(label, 1)[1].split("\n")[1:])))


def _lines(after: list[str]) -> list[str]:
    out = []
    for line in after:
        if not (line.startswith("    ") and re.fullmatch(r"[A-Za-z0-9+/=]+", line.strip())):
            break
        out.append(line.strip())
    return out


def test_disclosure_holds_every_record_of_the_certificate_and_is_audited(
        engine: sa.Engine, settings: Settings, initialized: ceremony.CeremonyResult, tmp_path: Path) -> None:
    token = open_token(settings, initialized)
    try:
        [terminal] = register_terminals(engine, token, ["chiyoda-1"], tmp_path, now=NOW)
        add_operator(engine, "clerk-sato", Role.RECEPTIONIST)
        app = create_app(engine, token, clock=lambda: AT).test_client()
        env = {CLIENT_CERT_ENVIRON: terminal.der}
        window_ref, other = subscribers(engine)[0], subscribers(engine)[1]
        filed = app.post("/v1/revocations", environ_base=env, headers=basic_auth("clerk-sato", PASSWORD), json={
            "issuer_ca": "tokyo", "serial": window_ref.hex_serial, "reason": "keyCompromise", "applicant": "agent",
            "agent_authority": "power-of-attorney", "identity_document_checked": True,
            "idempotency_key": f"key-{uuid.uuid4()}"})
        assert filed.status_code == 201, filed.get_data(as_text=True)
        assert app.post("/v1/revocations", environ_base=env, headers=basic_auth("clerk-sato", PASSWORD), json={
            "issuer_ca": "tokyo", "serial": other.hex_serial, "reason": "superseded", "applicant": "self",
            "identity_document_checked": True, "idempotency_key": f"key-{uuid.uuid4()}"}).status_code == 201
        assert app.get("/v1/revocations", environ_base=env,
                       headers=basic_auth("clerk-sato", PASSWORD)).status_code == 200
        online_ref, online_key = new_subscriber(engine, token, now=NOW)
        cms = signed_request(online_ref.der, online_key, {"reason": "cessationOfOperation"})
        online = app.post("/v1/online-revocations", data=cms, content_type="application/pkcs7-mime")
        assert online.status_code == 201, online.get_data(as_text=True)
    finally:
        token.close()
    with session_scope(engine, readonly=True) as s:
        tokyo_id = s.scalar(sa.select(CertificateAuthority.id).where(CertificateAuthority.name == "tokyo"))
    history = QueryHistory(engine, thread=False)
    for answers in (f"{window_ref.hex_serial}=good", f"{window_ref.hex_serial}=revoked,ff=good",
                    f"1{window_ref.hex_serial}=good"):  # the last names another serial
        history.record(Outcome(b"", "successful", "signed", None, tokyo_id, False, answers))
    history.close()

    out_file = tmp_path / "disclosure.txt"
    # one person, even a CA administrator, may not disclose alone
    code, _out, err = revoca(_env(settings), "cert", "disclose", "--ca", "tokyo", window_ref.hex_serial,
                             "--out", str(out_file), login=standard_cast().login("cast-admin"))
    assert code == 8 and not out_file.exists(), err
    code, _out, _err = revoca(_env(settings), "cert", "disclose", "--ca", "tokyo", window_ref.hex_serial,
                              login=NO_LOGIN)
    assert code == 8
    code, out, err = revoca(_env(settings), "cert", "disclose", "--ca", "tokyo", window_ref.hex_serial,
                            "--out", str(out_file), login=standard_cast())
    assert code == 0, err
    assert f"wrote {out_file}: 1 certificate(s), 1 request(s)" in out
    assert oct(out_file.stat().st_mode & 0o777) == "0o600"
    text = out_file.read_text(encoding="utf-8")

    # the certificate, in both languages, and its PEM is the stored certificate
    assert "認証業務情報の開示 / Disclosure of certification records" in text
    assert f"シリアル番号 / Serial number: {window_ref.hex_serial} (hex)" in text
    block = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    assert block is not None
    cert = x509.load_pem_x509_certificate("\n".join(line.strip() for line in block[0].splitlines()).encode())
    assert cert.serial_number == window_ref.serial
    # the request, with the agent's authority, the terminal, the receipt, and staff by role only
    answer = filed.get_json()
    assert f"申請番号 / Request id: {answer['request_id']}" in text
    assert "代理人 / an agent" in text and "委任状 / power of attorney" in text
    assert "受付端末 / Terminal: chiyoda-1" in text and "受付担当者 / Receptionist: (職員 / staff)" in text
    assert "clerk-sato" not in text  # staff names are withheld, in the audit records too
    receipt = _base64_block(text, "受領書 / Receipt")
    assert receipt == base64.b64decode(answer["receipt"])
    roots = tmp_path / "roots.pem"
    roots.write_bytes(bridge_roots_pem(engine))
    (tmp_path / "receipt.der").write_bytes(receipt)
    checked = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "receipt.der"),
                              "-CAfile", str(roots), "-purpose", "any"], capture_output=True, text=True)
    assert checked.returncode == 0 and answer["request_id"] in checked.stdout, checked.stderr
    # the revocation
    assert "失効理由 / Reason: 鍵の危殆化 / keyCompromise (1)" in text
    # audit records naming it: the filing, the list read; not the other certificate's filing
    audit_part = text.split("-- 監査記録 / Audit records naming it (")[1].split("\n\n")[0]
    assert "revocation.request_filed" in audit_part and "ra.requests_listed" in audit_part
    assert audit_part.count("revocation.request_filed") == 1
    # the list read named the other subscriber too: withheld, counted
    assert other.hex_serial not in text and "1 others withheld" in audit_part
    # OCSP: two queries named it (the third named another serial)
    assert "OCSP 問合せ回数 / OCSP queries naming it: 2" in text and "good 1, revoked 1" in text
    assert "no per-certificate record of those fetches exists" in text

    # the read is audited as a personal-data read, with the report's digest
    [disclosed] = audit_events(engine, EVENT)
    detail = json.loads(disclosed.detail)
    assert set(disclosed.actor.split("+")) == set(standard_cast().people_for("cert disclose"))
    assert "cast-admin" in disclosed.actor.split("+") and len(disclosed.actor.split("+")) == 2
    assert detail["personal_data"] is True and detail["certificates"] == [f"tokyo:{window_ref.hex_serial}"]
    assert detail["report_sha256"] == hashlib.sha256(out_file.read_bytes()).hexdigest()
    # never overwritten
    code, _out, err = revoca(_env(settings), "cert", "disclose", "--ca", "tokyo", window_ref.hex_serial,
                             "--out", str(out_file), login=standard_cast())
    assert code != 0 and "never overwritten" in err

    # by subject: the online request, as archived, is in the report and is what the subscriber signed
    subject = x509.load_der_x509_certificate(online_ref.der).subject.rfc4514_string()
    by_subject = tmp_path / "by-subject.txt"
    code, out, err = revoca(_env(settings), "cert", "disclose", "--ca", "tokyo", "--subject", subject,
                            "--out", str(by_subject), login=standard_cast())
    assert code == 0, err
    text = by_subject.read_text(encoding="utf-8")
    assert f"主体者 / Subject: {subject}" in text and "オンライン（本人の署名）/ online" in text
    assert _base64_block(text, "本人が署名した申請") == cms
    assert "失効理由 / Reason: 利用の終了 / cessationOfOperation (5)" in text
