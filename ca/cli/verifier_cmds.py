"""`revoca verifier add|remove|list`: who may read CRLs from the repository (and, later, ask OCSP).

Each change is committed to the database first and then applied to the local slapd at once;
when the directory cannot be reached the change stays committed and the publisher applies it
in its next round, so the command still succeeds and says so.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shlex
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import hierarchy
from ca.cli.common import App, emit_json, json_option, pass_app, table, when
from ca.enums import CertKind
from ca.errors import InvalidInput
from ca.hsm.signer import KeyAlgorithm
from ca.storage.engine import session_scope
from ca.storage.store import Store
from ca.verifiers import registry
from repository import verifier_accounts
from repository.directory import RepositoryError

CRL_ATTRIBUTE = "certificateRevocationList;binary"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _slapd(app: App):
    from repository.slapd import LocalSlapd

    s = app.settings
    return LocalSlapd(s.ldap_dir, s.repository.base_dn, s.repository.port)


def _load_certificate(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InvalidInput(f"{path} is not an X.509 certificate in PEM or DER: {exc}") from exc


def _read_password_file(path: Path) -> str:
    """The password is the file's first line (a trailing newline is not part of it)."""
    password = path.read_text(encoding="utf-8").split("\n", 1)[0].rstrip("\r")
    if not password:
        raise InvalidInput(f"{path}: the first line is empty; put the verifier's password there")
    return password


def _apply(app: App, done: str, pending: str) -> None:
    """Apply the committed change to LDAP now; an unreachable directory is not a failure of the command."""
    try:
        applied = verifier_accounts.apply_now(app.settings, app.engine, now=_now())
    except RepositoryError as exc:
        raise RepositoryError(f"the database change is committed, but the directory refused it: {exc}") from exc
    if applied.report is None:
        click.echo(f"LDAP not reachable now ({applied.pending}); {pending}")
    else:
        click.echo(f"{done} ({applied.report.line()})")


@click.group("verifier")
def verifier_group() -> None:
    """Registered verifiers: LDAP accounts that may read CRLs from the repository."""


@verifier_group.command("add")
@click.argument("name")
@click.option("--cert", "cert_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The verifier's own certificate (PEM or DER); without it one is issued from the bridge CA.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write NAME.key, NAME.pem and bridge-roots.pem for an issued certificate [default: .].")
@click.option("--password-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="File whose first line is the LDAP password; without it one is generated and shown once.")
@pass_app
def verifier_add(app: App, name: str, cert_path: Path | None, out_dir: Path | None,
                 password_file: Path | None) -> None:
    """Register a verifier and create its LDAP account (member of the group that may read CRLs)."""
    registry.check_name(name)
    if cert_path is not None and out_dir is not None:
        raise InvalidInput("--out is only for a certificate revoca issues; with --cert the verifier keeps its own key")
    password = _read_password_file(password_file) if password_file else secrets.token_urlsafe(24)
    registry.check_password(password)  # refused before anything is issued
    base_dn = app.settings.repository.base_dn
    now = _now()
    written: list[Path] = []
    if cert_path is not None:
        info = registry.add_verifier(app.engine, name=name, certificate=_load_certificate(cert_path),
                                     password=password, now=now, base_dn=base_dn, actor=app.actor)
    else:
        out = out_dir or Path(".")
        key_path, pem_path, roots_path = out / f"{name}.key", out / f"{name}.pem", out / "bridge-roots.pem"
        if key_path.exists() or pem_path.exists():
            raise InvalidInput(f"{key_path} or {pem_path} already exists; choose another --out")
        keys = app.hsm()
        try:
            with session_scope(app.engine) as session:
                store = Store(session)
                registry.check_available(session, name)  # before a certificate is issued for nothing
                ctx = hierarchy.Context(store=store, keys=keys, now=now, actor=app.actor, time_guard=app.time_guard,
                                        algorithm=KeyAlgorithm(app.settings.hsm.key_algorithm))
                cert, certificate_id = registry.issue_certificate(ctx, name, key_path=key_path)
                info = registry.register(session, name=name, certificate=cert, password=password, now=now,
                                         base_dn=base_dn, certificate_id=certificate_id, actor=app.actor)
                roots = store.certificates(issuer=store.bridge(), kinds=[CertKind.SELF_SIGNED])
        except BaseException:
            if key_path.exists() and not pem_path.exists():
                key_path.unlink()  # the transaction rolled back: no certificate goes with this key
            raise
        pem_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        roots_path.write_bytes(b"".join(x509.load_der_x509_certificate(r.der).public_bytes(
            serialization.Encoding.PEM) for r in roots))
        written = [key_path, pem_path, roots_path]
    click.echo(f"verifier {info.name} registered: LDAP account {info.dn}")
    if written:
        click.echo(f"key {written[0]} (mode 0600), certificate {written[1]}, trust {written[2]}")
    if password_file is None:
        click.echo(f"LDAP password (shown only once; it is not stored, only its hash): {password}")
    _apply(app, done=f"account {info.dn} is in the directory and may read CRLs",
           pending=f"the account {info.dn} will be created when the repository is reachable")
    command = ["ldapsearch", "-x", "-H", _slapd(app).uri, "-D", info.dn, "-W", "-b", base_dn,
               "(certificateRevocationList=*)", CRL_ATTRIBUTE]
    click.echo(f"fetch CRLs with: {shlex.join(command)}")


@verifier_group.command("remove")
@click.argument("name")
@click.option("--reason", required=True, help="Why the verifier loses access (kept with the record).")
@pass_app
def verifier_remove(app: App, name: str, reason: str) -> None:
    """Remove a verifier: its account leaves the group and is deleted at once (the record stays)."""
    info = registry.remove_verifier(app.engine, name, reason=reason, now=_now(), actor=app.actor)
    click.echo(f"verifier {info.name} removed")
    _apply(app, done=f"account {info.dn} deleted; CRL access ended",
           pending=f"the account {info.dn} will be deleted when the repository is reachable")


@verifier_group.command("list")
@json_option
@pass_app
def verifier_list(app: App, as_json: bool) -> None:
    """Every verifier, removed ones included; EFFECTIVE says whether it may read CRLs now."""
    verifiers = registry.list_verifiers(app.engine, now=_now())
    rows = [{"name": v.name, "status": v.status.value, "effective": v.effective, "dn": v.dn,
             "subject": v.subject_dn, "issuer": v.issuer_dn, "serial": format(v.serial, "x"),
             "fingerprint_sha256": v.fingerprint.hex(), "not_after": v.not_after,
             "issued_by_revoca": v.issued_by_revoca, "password": v.has_password, "created_at": v.created_at,
             "removed_at": v.removed_at, "removed_reason": v.removed_reason}
            for v in verifiers]
    if as_json:
        emit_json(rows)
        return
    table(["NAME", "STATUS", "EFFECTIVE", "SUBJECT", "SHA-256", "NOT AFTER", "CREATED"],
          [[v.name, v.status.value, "yes" if v.effective else "no", v.subject_dn,
            v.fingerprint.hex()[:16], when(v.not_after), when(v.created_at)] for v in verifiers])


def register(cli: click.Group) -> None:
    cli.add_command(verifier_group)
