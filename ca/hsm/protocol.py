"""The HSM service's wire format: one JSON object per line over a Unix socket.

Errors travel as the RevocaError class name and its one-line message so that the client
raises the same error the service hit.  `sign` and `sign_digest` may carry `hash` (sha256,
sha384, sha512; RSA keys only); a request without it signs with the key's default hash.
"""

from __future__ import annotations

import json
from typing import Any

from ca import errors

MAX_LINE = 1 << 20


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise errors.InvalidInput("HSM request too large")
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise errors.InvalidInput("HSM request is not JSON") from exc
    if not isinstance(message, dict):
        raise errors.InvalidInput("HSM request must be a JSON object")
    return message


def error_reply(exc: errors.RevocaError) -> dict[str, Any]:
    return {"ok": False, "error": type(exc).__name__, "message": str(exc)}


def raise_for(reply: dict[str, Any]) -> dict[str, Any]:
    if reply.get("ok"):
        return reply
    cls = getattr(errors, str(reply.get("error")), errors.RevocaError)
    if not (isinstance(cls, type) and issubclass(cls, errors.RevocaError)):
        cls = errors.RevocaError
    raise cls(str(reply.get("message", "HSM service error")))
