"""The RA API (Flask): RA terminals file revocations and read their status and receipts.

One database transaction per request: the revocation is committed before the answer is
written, so an acknowledged revocation survives a crash at any later point.  The receipt
is signed after the commit (the HSM may be unavailable; filing must not depend on it)
and is added to the stored request; GET signs it later if it is still missing.
Errors become HTTP statuses only here, at the edge.

Every clerk login is audited (`operator.login`, channel "ra", the terminal named): one record
per request that names a clerk, in the transaction of what the request does (a filing, the
audit record of a list read), so it costs one more row in a commit that happens anyway and
takes no extra turn on the audit chain's lock.  When the request is refused after the login
held, the record goes with the refusal's record instead; a failed login is recorded there
too.  A password within [operators] warn_days of its maximum age is answered with the
`Revoca-Password-Expires` and `Revoca-Password-Warning` headers, which terminals show the clerk.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ca import audit
from ca.enums import AgentAuthority, Applicant, RequestChannel
from ca.errors import AlreadyExists, DatabaseUnavailable, InvalidInput, NotFound, PermissionDenied, RevocaError
from ca.hsm.signer import KeyStore
from ca.officers.credentials import RememberedPasswords
from ca.officers.passwords import PasswordPolicy, PasswordState, password_age
from ca.ra import auth, online
from ca.ra.openapi import OPENAPI
from ca.ra.receipts import ReceiptSigner, receipt_content
from ca.revocation import reasons, record_changes, workflow
from ca.serials import parse_hex_serial
from ca.storage.engine import Engine, Session, session_scope
from ca.storage.models import Operator, RATerminal, RevocationRequest
from ca.storage.revocations import RevocationReadStore, RevocationStore

log = logging.getLogger("revoca.ra")
MAX_BODY = 64 * 1024
MAX_JSON_DEPTH = 16  # a filing is a flat object; anything deeper is refused before it is walked
MAX_OFFSET = 10**9
ACTOR_MAX = 128  # the audit log's actor column: a failed login's claimed name, cut to fit
bp = Blueprint("ra", __name__)

_STATUS = {
    auth.Unauthenticated: 401,
    PermissionDenied: 403,
    NotFound: 404,
    workflow.IdempotencyConflict: 409,
    AlreadyExists: 409,
    InvalidInput: 422,
}


LOGIN_EVENT = "operator.login"  # the CLI's event; channel "ra" and the terminal tell this one apart
LIST_EVENT = "ra.requests_listed"  # a personal-data read: the list names citizens


def create_app(engine: Engine, keys: KeyStore, *, clock: Callable[[], dt.datetime] | None = None,
               password_policy: PasswordPolicy | None = None) -> Flask:
    """`password_policy` is [operators] (settings.operators.password_policy); its defaults when None."""
    app = Flask("revoca.ra")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["revoca"] = {"engine": engine, "keys": keys, "clock": clock or (lambda: dt.datetime.now(dt.UTC)),
                                # a clerk's password is checked by scrypt once per 30 s, not per request
                                "passwords": RememberedPasswords(),
                                "password_policy": password_policy or PasswordPolicy()}
    app.register_blueprint(bp)
    app.register_error_handler(RevocaError, _revoca_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _ext() -> dict[str, Any]:
    return current_app.extensions["revoca"]


def _problem(status: int, detail: str) -> tuple[Response, int]:
    return jsonify({"error": detail, "status": status}), status


RETRY_AFTER_S = 5  # a busy database or an HSM service being restarted: a retry soon is likely to work


def _revoca_error(exc: RevocaError) -> tuple[Response, int]:
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 503)
    if isinstance(exc, DatabaseUnavailable):  # the audit record could not be written either: logged
        log.error("RA request not served, %s %s: %s", request.method, request.path, exc)
    elif isinstance(exc, workflow.OutOfScope):  # a window reaching into another prefecture: its own record
        _record_refusal(str(exc), status, event_type="ra.out_of_scope", terminal=exc.terminal,
                        clerk=getattr(g, "clerk", None), ca=exc.ca, serial=format(exc.serial, "x"))
    else:
        _record_refusal(str(exc), status)
    response, status = _problem(status, str(exc))
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response, status


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    detail = {413: f"request body larger than {MAX_BODY} bytes", 404: "no such endpoint",
              405: "method not allowed here"}.get(exc.code or 500, exc.description or exc.name)
    if exc.code and exc.code >= 400 and exc.code != 404:
        _record_refusal(detail, exc.code)
    return _problem(exc.code or 500, detail)


def _record_refusal(detail: str, status: int, *, event_type: str = "ra.request_refused", **extra: Any) -> None:
    """Every refused request leaves an audit record, in a transaction of its own; with it the
    clerk's login, failed or successful (the request's own transaction, which would have held
    a successful one, rolled back)."""
    actor = getattr(g, "actor", None) or "unidentified RA client"
    try:
        with session_scope(_ext()["engine"]) as session:
            _record_login(session)
            audit.record(session, event_type, actor=actor, result=audit.FAILURE, error=detail, status=status,
                         path=request.path, method=request.method, **extra)
    except Exception:  # auditing a refusal must not turn it into a 500
        log.exception("could not record a refused RA request")


@dataclasses.dataclass(frozen=True, slots=True)
class _Login:
    """A clerk's login at a terminal, waiting to be recorded with what the request does."""

    name: str
    terminal: str
    error: str | None = None  # None: the login held


