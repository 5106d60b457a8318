"""`revoca serve ra`: the RA API under gunicorn over HTTPS with client certificates.

gunicorn checks that a client certificate chains to the bridge CA; `ClientCertificate`
hands its DER to the app in the environ.  Client certificates are optional at the TLS
level because the subscriber's online revocation carries its own signature instead; the
window endpoints refuse any request without a registered terminal's certificate.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from gunicorn.app.base import BaseApplication

from ca import hierarchy
from ca.config import Settings
from ca.db import make_engine, session_scope
from ca.hsm.client import HSMClient
from ca.hsm.signer import KeyAlgorithm
from ca.models import CertKind
from ca.ra.app import create_app
from ca.ra.auth import CLIENT_CERT_ENVIRON
from ca.store import Store

RENEW_BEFORE = dt.timedelta(days=30)


class ClientCertificate:
    """WSGI middleware: the verified TLS client certificate's DER into the environ."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ.pop(CLIENT_CERT_ENVIRON, None)
        sock = environ.get("gunicorn.socket")
        if isinstance(sock, ssl.SSLSocket):
            der = sock.getpeercert(binary_form=True)
            if der:
                environ[CLIENT_CERT_ENVIRON] = der
        return self.app(environ, start_response)


def tls_paths(settings: Settings) -> tuple[Path, Path, Path]:
    base = settings.data_dir / "tls"
    return base / "ra-server.pem", base / "ra-server.key", base / "bridge-roots.pem"


def ensure_server_tls(settings: Settings, engine: sa.Engine, keys: HSMClient, host: str) -> tuple[Path, Path, Path]:
    """The RA server's certificate (from the bridge, key in a file) and the roots clients chain to."""
    cert_path, key_path, roots_path = tls_paths(settings)
    now = dt.datetime.now(dt.UTC)
    fresh = cert_path.exists() and key_path.exists() and (
        x509.load_pem_x509_certificate(cert_path.read_bytes()).not_valid_after_utc - now > RENEW_BEFORE)
    with session_scope(engine) as session:
        store = Store(session)
        bridge = store.bridge()
        if not fresh:
            ctx = hierarchy.Context(store=store, keys=keys, now=now, actor="ra-server",
                                    algorithm=KeyAlgorithm(settings.hsm.key_algorithm))
            subject = x509.Name.from_rfc4514_string(f"CN={settings.hierarchy.server_name} RA,O=JPKI,C=JP")
            cert = hierarchy.issue_with_key_file(
                ctx, bridge, CertKind.TLS, subject=subject, key_path=key_path,
                dns_names=(settings.hierarchy.server_name,), ip_addresses=(host,) if _is_ip(host) else ())
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        roots = [x509.load_der_x509_certificate(c.der) for c in store.certificates(
            issuer=bridge, kinds=[CertKind.SELF_SIGNED])]
    roots_path.write_bytes(b"".join(r.public_bytes(serialization.Encoding.PEM) for r in roots))
    return cert_path, key_path, roots_path


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with these options, serving what `load` builds in each worker (after the fork, so that
    each worker has its own database pool and HSM connection)."""

    def __init__(self, options: dict[str, Any], load: Callable[[], Any]) -> None:
        self.options = options
        self._load = load
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load()


def serve(settings: Settings, engine: sa.Engine, *, host: str, port: int, workers: int) -> None:
    cert, key, roots = ensure_server_tls(settings, engine, HSMClient(settings.hsm_socket), host)
    options = {
        "bind": f"{host}:{port}", "workers": workers, "certfile": str(cert), "keyfile": str(key),
        "ca_certs": str(roots), "cert_reqs": ssl.CERT_OPTIONAL, "accesslog": "-", "timeout": 60,
        "graceful_timeout": 10,
    }

    def load() -> Any:
        engine = make_engine(settings.db_url, pool_pre_ping=True)
        return ClientCertificate(create_app(engine, HSMClient(settings.hsm_socket)))

    GunicornServer(options, load).run()
