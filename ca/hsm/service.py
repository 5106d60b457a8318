"""The HSM service (`revoca serve hsm`): the one process that holds the activated token.

Key managers activate it over a local Unix socket (mode 0600 in a 0700 directory); the RA,
the scheduler and the CLI sign through the same socket, so the token PIN exists in one
process only and only while activated.  Shares are held in memory until the threshold is
met and are never written anywhere.
"""

from __future__ import annotations

import base64
import logging
import os
import socketserver
import threading
from pathlib import Path
from typing import Any

from ca import audit
from ca.enums import Role
from ca.errors import InvalidInput, RevocaError, ServiceUnavailable
from ca.hsm import protocol
from ca.hsm.activation import Activation, Holder, ShareSetInfo
from ca.hsm.signer import KeyAlgorithm
from ca.hsm.token import Token
from ca.storage.authorities import spki_der
from ca.storage.engine import Engine, session_scope
from ca.storage.store import ReadStore

log = logging.getLogger("revoca.hsm")


def load_share_set(engine: Engine, token_label: str) -> ShareSetInfo:
    with session_scope(engine) as session:
        share_set = ReadStore(session).active_share_set(token_label)
        return ShareSetInfo(
            set_id=share_set.id, threshold=share_set.threshold, total=share_set.total,
            holders=tuple(Holder(h.share_index, h.operator.name, h.digest) for h in share_set.holders),
        )


class HSMService:
    """Answers one request at a time per connection; see ca.hsm.protocol for the format."""

    def __init__(self, token: Token, engine: Engine) -> None:
        self.engine = engine
        self.activation = Activation(token, load_share_set(engine, token.label))

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            raise InvalidInput(f"unknown HSM operation {op!r}")
        return {"ok": True, **handler(request)}

    def _status(self) -> dict[str, Any]:
        st = self.activation.status()
        return {"activated": st.activated, "threshold": st.threshold, "total": st.total,
                "presented_by": list(st.presented_by), "needed": st.needed, "line": st.line()}

    def _op_status(self, _req: dict[str, Any]) -> dict[str, Any]:
        return self._status()

    def _op_activate(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            status, holder = self.activation.present(str(req.get("share", "")))
        except RevocaError as exc:
            audit.record_failure(self.engine, "hsm.share_presented", actor="unknown key manager", error=str(exc))
            raise
        with session_scope(self.engine) as session:
            audit.record(session, "hsm.share_presented", actor=holder, needed=status.needed)
            if status.activated:
                audit.record(session, "hsm.activated", actor="hsm-service", token=status.token_label)
        log.info("share presented by %s: %s", holder, status.line())
        return self._status()

    def _op_deactivate(self, req: dict[str, Any]) -> dict[str, Any]:
        name = str(req.get("operator", ""))
        try:
            with session_scope(self.engine) as session:
                ReadStore(session).authenticate(name, str(req.get("password", "")), Role.KEY_MANAGER)
        except RevocaError as exc:
            audit.record_failure(self.engine, "hsm.deactivated", actor=name or "unknown", error=str(exc))
            raise
        self.activation.deactivate()
        with session_scope(self.engine) as session:
            audit.record(session, "hsm.deactivated", actor=name)
        log.info("deactivated by %s", name)
        return self._status()

    def _op_public_key(self, req: dict[str, Any]) -> dict[str, Any]:
        signer = self.activation.session().signer(str(req.get("label")))
        return {"spki": base64.b64encode(spki_der(signer.public_key())).decode(), "algorithm": signer.algorithm.value}

    # `hash` (sha256/384/512, RSA keys only) is optional: without it the key's algorithm's hash.
    def _op_sign(self, req: dict[str, Any]) -> dict[str, Any]:
        sig = self.activation.session().sign(str(req.get("label")), _b64(req, "data"), req.get("hash"))
        return {"signature": base64.b64encode(sig).decode()}

    def _op_sign_digest(self, req: dict[str, Any]) -> dict[str, Any]:
        signer = self.activation.session().signer(str(req.get("label")), hash_name=req.get("hash"))
        return {"signature": base64.b64encode(signer.sign_digest(_b64(req, "digest"))).decode()}

    def _op_generate(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            algorithm = KeyAlgorithm(str(req.get("algorithm")))
        except ValueError as exc:
            raise InvalidInput(f"unknown key algorithm {req.get('algorithm')!r}") from exc
        # No database write here: the caller records the key in its own transaction, and on
        # SQLite a second writer would wait for that very transaction.
        public = self.activation.session().generate(str(req.get("label")), algorithm)
        return {"spki": base64.b64encode(spki_der(public)).decode(), "algorithm": algorithm.value}


def _b64(req: dict[str, Any], field: str) -> bytes:
    try:
        return base64.b64decode(str(req.get(field, "")), validate=True)
    except ValueError as exc:
        raise InvalidInput(f"{req.get('op')}: {field} is not base64") from exc


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        while True:
            line = self.rfile.readline(protocol.MAX_LINE + 1)
            if not line:
                return
            if not line.endswith(b"\n"):  # oversize: the rest of it must not be read as a request
                self.wfile.write(protocol.encode(protocol.error_reply(InvalidInput("HSM request too large"))))
                return
            try:
                reply = self.server.service.handle(protocol.decode(line))
            except RevocaError as exc:
                reply = protocol.error_reply(exc)
            except Exception:  # a bug must not take the activated service down
                log.exception("HSM request failed")
                reply = {"ok": False, "error": "RevocaError",
                         "message": "internal error in the HSM service; see its log"}
            self.wfile.write(protocol.encode(reply))


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, service: HSMService) -> None:
        self.service = service
        super().__init__(str(path), _Handler)


def bind(path: Path, service: HSMService) -> _Server:
    """Bind the admin socket: owner-only, and refuse to steal it from a running service."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if path.exists():
        from ca.hsm.client import HSMClient

        try:
            HSMClient(path).status()
        except ServiceUnavailable:
            path.unlink()  # stale socket of a service that died
        else:
            raise ServiceUnavailable(f"an HSM service is already running on {path}")
    old = os.umask(0o177)
    try:
        server = _Server(path, service)
    finally:
        os.umask(old)
    return server


def serve_in_thread(path: Path, service: HSMService) -> tuple[_Server, threading.Thread]:
    server = bind(path, service)
    thread = threading.Thread(target=server.serve_forever, name="hsm-service", daemon=True)
    thread.start()
    return server, thread
