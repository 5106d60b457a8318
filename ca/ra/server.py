"""`revoca serve ra`: the RA API under gunicorn over HTTPS with client certificates.

gunicorn checks that a client certificate chains to the bridge CA; ca.http.client_cert
hands its DER to the app in the environ.  Client certificates are optional at the TLS
level because the subscriber's online revocation carries its own signature instead; the
window endpoints refuse any request without a registered terminal's certificate.
"""

from __future__ import annotations

import ssl
from typing import Any

from ca.audit.service_events import running
from ca.config import Settings
from ca.hsm.client import HSMClient
from ca.http.client_cert import ClientCertificate
from ca.http.gunicorn import GunicornServer
from ca.http.server_tls import ensure_server_tls
from ca.ra.app import create_app
from ca.storage.engine import Engine, make_engine
from ca.storage.grants import role_for


def serve(settings: Settings, engine: Engine, *, host: str, port: int, workers: int) -> None:
    cert, key, roots = ensure_server_tls(settings, engine, HSMClient(settings.hsm_socket), host)
    options = {
        "bind": f"{host}:{port}", "workers": workers, "certfile": str(cert), "keyfile": str(key),
        "ca_certs": str(roots), "cert_reqs": ssl.CERT_OPTIONAL, "accesslog": "-", "timeout": 60,
        "graceful_timeout": 10,
    }

    def load() -> Any:
        engine = make_engine(settings.db_url, pool_pre_ping=True, role=role_for(settings, "ra"))
        return ClientCertificate(create_app(engine, HSMClient(settings.hsm_socket),
                                            password_policy=settings.operators.password_policy))

    with running(lambda: make_engine(settings.db_url, role=role_for(settings, "ra")), "ra",
                 address=f"{host}:{port}", workers=workers):
        GunicornServer(options, load).run()