def _record_login(session: Session, *, keep: bool = False) -> None:
    """The request's clerk login into `session`'s transaction (see the module docstring); `keep`
    leaves it waiting until that transaction has committed (a refusal would roll it back)."""
    login: _Login | None = g.get("login") if keep else g.pop("login", None)
    if login is None:
        return
    if login.error is None:
        audit.record(session, LOGIN_EVENT, actor=login.name, channel="ra", terminal=login.terminal, path=request.path)
    else:
        audit.record(session, LOGIN_EVENT, actor=login.name, result=audit.FAILURE, error=login.error, channel="ra",
                     terminal=login.terminal, path=request.path)


@bp.after_request
def _password_warning(response: Response) -> Response:
    """A clerk whose password is about to expire is told so with every answer (the terminal shows it)."""
    warning = g.get("password_warning")
    if warning is not None:
        response.headers["Revoca-Password-Expires"] = warning.expires_at.isoformat()
        response.headers["Revoca-Password-Warning"] = warning.warning()
    return response


def _json_body() -> dict[str, Any]:
    if not request.is_json:
        raise InvalidInput("send the request as application/json")
    try:
        body = request.get_json(silent=True)
    except RecursionError as exc:  # "[[[[..." deeper than the parser's stack: a client error, not a 500
        raise InvalidInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
    if not isinstance(body, dict):
        raise InvalidInput("the body is not a JSON object")
    _check_text(body)
    return body


