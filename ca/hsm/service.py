"""The HSM service (`revoca serve hsm`): the one process that holds the activated token.

Key managers activate it over a local Unix socket (mode 0600 in a 0700 directory, or 0660
for the signer-clients group when the services run as identities of their own); the RA,
the scheduler and the CLI sign through the same socket, so the token PIN exists in one
process only and only while activated.  Shares are held in memory until the threshold is
met and are never written anywhere.

Each connection's caller is the Unix identity behind it (ca.hsm.callers); what it may have
signed, and with which keys, is ca.hsm.policy; every signature is counted in the audit log
(ca.hsm.ledger) and every refusal is audited at once.  Those judgements stay in this process;
with `[hsm] signer_processes` > 1 the signing itself is done by a pool of processes, each with a
token session of its own (ca.hsm.pool), so that callers sign in parallel.

The service is the trust boundary for the people, too: deactivation (seed 004 6.2.9) carries the
names and passwords of M different key managers, M being the share set's threshold, and the
service checks them itself.  Certificate signatures, key generation, relabelling and key
destruction need a ceremony session (ca.hsm.sessions) that M key managers open on the
connection with their passwords, checked here, whoever the caller is (root included); they are
for the admin identity only besides.  A destroyed key's label is refused from then on, also
after a restart.

`revoca init` makes the first keys and certificates before this service or any key manager
exists: it opens the new token in its own process (ca.ceremony) with the secret it has just
split into the shares, so nothing there goes through this socket.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import socketserver
import threading
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509

from ca import audit
from ca.enums import Role
from ca.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied, RevocaError, ServiceUnavailable
from ca.hsm import crl_stream, protocol
from ca.hsm.activation import Activation, Holder, ShareSetInfo
from ca.hsm.callers import CallerMap, peer_uid
from ca.hsm.ledger import SignatureLedger
from ca.hsm.policy import Caller, Signed, SigningPolicy, classify
from ca.hsm.sessions import TTL, CeremonySession, Connection
from ca.hsm.signer import KeyAlgorithm
from ca.hsm.token import Token
from ca.officers import approval
from ca.officers.passwords import PasswordPolicy
from ca.storage.authorities import spki_der
from ca.storage.engine import Engine, session_scope
from ca.storage.key_destruction import KeyDestructionReads
from ca.storage.list_issuers import ListIssuerReads
from ca.storage.store import ReadStore

log = logging.getLogger("revoca.hsm")


def load_share_set(engine: Engine, token_label: str) -> ShareSetInfo:
    with session_scope(engine) as session:
        share_set = ReadStore(session).active_share_set(token_label)
        return ShareSetInfo(
            set_id=share_set.id, threshold=share_set.threshold, total=share_set.total,
            holders=tuple(Holder(h.share_index, h.operator.name, h.digest) for h in share_set.holders),
        )


def load_destroyed_labels(engine: Engine) -> frozenset[str]:
    with session_scope(engine, readonly=True) as session:
        return KeyDestructionReads(session).destroyed_labels()


DEACTIVATION_REFUSED = ("deactivation refused: it needs {m} different key managers, each with their own "
                        "password (`revoca hsm deactivate --operator A --operator B ...`)")
CEREMONY_REFUSED = ("ceremony session refused: it needs {m} different key managers, each enabled, approved or "
                    "made at the key ceremony, with their own current password")


class HSMService:
    """Answers one request at a time per connection; see ca.hsm.protocol for the format."""

    def __init__(self, token: Token, engine: Engine, *, policy: SigningPolicy | None = None,
                 callers: CallerMap | None = None, ledger: SignatureLedger | None = None,
                 password_policy: PasswordPolicy | None = None, session_ttl: dt.timedelta = TTL,
                 signer_processes: int = 1) -> None:
        """`callers` maps a connection's uid to a Caller (default: every uid but root's and this
        process's is unknown); `ledger` counts signatures (default: one flushing every minute);
        `password_policy` ([operators]) refuses key managers' expired passwords; `session_ttl`
        is how long a ceremony session lasts; `signer_processes` ([hsm]) how many processes sign
        once activated (1: this one, one signature at a time; N: a pool, ca.hsm.pool)."""
        self.engine = engine
        self.password_policy = password_policy or PasswordPolicy()
        self.session_ttl = session_ttl
        self._list_issuers: dict[str, crl_stream.ListIssuer] = {}
        self.activation = Activation(token, load_share_set(engine, token.label), signer_processes=signer_processes)
        self.policy = (policy or SigningPolicy()).with_destroyed(load_destroyed_labels(engine))
        self.callers = callers or CallerMap({}, frozenset({0, os.getuid()}))
        self.ledger = ledger or SignatureLedger(engine)
        self._audit_writers: list[threading.Thread] = []

    def close(self) -> None:
        for writer in self._audit_writers:
            writer.join(timeout=35)
        self.ledger.close()
        self.activation.deactivate()

    def wait_for_audit(self) -> None:
        """Until the refusals so far are in the audit log (for tests and a clean stop)."""
        for writer in self._audit_writers:
            writer.join()

    def handle(self, request: dict[str, Any], caller: Caller = Caller.ADMIN,
               connection: Connection | None = None) -> dict[str, Any]:
        """One request of `connection` (default: a connection of its own, without a session)."""
        op = request.get("op")
        handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            raise InvalidInput(f"unknown HSM operation {op!r}")
        return {"ok": True, **handler(request, connection or Connection(caller))}

    def end(self, connection: Connection) -> None:
        """The connection closed: its ceremony session, if any, ends with it."""
        self._close_session(connection, "the connection closed")

    def _refuse(self, caller: Caller, exc: RevocaError, event: str = "hsm.sign_refused", **detail: Any) -> None:
        """Log and audit a refusal."""
        log.warning("refused for %s: %s", caller, exc)
        self._audit_later(event, f"{caller} identity", error=str(exc), **detail)

    def _audit_later(self, event: str, actor: str, *, error: str | None = None, **detail: Any) -> None:
        """An audit record (a failure when `error` is given) written from a thread of its own: the
        caller may hold the database's write lock (SQLite) while it waits for this answer."""

        def write() -> None:
            try:
                if error is None:
                    with session_scope(self.engine) as session:
                        audit.record(session, event, actor=actor, **detail)
                else:
                    audit.record_failure(self.engine, event, actor=actor, error=error, **detail)
            except Exception:  # what happened stands even when the database is away
                log.exception("could not audit %s: %s", event, detail)

        writer = threading.Thread(target=write, name="hsm-audit")
        writer.start()
        self._audit_writers = [t for t in self._audit_writers if t.is_alive()] + [writer]

    def _status(self) -> dict[str, Any]:
        st = self.activation.status()
        return {"activated": st.activated, "threshold": st.threshold, "total": st.total,
                "presented_by": list(st.presented_by), "needed": st.needed, "line": st.line(),
                # ca.hsm.pool: how many signing processes [hsm] signer_processes asks for, and how many run
                "signer_processes": st.signer_processes, "signers_up": st.signers_up,
                "signers_given_up": st.signers_given_up}

    def _op_status(self, _req: dict[str, Any], _conn: Connection) -> dict[str, Any]:
        return self._status()

    def _op_activate(self, req: dict[str, Any], _conn: Connection) -> dict[str, Any]:
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

    def _op_deactivate(self, req: dict[str, Any], _conn: Connection) -> dict[str, Any]:
        """`operators`: [{"name", "password"}, ...] of M different key managers (seed 004 6.2.9).
        Every failure gets the same answer; the audit record says which it was."""
        status = self.activation.status()
        threshold = status.threshold
        entries, names = _people(req)
        why = self._key_manager_failure(entries, names, threshold, status.total)
        if why is not None:
            audit.record_failure(self.engine, "hsm.deactivated", actor="+".join(names)[:128] or "unknown",
                                 error=why, needed=threshold)
            log.warning("deactivation refused: %s", why)
            raise PermissionDenied(DEACTIVATION_REFUSED.format(m=threshold))
        self.activation.deactivate()
        with session_scope(self.engine) as session:
            audit.record(session, "hsm.deactivated", actor="+".join(names), key_managers=names)
        log.info("deactivated by %s", ", ".join(names))
        return self._status()

    def _key_manager_failure(self, entries: list[Any], names: list[str], threshold: int, total: int) -> str | None:
        """Why these people may not act, or None when they are M different key managers: each
        enabled, holding the role, approved by a second person or made at the key ceremony
        (ca.officers.approval), with a password that matches and is not past [operators]' maximum
        age.  Every password given is checked (one scrypt each, whatever the outcome), at most as
        many as there are share holders."""
        if not entries or not all(isinstance(p, dict) for p in entries):
            return "no key managers given"
        if len(entries) > max(threshold, total):
            return f"{len(entries)} people given; the share set has {total} holders"
        failures: list[str] = []
        now = dt.datetime.now(dt.UTC)
        with session_scope(self.engine, readonly=True) as session:
            store = ReadStore(session)
            for entry, name in zip(entries, names, strict=True):
                try:
                    op = store.authenticate(name, str(entry.get("password", "")), Role.KEY_MANAGER,
                                            policy=self.password_policy, now=now)
                    approval.check_counts(name, approved=op.approved, people=max(threshold, 2))
                except RevocaError as exc:
                    failures.append(str(exc))
        if failures:
            return "; ".join(failures)
        if len(set(names)) != len(names):
            return "the same key manager was named twice"
        if len(names) < threshold:
            return f"{len(names)} key manager(s) given, {threshold} needed"
        return None

    # ceremony sessions (ca.hsm.sessions): certificates, key generation and destruction
    def _op_ceremony_open(self, req: dict[str, Any], conn: Connection) -> dict[str, Any]:
        """`operators`: [{"name", "password"}, ...] of M different key managers; opens a session on
        this connection for `session_ttl` (an open one is closed first).  Only the admin identity
        (the officers' CLI) may, and every failure gets the same answer."""
        status = self.activation.status()
        entries, names = _people(req)
        actor = "+".join(names)[:128] or "unknown"
        try:
            self.policy.check_admin(conn.caller, "open a ceremony session")
        except RevocaError as exc:
            self._audit_later("hsm.ceremony_opened", f"{conn.caller} identity", error=str(exc), key_managers=names)
            raise
        why = self._key_manager_failure(entries, names, status.threshold, status.total)
        if why is not None:
            self._audit_later("hsm.ceremony_opened", actor, error=why, needed=status.threshold)
            log.warning("ceremony session refused: %s", why)
            raise PermissionDenied(CEREMONY_REFUSED.format(m=status.threshold))
        self._close_session(conn, "another was opened on the connection")
        session = conn.open(tuple(names), self.session_ttl)
        self._audit_later("hsm.ceremony_opened", actor, key_managers=names,
                          minutes=self.session_ttl.total_seconds() / 60)
        log.info("ceremony session opened by %s", ", ".join(names))
        return {"key_managers": list(session.key_managers), "seconds": int(self.session_ttl.total_seconds())}

    def _op_ceremony_close(self, _req: dict[str, Any], conn: Connection) -> dict[str, Any]:
        session = self._close_session(conn, "closed by the client")
        return {"done": dict(session.done) if session else {}}

    def _close_session(self, conn: Connection, why: str) -> CeremonySession | None:
        session = conn.take()
        if session is not None:
            self._audit_later("hsm.ceremony_closed", "+".join(session.key_managers), why=why, **session.summary())
            log.info("ceremony session of %s ended: %s", ", ".join(session.key_managers), why)
        return session

    def _session(self, conn: Connection, what: str, event: str, **detail: Any) -> CeremonySession:
        """The connection's ceremony session, or PermissionDenied (audited) when it has none."""
        if conn.session is not None and conn.session.expired():
            self._close_session(conn, "expired")
        try:
            return conn.require(what, self.activation.status().threshold)
        except RevocaError as exc:
            self._refuse(conn.caller, exc, event=event, **detail)
            raise

    def _op_public_key(self, req: dict[str, Any], _conn: Connection) -> dict[str, Any]:
        if str(req.get("label")) in self.policy.destroyed:
            raise NotFound(f"key {req.get('label')} was destroyed (seed 004 6.2.10)")
        signer = self.activation.session().signer(str(req.get("label")))
        return {"spki": base64.b64encode(spki_der(signer.public_key())).decode(), "algorithm": signer.algorithm.value}

    # adoption of a key another system put in the token (ca.adoption): the officers' CLI only
    def _op_find_key(self, req: dict[str, Any], conn: Connection) -> dict[str, Any]:
        self._admin_only(conn.caller, "look up keys by label or id", req)
        key_id = req.get("id")
        found = self.activation.session().find_key(
            label=None if key_id is not None else str(req.get("label")),
            key_id=_hex(key_id) if key_id is not None else None)
        return found.to_wire()

    def _op_relabel(self, req: dict[str, Any], conn: Connection) -> dict[str, Any]:
        self._admin_only(conn.caller, "relabel keys", req)
        session = self._session(conn, "relabelling a key", "hsm.sign_refused", op="relabel",
                                key_label=str(req.get("label")))
        self.activation.session().relabel(str(req.get("label")), str(req.get("new_label")))
        self.activation.keys_changed()
        session.done["relabelled"] += 1
        log.info("key %s relabelled %s for %s", req.get("label"), req.get("new_label"), conn.caller)
        return {}

    def _admin_only(self, caller: Caller, what: str, req: dict[str, Any]) -> None:
        try:
            self.policy.check_admin(caller, what)
        except RevocaError as exc:
            self._refuse(caller, exc, op=str(req.get("op")), key_label=str(req.get("label")))
            raise

    def _allow(self, caller: Caller, signed: Signed, label: str, op: str) -> None:
        try:
            self.policy.check(caller, signed, label)
        except RevocaError as exc:
            self._refuse(caller, exc, op=op, key_label=label, signed=signed.value)
            raise

    # `hash` (sha256/384/512, RSA keys only) is optional: without it the key's algorithm's hash.
    def _op_sign(self, req: dict[str, Any], conn: Connection) -> dict[str, Any]:
        label, data = str(req.get("label")), _b64(req, "data")
        signed = classify(data)
        self._allow(conn.caller, signed, label, "sign")
        session = None
        if signed is Signed.CERTIFICATE:
            session = self._session(conn, "a certificate signature", "hsm.sign_refused", op="sign",
                                    key_label=label, signed=signed.value)
        sig = self.activation.sign(label, data, req.get("hash"))
        if session is not None:
            session.done["certificates"] += 1
        self.ledger.add(conn.caller.value, label, signed.value, data)
        return {"signature": base64.b64encode(sig).decode()}

    def _op_sign_digest(self, req: dict[str, Any], conn: Connection) -> dict[str, Any]:
        label, digest = str(req.get("label")), _b64(req, "digest")
        self._allow(conn.caller, Signed.CRL_DIGEST, label, "sign_digest")
        sig = self.activation.sign_digest(label, digest, req.get("hash"))
        self.ledger.add(conn.caller.value, label, Signed.CRL_DIGEST.value, digest)
        return {"signature": base64.b64encode(sig).decode()}

    def _op_sign_list(self, req: dict[str, Any], conn: Connection) -> dict[str, Any]:
        """A CRL or ARL's TBSCertList of `length` bytes, which follow on the socket once the service
        answers `ready` (ca.hsm.crl_stream judges them while hashing); `hash` as for `sign`."""
        label = str(req.get("label"))
        self._allow(conn.caller, Signed.CRL, label, "sign_list")
        if conn.read is None or conn.write is None:
            raise InvalidInput("sign_list: the list comes over the socket")
        try:
            length = int(req.get("length", 0))
        except (TypeError, ValueError) as exc:
            raise InvalidInput("sign_list: length is not a number") from exc
        if not 0 < length <= crl_stream.MAX_LENGTH:
            raise InvalidInput(f"sign_list: a list of {length} bytes is not signed")
        signer = self.activation.session().signer(label, hash_name=req.get("hash"))
        issuer = self._list_issuer(label)
        conn.write(protocol.encode({"ok": True, "ready": True}))
        tbs = hashlib.new(signer.hash_algorithm.name)
        source = crl_stream.Source(conn.read, length, tbs.update)
        try:
            entries, number = crl_stream.judge(
                source, issuer=issuer, signature_algo="rsassa_pkcs1v15" if signer.algorithm.is_rsa else "ecdsa",
                hash_name=signer.hash_algorithm.name,
                now=None if conn.caller is Caller.ADMIN else dt.datetime.now(dt.UTC))
        except RevocaError as exc:
            source.drain()
            refused = PermissionDenied(f"key {label} signs no such list: {exc}")
            self._refuse(conn.caller, refused, op="sign_list", key_label=label, signed=Signed.CRL.value)
            raise refused from None
        digest = tbs.digest()
        sig = self.activation.sign_digest(label, digest, req.get("hash"))
        self.ledger.add(conn.caller.value, label, Signed.CRL.value, digest=digest)
        return {"signature": base64.b64encode(sig).decode(), "entries": entries, "number": number}

    def _list_issuer(self, label: str) -> crl_stream.ListIssuer:
        """The Names and key identifier a CA key signs lists with (from the database, kept per label)."""
        issuer = self._list_issuers.get(label)
        if issuer is None:
            with session_scope(self.engine, readonly=True) as session:
                found = ListIssuerReads(session).key_certificates(label)
            if found is None:
                raise PermissionDenied(f"key {label} is no CA key revoca knows; it signs no lists")
            names = frozenset(asn1_x509.Certificate.load(der)["tbs_certificate"]["subject"].dump()
                              for der in found.certificates)
            issuer = self._list_issuers[label] = crl_stream.ListIssuer(names, found.key_identifier)
        return issuer

    def _op_generate(self, req: dict[str, Any], conn: Connection) -> dict[str, Any]:
        label = str(req.get("label"))
        try:
            self.policy.check_admin(conn.caller, "make keys")
            if label in self.policy.destroyed:
                raise AlreadyExists(f"key label {label} was a destroyed key's; labels are never reused")
        except RevocaError as exc:
            self._refuse(conn.caller, exc, op="generate", key_label=label)
            raise
        session = self._session(conn, "key generation", "hsm.sign_refused", op="generate", key_label=label)
        try:
            algorithm = KeyAlgorithm(str(req.get("algorithm")))
        except ValueError as exc:
            raise InvalidInput(f"unknown key algorithm {req.get('algorithm')!r}") from exc
        # No database write here: the caller records the key in its own transaction, and on
        # SQLite a second writer would wait for that very transaction.
        public = self.activation.session().generate(label, algorithm)
        self.activation.keys_changed()
        session.done["keys generated"] += 1
        log.info("key %s (%s) made for %s in the session of %s", label, algorithm.value, conn.caller,
                 ", ".join(session.key_managers))
        return {"spki": base64.b64encode(spki_der(public)).decode(), "algorithm": algorithm.value}

    def _op_destroy(self, req: dict[str, Any], conn: Connection) -> dict[str, Any]:
        """Destroy a key's objects in the token (seed 004 6.2.10): the admin identity only, inside a
        ceremony session; the officers' CLI checked that nothing needs the key
        (ca.hsm.destruction) and records it in its own transaction.  `by` names those people
        for this service's own audit record (the session's key managers are named besides)."""
        label = str(req.get("label") or "")
        by = [str(name)[:64] for name in req.get("by", [])][:16] if isinstance(req.get("by"), list) else []
        try:
            self.policy.check_admin(conn.caller, "destroy keys")
        except RevocaError as exc:
            self._refuse(conn.caller, exc, event="hsm.key_destroyed", op="destroy", key_label=label)
            raise
        session = self._session(conn, "key destruction", "hsm.key_destroyed", op="destroy", key_label=label)
        count = self.activation.session().destroy(label)
        self.activation.keys_changed()
        session.done["keys destroyed"] += 1
        self.policy = self.policy.with_destroyed([label])
        log.info("key %s destroyed for %s (%d token objects)", label, "+".join(by) or conn.caller, count)
        self._audit_later("hsm.key_objects_destroyed", f"{conn.caller} identity", key_label=label, objects=count,
                          by=by, key_managers=list(session.key_managers))
        return {"objects": count}


