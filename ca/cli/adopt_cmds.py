"""`revoca ca adopt` and `revoca crl import-history`: taking over a CA that exists (ca.adoption).

Attached to the `ca` and `crl` groups their own modules make (ca.cli.MODULES lists this module
after them).  The adoption machinery is imported inside the commands, as in crl_cmds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ca.cli.common import App, pass_app
from ca.errors import InvalidInput

if TYPE_CHECKING:
    from cryptography import x509

    from ca.adoption.adopt import ServerCertificate

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _one_certificate(path: Path) -> x509.Certificate:
    from cryptography import x509

    from ca.importing.importer import read_certificates

    try:
        certs = read_certificates(path)
    except (OSError, ValueError, x509.InvalidVersion) as exc:
        raise InvalidInput(f"{path}: not a certificate ({str(exc).splitlines()[0]})") from exc
    if len(certs) != 1:
        raise InvalidInput(f"{path}: expected one certificate, found {len(certs)}")
    return certs[0]


def _external(value: str) -> tuple[str, x509.Certificate]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise InvalidInput(f"--external {value!r}: give NAME=FILE (the external CA's self-signed certificate)")
    if not Path(path).is_file():
        raise InvalidInput(f"--external {name}: {path} is not a file")
    return name, _one_certificate(Path(path))


def _server(value: str) -> ServerCertificate:
    """--server KIND=FILE[@KEY]: KEY is the label of its key in the token, or id:HEX for its CKA_ID."""
    from ca.adoption.adopt import SERVER_KINDS, ServerCertificate
    from ca.enums import CertKind

    kind, sep, rest = value.partition("=")
    path, _at, key = rest.partition("@")
    kinds = {k.value for k in SERVER_KINDS}
    if not sep or kind not in kinds or not path:
        raise InvalidInput(f"--server {value!r}: give KIND=FILE[@KEY-LABEL] with KIND one of "
                           f"{', '.join(sorted(kinds))}")
    if not Path(path).is_file():
        raise InvalidInput(f"--server {kind}: {path} is not a file")
    key_id = None
    if key.startswith("id:"):
        try:
            key_id = bytes.fromhex(key[3:].replace(":", ""))
        except ValueError as exc:
            raise InvalidInput(f"--server {kind}: key id {key[3:]!r} is not hex") from exc
    return ServerCertificate(CertKind(kind), _one_certificate(Path(path)), key_label=(key or None) if key_id is None
                             else None, key_id=key_id)


@click.command("adopt")
@click.argument("name")
@click.option("--kind", type=click.Choice(["regional", "bridge"]), default="regional", show_default=True,
              help="What the CA is in the hierarchy.")
@click.option("--certificate", "certificate_path", type=FILE, required=True,
              help="The CA's self-signed certificate of its current key (PEM or DER).")
@click.option("--key-label", help="CKA_LABEL of the CA's private key in the token.")
@click.option("--key-id", help="CKA_ID of the CA's private key in the token, in hex (instead of --key-label).")
@click.option("--previous-certificate", "previous", type=FILE, multiple=True,
              help="Self-signed certificate of an earlier key generation (repeatable).")
@click.option("--link", "links", type=FILE, multiple=True,
              help="A link certificate (OldWithNew or NewWithOld) between its key generations (repeatable).")
@click.option("--cross", "crosses", type=FILE, multiple=True,
              help="A cross certificate it issued to, or received from, a CA revoca knows (repeatable).")
@click.option("--external", "externals", multiple=True, metavar="NAME=FILE",
              help="Register an external CA (e.g. the government bridge) from its self-signed certificate, kept "
                   "external, for the cross certificates (repeatable).")
@click.option("--server", "servers", multiple=True, metavar="KIND=FILE[@KEY]",
              help="A responder, CVS or TLS certificate it issued (KIND ocsp-responder, cvs-server or tls), with the "
                   "label of its key in the token (or id:HEX), or without a key: recorded only (repeatable).")
@pass_app
def ca_adopt(app: App, name: str, kind: str, certificate_path: Path, key_label: str | None, key_id: str | None,
             previous: tuple[Path, ...], links: tuple[Path, ...], crosses: tuple[Path, ...],
             externals: tuple[str, ...], servers: tuple[str, ...]) -> None:
    """Take over an existing CA: its key where it is in the token, its self-signed, link and cross certificates,
    and its responder, CVS and TLS certificates."""
    from ca import audit
    from ca.adoption.adopt import AdoptionRequest, adopt
    from ca.enums import CAKind
    from ca.errors import RevocaError
    from ca.storage.adoption import AdoptionStore
    from ca.storage.engine import session_scope

    try:
        key_id_bytes = bytes.fromhex(key_id.replace(":", "")) if key_id is not None else None
    except ValueError as exc:
        raise InvalidInput(f"--key-id {key_id!r} is not hex") from exc
    try:
        request = AdoptionRequest(
            name=name, kind=CAKind(kind), certificate=_one_certificate(certificate_path), key_label=key_label,
            key_id=key_id_bytes, previous=tuple(_one_certificate(p) for p in previous),
            links=tuple(_one_certificate(p) for p in links), crosses=tuple(_one_certificate(p) for p in crosses),
            externals=tuple(_external(e) for e in externals),
            servers=tuple(_server(v) for v in servers))
        keys = app.hsm()
        with session_scope(app.engine) as session:
            result = adopt(AdoptionStore(session), keys, request, now=dt.datetime.now(dt.UTC), actor=app.actor,
                           time_guard=app.time_guard)
    except RevocaError as exc:
        audit.record_failure(app.engine, "ca.adopted", actor=app.actor, error=str(exc), ca=name,
                             certificate=str(certificate_path))
        raise
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    click.echo(result.line())


@contextlib.contextmanager
def _bar(label: str, length: int) -> Iterator[Callable[[int], object]]:
    """A progress bar on a terminal (stderr), nothing otherwise."""
    with click.progressbar(length=max(length, 1), label=label, file=sys.stderr,
                           hidden=not sys.stderr.isatty()) as bar:
        yield bar.update


@click.command("import-history")
@click.option("--ca", "ca_name", required=True, metavar="NAME", help="The adopted CA.")
@click.option("--crl", "crl_path", type=FILE, required=True,
              help="The previous system's last CRL of the CA (DER or PEM).")
@click.option("--arl", "arl_path", type=FILE, help="Its last ARL (DER or PEM).")
@click.option("--no-previous-arl", is_flag=True,
              help="The previous system issued no ARL for this CA: revoca's first ARL is number 1.")
@click.option("--index", "index_path", type=FILE,
              help="An `openssl ca` index.txt of the previous system: its revoked (R) records too.")
@click.option("--csv", "csv_path", type=FILE,
              help="A CSV export (serial, revocation_date, reason[, list]) of revocations too.")
@pass_app
def crl_import_history(app: App, ca_name: str, crl_path: Path, arl_path: Path | None, no_previous_arl: bool,
                       index_path: Path | None, csv_path: Path | None) -> None:
    """Import an adopted CA's revocation history, exact; its next CRL/ARL numbers continue above it."""
    from ca.adoption.history import HistorySources, import_history

    sources = HistorySources(crl=crl_path, arl=arl_path, index=index_path, csv=csv_path,
                             no_previous_arl=no_previous_arl)
    report = import_history(app.engine, app.settings.data_dir, ca_name, sources, actor=app.actor, progress=_bar)
    for line in report.lines():
        click.echo(line)


def register(cli: click.Group) -> None:
    """Add the commands to whichever of the `ca` and `crl` groups are loaded."""
    for group_name, command in (("ca", ca_adopt), ("crl", crl_import_history)):
        group = cli.commands.get(group_name)
        if isinstance(group, click.Group):
            group.add_command(command)
