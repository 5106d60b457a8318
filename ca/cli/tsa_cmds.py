"""`revoca tsa certificate|stamp|verify` and `revoca serve tsa` (the RFC 3161 time-stamp authority)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import click

from ca.cli.common import App, add_serve_command, pass_app
from ca.errors import InvalidInput
from ca.hsm.signer import KeyStore
from ca.storage.engine import session_scope
from ca.tsa.profile import IMPRINT_HASHES

DEFAULT_PORT = 8318


def ensure_demo_tsa(app: App, keys: KeyStore) -> tuple[Path, Path, Path]:
    """For `revoca run`: the TSA certificate (issued now if missing or ending soon) and a sample file
    to stamp: (tsa.pem, bridge-roots.pem, example.txt), for the printed `openssl ts` commands."""
    from ca.tsa.certificate import ensure_certificate, pem_paths

    ensure_certificate(app.settings, app.engine, keys, now=dt.datetime.now(dt.UTC), actor="demo",
                       time_guard=app.time_guard)
    cert_path, roots_path = pem_paths(app.settings)
    example = cert_path.parent / "example.txt"
    if not example.exists():
        example.write_text("Any file can be time-stamped; this one is for the demo.\n", encoding="utf-8")
    return cert_path, roots_path, example


@click.group("tsa")
def tsa_group() -> None:
    """The time-stamp authority (RFC 3161): its certificate, and stamping files."""


@tsa_group.command("certificate")
@click.option("--renew", is_flag=True, help="Issue a new certificate and key even if the current one is fresh.")
@pass_app
def tsa_certificate(app: App, renew: bool) -> None:
    """Issue the TSA certificate from the bridge CA (1 year, key in the token) when there is none,
    it ends within 30 days, or --renew (M key managers log in: the key is made in the token)."""
    from ca.tsa.certificate import ensure_certificate, pem_paths

    tsa, issued = ensure_certificate(app.settings, app.engine, app.hsm(), now=dt.datetime.now(dt.UTC),
                                     actor=app.actor, renew=renew, time_guard=app.time_guard)
    cert_path, roots_path = pem_paths(app.settings)
    cert = tsa.certificate
    click.echo(f"{'issued' if issued else 'current'} TSA certificate {cert.serial_number:x} "
               f"({cert.subject.rfc4514_string()}), valid until {cert.not_valid_after_utc:%Y-%m-%d}; "
               f"{cert_path}, bridge certificate {roots_path}")


def _when(t: dt.datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"


def _digest(path: Path, hash_name: str) -> bytes:
    h = hashlib.new(hash_name)
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from exc
    return h.digest()


@tsa_group.command("stamp")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--hash", "hash_name", type=click.Choice(list(IMPRINT_HASHES)), default="sha256", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="The reply to write (default FILE.tsr).")
@pass_app
def tsa_stamp(app: App, file: Path, hash_name: str, out: Path | None) -> None:
    """Time-stamp FILE through the HSM service; writes a TimeStampResp that `openssl ts -verify` reads."""
    from ca.tsa.authority import TimeStampAuthority
    from ca.tsa.certificate import pem_paths
    from ca.tsa.response import granted

    out = out or file.with_name(file.name + ".tsr")
    if not out.parent.is_dir():
        raise InvalidInput(f"--out {out}: directory {out.parent} does not exist")
    imprint = _digest(file, hash_name)
    with session_scope(app.engine) as session:
        authority = TimeStampAuthority.load(session, app.hsm(), time_guard=app.time_guard)
        row = authority.stamp(session, imprint, hash_name, app.actor)
        serial, gen_time, token = row.serial, row.gen_time, row.token
    out.write_bytes(granted(token))
    cert_path, roots_path = pem_paths(app.settings)
    click.echo(f"time-stamp {serial:x} at {_when(gen_time)} -> {out}")
    click.echo(f"check: openssl ts -verify -data {file} -in {out} -CAfile {roots_path} -untrusted {cert_path}")


@tsa_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--in", "reply", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The .tsr (TimeStampResp) or, with --token-in, the bare token.")
@click.option("--token-in", is_flag=True, help="--in holds a bare TimeStampToken, not a TimeStampResp.")
@click.option("--tsa-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The TSA certificate (PEM); default the current one in the data directory.")
@pass_app
def tsa_verify(app: App, file: Path, reply: Path, token_in: bool, tsa_cert: Path | None) -> None:
    """Check that a token stamps FILE and was signed by the TSA certificate; prints its time."""
    from cryptography import x509

    from ca.tsa.certificate import pem_paths
    from ca.tsa.errors import InvalidTimeStamp
    from ca.tsa.response import token_of
    from ca.tsa.verify import token_imprint_hash, verify_token

    cert_path = tsa_cert or pem_paths(app.settings)[0]
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{cert_path}: not a PEM certificate ({exc}); give --tsa-cert") from exc
    raw = reply.read_bytes()
    token = raw if token_in else token_of(raw)
    hash_name = token_imprint_hash(token)
    if hash_name not in IMPRINT_HASHES:
        raise InvalidTimeStamp(f"the token stamps a {hash_name} imprint, which revoca does not issue")
    gen_time = verify_token(token, cert, _digest(file, hash_name), hash_name)
    click.echo(f"OK: {file} was stamped at {_when(gen_time)}")


@click.command("tsa")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes.")
@pass_app
def serve_tsa(app: App, host: str, port: int, workers: int) -> None:
    """The time-stamp authority over HTTP (RFC 3161 3.4: application/timestamp-query)."""
    from ca.tsa.server import serve

    click.echo(f"time-stamp authority on http://{host}:{port}/ ({workers} workers)", err=True)
    serve(app.settings, host=host, port=port, workers=workers)


def register(cli: click.Group) -> None:
    cli.add_command(tsa_group)
    add_serve_command(cli, serve_tsa)
