"""The responder's HTTP side (RFC 6960 appendix A, RFC 5019 section 5): a bare WSGI callable.

No web framework on this path: one POST body or GET path in, DER out.  HTTP-level
mistakes (method, content type, size) get a short 4xx; everything that reaches the
responder gets an OCSPResponse, malformed or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ca.http.client_cert import CLIENT_CERT_ENVIRON
from ca.http.der_over_http import BodyRefused, StartResponse, der_body, plain
from ca.http.rate_limit import RateLimiter, retry_after_header
from ocsp.history import QueryHistory
from ocsp.request import MalformedRequest, request_from_get_path
from ocsp.responder import Responder
from ocsp.response import error_response

MAX_BODY = 64 << 10  # a request for 64 certificates with a signature and a chain fits easily
OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
# The answers carry revocation reasons meant for registered verifiers only: no shared caches.
CACHE_CONTROL = "private"



def make_app(responder: Responder, history: QueryHistory | None = None,
             address_limit: RateLimiter | None = None) -> Callable[..., Iterable[bytes]]:
    """`address_limit` (per client address) answers 429 before anything is read or parsed."""
    limit = address_limit or RateLimiter(0)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if limit.enabled and (wait := limit.retry_after(environ.get("REMOTE_ADDR", ""))):
            return plain(start_response, "429 Too Many Requests", "too many requests from this address; retry later",
                         [retry_after_header(wait)])
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "POST":
            try:
                der = der_body(environ, OCSP_REQUEST, MAX_BODY)
            except BodyRefused as refused:
                return plain(start_response, refused.status, refused.text)
        elif method == "GET":
            path = environ.get("PATH_INFO", "").lstrip("/")
            if len(path) > 2 * MAX_BODY:
                return plain(start_response, "414 URI Too Long", "request too long for GET; POST it")
            try:
                der = request_from_get_path(path)
            except MalformedRequest:
                der = b""  # answered below as malformed, like any other unparsable request
        else:
            return plain(start_response, "405 Method Not Allowed", "GET or POST", [("Allow", "GET, POST")])
        outcome = responder.respond(der, tls_client_cert=environ.get(CLIENT_CERT_ENVIRON))
        if history is not None:
            history.record(outcome)
        body = outcome.body or error_response("internal_error")
        start_response("200 OK", [("Content-Type", OCSP_RESPONSE), ("Content-Length", str(len(body))),
                                  ("Cache-Control", CACHE_CONTROL)])
        return [body]

    return app
