"""`revoca cert disclose`: the report of every record held about a subscriber's certificate, for
the subscriber who asked (seed 004 9.4.7.1).  Registered into the `cert` group that
ca.cli.cert_cmds makes (ca.cli.MODULES lists this module after it); the report itself is
ca.disclosure's.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click

from ca.cli.common import App, pass_app


@click.command("disclose")
@click.option("--ca", "ca_name", required=True, metavar="NAME", help="The issuing CA.")
@click.argument("serial", required=False)
@click.option("--subject", metavar="DN", help="Every certificate of this subject (as `revoca cert show` prints it) "
                                              "instead of one serial.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the report (default: disclosure-CA-SERIAL-DATE.txt here); never overwritten.")
@pass_app
def cert_disclose(app: App, ca_name: str, serial: str | None, subject: str | None, out: Path | None) -> None:
    """Write the disclosure report (Japanese and English) of a subscriber's certificate, for the subscriber.

    The certificate, every revocation request for it with its receipt and the signed online request,
    the revocation, every audit record naming it and the OCSP queries about it; staff names withheld.
    The read is audited as a personal-data read.  The file is readable by its owner only.
    """
    from ca.disclosure.render import render
    from ca.disclosure.report import disclose
    from ca.errors import InvalidInput
    from ca.serials import parse_hex_serial

    if (serial is None) == (subject is None):
        raise InvalidInput("name the certificate by SERIAL or by --subject DN (one of them)")
    now = dt.datetime.now(dt.UTC)
    number = parse_hex_serial(serial) if serial is not None else None
    path = out or Path(f"disclosure-{ca_name}-{f'{number:x}' if number is not None else 'subject'}-"
                       f"{now:%Y%m%dT%H%M%SZ}.txt")
    if path.exists():
        raise InvalidInput(f"{path} exists already: a report is never overwritten; name another with --out")
    disclosure, body = disclose(app.engine, ca_name=ca_name, serial=number, subject=subject, made_by=app.actor,
                                now=now, render=render)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # personal data: the owner's alone
    with os.fdopen(fd, "wb") as f:
        f.write(body)
    count = len(disclosure.certificates)
    click.echo(f"wrote {path}: {count} certificate(s), "
               f"{sum(len(c.requests) for c in disclosure.certificates)} request(s), "
               f"{sum(len(c.audit) for c in disclosure.certificates)} audit record(s); hand it to the subscriber "
               "after checking their identity (seed 004 9.4.7.1)")


def register(cli: click.Group) -> None:
    cert_group = cli.commands.get("cert")
    if not isinstance(cert_group, click.Group):
        raise RuntimeError("ca.cli.disclosure_cmds registers into the `cert` group: cert_cmds must be registered first")
    cert_group.add_command(cert_disclose)
