"""What the pages show, gathered once per build: value objects made from the public stores and
the directory's ARLs.  Labels are in Japanese and English; the pages put Japanese first."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Sequence

from ca.enums import CAKind, CAStatus, CertKind
from ca.storage.notices import PublicNotice
from ca.storage.provision_reports import KeptReport
from ca.storage.public import PublicCA, PublicCertificate, PublishedARL

KIND_LABELS: dict[CertKind, tuple[str, str]] = {
    CertKind.SELF_SIGNED: ("自己署名証明書", "Self-signed certificate"),
    CertKind.CROSS: ("相互認証証明書", "Cross certificate"),
    CertKind.LINK_OLD_WITH_NEW: ("リンク証明書 (OldWithNew)", "Link certificate (OldWithNew)"),
    CertKind.LINK_NEW_WITH_OLD: ("リンク証明書 (NewWithOld)", "Link certificate (NewWithOld)"),
    CertKind.OCSP_RESPONDER: ("OCSP レスポンダ証明書", "OCSP responder certificate"),
    CertKind.CVS_SERVER: ("検証サーバ証明書", "Validation server certificate"),
    CertKind.TSA: ("タイムスタンプ局証明書", "Time-stamp authority certificate"),
}
CA_KIND_LABELS = {CAKind.BRIDGE: ("ブリッジ認証局", "Bridge CA"), CAKind.REGIONAL: ("都道府県認証局", "Prefectural CA"),
                  CAKind.EXTERNAL: ("外部認証局", "External CA")}
CA_STATUS_LABELS = {CAStatus.ACTIVE: ("運用中", "in operation"), CAStatus.ADOPTING: ("移行中", "being adopted"),
                    CAStatus.COMPROMISED: ("私有鍵危殆化", "key compromised"),
                    CAStatus.TERMINATED: ("業務終了", "terminated")}
NOTICE_LABELS = {"compromise": ("私有鍵の危殆化", "Key compromise"), "termination": ("認証業務の終了", "Termination")}

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def slug(ca: PublicCA) -> str:
    """The file name of a CA's page: its name when that is a plain ASCII word, else ca-<id>."""
    return ca.name if _SLUG.fullmatch(ca.name) else f"ca-{ca.id}"


def fingerprint(data: bytes, algorithm: str) -> str:
    """Upper-case hex in colon-separated pairs, as `openssl x509 -fingerprint` prints it."""
    return ":".join(f"{b:02X}" for b in hashlib.new(algorithm, data).digest())


@dataclasses.dataclass(frozen=True, slots=True)
class CertView:
    cert: PublicCertificate
    sha256: str
    sha1: str
    stem: str  # certs/<stem>.cer and .pem
    status: str  # valid | revoked | expired | not-yet-valid
    partner: str | None  # for a cross certificate: the other CA

    @property
    def kind_label(self) -> tuple[str, str]:
        return KIND_LABELS[self.cert.kind]

    @property
    def serial_hex(self) -> str:
        return format(self.cert.serial, "x")


def _status(cert: PublicCertificate, now: dt.datetime) -> str:
    if cert.revoked_at is not None:
        return "revoked"
    if cert.not_after <= now:
        return "expired"
    if cert.not_before > now:
        return "not-yet-valid"
    return "valid"


def cert_view(cert: PublicCertificate, now: dt.datetime, partner: str | None = None) -> CertView:
    return CertView(cert, fingerprint(cert.der, "sha256"), fingerprint(cert.der, "sha1"),
                    hashlib.sha256(cert.der).hexdigest(), _status(cert, now), partner)


@dataclasses.dataclass(frozen=True, slots=True)
class ARLView:
    arl: PublishedARL
    der: bytes | None  # None when the directory did not hold it at build time
    file: str  # arl/<slug>-<number>.arl

    @property
    def sha256(self) -> str:
        return fingerprint(self.der, "sha256") if self.der else ":".join(f"{b:02X}" for b in self.arl.sha256)


@dataclasses.dataclass(frozen=True, slots=True)
class CAView:
    ca: PublicCA
    slug: str
    own: tuple[CertView, ...]  # self-signed
    links: tuple[CertView, ...]
    cross_issued: tuple[CertView, ...]  # this CA certified another CA's key
    cross_received: tuple[CertView, ...]  # another CA certified this CA's key
    others: tuple[CertView, ...]  # responder, validation server, TSA certificates it issued
    arl: ARLView | None
    notices: tuple[PublicNotice, ...]

    @property
    def kind_label(self) -> tuple[str, str]:
        return CA_KIND_LABELS[self.ca.kind]

    @property
    def status_label(self) -> tuple[str, str]:
        return CA_STATUS_LABELS[self.ca.status]


@dataclasses.dataclass(frozen=True, slots=True)
class PracticeStatement:
    """The practice statement: a copy of a file (`text`, kept as practice-statement.txt) or a link."""

    title: str
    text: str | None = None
    url: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Site:
    generated_at: dt.datetime
    mark: str
    cas: tuple[CAView, ...]
    notices: tuple[PublicNotice, ...]
    reports: tuple[KeptReport, ...]
    practice: PracticeStatement | None

    def certificates(self) -> list[CertView]:
        """Every certificate offered for download, once each."""
        seen: dict[str, CertView] = {}
        for view in self.cas:
            for cert in (*view.own, *view.links, *view.cross_issued, *view.cross_received, *view.others):
                seen.setdefault(cert.stem, cert)
        return list(seen.values())


LINKS = (CertKind.LINK_OLD_WITH_NEW, CertKind.LINK_NEW_WITH_OLD)
OTHERS = (CertKind.OCSP_RESPONDER, CertKind.CVS_SERVER, CertKind.TSA)


def gather(*, cas: Sequence[PublicCA], certificates: Sequence[PublicCertificate], arls: dict[str, PublishedARL],
           arl_bytes: Callable[[bytes], bytes | None], notices: Sequence[PublicNotice],
           reports: Sequence[KeptReport], practice: PracticeStatement | None, now: dt.datetime,
           mark: str) -> Site:
    """The site's content.  `arl_bytes` maps a published ARL's SHA-256 to its DER (or None)."""
    views = []
    for ca in cas:
        s = slug(ca)
        mine = [c for c in certificates if ca.name in (c.issuer_ca, c.subject_ca)]
        arl = arls.get(ca.name)
        views.append(CAView(
            ca=ca, slug=s,
            own=tuple(cert_view(c, now) for c in mine if c.kind is CertKind.SELF_SIGNED and c.subject_ca == ca.name),
            links=tuple(cert_view(c, now) for c in mine if c.kind in LINKS and c.subject_ca == ca.name),
            cross_issued=tuple(cert_view(c, now, c.subject_ca) for c in mine
                               if c.kind is CertKind.CROSS and c.issuer_ca == ca.name and c.subject_ca != ca.name),
            cross_received=tuple(cert_view(c, now, c.issuer_ca) for c in mine
                                 if c.kind is CertKind.CROSS and c.subject_ca == ca.name
                                 and c.issuer_ca != ca.name),
            others=tuple(cert_view(c, now) for c in mine if c.kind in OTHERS and c.issuer_ca == ca.name),
            arl=ARLView(arl, arl_bytes(arl.sha256), f"arl/{s}-{arl.number}.arl") if arl else None,
            notices=tuple(n for n in notices if n.ca_name == ca.name),
        ))
    return Site(generated_at=now, mark=mark, cas=tuple(views), notices=tuple(notices), reports=tuple(reports),
                practice=practice)
