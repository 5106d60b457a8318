"""Notices to relying parties (seed 004 2.2, 4.9.12(1), 5.7.3, 5.8): a CA key compromise or a
CA's termination, published on the web repository with when it took effect and what to do.

The act writes its notice in its own transaction, so a compromise is never on record without
its notice nor the other way round:

    from ca.storage.notices import TERMINATION, record_notice
    record_notice(session, ca_id=ca.id, kind=TERMINATION, occurred_at=when,
                  recorded_by="alice+bob", now=now)

The texts default to this module's wording for the kind (Japanese and English); a caller may
give its own.  Notices are never changed or deleted; `NoticeReads` lists them for the web.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ca.errors import InvalidInput, NotFound
from ca.storage.base import SessionStore
from ca.storage.models import CertificateAuthority, Notice

COMPROMISE = "compromise"
TERMINATION = "termination"
KINDS = (COMPROMISE, TERMINATION)


@dataclass(frozen=True, slots=True)
class NoticeText:
    summary_ja: str
    summary_en: str
    action_ja: str
    action_en: str


def default_text(kind: str, ca_name: str, occurred_at: dt.datetime) -> NoticeText:
    """The standard wording of a notice of `kind` about CA `ca_name`, effective `occurred_at`."""
    when = occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if kind == COMPROMISE:
        return NoticeText(
            summary_ja=(f"認証局 {ca_name} の私有鍵が危殆化しました。この鍵で署名されたすべての証明書は "
                        f"{when} をもって失効しました（失効理由 cACompromise）。"),
            summary_en=(f"The private key of CA {ca_name} was compromised. Every certificate signed by "
                        f"this key was revoked as of {when} (reason cACompromise)."),
            action_ja=("この認証局の自己署名証明書を信頼点から削除し、この鍵で署名された証明書、CRL、ARL 及び "
                       "OCSP 応答を信頼しないでください。最新の ARL と CRL を取得し直し、この認証局の証明書で"
                       "検証した署名を確認し直してください。"),
            action_en=("Remove this CA's self-signed certificate from your trust anchors and do not rely on any "
                       "certificate, CRL, ARL or OCSP response signed by this key. Fetch the newest ARL and CRL "
                       "again and re-check signatures you verified with this CA's certificates."),
        )
    if kind == TERMINATION:
        return NoticeText(
            summary_ja=f"認証局 {ca_name} は {when} をもって認証業務を終了しました。",
            summary_en=f"CA {ca_name} terminated its certification services as of {when}.",
            action_ja=("この認証局が発行した証明書を新たに信頼しないでください。この認証局の証明書を信頼点から"
                       "削除してください。終了前に検証した署名の記録は、終了時点の失効情報とともに保管してください。"),
            action_en=("Do not newly rely on certificates this CA issued, and remove its certificates from your "
                       "trust anchors. Keep the records of signatures verified before the termination together "
                       "with the revocation information current at the termination."),
        )
    raise InvalidInput(f"unknown notice kind {kind!r}; use one of {', '.join(KINDS)}")


def record_notice(session: Session, *, ca_id: int, kind: str, occurred_at: dt.datetime, recorded_by: str,
                  now: dt.datetime, text: NoticeText | None = None) -> Notice:
    """Add a notice about CA `ca_id` in the caller's transaction (it commits with the act).

    `kind` is COMPROMISE or TERMINATION; `text` defaults to default_text(kind, ...).
    """
    if kind not in KINDS:
        raise InvalidInput(f"unknown notice kind {kind!r}; use one of {', '.join(KINDS)}")
    ca = session.get(CertificateAuthority, ca_id)
    if ca is None:
        raise NotFound(f"no CA with id {ca_id}")
    text = text or default_text(kind, ca.name, occurred_at)
    notice = Notice(ca_id=ca_id, kind=kind, occurred_at=occurred_at, recorded_at=now, recorded_by=recorded_by,
                    summary_ja=text.summary_ja, summary_en=text.summary_en,
                    action_ja=text.action_ja, action_en=text.action_en)
    session.add(notice)
    session.flush()
    return notice


@dataclass(frozen=True, slots=True)
class PublicNotice:
    """A notice as the web repository shows it."""

    id: int
    ca_name: str
    kind: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    text: NoticeText


class NoticeReads(SessionStore):
    def notices(self) -> list[PublicNotice]:
        """Every notice, newest first."""
        rows = self.session.execute(sa.select(Notice, CertificateAuthority.name)
                                    .join(CertificateAuthority, Notice.ca_id == CertificateAuthority.id)
                                    .order_by(Notice.occurred_at.desc(), Notice.id.desc()))
        return [PublicNotice(id=n.id, ca_name=name, kind=n.kind, occurred_at=n.occurred_at,
                             recorded_at=n.recorded_at,
                             text=NoticeText(n.summary_ja, n.summary_en, n.action_ja, n.action_en))
                for n, name in rows]
