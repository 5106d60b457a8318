"""`revoca tls issue`: the HTTPS servers' certificate (the RA API, the OCSP responder over TLS).

The bridge CA key signs it, so M key managers log in and their ceremony session lets the HSM
service sign (ca.hsm.sessions).  `revoca serve ra` and `revoca serve ocsp --tls` run as their own
identities, which may not have a certificate signed (ca.hsm.policy): they use what this command
made, and refuse to start with one line naming it when it is missing or due for renewal.
`revoca run` makes it itself, in the demo key managers' session.
"""

from __future__ import annotations

import click

from ca.cli.common import App, pass_app


@click.group("tls")
def tls_group() -> None:
    """The HTTPS servers' certificate, issued by the bridge CA."""


@tls_group.command("issue")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address the servers listen on (an IP address goes into the certificate).")
@pass_app
def tls_issue(app: App, host: str) -> None:
    """Issue the servers' TLS certificate from the bridge CA (key in a file beside it, mode 0600)
    when there is none or it ends within 30 days; M key managers log in."""
    from cryptography import x509

    from ca.http.server_tls import ensure_server_tls

    keys = app.hsm()
    try:
        cert_path, key_path, roots_path = ensure_server_tls(app.settings, app.engine, keys, host,
                                                             time_guard=app.time_guard)
    finally:
        keys.close()
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    click.echo(f"TLS certificate {cert.serial_number:x} ({cert.subject.rfc4514_string()}), valid until "
               f"{cert.not_valid_after_utc:%Y-%m-%d}: {cert_path}, key {key_path}, bridge certificates {roots_path}")


def register(cli: click.Group) -> None:
    cli.add_command(tls_group)
