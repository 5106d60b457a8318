"""The verified TLS client certificate, handed from gunicorn to the app in the WSGI environ.

gunicorn has already checked that the certificate chains to the roots it was given; the
app decides who that certificate belongs to (an RA terminal, a verifier).  The environ key
is one no HTTP header can set, and is cleared before it is filled.
"""

from __future__ import annotations

import ssl
from typing import Any

CLIENT_CERT_ENVIRON = "revoca.client_cert_der"


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
