"""`revoca cert import|list|show` (and `unrevoke`, which no one may run)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca.cli.common import App, emit_json, json_option, pass_app, table, when
from ca.enums import CertKind
from ca.errors import InvalidInput
from ca.serials import parse_hex_serial
from ca.storage.engine import session_scope
from ca.storage.store import Store

KIND_NAMES = [k.value for k in CertKind]


@click.group("cert")
def cert_group() -> None:
    """Certificates: subscriber certificates imported in bulk, and the CA-level ones."""


@cert_group.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--errors", "errors_to", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every rejection to this file (tab-separated: file, place, serial, reason; then a count "
                   "per file) and print only the first ones.")
@click.option("--resume", is_flag=True,
              help="Go on where an interrupted import of the same files stopped (finished files are skipped).")
@json_option
@pass_app
def cert_import(app: App, paths: tuple[Path, ...], errors_to: Path | None, resume: bool, as_json: bool) -> None:
    """Import subscriber certificates (PEM or DER files, bundles of many, or directories of them).
    Safe to run again; millions at a time, with a progress bar."""
    from ca.importing.importer import ErrorReport, import_certificates, total_size

    sink = None
    if errors_to is not None:
        if not errors_to.parent.is_dir():
            raise InvalidInput(f"--errors {errors_to}: directory {errors_to.parent} does not exist")
        sink = ErrorReport(errors_to.open("a" if resume else "w", encoding="utf-8"))
    try:
        with click.progressbar(length=total_size(paths), label="importing", file=sys.stderr, show_pos=False,
                               hidden=as_json or not sys.stderr.isatty()) as bar:
            report = import_certificates(app.engine, paths, progress=bar.update, policy=app.settings.ca,
                                         errors=sink, resume=resume)
    finally:
        if sink is not None:
            sink.close()
            sink.out.close()
    for line in report.rejected:
        click.echo(f"rejected: {line}", err=True)
    if report.rejected_count > len(report.rejected):
        click.echo(f"... {report.rejected_count - len(report.rejected)} more rejections: all are in {errors_to}",
                   err=True)
    summary = {"imported": report.imported, "already_present": report.already_present,
               "rejected": report.rejected_count, "rejections": report.rejected,
               "skipped_files": report.files_skipped, "skipped_certificates": report.certificates_skipped}
    if as_json:
        emit_json(summary)
    else:
        skipped = (f", done earlier {report.certificates_skipped} ({report.files_skipped} files finished)"
                   if resume else "")
        click.echo(f"imported {report.imported}, already present {report.already_present}, "
                   f"rejected {report.rejected_count}{skipped}")
    if report.rejected_count:
        sys.exit(1)


@cert_group.command("list")
@click.option("--ca", "ca_name", help="Only certificates issued by this CA.")
@click.option("--kind", type=click.Choice(KIND_NAMES), multiple=True, help="Only these kinds.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
@pass_app
def cert_list(app: App, ca_name: str | None, kind: tuple[str, ...], limit: int, offset: int, as_json: bool) -> None:
    """List certificates, oldest first."""
    with session_scope(app.engine) as session:
        store = Store(session)
        issuer = store.ca(ca_name) if ca_name else None
        names = {c.id: c.name for c in store.cas()}
        certs = store.certificates(issuer=issuer, kinds=[CertKind(k) for k in kind] or None, limit=limit,
                                   offset=offset)
        rows = [{"issuer": names[c.issuer_ca_id], "serial": format(c.serial, "x"), "kind": c.kind.value,
                 "not_after": c.not_after, "revoked": c.revocation is not None, "subject": c.subject_dn}
                for c in certs]
    if as_json:
        emit_json(rows)
        return
    table(["ISSUER", "SERIAL", "KIND", "NOT AFTER", "REVOKED", "SUBJECT"],
          [[r["issuer"], r["serial"], r["kind"], when(r["not_after"]), "yes" if r["revoked"] else "", r["subject"]]
           for r in rows])


@cert_group.command("show")
@click.option("--ca", "ca_name", required=True, help="The issuing CA.")
@click.argument("serial")
@click.option("--pem", is_flag=True, help="Print the certificate in PEM only.")
@json_option
@pass_app
def cert_show(app: App, ca_name: str, serial: str, pem: bool, as_json: bool) -> None:
    """One certificate by issuing CA and serial number (hex)."""
    number = parse_hex_serial(serial)
    with session_scope(app.engine) as session:
        store = Store(session)
        c = store.certificate(store.ca(ca_name), number)
        cert = x509.load_der_x509_certificate(c.der)
        revocation = c.revocation
        data = {"issuer_ca": ca_name, "serial": format(c.serial, "x"), "kind": c.kind.value, "subject": c.subject_dn,
                "issuer": cert.issuer.rfc4514_string(), "not_before": c.not_before, "not_after": c.not_after,
                "fingerprint_sha256": c.fingerprint_sha256.hex(),
                "signature_algorithm": cert.signature_algorithm_oid._name,
                "extensions": [e.oid._name for e in cert.extensions],
                "revoked": None if revocation is None else {"time": revocation.revocation_time,
                                                             "reason": revocation.reason},
                "pem": cert.public_bytes(serialization.Encoding.PEM).decode()}
    if pem:
        click.echo(data["pem"], nl=False)
    elif as_json:
        emit_json(data)
    else:
        for key in ("issuer_ca", "serial", "kind", "subject", "issuer", "not_before", "not_after",
                    "fingerprint_sha256", "signature_algorithm", "extensions", "revoked"):
            value = data[key]
            value = ", ".join(value) if isinstance(value, list) else when(value) if key.startswith("not_") else value
            click.echo(f"{key:20} {value if value is not None else 'no'}")


@cert_group.command("unrevoke")
@click.option("--ca", "ca_name", required=True, help="The issuing CA.")
@click.argument("serial")
def cert_unrevoke(ca_name: str, serial: str) -> None:
    """Never done: a revocation is final (seed 004 3.4.3, 4.9.13-4.9.16: no suspension, so no
    certificateHold and nothing to take back).

    The command is here so that whoever looks for it learns why: no role may run it, and each
    attempt is refused and recorded in the audit log.  A certificate revoked by mistake stays
    revoked in every CRL and OCSP answer; the subscriber applies for a new certificate."""
    raise AssertionError("the login gate (ca.cli.gate) refuses `revoca cert unrevoke` before it runs")


def register(cli: click.Group) -> None:
    cli.add_command(cert_group)


