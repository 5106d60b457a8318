"""`revoca ca list|show|rollover|cross-certify|compromise|terminate`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import hierarchy
from ca.cli.common import App, emit_json, json_option, pass_app, table, when
from ca.config import Settings
from ca.crl.after_compromise import issue_after_compromise
from ca.enums import CertKind
from ca.errors import InvalidInput
from ca.hsm.signer import KeyAlgorithm, KeyStore
from ca.importing.importer import read_certificates
from ca.lifecycle import key_policy
from ca.revocation import compromise
from ca.storage.engine import session_scope
from ca.storage.models import Certificate, CertificateAuthority
from ca.storage.revocations import RevocationStore
from ca.storage.store import Store


def _ca_summary(store: Store, ca: CertificateAuthority) -> dict[str, object]:
    current = next((k for k in reversed(ca.keys) if k.status.value == "active"), None)
    return {"name": ca.name, "kind": ca.kind.value, "status": ca.status.value, "subject": ca.subject_dn,
            "key_generation": current.generation if current else None,
            "algorithm": current.algorithm if current else None, "terminated_at": ca.terminated_at}


def _cert_row(c: Certificate, names: dict[int, str]) -> dict[str, object]:
    return {"serial": format(c.serial, "x"), "kind": c.kind.value, "issuer": names.get(c.issuer_ca_id),
            "subject_ca": names.get(c.subject_ca_id) if c.subject_ca_id else None, "subject": c.subject_dn,
            "not_before": c.not_before, "not_after": c.not_after, "fingerprint_sha256": c.fingerprint_sha256.hex(),
            "revoked": c.revocation is not None}


@click.group("ca")
def ca_group() -> None:
    """Certificate authorities: bridge, regional and external."""


@ca_group.command("list")
@json_option
@pass_app
def ca_list(app: App, as_json: bool) -> None:
    """List every CA with its current key."""
    with session_scope(app.engine) as session:
        store = Store(session)
        rows = [_ca_summary(store, ca) for ca in store.cas()]
    if as_json:
        emit_json(rows)
        return
    table(["NAME", "KIND", "STATUS", "KEY", "ALGORITHM", "SUBJECT"],
          [[r["name"], r["kind"], r["status"], r["key_generation"], r["algorithm"], r["subject"]] for r in rows])


@ca_group.command("show")
@click.argument("name")
@click.option("--pem", is_flag=True, help="Also print each CA-level certificate in PEM.")
@json_option
@pass_app
def ca_show(app: App, name: str, pem: bool, as_json: bool) -> None:
    """One CA: its keys and the certificates it holds or issued (self-signed, cross pairs, links, servers)."""
    with session_scope(app.engine) as session:
        store = Store(session)
        ca = store.ca(name)
        names = {c.id: c.name for c in store.cas()}
        summary = _ca_summary(store, ca)
        keys = [{"generation": k.generation, "label": k.key_label, "algorithm": k.algorithm, "status": k.status.value,
                 "ski": k.ski.hex(), "created_at": k.created_at} for k in ca.keys]
        ca_level = [k for k in CertKind if k is not CertKind.SUBSCRIBER]  # never load millions of subscribers
        issued = list(store.certificates(issuer=ca, kinds=ca_level))
        held = [c for c in store.certificates(subject_ca=ca) if c.issuer_ca_id != ca.id]
        certs = [_cert_row(c, names) | ({"pem": _pem(c)} if pem else {}) for c in issued + held]
        subscribers = store.count_certificates(ca, CertKind.SUBSCRIBER)
    data = summary | {"keys": keys, "certificates": certs, "subscriber_certificates": subscribers}
    if as_json:
        emit_json(data)
        return
    click.echo(f"{data['name']} ({data['kind']}, {data['status']})  {data['subject']}")
    click.echo(f"subscriber certificates: {subscribers}\n\nKeys")
    table(["GEN", "STATUS", "ALGORITHM", "LABEL", "SKI", "CREATED"],
          [[k["generation"], k["status"], k["algorithm"], k["label"] or "(external)", k["ski"], when(k["created_at"])]
           for k in keys])
    click.echo("\nCertificates")
    table(["KIND", "SERIAL", "ISSUER", "SUBJECT CA", "NOT AFTER", "REVOKED", "SUBJECT"],
          [[c["kind"], c["serial"], c["issuer"], c["subject_ca"] or "", when(c["not_after"]),
            "yes" if c["revoked"] else "", c["subject"]] for c in certs])
    if pem:
        for c in certs:
            click.echo(f"\n# {c['kind']} serial {c['serial']}\n{c['pem']}", nl=False)


def _pem(c: Certificate) -> str:
    return x509.load_der_x509_certificate(c.der).public_bytes(serialization.Encoding.PEM).decode()


def _context(app: App, store: Store, keys: KeyStore, actor: str) -> hierarchy.Context:
    settings: Settings = app.settings
    return hierarchy.Context(store=store, keys=keys, now=dt.datetime.now(dt.UTC), actor=actor,
                             time_guard=app.time_guard,
                             algorithm=KeyAlgorithm(settings.hsm.key_algorithm),
                             responder_algorithm=KeyAlgorithm(settings.ocsp.responder_algorithm),
                             new_keys=settings.ca.new_keys)


@ca_group.command("rollover")
@click.argument("name")
@pass_app
def ca_rollover(app: App, name: str) -> None:
    """New key and self-signed certificate, with OldWithNew and NewWithOld link certificates
    (M key managers log in: the key is made in the token)."""
    key_policy.require_new_keys(app.engine, app.settings.ca, act="key rollover", ca=name, actor=app.actor)
    keys = app.hsm()
    with session_scope(app.engine) as session:
        key = hierarchy.rollover(_context(app, Store(session), keys, app.actor), name)
        generation = key.generation
    click.echo(f"CA {name}: key generation {generation} is active; link and cross certificates issued")


@ca_group.command("cross-certify")
@click.argument("name")
@click.option("--their-ca", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The external CA's self-signed certificate: registers it and issues our cross certificate.")
@click.option("--their-cross", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The cross certificate the external CA issued to our bridge.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write our cross certificate (PEM) for the external CA.")
@pass_app
def ca_cross_certify(app: App, name: str, their_ca: Path | None, their_cross: Path | None, out: Path | None) -> None:
    """Cross-certify the bridge with an external CA (e.g. the government bridge CA): a senior
    operator and M key managers log in."""
    if their_ca is None and their_cross is None:
        raise InvalidInput("give --their-ca (first step) and/or --their-cross (second step)")
    if out is not None and not out.parent.is_dir():
        raise InvalidInput(f"--out {out}: directory {out.parent} does not exist")
    keys = app.hsm()
    ours = None
    with session_scope(app.engine) as session:
        store = Store(session)
        ctx = _context(app, store, keys, app.actor)
        if their_ca is not None:
            external = hierarchy.import_external_ca(ctx, name, _one_cert(their_ca))
            ours = hierarchy.cross_certify(ctx, store.bridge(), external)
        if their_cross is not None:
            hierarchy.import_their_cross(ctx, store.ca(name), _one_cert(their_cross))
    # committed: only now hand the certificate out
    if ours is not None:
        pem = ours.public_bytes(serialization.Encoding.PEM)
        if out:
            out.write_bytes(pem)
        click.echo(f"registered external CA {name}; issued cross certificate serial {ours.serial_number:x}"
                   + (f" -> {out}" if out else ""))
        if not out:
            click.echo(pem.decode(), nl=False)
    if their_cross is not None:
        click.echo(f"stored the cross certificate {name} issued to our bridge")


def _one_cert(path: Path) -> x509.Certificate:
    try:
        certs = read_certificates(path)
    except (ValueError, x509.InvalidVersion) as exc:
        raise InvalidInput(f"{path}: not a certificate ({str(exc).splitlines()[0]})") from exc
    if len(certs) != 1:
        raise InvalidInput(f"{path}: expected one certificate, found {len(certs)}")
    return certs[0]


@ca_group.command("compromise")
@click.argument("name")
@click.option("--note", default="")
@pass_app
def ca_compromise(app: App, name: str, note: str) -> None:
    """CA key compromise: revoke everything the key signed (cACompromise) and issue its CRL and ARL at once
    (two senior operators log in)."""
    first, second = app.operators  # the gate admitted exactly two different senior operators
    with session_scope(app.engine) as session:
        store = RevocationStore(session)
        count = compromise.compromise(store, name, (store.operator(first), store.operator(second)),
                                      dt.datetime.now(dt.UTC), note=note)
    click.echo(f"CA {name}: key marked compromised, {count} certificate(s) revoked with reason cACompromise")
    click.echo(f"notice to relying parties recorded: the web repository shows it (notices.html, ca/{name}.html)")
    for line in issue_after_compromise(app.engine, app.hsm(), app.settings, name, time_guard=app.time_guard):
        click.echo(line)


@ca_group.command("terminate")
@click.option("--ca", "ca_name", required=True, help="The CA to end.")
@click.option("--cross", "cross", required=True, type=click.Choice(["revoke", "keep"]),
              help="revoke: its cross certificates in both directions (cessationOfOperation); keep: left to expire.")
@click.option("--export", "export_to", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new directory for the sealed archive's export.")
@pass_app
def ca_terminate(app: App, ca_name: str, cross: str, export_to: Path) -> None:
    """End a CA once no subscriber certificate of it is valid (seed 004 5.8): final CRL and ARL, cross
    certificates revoked or kept, the CA marked terminated, the archive sealed and exported
    (M key managers and a senior operator log in)."""
    from ca.lifecycle.termination import terminate
    from ca.tsa.known import tsa_certificates
    from ca.tsa.stamper import CurrentAuthority

    keys = app.hsm()
    with session_scope(app.engine, readonly=True) as session:
        tsa = tsa_certificates(session)
    done = terminate(app.engine, keys, app.settings.data_dir, ca_name, now=dt.datetime.now(dt.UTC),
                     revoke_cross=cross == "revoke", actor=app.actor, export_to=export_to,
                     stamper=CurrentAuthority(keys, app.time_guard), tsa_certificates=tsa, time_guard=app.time_guard)
    for line in done.lines():
        click.echo(line)


def register(cli: click.Group) -> None:
    cli.add_command(ca_group)
