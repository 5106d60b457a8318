"""The disclosure report as the subscriber receives it: UTF-8 text, every label in Japanese and
English, times in UTC, the certificate as PEM and the signed documents (receipt, online request)
as base64 the subscriber can check with `openssl cms -verify`.

Staff names are withheld (seed 004 9.4: the staff's names are their own personal data, not the
subscriber's): a receptionist, reviewer or approver is shown by role, and an operator named in
an audit record as "(staff)"; terminals and municipalities are shown.  Other subscribers named
in the same audit record (a clerk's list read names many) are withheld too, counted only.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.disclosure.report import CertificateRecords, Disclosure
from ca.enums import AgentAuthority, Applicant, RequestChannel, RequestStatus
from ca.revocation.reasons import RFC_NAME, RevocationReason

STAFF = "(職員 / staff)"

REASONS_JA = {1: "鍵の危殆化", 2: "認証局の危殆化", 3: "所属等の変更", 4: "更新", 5: "利用の終了"}
CHANNELS = {RequestChannel.RA_WINDOW: "市区町村の窓口 / municipal window", RequestChannel.ONLINE:
            "オンライン（本人の署名）/ online, signed by the subscriber", RequestChannel.DUAL_CONTROL:
            "認証局の審査 / CA dual control", RequestChannel.CA_COMPROMISE: "認証局の危殆化 / CA compromise",
            RequestChannel.RECORD_CHANGE: "住民票の異動 / resident-record change"}
STATUSES = {RequestStatus.PENDING_REVIEW: "審査待ち / waiting for review", RequestStatus.PENDING_APPROVAL:
            "承認待ち / waiting for approval", RequestStatus.COMPLETED: "完了 / completed",
            RequestStatus.REJECTED: "却下 / rejected"}
APPLICANTS = {Applicant.SELF: "本人 / the subscriber", Applicant.AGENT: "代理人 / an agent"}
AUTHORITIES = {AgentAuthority.POWER_OF_ATTORNEY: "委任状 / power of attorney",
               AgentAuthority.PARENTAL_AUTHORITY: "法定代理人（親権）/ parental authority",
               AgentAuthority.GUARDIANSHIP: "成年後見人 / guardianship"}


def when(value: dt.datetime | None) -> str:
    return "—" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def reason(value: int | None) -> str:
    if value is None:
        return "—"
    return f"{REASONS_JA.get(value, '?')} / {RFC_NAME.get(RevocationReason(value), '?')} ({value})"


def _wrap(data: bytes) -> list[str]:
    text = base64.b64encode(data).decode()
    return ["    " + text[i:i + 64] for i in range(0, len(text), 64)]


class _Redactor:
    """Replaces the names of revoca's staff in audit text."""

    def __init__(self, staff: set[str]) -> None:
        names = sorted((n for n in staff if n), key=len, reverse=True)
        self._pattern = re.compile("|".join(rf"(?<![\w-]){re.escape(n)}(?![\w-])" for n in names)) if names else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(STAFF, text) if self._pattern else text


def render(disclosure: Disclosure, staff: set[str]) -> bytes:
    redact = _Redactor(staff)
    out = [
        "認証業務情報の開示 / Disclosure of certification records",
        "（署名利用者の請求に基づく情報開示：認証実務規程 9.4.7.1 / on the subscriber's request, CPS 9.4.7.1）",
        "",
        f"作成日時 / Made at: {when(disclosure.made_at)}",
        f"対象 / Records asked for: {disclosure.asked_by}",
        f"証明書の数 / Certificates: {len(disclosure.certificates)}",
    ]
    for i, records in enumerate(disclosure.certificates, 1):
        out += ["", f"== 証明書 {i} / Certificate {i} ==", *_certificate(records), *_revocation(records),
                *_requests(records), *_corrections(records), *_audit(records, redact), *_fetches(records)]
    out += ["", "以上 / End of the report"]
    return ("\n".join(out) + "\n").encode("utf-8")


def _certificate(r: CertificateRecords) -> list[str]:
    c = r.certificate
    pem = x509.load_der_x509_certificate(c.der).public_bytes(Encoding.PEM).decode().rstrip("\n")
    return [
        f"発行者 / Issuing CA: {r.ca}",
        f"シリアル番号 / Serial number: {c.serial:x} (hex)",
        f"主体者 / Subject: {c.subject_dn}",
        f"有効期間の開始 / Valid from: {when(c.not_before)}",
        f"有効期間の満了 / Valid until: {when(c.not_after)}",
        f"SHA-256 フィンガープリント / SHA-256 fingerprint: {c.fingerprint_sha256.hex()}",
        f"登録日時 / Recorded at: {when(c.created_at)}",
        "証明書 / Certificate (PEM):", *("    " + line for line in pem.splitlines()),
    ]


def _revocation(r: CertificateRecords) -> list[str]:
    head = "-- 失効 / Revocation --"
    if r.revocation is None:
        return ["", head, "失効していません / Not revoked"]
    rev = r.revocation
    by = next((q.request.public_id for q in r.requests if q.request.id == rev.request_id), None)
    return ["", head, f"失効日時 / Revocation time: {when(rev.revocation_time)}",
            f"失効理由 / Reason: {reason(rev.reason)}",
            f"記録日時 / Recorded at: {when(rev.recorded_at)}",
            f"失効させた申請 / By request: {by or '— (認証局の処理 / by the CA)'}"]