def _check_text(value: object, depth: int = 0) -> None:
    """Refuse what no database can store: NUL characters and lone surrogates (invalid UTF-8);
    and nesting deeper than MAX_JSON_DEPTH, which no filing has."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, depth + 1)
            _check_text(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_text(v, depth + 1)
    elif isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput("text fields must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput("text fields must be valid Unicode (no lone surrogates)") from exc


def _certificate(store: RevocationReadStore, body: dict[str, Any]):
    if "certificate" in body:
        raw = str(body["certificate"]).strip()
        try:
            cert = (x509.load_pem_x509_certificate(raw.encode()) if raw.startswith("-----BEGIN")
                    else x509.load_der_x509_certificate(base64.b64decode(raw, validate=True)))
        except (ValueError, binascii.Error, x509.InvalidVersion) as exc:
            raise InvalidInput("certificate is neither PEM nor base64 DER") from exc
        row = store.certificate_by_fingerprint(hashlib.sha256(cert.public_bytes(Encoding.DER)).digest())
        if row is None:
            raise NotFound("this certificate was not issued by a revoca CA")
        return row
    issuer, serial = body.get("issuer_ca"), body.get("serial")
    if not isinstance(issuer, str) or not isinstance(serial, str):
        raise InvalidInput('name the certificate by "issuer_ca" and hex "serial", or give "certificate"')
    return store.certificate(store.ca(issuer), parse_hex_serial(serial))


def _view(store: RevocationReadStore, req: RevocationRequest) -> dict[str, Any]:
    revoked = store.revocation_of(req.certificate_id)
    issuer = next(c.name for c in store.cas() if c.id == req.certificate.issuer_ca_id)
    content = receipt_content(req, issuer_ca=issuer, revocation_time=revoked.revocation_time if revoked else None)
    if revoked is not None and revoked.request_id not in (None, req.id):
        content["already_revoked_by"] = "an earlier request"
    return content


def _with_receipt(engine: Engine, public_id: str) -> dict[str, Any]:
    """The request's view and its signed receipt, signing and storing the receipt if missing.

    The view is read in a read-only transaction: on SQLite a write transaction takes the one write
    lock (BEGIN IMMEDIATE) that every other terminal's filing waits for; only storing a new receipt
    writes."""
    with session_scope(engine, readonly=True) as session:
        store = RevocationReadStore(session)
        req = store.request(public_id)
        view = _view(store, req)
        receipt = req.receipt
        signer = None if receipt else ReceiptSigner.current(store)
    if receipt is None and signer is not None:
        try:
            receipt = signer.sign(_ext()["keys"], view)
        except RevocaError as exc:  # e.g. HSM not activated: the revocation itself stands
            log.warning("receipt for %s not signed yet: %s", public_id, exc)
            return {**view, "receipt": None, "receipt_error": str(exc)}
        with session_scope(engine) as session:  # another worker may have stored one meanwhile: that one stands
            receipt = RevocationStore(session).store_receipt(public_id, receipt)
    assert receipt is not None  # stored already, or signed just above
    return {**view, "receipt": base64.b64encode(receipt).decode()}


def _at_terminal(store: RevocationReadStore) -> tuple[RATerminal, Operator]:
    """(terminal, clerk) of a request: who first, so that an unknown caller learns nothing about
    what is wrong with its body.  The login waits in `g.login` for the transaction that records it."""
    terminal = auth.terminal_of(request, store)
    g.actor = f"terminal {terminal.name}"
    ext = _ext()
    now = ext["clock"]()
    try:
        clerk = auth.receptionist_of(request, store, ext["passwords"], policy=ext["password_policy"], now=now)
    except PermissionDenied as exc:
        name = auth.claimed_name(request)
        if name is not None:  # no credentials at all is no attempt
            g.login = _Login(name[:ACTOR_MAX], terminal.name, str(exc))
        raise
    g.actor, g.clerk = f"{clerk.name} at terminal {terminal.name}", clerk.name
    g.login = _Login(clerk.name, terminal.name)
    age = password_age(clerk.name, clerk.password_set_at, now=now, policy=ext["password_policy"])
    if age.state is PasswordState.EXPIRING:
        g.password_warning = age
    return terminal, clerk



@dataclasses.dataclass(frozen=True, slots=True)
class _Window:
    store: RevocationStore
    terminal: RATerminal
    clerk: Operator
    body: dict[str, Any]
    key: str  # the idempotency key
    now: dt.datetime


@contextlib.contextmanager
def _window_request() -> Iterator[_Window]:
    """What both window endpoints open with: one write transaction (committed when the block
    ends), the terminal and the clerk with the login recorded in it, the JSON body and its
    idempotency key."""
    engine, now = _ext()["engine"], _ext()["clock"]()
    with session_scope(engine) as session:
        store = RevocationStore(session)
        terminal, clerk = _at_terminal(store)
        _record_login(session, keep=True)
        body = _json_body()
        yield _Window(store, terminal, clerk, body, _idempotency_key(body), now)
    g.pop("login", None)  # committed with what the request did


def _idempotency_key(body: dict[str, Any]) -> str:
    key = body.get("idempotency_key")
    if not isinstance(key, str) or not 8 <= len(key) <= 128:
        raise InvalidInput("idempotency_key (8-128 characters) is required so that a retry never revokes twice")
    return key


@bp.post("/v1/revocations")
def file_revocation() -> tuple[Response, int]:
    """The window (seed 004 4.9.3.1(1), (2)): the subscriber or an agent, identified by a document."""
    with _window_request() as w:
        body = w.body
        try:
            applicant = Applicant(body.get("applicant", ""))  # missing: ValueError like any other value
        except ValueError as exc:
            raise InvalidInput('applicant must be "self" or "agent"') from exc
        authority = body.get("agent_authority")
        if authority is not None:
            try:
                authority = AgentAuthority(authority)
            except (ValueError, TypeError) as exc:
                raise InvalidInput("agent_authority must be one of "
                                   + ", ".join(a.value for a in AgentAuthority)) from exc
        if "event" in body:
            raise InvalidInput("a window revocation names no record-change event; send record changes to "
                               "/v1/record-changes")
        filing = workflow.Filing(
            channel=RequestChannel.RA_WINDOW, certificate=_certificate(w.store, body),
            reason=reasons.parse_reason(body.get("reason")), applicant=applicant,
            identity_document_checked=body.get("identity_document_checked") is True,
            terminal_id=w.terminal.id, receptionist=w.clerk, idempotency_key=w.key, agent_authority=authority,
        )
        req, created = workflow.file_request(w.store, filing, w.now, actor=g.actor)
        public_id = req.public_id
    # committed: from here on the revocation is durable whatever happens to this process
    return jsonify(_with_receipt(_ext()["engine"], public_id)), 201 if created else 200


#: What a record change must not carry: nobody applies, and the event gives the reason.
NOT_IN_A_RECORD_CHANGE = ("reason", "applicant", "identity_document_checked", "agent_authority")


@bp.post("/v1/record-changes")
def file_record_change() -> tuple[Response, int]:
    """The municipality revokes on a resident-record change (seed 004 4.9.1(2), 4.9.3.1(3))."""
    with _window_request() as w:
        extra = [f for f in NOT_IN_A_RECORD_CHANGE if f in w.body]
        if extra:
            raise InvalidInput(f"a record change carries no {', '.join(extra)}: nobody applies, and the reason "
                               "follows from the event")
        event = record_changes.parse_event(w.body.get("event"))
        filing = workflow.Filing(
            channel=RequestChannel.RECORD_CHANGE, certificate=_certificate(w.store, w.body),
            reason=record_changes.reason_for(event), record_change_event=event,
            terminal_id=w.terminal.id, receptionist=w.clerk, idempotency_key=w.key,
        )
        req, created = workflow.file_request(w.store, filing, w.now, actor=g.actor)
        public_id = req.public_id
    return jsonify(_with_receipt(_ext()["engine"], public_id)), 201 if created else 200


@bp.get("/v1/revocations/<public_id>")
def revocation_status(public_id: str) -> Response:
    engine = _ext()["engine"]
    with session_scope(engine, readonly=True) as session:
        store = RevocationReadStore(session)
        terminal = auth.terminal_of(request, store)
        g.actor = f"terminal {terminal.name}"
        _check_text(public_id)
        if store.request(public_id).terminal_id != terminal.id:
            raise NotFound(f"no revocation request {public_id} from this terminal")
    return jsonify(_with_receipt(engine, public_id))


@bp.get("/v1/revocations")
def list_revocations() -> Response:
    """A terminal's requests, newest first.  The list names citizens: a clerk at the terminal must
    be there to read it (issue 12), and the read is audited as a personal-data read naming every
    request and certificate shown, before anything is answered (no record, no list)."""
    engine = _ext()["engine"]
    with session_scope(engine, readonly=True) as session:
        store = RevocationReadStore(session)
        terminal, _clerk = _at_terminal(store)
        try:
            limit = int(request.args.get("limit", 50))
            offset = int(request.args.get("offset", 0))
        except ValueError as exc:
            raise InvalidInput("limit and offset must be integers") from exc
        if not (1 <= limit <= 500 and 0 <= offset <= MAX_OFFSET):
            raise InvalidInput(f"limit must be 1-500 and offset 0-{MAX_OFFSET}")
        items = [_view(store, r) for r in store.requests_of_terminal(terminal.id, limit=limit, offset=offset)]
    with session_scope(engine) as session:  # its own short write: the read above took no write lock
        _record_login(session)
        audit.record(session, LIST_EVENT, actor=g.actor, personal_data=True, terminal=terminal.name,
                     limit=limit, offset=offset, count=len(items),
                     requests=[i["request_id"] for i in items],
                     certificates=[f"{i['issuer_ca']}:{i['serial']}" for i in items])
    return jsonify({"terminal": terminal.name, "items": items, "limit": limit, "offset": offset})


@bp.post("/v1/online-revocations")
def online_revocation() -> tuple[Response, int]:
    """The subscriber revokes their own certificate with a request signed by its key."""
    if request.mimetype not in ("application/pkcs7-mime", "application/cms", "application/octet-stream"):
        raise InvalidInput("send CMS SignedData as application/pkcs7-mime (DER)")
    engine, now = _ext()["engine"], _ext()["clock"]()
    body = request.get_data()
    with session_scope(engine) as session:
        store = RevocationStore(session)
        signed = online.parse_signed_request(body, store, now)
        g.actor = f"subscriber {signed.certificate.subject_dn}"
        filing = workflow.Filing(channel=RequestChannel.ONLINE, certificate=signed.certificate,
                                   reason=reasons.parse_reason(signed.reason), applicant=Applicant.SELF,
                                   identity_document_checked=True, signed_request=signed.document)
        req, _ = workflow.file_request(store, filing, now, actor=g.actor)
        public_id = req.public_id
    return jsonify(_with_receipt(engine, public_id)), 201


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(OPENAPI)
