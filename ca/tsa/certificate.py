"""The TSA's certificate: issued by the bridge CA, critical id-kp-timeStamping EKU (ca.profiles),
RSA key made in the token, through the same path as the OCSP responder certificates
(ca.hierarchy.issue_end_entity).  One valid, unrevoked certificate with a token key is current.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import hierarchy
from ca.config import Settings
from ca.enums import CertKind
from ca.errors import NotFound
from ca.hsm.signer import KeyAlgorithm, KeyStore
from ca.storage.engine import Engine, session_scope
from ca.storage.store import ReadStore, Store
from ca.trusted_time import ClockGuard, guard_for
from ca.tsa.profile import TSA_SUBJECT, key_algorithm

RENEW_BEFORE = dt.timedelta(days=30)


@dataclasses.dataclass(frozen=True, slots=True)
class TSACertificate:
    """The current TSA certificate, the label of its key in the token, and the bridge certificate above it."""

    certificate: x509.Certificate
    key_label: str
    chain: tuple[x509.Certificate, ...]

    def expires_within(self, now: dt.datetime, margin: dt.timedelta) -> bool:
        return self.certificate.not_valid_after_utc - now <= margin


def current(store: ReadStore, now: dt.datetime) -> TSACertificate:
    """The newest TSA certificate valid at `now`, not revoked, whose key is in the token."""
    bridge = store.bridge()
    rows = [c for c in store.certificates(issuer=bridge, kinds=[CertKind.TSA])
            if c.key_label and c.revocation is None and c.not_before <= now < c.not_after]
    if not rows:
        raise NotFound("revoca has no valid time-stamp authority certificate; "
                       "issue one with `revoca tsa certificate --operator KEY-MANAGER ...` (M key managers)")
    row = rows[-1]
    root = x509.load_der_x509_certificate(store.self_signed_der(bridge, row.issuer_key))
    return TSACertificate(x509.load_der_x509_certificate(row.der), row.key_label, (root,))  # type: ignore[arg-type]


def issue_certificate(ctx: hierarchy.Context) -> x509.Certificate:
    """A new TSA certificate from the bridge CA's current key, with a new RSA key in the token."""
    tsa_ctx = dataclasses.replace(ctx, algorithm=key_algorithm(ctx.algorithm))
    return hierarchy.issue_end_entity(tsa_ctx, ctx.store.bridge(), CertKind.TSA,
                                      subject=x509.Name.from_rfc4514_string(TSA_SUBJECT))


def ensure_certificate(settings: Settings, engine: Engine, keys: KeyStore, *, now: dt.datetime, actor: str,
                       renew: bool = False, time_guard: ClockGuard | None = None) -> tuple[TSACertificate, bool]:
    """The current TSA certificate, issued first when there is none, it ends within RENEW_BEFORE, or
    `renew`; (certificate, whether it was issued now).  Writes its PEM files (see `pem_paths`).
    `time_guard`: the caller's clock check (ca.trusted_time); None makes one for `settings`."""
    with session_scope(engine) as session:
        store = Store(session)
        try:
            found: TSACertificate | None = current(store, now)
        except NotFound:
            found = None
        issued = renew or found is None or found.expires_within(now, RENEW_BEFORE)
        if issued:
            ctx = hierarchy.Context(store=store, keys=keys, now=now, actor=actor,
                                    time_guard=time_guard or guard_for(settings),
                                    algorithm=KeyAlgorithm(settings.hsm.key_algorithm))
            issue_certificate(ctx)
            found = current(store, now)  # the one just issued: the newest
    assert found is not None  # there was one, or it was issued just above
    write_pem_files(settings, found)
    return found, issued


def pem_paths(settings: Settings) -> tuple[Path, Path]:
    """Where the current TSA certificate and the bridge certificate above it are kept for verifiers
    (`openssl ts -verify -CAfile bridge-roots.pem -untrusted tsa.pem`)."""
    base = settings.data_dir / "tsa"
    return base / "tsa.pem", base / "bridge-roots.pem"


def write_pem_files(settings: Settings, tsa: TSACertificate) -> tuple[Path, Path]:
    cert_path, roots_path = pem_paths(settings)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(tsa.certificate.public_bytes(serialization.Encoding.PEM))
    roots_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in tsa.chain))
    return cert_path, roots_path
