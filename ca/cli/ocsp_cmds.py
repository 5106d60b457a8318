"""`revoca serve ocsp` (the OCSP responder for registered verifiers), `revoca serve ocsp-signer` (its answers
signed ahead), `revoca ocsp renew|key-file`."""

from __future__ import annotations

import datetime as dt

import click

from ca.cli.common import App, add_serve_command, pass_app
from ca.errors import InvalidInput
from ca.hsm.signer import KeyAlgorithm

DEFAULT_PORT = 8880


@click.command("ocsp")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes (one per core is a good start).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Threads per worker that run the app: granian's blocking threads (one measured fastest: an "
                   "answer is CPU work under one GIL); under gunicorn, above 1 its threaded workers keep "
                   "connections alive.")
@click.option("--server", "server_name", type=click.Choice(["granian", "gunicorn"]), default=None,
              help="The HTTP server: granian (Rust; measured 3x gunicorn's throughput here) unless --tls, "
                   "which needs gunicorn (it hands the client certificate to the app).")
@click.option("--tls", is_flag=True,
              help="HTTPS: a verifier's TLS client certificate (chaining to the bridge) authorizes it too.")
@click.option("--ca-signed", is_flag=True,
              help="Sign with the CA keys instead of the delegated responder certificates (as [ocsp] ca_signed; "
                   "the signer must allow it: [hsm] ocsp_ca_keys).  Without it a CA key with no valid responder "
                   "certificate is answered tryLater, never signed with the CA key.")
@click.option("--key-store", type=click.Choice(["token", "file"]), default="token", show_default=True,
              help="Where the delegated responder keys are: the token (through the HSM service) or key files "
                   "made by `revoca ocsp key-file` (falling back to the token where a CA has none).")
@pass_app
def serve_ocsp(app: App, host: str, port: int, workers: int, threads: int, server_name: str, tls: bool,
               ca_signed: bool, key_store: str) -> None:
    """The OCSP responder (RFC 6960 POST, RFC 5019 GET) for registered verifiers."""
    from ocsp.server import serve, serve_granian

    ca_signed = ca_signed or app.settings.ocsp.ca_signed
    if ca_signed and not app.settings.hsm.ocsp_ca_keys:
        click.echo("warning: CA-signed answers: a responder running as its own identity is refused the CA keys "
                   "by the signer unless [hsm] ocsp_ca_keys = true", err=True)
    click.echo(f"OCSP responder on {'https' if tls else 'http'}://{host}:{port}/ ({workers} workers, "
               f"keys: {key_store}, {server_name or ('gunicorn' if tls else 'granian')})", err=True)
    server_name = server_name or ("gunicorn" if tls else "granian")
    if server_name == "granian":
        if tls:
            raise InvalidInput("--tls needs --server gunicorn (granian does not hand client certificates on)")
        serve_granian(app.settings, config_path=app.config_path, host=host, port=port, workers=workers,
                      threads=threads, ca_signed=ca_signed, key_files=key_store == "file")
        return
    serve(app.settings, host=host, port=port, workers=workers, threads=threads, tls=tls, ca_signed=ca_signed,
          key_files=key_store == "file")


@click.command("ocsp-signer")
@click.option("--key-store", type=click.Choice(["token", "file"]), default="token", show_default=True,
              help="Sign with the responder keys the responders use: give the same as to `revoca serve ocsp`.")
@click.option("--ca-signed", is_flag=True, help="As `revoca serve ocsp --ca-signed` (or [ocsp] ca_signed).")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Signing threads, each with its own connection to the HSM service.")
@click.option("--once", is_flag=True,
              help="Sign every answer that is missing or stale, say how many, how long and what the table holds, "
                   "and exit (a first fill, or a measure of a full re-sign).")
@pass_app
def serve_ocsp_signer(app: App, key_store: str, ca_signed: bool, threads: int, once: bool) -> None:
    """Sign every certificate's OCSP answer ahead and keep it fresh, for every responder (one leader)."""
    from ca.cli.common import service_logging, stop_on_signals
    from ca.hsm.client import HSMClient
    from ca.storage.engine import open_current
    from ca.storage.grants import role_for
    from ocsp.keys import ResponderKeys, keys_dir, passphrase_path
    from ocsp.presigner import Presigner

    settings = app.settings
    service_logging()
    engine = open_current(settings.db_url, role=role_for(settings, "ocsp"))
    passphrase = passphrase_path(settings) if key_store == "file" else keys_dir(settings) / "unused"
    signer = Presigner(engine, lambda: ResponderKeys(HSMClient(settings.hsm_socket), keys_dir(settings), passphrase),
                       ca_signed=ca_signed or settings.ocsp.ca_signed, key_files=key_store == "file",
                       threads=threads, time_guard=app.time_guard)
    if once:
        report = signer.sign_all()
        count, size = signer.store.size()
        rate = report.signed / report.seconds if report.seconds else 0.0
        click.echo(f"signed {report.signed} OCSP answers in {report.seconds:.1f} s ({rate:.0f}/s); the table holds "
                   f"{count} answers, {size / 1e6:.1f} MB of signed DER ({size / max(count, 1):.0f} bytes each)")
        return
    click.echo(f"OCSP signer: answers signed ahead with the responder keys ({key_store}), {threads} threads", err=True)
    signer.run(stop_on_signals())
    click.echo("OCSP signer stopped", err=True)


