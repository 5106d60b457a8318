"""The HTTP edge the bare-WSGI DER services share (OCSP responder, time-stamp authority).

Both take one DER body of a given media type and answer refusals of the envelope (method,
media type, length) as short plain-text HTTP errors, before any parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]


class BodyRefused(Exception):
    """The request's envelope is unusable: answered with `status` and `text`, nothing parsed."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


def plain(start_response: StartResponse, status: str, text: str,
          extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    body = (text + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            *(extra or [])])
    return [body]


def der_body(environ: dict[str, Any], media_type: str, max_bytes: int) -> bytes:
    """The POSTed body: of `media_type`, with a Content-Length of at most `max_bytes` (else BodyRefused)."""
    if environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower() != media_type:
        raise BodyRefused("415 Unsupported Media Type", f"send {media_type}")
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if length < 0:
        raise BodyRefused("411 Length Required", "Content-Length required")
    if length > max_bytes:
        raise BodyRefused("413 Content Too Large", f"requests are at most {max_bytes} bytes")
    return environ["wsgi.input"].read(length)
