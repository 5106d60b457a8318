"""`revoca ra ...` (terminals) and `revoca revocation ...` (dual control)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import audit, hierarchy
from ca.cli.common import App, add_serve_command, emit_json, json_option, pass_app, table, when
from ca.enums import CertKind, RequestChannel
from ca.errors import InvalidInput
from ca.hsm.signer import KeyAlgorithm
from ca.revocation import workflow
from ca.revocation.reasons import RFC_NAME, parse_reason
from ca.serials import parse_hex_serial
from ca.storage.engine import session_scope
from ca.storage.revocations import RevocationReadStore, RevocationStore


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _admitted(app: App, store: RevocationReadStore):  # the Operator row (rows stay in ca.storage)
    """The one operator the login gate admitted for this step: the receptionist, reviewer or approver."""
    (name,) = app.operators
    return store.operator(name)


@click.group("ra")
def ra_group() -> None:
    """RA terminals at the municipal windows."""


_CA_OPTION = click.option("--ca", "ca_names", multiple=True, required=True, metavar="PREFECTURE",
                          help="A regional CA the terminal acts for (its prefecture); repeat for more. "
                               "It revokes certificates of these CAs only.")
_MUNICIPALITY_OPTION = click.option("--municipality", default=None,
                                    help='The municipality whose window it serves, e.g. "Chiyoda".')


@ra_group.command("add")
@click.argument("name")
@_CA_OPTION
@_MUNICIPALITY_OPTION
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to write NAME.key, NAME.pem and bridge-roots.pem for the terminal.")
@pass_app
def ra_add(app: App, name: str, ca_names: tuple[str, ...], municipality: str | None, out_dir: Path) -> None:
    """Register a terminal bound to the CAs it acts for and issue its TLS client certificate
    (key written to a file, mode 0600)."""
    keys = app.hsm()
    key_path, cert_path, roots_path = out_dir / f"{name}.key", out_dir / f"{name}.pem", out_dir / "bridge-roots.pem"
    if key_path.exists() or cert_path.exists():
        raise InvalidInput(f"{key_path} or {cert_path} already exists; choose another --out")
    with session_scope(app.engine) as session:
        store = RevocationStore(session)
        if any(t.name == name for t in store.terminals()):
            raise InvalidInput(f"RA terminal {name!r} is already registered")
        scope = [store.ca(ca_name) for ca_name in ca_names]  # unknown names refused before anything is issued
        bridge = store.bridge()
        ctx = hierarchy.Context(store=store, keys=keys, now=_now(), actor="cli", time_guard=app.time_guard,
                                algorithm=KeyAlgorithm(app.settings.hsm.key_algorithm))
        subject = x509.Name.from_rfc4514_string(f"CN={name},OU=RA terminals,O=JPKI,C=JP")
        cert = hierarchy.issue_with_key_file(ctx, bridge, CertKind.RA_TERMINAL, subject=subject, key_path=key_path)
        row = store.certificate(bridge, cert.serial_number)
        store.add_terminal(name=name, certificate=row, now=ctx.now, cas=scope, municipality=municipality or "")
        roots = store.certificates(issuer=bridge, kinds=[CertKind.SELF_SIGNED])
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    roots_path.write_bytes(b"".join(x509.load_der_x509_certificate(r.der).public_bytes(serialization.Encoding.PEM)
                                    for r in roots))
    click.echo(f"RA terminal {name} registered for {', '.join(sorted(set(ca_names)))}: key {key_path}, "
               f"certificate {cert_path}, trust {roots_path}")


@ra_group.command("scope")
@click.argument("name")
@_CA_OPTION
@_MUNICIPALITY_OPTION
@pass_app
def ra_scope(app: App, name: str, ca_names: tuple[str, ...], municipality: str | None) -> None:
    """Set the CAs a registered terminal acts for (replacing its scope), e.g. one registered
    before terminals were bound to CAs, which may revoke nothing until then."""
    with session_scope(app.engine) as session:
        store = RevocationStore(session)
        terminal = store.terminal(name)
        before = [ca.name for ca in store.terminal_scope(terminal)]
        store.set_terminal_scope(terminal, [store.ca(ca_name) for ca_name in ca_names], municipality=municipality)
        after = [ca.name for ca in store.terminal_scope(terminal)]
        audit.record(session, "ra.terminal_scope_set", actor=app.actor, terminal=name, before=before, after=after,
                     municipality=terminal.municipality)
    click.echo(f"RA terminal {name} acts for {', '.join(after)}")


@ra_group.command("list")
@json_option
@pass_app
def ra_list(app: App, as_json: bool) -> None:
    """Registered terminals."""
    with session_scope(app.engine, readonly=True) as session:
        store = RevocationReadStore(session)
        rows: list[dict[str, Any]] = [
            {"name": t.name, "disabled": t.disabled, "municipality": t.municipality,
             "cas": [ca.name for ca in store.terminal_scope(t)],
             "fingerprint_sha256": t.cert_fingerprint.hex(), "created_at": t.created_at}
            for t in store.terminals()]
    if as_json:
        emit_json(rows)
        return
    table(["NAME", "STATUS", "MUNICIPALITY", "ACTS FOR", "CREATED", "CERT SHA-256"],
          [[r["name"], "disabled" if r["disabled"] else "active", r["municipality"] or "-",
            ",".join(r["cas"]) or "none (revokes nothing)", when(r["created_at"]), r["fingerprint_sha256"]]
           for r in rows])


@ra_group.command("disable")
@click.argument("name")
@pass_app
def ra_disable(app: App, name: str) -> None:
    """Refuse a terminal from now on (revoke its certificate too, under dual control)."""
    with session_scope(app.engine) as session:
        RevocationStore(session).terminal(name).disabled = True
    click.echo(f"RA terminal {name} disabled")


@click.group("revocation")
def revocation_group() -> None:
    """Dual control for CA-level certificates: a receptionist files, a reviewer reviews, an approver approves."""


@revocation_group.command("file")
@click.option("--ca", "ca_name", required=True, help="Issuing CA of the certificate.")
@click.argument("serial")
@click.option("--reason", required=True, help="keyCompromise, cACompromise, affiliationChanged, superseded, "
                                              "cessationOfOperation (or 1-5).")
@click.option("--note", default="")
@json_option
@pass_app
def revocation_file(app: App, ca_name: str, serial: str, reason: str, note: str, as_json: bool) -> None:
    """File a request to revoke a CA-level certificate; it waits for review and approval."""
    number = parse_hex_serial(serial)
    with session_scope(app.engine) as session:
        store = RevocationStore(session)
        clerk = _admitted(app, store)
        cert = store.certificate(store.ca(ca_name), number)
        if cert.kind is CertKind.SUBSCRIBER:
            raise InvalidInput("subscriber certificates are revoked at an RA window, not under dual control")
        filing = workflow.Filing(channel=RequestChannel.DUAL_CONTROL, certificate=cert,
                                   reason=parse_reason(int(reason) if reason.isdigit() else reason),
                                   receptionist=clerk, note=note)
        req, _ = workflow.file_request(store, filing, _now(), actor=app.actor)
        out = {"request_id": req.public_id, "status": req.status.value}
    emit_json(out) if as_json else click.echo(f"request {out['request_id']} filed: {out['status']}")


def _decide(app: App, public_id: str, accept: bool, note: str, step: str) -> None:
    with session_scope(app.engine) as session:
        store = RevocationStore(session)
        op = _admitted(app, store)
        if step == "review":
            req = workflow.review(store, public_id, op, accept=accept, now=_now(), note=note)
        else:
            req, _ = workflow.approve(store, public_id, op, accept=accept, now=_now(), note=note)
        status = req.status.value
    click.echo(f"request {public_id}: {status}")


@revocation_group.command("review")
@click.argument("request_id")
@click.option("--reject", is_flag=True, help="Reject instead of passing it on for approval.")
@click.option("--note", default="")
@pass_app
def revocation_review(app: App, request_id: str, reject: bool, note: str) -> None:
    """Review a filed request (the reviewer is not the receptionist who filed it)."""
    _decide(app, request_id, not reject, note, "review")


@revocation_group.command("approve")
@click.argument("request_id")
@click.option("--reject", is_flag=True, help="Reject instead of approving.")
@click.option("--note", default="")
@pass_app
def revocation_approve(app: App, request_id: str, reject: bool, note: str) -> None:
    """Approve a reviewed request: the certificate is revoked at once (the approver is neither the
    receptionist nor the reviewer)."""
    _decide(app, request_id, not reject, note, "approve")


@revocation_group.command("pending")
@json_option
@pass_app
def revocation_pending(app: App, as_json: bool) -> None:
    """Requests waiting for review or approval."""
    with session_scope(app.engine, readonly=True) as session:
        store = RevocationReadStore(session)
        names = {c.id: c.name for c in store.cas()}
        rows = [{"request_id": r.public_id, "status": r.status.value, "issuer": names[r.certificate.issuer_ca_id],
                 "serial": format(r.certificate.serial, "x"), "kind": r.certificate.kind.value,
                 "reason": RFC_NAME[parse_reason(r.reason)], "accepted_at": r.accepted_at}
                for r in store.pending_requests()]
    if as_json:
        emit_json(rows)
        return
    table(["REQUEST", "STATUS", "ISSUER", "SERIAL", "KIND", "REASON", "FILED"],
          [[r["request_id"], r["status"], r["issuer"], r["serial"], r["kind"], r["reason"], when(r["accepted_at"])]
           for r in rows])


@click.command("ra")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8443, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@pass_app
def serve_ra(app: App, host: str, port: int, workers: int) -> None:
    """The RA API over HTTPS (gunicorn); terminals present the client certificate from `revoca ra add`."""
    from ca.ra.server import serve

    serve(app.settings, app.engine, host=host, port=port, workers=workers)


def register(cli: click.Group) -> None:
    cli.add_command(ra_group)
    cli.add_command(revocation_group)
    add_serve_command(cli, serve_ra)