@click.group("ocsp")
def ocsp_group() -> None:
    """The OCSP responder's keys."""


@ocsp_group.command("renew")
@click.option("--ca", "ca_name", required=True, help="The CA whose key issues the responder certificate.")
@click.option("--key-store", type=click.Choice(["token", "file"]), default="token", show_default=True,
              help="Where the new responder key is made: the token (through the HSM service) or an encrypted "
                   "file for `revoca serve ocsp --key-store file`.")
@click.option("--algorithm", type=click.Choice([a.value for a in KeyAlgorithm]), default=None,
              help="The new key's algorithm (default p256, in the token and in a file: an ECDSA P-256 signature "
                   "costs a thirtieth of an RSA-2048 one, what every answer with a nonce and every unknown serial "
                   "pays; docs/verifier-guide.md).")
@click.option("--key-generation", "generation", type=click.IntRange(1), default=None,
              help="The CA key the certificate answers for (default: the current one); an older key after a "
                   "rollover, whose certificates OCSP still answers for.")
@pass_app
def ocsp_renew(app: App, ca_name: str, key_store: str, algorithm: str | None, generation: int | None) -> None:
    """Issue a new delegated responder certificate (1 year) and key before the one in use ends.

    The one in use stays valid until it ends; the responders sign with the new one within a
    minute, without a restart.  `revoca status` warns ([ocsp] responder_warn_days) before the
    last one ends."""
    from ocsp.keys import passphrase_path
    from ocsp.renewal import KeyPlace, renew

    place = KeyPlace(key_store)
    default = KeyAlgorithm.P256.value  # recommended for responders whatever the CA's key (issue 16)
    renewal = renew(app.settings, app.engine, app.hsm(), ca_name, key_place=place,
                    algorithm=KeyAlgorithm(algorithm or default), now=dt.datetime.now(dt.UTC), actor=app.actor,
                    generation=generation, time_guard=app.time_guard)
    cert = renewal.certificate
    where = (f"key {renewal.key_path} (encrypted with {passphrase_path(app.settings)})"
             if renewal.key_path is not None else "key in the token")
    click.echo(f"responder certificate {cert.serial_number:x} for {renewal.ca_name} (key generation "
               f"{renewal.generation}), valid {cert.not_valid_before_utc:%Y-%m-%d} to "
               f"{cert.not_valid_after_utc:%Y-%m-%d}; {where}")
    if renewal.replaces is not None and renewal.replaces_not_after is not None:
        click.echo(f"responders switch to it within a minute; {renewal.replaces:x} stays valid until "
                   f"{renewal.replaces_not_after:%Y-%m-%d}")


@ocsp_group.command("key-file")
@click.option("--ca", "ca_name", required=True, help="The CA whose current key issues the responder certificate.")
@click.option("--algorithm", type=click.Choice([a.value for a in KeyAlgorithm]), default="p256", show_default=True)
@pass_app
def ocsp_key_file(app: App, ca_name: str, algorithm: str) -> None:
    """Issue a delegated responder certificate (1 year) whose key is an encrypted file, for `--key-store file`
    (the same as `revoca ocsp renew --key-store file`)."""
    from ocsp.keys import passphrase_path
    from ocsp.renewal import issue_key_file

    cert, path = issue_key_file(app.settings, app.engine, app.hsm(), ca_name, algorithm=KeyAlgorithm(algorithm),
                                now=dt.datetime.now(dt.UTC), actor=app.actor, time_guard=app.time_guard)
    click.echo(f"responder certificate {cert.serial_number:x} for {ca_name}, valid until "
               f"{cert.not_valid_after_utc:%Y-%m-%d}; key {path} (encrypted with {passphrase_path(app.settings)})")


def register(cli: click.Group) -> None:
    cli.add_command(ocsp_group)
    add_serve_command(cli, serve_ocsp)
    add_serve_command(cli, serve_ocsp_signer)
