"""The HTTPS servers' certificate (issued by the bridge, key in a file) and the roots clients chain to.

Shared by the RA API and the OCSP responder over TLS: both accept client certificates that
chain to the bridge's self-signed certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import hierarchy
from ca.config import Settings
from ca.enums import CertKind
from ca.errors import PermissionDenied
from ca.hsm.signer import KeyAlgorithm, KeyStore
from ca.storage.engine import Engine, session_scope
from ca.storage.store import Store
from ca.trusted_time import ClockGuard, guard_for

RENEW_BEFORE = dt.timedelta(days=30)


def tls_paths(settings: Settings) -> tuple[Path, Path, Path]:
    base = settings.data_dir / "tls"
    return base / "ra-server.pem", base / "ra-server.key", base / "bridge-roots.pem"


def ensure_server_tls(settings: Settings, engine: Engine, keys: KeyStore, host: str, *,
                      time_guard: ClockGuard | None = None) -> tuple[Path, Path, Path]:
    """The server's certificate (from the bridge, key in a file) and the roots clients chain to.
    `time_guard`: the caller's clock check (ca.trusted_time); None makes one for `settings`."""
    cert_path, key_path, roots_path = tls_paths(settings)
    now = dt.datetime.now(dt.UTC)
    fresh = cert_path.exists() and key_path.exists() and (
        x509.load_pem_x509_certificate(cert_path.read_bytes()).not_valid_after_utc - now > RENEW_BEFORE)
    with session_scope(engine) as session:
        store = Store(session)
        bridge = store.bridge()
        if not fresh:
            ctx = hierarchy.Context(store=store, keys=keys, now=now, actor="ra-server",
                                    time_guard=time_guard or guard_for(settings),
                                    algorithm=KeyAlgorithm(settings.hsm.key_algorithm))
            subject = x509.Name.from_rfc4514_string(f"CN={settings.hierarchy.server_name} RA,O=JPKI,C=JP")
            try:
                cert = hierarchy.issue_with_key_file(
                    ctx, bridge, CertKind.TLS, subject=subject, key_path=key_path,
                    dns_names=(settings.hierarchy.server_name,), ip_addresses=(host,) if _is_ip(host) else ())
            except PermissionDenied as exc:  # a service identity, or no key managers' ceremony session
                raise PermissionDenied(
                    f"the servers' TLS certificate {cert_path} is missing or ends within {RENEW_BEFORE.days} days; "
                    f"issue it with `revoca tls issue --host {host}` (M key managers log in): {exc}") from exc
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        roots = [x509.load_der_x509_certificate(c.der) for c in store.certificates(
            issuer=bridge, kinds=[CertKind.SELF_SIGNED])]
    roots_path.write_bytes(b"".join(r.public_bytes(serialization.Encoding.PEM) for r in roots))
    return cert_path, key_path, roots_path


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
