"""RA terminals bound to CAs, and the revocation channels as seed 004 has them (issue 13), through the
RA API on SQLite and PostgreSQL with real terminal certificates and a real SoftHSM2 token:

- a terminal acts only for the CAs it is bound to: a receptionist at a tokyo window gets 403 on an
  osaka certificate, audited as ra.out_of_scope, and nothing is revoked; a terminal bound to no CA
  (one registered before this rule) revokes nothing;
- the window records self or agent, and for an agent the document that showed the authority (1.3.2);
- the municipal record-change channel (4.9.1(2)): no applicant, the event named from a fixed list,
  the reason taken from the event, the same scope, audit and receipts as the window;
- `revoca ra scope` / `ra list`, and migration 0008 leaving earlier terminals with no scope.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from flask import Flask
from werkzeug.test import TestResponse

from ca import ceremony, demo
from ca.config import Settings
from ca.demo import ensure_demo_ra
from ca.enums import AgentAuthority, CertKind, RecordChangeEvent, RequestChannel, Role
from ca.errors import InvalidInput
from ca.hsm.token import TokenSession
from ca.http.client_cert import CLIENT_CERT_ENVIRON
from ca.ra.app import create_app
from ca.revocation import reasons, record_changes
from ca.revocation.reasons import RevocationReason
from ca.storage.engine import alembic_config, current_revision, make_engine, session_scope
from ca.storage.revocations import RevocationStore

from support.cli import Cli, demo_cli
from support.installation import CeremonyTemplates, open_token
from support.ra_fixtures import (
    PASSWORD,
    CertRef,
    Terminal,
    add_operator,
    audit_events,
    basic_auth,
    bridge_roots_pem,
    certificates,
    last_audit_id,
    receipt_fields,
    register_terminals,
    requests,
    revocations,
    snapshot,
    subscribers,
    verify_receipt,
)
from support.settings import NOW

AT = NOW + dt.timedelta(days=1)


@dataclasses.dataclass
class RA:
    engine: sa.Engine
    token: TokenSession
    app: Flask
    terminals: dict[str, Terminal]
    roots: bytes

    def post(self, path: str, body: dict[str, Any], *, terminal: str = "chiyoda", clerk: str = "clerk"
             ) -> TestResponse:
        return self.app.test_client().post(path, json=body, headers=basic_auth(clerk, PASSWORD),
                                           environ_base={CLIENT_CERT_ENVIRON: self.terminals[terminal].der})

    def window(self, body: dict[str, Any], **kw: Any) -> TestResponse:
        return self.post("/v1/revocations", body, **kw)

    def record_change(self, body: dict[str, Any], **kw: Any) -> TestResponse:
        return self.post("/v1/record-changes", body, **kw)


@pytest.fixture
def ra(engine: sa.Engine, settings: Settings, initialized: ceremony.CeremonyResult, tmp_path: Path) -> Iterator[RA]:
    """Terminals chiyoda (tokyo, municipality Chiyoda), kita (osaka), kanto (tokyo and hokkaido) and
    nowhere (bound to no CA); clerk, a receptionist."""
    token = open_token(settings, initialized)
    scopes: dict[str, tuple[list[str] | None, str]] = {
        "chiyoda": (["tokyo"], "Chiyoda"), "kita": (["osaka"], ""), "kanto": (["tokyo", "hokkaido"], ""),
        "nowhere": ([], "")}
    terms = register_terminals(engine, token, list(scopes), tmp_path, now=NOW, scopes=scopes)  # one transaction
    add_operator(engine, "clerk", Role.RECEPTIONIST)
    yield RA(engine, token, create_app(engine, token, clock=lambda: AT), {t.name: t for t in terms},
             bridge_roots_pem(engine))
    token.close()


def window_body(ref: CertRef, **overrides: Any) -> dict[str, Any]:
    body = {"issuer_ca": ref.issuer, "serial": ref.hex_serial, "reason": "keyCompromise", "applicant": "self",
            "identity_document_checked": True, "idempotency_key": f"key-{uuid.uuid4()}", **overrides}
    return {k: v for k, v in body.items() if v is not None}


def change_body(ref: CertRef, event: Any = "death", **overrides: Any) -> dict[str, Any]:
    body = {"issuer_ca": ref.issuer, "serial": ref.hex_serial, "event": event,
            "idempotency_key": f"key-{uuid.uuid4()}", **overrides}
    return {k: v for k, v in body.items() if v is not None}


def error_of(resp: TestResponse, status: int) -> str:
    assert resp.status_code == status, f"{resp.status_code} (wanted {status}): {resp.get_data(as_text=True)[:500]}"
    body = resp.get_json()
    assert set(body) == {"error", "status"} and body["status"] == status, body
    assert "\n" not in body["error"], body
    return body["error"]


# --- terminals bound to CAs --------------------------------------------------------------------------------


def test_a_receptionist_of_tokyo_revokes_a_tokyo_certificate(ra: RA) -> None:
    ref = subscribers(ra.engine, "tokyo")[0]
    resp = ra.window(window_body(ref))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert (resp.get_json()["issuer_ca"], resp.get_json()["channel"]) == ("tokyo", "ra-window")
    assert revocations(ra.engine)[ref.id].reason == 1
    # a terminal bound to several CAs acts for each of them
    other = subscribers(ra.engine, "hokkaido")[0]
    assert ra.window(window_body(other), terminal="kanto").status_code == 201
    assert other.id in revocations(ra.engine)


@pytest.mark.parametrize("named_by", ["issuer-and-serial", "certificate"])
def test_a_receptionist_of_tokyo_gets_403_on_an_osaka_certificate_audited_and_nothing_revoked(
        ra: RA, named_by: str) -> None:
    ref = subscribers(ra.engine, "osaka")[0]
    body = window_body(ref) if named_by == "issuer-and-serial" else window_body(
        ref, issuer_ca=None, serial=None, certificate=ref.pem)
    before, audit_before = snapshot(ra.engine), last_audit_id(ra.engine)
    message = error_of(ra.window(body), 403)
    assert "chiyoda" in message and "tokyo" in message and "osaka" in message
    assert snapshot(ra.engine) == before and ref.id not in revocations(ra.engine)
    events = audit_events(ra.engine, after_id=audit_before)
    assert [(e.event_type, e.result, e.actor) for e in events] == [  # the clerk's login goes with the refusal
        ("operator.login", "success", "clerk"), ("ra.out_of_scope", "failure", "clerk at terminal chiyoda")]
    detail = json.loads(events[1].detail)
    assert {k: detail[k] for k in ("terminal", "clerk", "ca", "serial", "status", "error")} == {
        "terminal": "chiyoda", "clerk": "clerk", "ca": "osaka", "serial": ref.hex_serial, "status": 403,
        "error": message}
    # the osaka window may
    assert ra.window(body | {"idempotency_key": "osaka-window-1"}, terminal="kita").status_code == 201


def test_a_terminal_bound_to_no_ca_revokes_nothing(ra: RA) -> None:
    before = snapshot(ra.engine)
    for ca in ("tokyo", "osaka", "hokkaido"):
        ref = subscribers(ra.engine, ca)[1]
        assert "bound to no CA" in error_of(ra.window(window_body(ref), terminal="nowhere"), 403)
        assert "bound to no CA" in error_of(ra.record_change(change_body(ref), terminal="nowhere"), 403)
    assert snapshot(ra.engine) == before
    assert [json.loads(e.detail)["terminal"] for e in audit_events(ra.engine, "ra.out_of_scope")] == ["nowhere"] * 6


def test_a_ca_level_certificate_is_still_refused_as_dual_control_not_as_out_of_scope(ra: RA) -> None:
    tls = certificates(ra.engine, "bridge", CertKind.TLS)[0]
    assert "dual control" in error_of(ra.window(window_body(tls)), 403)
    assert "dual control" in error_of(ra.record_change(change_body(tls)), 403)
    assert not audit_events(ra.engine, "ra.out_of_scope")


def test_a_terminals_scope_can_be_changed_and_takes_effect_at_once(ra: RA) -> None:
    ref = subscribers(ra.engine, "osaka")[2]
    error_of(ra.window(window_body(ref), terminal="nowhere"), 403)
    with session_scope(ra.engine) as s:
        store = RevocationStore(s)
        terminal = store.terminal("nowhere")
        store.set_terminal_scope(terminal, [store.ca("osaka"), store.ca("tokyo")], municipality="Kita")
    assert ra.window(window_body(ref), terminal="nowhere").status_code == 201
    with session_scope(ra.engine) as s:  # and back to tokyo only: the osaka row goes, the tokyo row stays
        store = RevocationStore(s)
        terminal = store.terminal("nowhere")
        store.set_terminal_scope(terminal, [store.ca("tokyo")])
        assert ([c.name for c in store.terminal_scope(terminal)], terminal.municipality) == (["tokyo"], "Kita")
    assert "acts for tokyo only" in error_of(ra.window(window_body(subscribers(ra.engine, "osaka")[3]),
                                                      terminal="nowhere"), 403)


def test_only_regional_cas_can_be_in_a_scope(ra: RA) -> None:
    with session_scope(ra.engine) as s:
        store = RevocationStore(s)
        with pytest.raises(InvalidInput, match="regional"):
            store.set_terminal_scope(store.terminal("nowhere"), [store.bridge()])


# --- the window: self or agent, and the agent's authority -----------------------------------------------------


def test_an_agent_at_the_window_names_the_document_of_authority_and_it_is_recorded(ra: RA) -> None:
    ref = subscribers(ra.engine, "tokyo")[2]
    before = last_audit_id(ra.engine)
    resp = ra.window(window_body(ref, applicant="agent", agent_authority="guardianship", reason="superseded"))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    [req] = requests(ra.engine)
    assert (req.applicant.value, req.agent_authority, req.record_change_event) == (
        "agent", AgentAuthority.GUARDIANSHIP, None)
    [filed] = audit_events(ra.engine, "revocation.request_filed", after_id=before)
    assert {k: json.loads(filed.detail)[k] for k in ("applicant", "agent_authority")} == {
        "applicant": "agent", "agent_authority": "guardianship"}
    self_ref = subscribers(ra.engine, "tokyo")[3]
    assert ra.window(window_body(self_ref)).status_code == 201
    assert requests(ra.engine)[-1].agent_authority is None


@pytest.mark.parametrize(("overrides", "message"), [
    ({"applicant": "agent"}, "authority to act"),
    ({"applicant": "agent", "agent_authority": "a neighbour's word"}, "agent_authority must be one of"),
    ({"applicant": "agent", "agent_authority": ["power-of-attorney"]}, "agent_authority must be one of"),
    ({"applicant": "self", "agent_authority": "power-of-attorney"}, "is for an agent"),
    ({"event": "death"}, "/v1/record-changes"),
])
def test_the_window_refuses_an_agent_without_authority_and_authority_without_an_agent(
        ra: RA, overrides: dict[str, Any], message: str) -> None:
    before = snapshot(ra.engine)
    assert message in error_of(ra.window(window_body(subscribers(ra.engine, "tokyo")[4], **overrides)), 422)
    assert snapshot(ra.engine) == before


# --- the municipal record-change channel --------------------------------------------------------------------


@pytest.mark.parametrize(("event", "reason"), [("death", 5), ("address-changed", 3),
                                               ("individual-number-card-issued", 4), ("record-error-found", 3)])
def test_a_record_change_revokes_without_applicant_with_the_reason_of_its_event(
        ra: RA, event: str, reason: int) -> None:
    ref = subscribers(ra.engine, "tokyo")[5]
    before = last_audit_id(ra.engine)
    body = change_body(ref, event, idempotency_key="change-0001")
    resp = ra.record_change(body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    answer = resp.get_json()
    assert {k: answer[k] for k in ("channel", "reason", "record_change_event", "issuer_ca", "serial", "status")} == {
        "channel": "record-change", "reason": reason, "record_change_event": event, "issuer_ca": "tokyo",
        "serial": ref.hex_serial, "status": "completed"}
    assert verify_receipt(answer["receipt"], ra.roots) == receipt_fields(answer)
    rev = revocations(ra.engine)[ref.id]
    [req] = requests(ra.engine)
    assert (rev.reason, rev.request_id) == (reason, req.id)
    assert (req.channel, req.applicant, req.identity_document_checked, req.agent_authority,
            req.record_change_event) == (RequestChannel.RECORD_CHANGE, None, False, None, RecordChangeEvent(event))
    [filed] = audit_events(ra.engine, "revocation.request_filed", after_id=before)
    assert filed.actor == "clerk at terminal chiyoda"
    assert {k: json.loads(filed.detail)[k] for k in ("channel", "record_change_event", "reason")} == {
        "channel": "record-change", "record_change_event": event, "reason": reason}
    assert "applicant" not in json.loads(filed.detail)
    # a retry is answered with the same request; the same key for another event is a conflict
    again = ra.record_change(body)
    assert again.status_code == 200 and again.get_json() == answer
    other = "emigration" if event != "emigration" else "death"
    assert "different request" in error_of(ra.record_change(body | {"event": other}), 409)
    # the terminal reads it back like any of its requests
    status = ra.app.test_client().get(f"/v1/revocations/{answer['request_id']}",
                                      environ_base={CLIENT_CERT_ENVIRON: ra.terminals["chiyoda"].der})
    assert status.status_code == 200 and status.get_json() == answer


@pytest.mark.parametrize("event", ["married", "keyCompromise", "Death", "", 3, None, ["death"]])
def test_a_record_change_with_an_unknown_event_is_422_naming_the_event(ra: RA, event: Any) -> None:
    ref = subscribers(ra.engine, "tokyo")[6]
    before, audit_before = snapshot(ra.engine), last_audit_id(ra.engine)
    message = error_of(ra.record_change(change_body(ref, event)), 422)
    assert (repr(event) if isinstance(event, str) else '"event"') in message
    assert "death" in message and "individual-number-card-issued" in message  # the events that are known
    assert snapshot(ra.engine) == before and ref.id not in revocations(ra.engine)
    assert [e.event_type for e in audit_events(ra.engine, after_id=audit_before)] == [
        "operator.login", "ra.request_refused"]


@pytest.mark.parametrize("field", ["reason", "applicant", "identity_document_checked", "agent_authority"])
def test_a_record_change_carries_no_reason_and_no_applicant(ra: RA, field: str) -> None:
    value = {"reason": "cessationOfOperation", "applicant": "self", "identity_document_checked": True,
             "agent_authority": "power-of-attorney"}[field]
    before = snapshot(ra.engine)
    assert field in error_of(ra.record_change(change_body(subscribers(ra.engine, "tokyo")[7], **{field: value})), 422)
    assert snapshot(ra.engine) == before


def test_a_record_change_out_of_scope_is_403_audited_and_nothing_revoked(ra: RA) -> None:
    ref = subscribers(ra.engine, "osaka")[4]
    before = snapshot(ra.engine)
    message = error_of(ra.record_change(change_body(ref, "name-changed")), 403)
    assert "tokyo" in message and "osaka" in message
    assert snapshot(ra.engine) == before
    [event] = audit_events(ra.engine, "ra.out_of_scope")
    assert {k: json.loads(event.detail)[k] for k in ("terminal", "clerk", "ca", "serial", "path")} == {
        "terminal": "chiyoda", "clerk": "clerk", "ca": "osaka", "serial": ref.hex_serial,
        "path": "/v1/record-changes"}
    assert ra.record_change(change_body(ref, "name-changed"), terminal="kita").status_code == 201


def test_a_record_change_needs_a_receptionist_at_a_registered_terminal(ra: RA) -> None:
    ref = subscribers(ra.engine, "tokyo")[8]
    client = ra.app.test_client()
    assert client.post("/v1/record-changes", json=change_body(ref)).status_code == 401
    assert client.post("/v1/record-changes", json=change_body(ref),
                       environ_base={CLIENT_CERT_ENVIRON: ra.terminals["chiyoda"].der}).status_code == 401
    assert ref.id not in revocations(ra.engine)


# --- reasons by channel ------------------------------------------------------------------------------------------


def test_each_record_change_event_gives_one_of_the_three_reasons_a_record_change_may_give() -> None:
    assert set(record_changes.REASON_OF) == set(RecordChangeEvent)
    for event, reason in record_changes.REASON_OF.items():
        reasons.check_channel(RequestChannel.RECORD_CHANGE, reason)
        assert record_changes.parse_event(event.value) is event


@pytest.mark.parametrize("reason", [RevocationReason.KEY_COMPROMISE, RevocationReason.CA_COMPROMISE])
def test_a_record_change_never_gives_key_or_ca_compromise(reason: RevocationReason) -> None:
    with pytest.raises(InvalidInput):
        reasons.check_channel(RequestChannel.RECORD_CHANGE, reason)


def test_the_demo_window_acts_for_tokyo_and_is_bound_again_if_it_lost_its_scope(
        engine: sa.Engine, settings: Settings, initialized: ceremony.CeremonyResult) -> None:
    """`revoca run` (ca.demo): the printed curl revokes a tokyo certificate at the demo window, so the
    window is a municipality of tokyo; one left unbound by migration 0008 is bound at the next start."""
    token = open_token(settings, initialized)
    try:
        for _start in range(2):
            ensure_demo_ra(settings, engine, token)
            with session_scope(engine) as s:
                store = RevocationStore(s)
                terminal = store.terminal(demo.TERMINAL)
                assert ([c.name for c in store.terminal_scope(terminal)], terminal.municipality) == (
                    ["tokyo"], "Chiyoda")
                store.set_terminal_scope(terminal, [], municipality="")  # as migration 0008 leaves it
    finally:
        token.close()


# --- the CLI: ra scope and ra list ----------------------------------------------------------------------------


def test_ra_scope_binds_a_terminal_and_ra_list_shows_what_each_acts_for(
        tmp_path: Path, ceremony_templates: CeremonyTemplates) -> None:
    """The officers log in as ca.cli.acts says (two senior operators for `ra scope`): support.officers."""
    with demo_cli(ceremony_templates, "sqlite", tmp_path) as cli:
        _register_without_scope(cli.engine, "old-window")
        listed = {t["name"]: t for t in cli.json("ra", "list")}
        assert (listed["old-window"]["cas"], listed["old-window"]["municipality"]) == ([], "")
        assert "none (revokes nothing)" in cli.ok("ra", "list")
        unbound = "RA terminal old-window is bound to no CA, so it revokes nothing"
        assert any(unbound in w for w in _status_warnings(cli))
        usage = cli.run("ra", "scope", "old-window")
        assert usage.returncode == 2 and "Missing option '--ca'" in usage.stderr, usage.stderr
        cli.fails("ra", "scope", "old-window", "--ca", "bridge", code=5, match="regional")
        cli.fails("ra", "scope", "old-window", "--ca", "atlantis", code=3, match="no CA named")
        cli.fails("ra", "scope", "nobody", "--ca", "tokyo", code=3, match="no RA terminal named")
        out = cli.ok("ra", "scope", "old-window", "--ca", "osaka", "--ca", "tokyo", "--municipality", "Kita")
        assert "acts for osaka, tokyo" in out
        listed = {t["name"]: t for t in cli.json("ra", "list")}
        assert (listed["old-window"]["cas"], listed["old-window"]["municipality"]) == (["osaka", "tokyo"], "Kita")
        assert not any(unbound in w for w in _status_warnings(cli))
        [event] = audit_events(cli.engine, "ra.terminal_scope_set")
        assert {k: json.loads(event.detail)[k] for k in ("terminal", "before", "after", "municipality")} == {
            "terminal": "old-window", "before": [], "after": ["osaka", "tokyo"], "municipality": "Kita"}


def _status_warnings(cli: Cli) -> list[str]:
    """`revoca status --json` (here without the HSM service, so it exits 9: the warnings are still there)."""
    proc = cli.run("status", "--json")
    assert proc.returncode in (0, 1, 9) and "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)["warnings"]


def _register_without_scope(engine: sa.Engine, name: str) -> None:
    """A terminal row as an earlier release left it (no scope).  This installation has no token to
    issue a terminal certificate with, and only `ra list` and `ra scope` read the row: the bridge's
    TLS certificate stands in."""
    with session_scope(engine) as s:
        store = RevocationStore(s)
        [cert] = store.certificates(issuer=store.bridge(), kinds=[CertKind.TLS], limit=1)
        store.add_terminal(name=name, certificate=cert, now=NOW)


# --- migration 0008 -------------------------------------------------------------------------------------------


def _migrate(engine: sa.Engine, url: str, revision: str, *, down: bool = False) -> None:
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def _insert(conn: sa.Connection, table: str, **values: Any) -> None:
    conn.execute(sa.Table(table, sa.MetaData(), autoload_with=conn).insert().values(**values))


def test_migration_0008_leaves_earlier_terminals_with_no_scope_and_downgrades(db_url: str) -> None:
    """From 0007 (an earlier release's rows, written as that schema had them) to 0008 and back; only
    0008's own steps, so that the later revisions' downgrades are not what is tested here."""
    engine = make_engine(db_url)
    _migrate(engine, db_url, "0007")
    at = NOW.replace(tzinfo=None) if engine.dialect.name == "sqlite" else NOW
    with engine.begin() as conn:
        _insert(conn, "cas", id=1, name="tokyo", kind="regional", subject_dn="CN=tokyo", status="active",
                created_at=at)
        _insert(conn, "key_generations", id=1, ca_id=1, generation=1, key_label="tokyo-1", algorithm="p256",
                spki_der=b"k", ski=b"s", status="active", created_at=at)
        _insert(conn, "certificates", id=1, issuer_ca_id=1, issuer_key_id=1, kind="ra-terminal", serial="0" * 41 + "1",
                subject_dn="CN=old-window", not_before=at, not_after=at, fingerprint_sha256=b"f" * 32, der=b"d",
                created_at=at)
        _insert(conn, "ra_terminals", id=1, name="old-window", certificate_id=1, cert_fingerprint=b"f" * 32,
                disabled=False, created_at=at)
    _migrate(engine, db_url, "0008")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name, municipality FROM ra_terminals")).all() == [("old-window", "")]
        assert conn.execute(sa.text("SELECT COUNT(*) FROM ra_terminal_scopes")).scalar() == 0  # fail closed
    # a record-change request: 0007 cannot read its channel, so the downgrade refuses and changes nothing
    with engine.begin() as conn:
        _insert(conn, "revocation_requests", id=1, public_id=str(uuid.uuid4()), channel="record-change",
                status="completed", terminal_id=1, idempotency_key="change-0001", request_digest=b"r" * 32,
                certificate_id=1, reason=5, identity_document_checked=False, record_change_event="death",
                accepted_at=at, note="")
    with pytest.raises(RuntimeError, match="1 record-change revocation requests exist"):
        _migrate(engine, db_url, "0007", down=True)
    assert current_revision(engine) == "0008"
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM revocation_requests"))
    _migrate(engine, db_url, "0007", down=True)
    inspector = sa.inspect(engine)
    assert "ra_terminal_scopes" not in inspector.get_table_names()
    assert "municipality" not in {c["name"] for c in inspector.get_columns("ra_terminals")}
    assert not {"agent_authority", "record_change_event"} & {
        c["name"] for c in inspector.get_columns("revocation_requests")}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM ra_terminals")).scalars().all() == ["old-window"]
    _migrate(engine, db_url, "0008")
    assert current_revision(engine) == "0008"
    engine.dispose()