def _people(req: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """A request's `operators` entries and their names (operators.name is at most 64 characters)."""
    people = req.get("operators")
    entries = people if isinstance(people, list) else []
    return entries, [str(p.get("name", ""))[:64] if isinstance(p, dict) else "" for p in entries]


def _hex(value: object) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError as exc:
        raise InvalidInput("find_key: id is not hex") from exc


def _b64(req: dict[str, Any], field: str) -> bytes:
    try:
        return base64.b64decode(str(req.get(field, "")), validate=True)
    except ValueError as exc:
        raise InvalidInput(f"{req.get('op')}: {field} is not base64") from exc


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        service = self.server.service
        connection = Connection(service.callers.caller(peer_uid(self.connection)), read=self.rfile.read,
                                write=self.wfile.write)
        try:
            self._serve(service, connection)
        finally:
            service.end(connection)

    def _serve(self, service: HSMService, connection: Connection) -> None:
        while True:
            line = self.rfile.readline(protocol.MAX_LINE + 1)
            if not line:
                return
            if not line.endswith(b"\n"):  # oversize: the rest of it must not be read as a request
                self.wfile.write(protocol.encode(protocol.error_reply(InvalidInput("HSM request too large"))))
                return
            try:
                reply = service.handle(protocol.decode(line), connection.caller, connection)
            except RevocaError as exc:
                reply = protocol.error_reply(exc)
            except ConnectionError:  # the client went away in the middle of a streamed list
                return
            except Exception:  # a bug must not take the activated service down
                log.exception("HSM request failed")
                reply = {"ok": False, "error": "RevocaError",
                         "message": "internal error in the HSM service; see its log"}
            self.wfile.write(protocol.encode(reply))


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a sixth client connecting at the same moment (OCSP and
    # RA workers starting together) was refused as if the service were down
    request_queue_size = 128

    def __init__(self, path: Path, service: HSMService) -> None:
        self.service = service
        super().__init__(str(path), _Handler)


def bind(path: Path, service: HSMService, *, clients_gid: int | None = None) -> _Server:
    """Bind the socket: owner-only, or owner and `clients_gid` (the services that sign through it,
    each judged by ca.hsm.policy); refuse to steal it from a running service."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700 if clients_gid is None else 0o750)
    if clients_gid is not None:
        os.chown(path.parent, -1, clients_gid)
    if path.exists():
        from ca.hsm.client import HSMClient

        try:
            HSMClient(path).status()
        except ServiceUnavailable:
            path.unlink()  # stale socket of a service that died
        else:
            raise ServiceUnavailable(f"an HSM service is already running on {path}")
    old = os.umask(0o177 if clients_gid is None else 0o117)
    try:
        server = _Server(path, service)
        if clients_gid is not None:
            os.chown(path, -1, clients_gid)
    finally:
        os.umask(old)
    return server


def serve_in_thread(path: Path, service: HSMService, *, clients_gid: int | None = None
                    ) -> tuple[_Server, threading.Thread]:
    server = bind(path, service, clients_gid=clients_gid)
    thread = threading.Thread(target=server.serve_forever, name="hsm-service", daemon=True)
    thread.start()
    return server, thread