def _requests(r: CertificateRecords) -> list[str]:
    out = ["", f"-- 失効申請 / Revocation requests ({len(r.requests)}) --"]
    if not r.requests:
        out.append("ありません / None")
    for n, row in enumerate(r.requests, 1):
        q = row.request
        out += [f"[{n}] 申請番号 / Request id: {q.public_id}",
                f"    受付経路 / Channel: {CHANNELS.get(q.channel, q.channel)}",
                f"    状態 / Status: {STATUSES.get(q.status, q.status)}",
                f"    受付日時 / Accepted at: {when(q.accepted_at)}",
                f"    申請の理由 / Reason asked: {reason(q.reason)}"]
        if q.applicant is not None:
            out.append(f"    申請者 / Applicant: {APPLICANTS.get(q.applicant, q.applicant)}")
        if q.channel in (RequestChannel.RA_WINDOW, RequestChannel.DUAL_CONTROL):
            out.append(f"    本人確認書類の確認 / Identity document checked: "
                       f"{'はい / yes' if q.identity_document_checked else 'いいえ / no'}")
        if q.agent_authority is not None:
            authority = AUTHORITIES.get(q.agent_authority, q.agent_authority)
            out.append(f"    代理権限の書類 / Agent's authority: {authority}")
        if q.record_change_event is not None:
            out.append(f"    住民票の異動 / Record-change event: {q.record_change_event.value}")
        if row.terminal:
            out.append(f"    受付端末 / Terminal: {row.terminal}")
        for label, name, at in (("受付担当者 / Receptionist", row.receptionist, None),
                                ("審査担当者 / Reviewer", row.reviewer, q.reviewed_at),
                                ("承認者 / Approver", row.approver, q.decided_at)):
            if name:
                out.append(f"    {label}: {STAFF}" + (f", {when(at)}" if at else ""))
        if q.receipt:
            out += ["    受領書 / Receipt (CMS SignedData, DER, base64):", *_wrap(q.receipt)]
        if q.signed_request:
            out += ["    本人が署名した申請 / The signed online request as archived (CMS SignedData, DER, base64):",
                    *_wrap(q.signed_request)]
    return out


ACTIONS = {"correct": "訂正 / correct", "add": "追加 / add", "delete": "削除 / delete"}


def _corrections(r: CertificateRecords) -> list[str]:
    """The subscriber's own correction requests (9.4.7.2) and what became of them."""
    if not r.corrections:
        return []
    out = ["", f"-- 訂正等の請求 / Correction requests ({len(r.corrections)}) --"]
    for n, c in enumerate(r.corrections, 1):
        out += [f"[{n}] 請求番号 / Request id: {c.public_id} ({ACTIONS.get(c.action, c.action)})",
                f"    対象の記録 / Record: {c.record}", f"    請求の内容 / Asked: {c.requested or '—'}",
                f"    状態 / Status: {STATUSES.get(c.status, c.status)}",
                f"    受付日時 / Accepted at: {when(c.accepted_at)}",
                f"    決定日時 / Decided at: {when(c.decided_at)}"]
    return out


def _audit(r: CertificateRecords, redact: _Redactor) -> list[str]:
    out = ["", f"-- 監査記録 / Audit records naming it ({len(r.audit)}) --"]
    if not r.audit:
        out.append("ありません / None")
    mine = {f"{r.ca}:{r.certificate.serial:x}", *(q.request.public_id for q in r.requests)}
    for line in r.audit:
        detail = _own_only(line.detail, mine)
        out.append(f"#{line.seq} {when(line.at)} {line.event_type} {line.result} {redact(line.actor)} "
                   f"{redact(json.dumps(detail, ensure_ascii=False, sort_keys=True))}")
    return out


def _own_only(detail: dict[str, object], mine: set[str]) -> dict[str, object]:
    """`detail` with other subscribers' certificates and requests (a list read names many) withheld."""
    out = dict(detail)
    for key in ("certificates", "requests"):
        value = out.get(key)
        if isinstance(value, list):
            kept = [v for v in value if v in mine]
            others = len(value) - len(kept)
            out[key] = kept + ([f"(他 {others} 件は非開示 / {others} others withheld)"] if others else [])
    return out


def _fetches(r: CertificateRecords) -> list[str]:
    o = r.ocsp
    answered = ", ".join(f"{k} {v}" for k, v in sorted(o.answered.items())) or "—"
    return ["", "-- 失効情報の照会 / Status look-ups --",
            f"OCSP 問合せ回数 / OCSP queries naming it: {o.queries} (最初 / first {when(o.first)}, "
            f"最後 / last {when(o.last)}; 回答 / answers: {answered})",
            *_lists(r),
            "CRL・ARL は認証局ごとに取得され、証明書ごとの取得記録はありません / CRLs and ARLs are fetched per CA: "
            "no per-certificate record of those fetches exists"]


def _lists(r: CertificateRecords) -> list[str]:
    """Which lists carried the revocation to verifiers, and how often they were fetched."""
    lists = r.lists
    if lists is None:
        return []
    name = lists.list_type.value.upper()
    if not lists.count:
        return [f"{name}: 失効後の発行はまだありません / none issued since the revocation yet"]
    return [f"{name}: 失効を掲載した {lists.count} 件 / {lists.count} issued listing it, "
            f"#{lists.first_number} ({when(lists.first_this_update)}) – #{lists.last_number}; "
            f"検証者による取得 / fetched by verifiers: {lists.fetches} 回 / times, {lists.verifiers} 者 / verifiers"]
