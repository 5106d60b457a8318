"""`revoca disclose`: disclosure of the records held about a subscriber (seed 004 9.4.7.1) and the
subscriber's correction requests (9.4.7.2), routed to dual control.  `revoca cert disclose` is the
same command as `revoca disclose records` (its name before the group existed).  The report is
ca.disclosure's; the signature and time stamp are wired here (the receipt-signer key through the
HSM service, revoca's TSA).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click

from ca.cli.common import App, emit_json, json_option, pass_app, table, when
from ca.errors import InvalidInput


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # personal data: the owner's alone
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@click.command("records")
@click.option("--ca", "ca_name", metavar="NAME", help="The issuing CA (needed with SERIAL or --subject; with "
                                                      "--name it narrows the search, which otherwise spans every CA).")
@click.argument("serial", required=False)
@click.option("--subject", metavar="DN", help="Every certificate of this subject (as `revoca cert show` prints it).")
@click.option("--name", "holder_name", metavar="NAME", help="The holder's name as on the resident register "
                                                            "(basic four; spaces do not matter); with --birth.")
@click.option("--birth", metavar="YYYY-MM-DD", help="The holder's date of birth (basic four), with --name.")
@click.option("--gender", type=click.Choice(["1", "2", "3"]), help="The resident-register gender code, to tell "
                                                                   "namesakes apart.")
@click.option("--address", metavar="TEXT", help="The address as on the resident register, to tell namesakes apart.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="The report to write (default: disclosure-WHAT-DATE.txt here), beside it OUT.p7m (signed) and "
                   "OUT.p7m.tsr (time stamp); never overwritten.")
@pass_app
def disclose_records(app: App, ca_name: str | None, serial: str | None, subject: str | None,
                     holder_name: str | None, birth: str | None, gender: str | None, address: str | None,
                     out: Path | None) -> None:
    """Write the disclosure bundle of a subscriber's certificates, for the subscriber (9.4.7.1).

    Found by serial, by subject, or by the holder's basic four (name and date of birth).  The report
    (Japanese and English) holds each certificate, its status, every revocation request with its
    receipt and the signed online request, correction requests, every audit record naming it and
    the OCSP queries about it; staff names withheld.  It is signed (CMS SignedData, the bridge CA's
    receipt-signer key) and time-stamped by revoca's TSA; the read is audited as a personal-data read.
    """
    from ca.disclosure.finding import Holder
    from ca.disclosure.render import render
    from ca.disclosure.report import disclose
    from ca.disclosure.sealing import sealer
    from ca.serials import parse_hex_serial
    from ca.tsa.response import granted
    from ca.tsa.stamper import CurrentAuthority

    holder = None
    if holder_name is not None or birth is not None:
        if holder_name is None or birth is None:
            raise InvalidInput("the basic-four search needs both --name and --birth")
        try:
            born = dt.date.fromisoformat(birth)
        except ValueError as exc:
            raise InvalidInput(f"--birth {birth!r}: give the date as YYYY-MM-DD") from exc
        holder = Holder(name=holder_name, date_of_birth=born, gender=gender, address=address)
    elif gender is not None or address is not None:
        raise InvalidInput("--gender and --address narrow a --name/--birth search; give those too")
    if sum(x is not None for x in (serial, subject, holder)) != 1:
        raise InvalidInput("name the certificates by SERIAL, by --subject DN, or by --name and --birth (one of them)")
    now = _now()
    number = parse_hex_serial(serial) if serial is not None else None
    what = f"{ca_name}-{number:x}" if number is not None else ("subject" if subject else "holder")
    path = out or Path(f"disclosure-{what}-{now:%Y%m%dT%H%M%SZ}.txt")
    signed_path, stamp_path = path.with_name(path.name + ".p7m"), path.with_name(path.name + ".p7m.tsr")
    for p in (path, signed_path, stamp_path):
        if p.exists():
            raise InvalidInput(f"{p} exists already: a report is never overwritten; name another with --out")
    keys = app.hsm()
    authority = CurrentAuthority(keys, app.time_guard)

    def stamp(session: object, imprint: bytes) -> bytes:
        return granted(authority.stamp(session, imprint, "sha256", "disclosure").token)  # type: ignore[arg-type]

    disclosure, body, sealed = disclose(app.engine, ca_name=ca_name, serial=number, subject=subject, holder=holder,
                                        made_by=app.actor, now=now, render=render, seal=sealer(keys, stamp))
    _write(path, body)
    _write(signed_path, sealed["p7m"])
    _write(stamp_path, sealed["p7m.tsr"])
    click.echo(f"wrote {path}: {len(disclosure.certificates)} certificate(s), "
               f"{sum(len(c.requests) for c in disclosure.certificates)} request(s), "
               f"{sum(len(c.audit) for c in disclosure.certificates)} audit record(s); signed {signed_path}, "
               f"time stamp {stamp_path}; hand them to the subscriber after checking their identity (9.4.7.1)")
    click.echo(f"check: openssl cms -verify -inform DER -in {signed_path} -CAfile bridge-roots.pem -purpose any; "
               f"openssl ts -verify -data {signed_path} -in {stamp_path} -CAfile bridge-roots.pem -untrusted tsa.pem")


@click.group("disclose")
def disclose_group() -> None:
    """Disclosure to subscribers (9.4.7): their records as a signed, time-stamped bundle; their correction requests."""


def _operator(app: App, session: object):  # the one logged-in Operator row (rows stay in ca.storage)  # noqa: ANN202
    from ca.storage.operators import OperatorReads

    (name,) = app.operators
    return OperatorReads(session).operator(name)  # type: ignore[arg-type]


@disclose_group.command("correct")
@click.option("--ca", "ca_name", required=True, metavar="NAME", help="The issuing CA of the certificate.")
@click.argument("serial")
@click.option("--action", type=click.Choice(["correct", "add", "delete"]), default="correct", show_default=True,
              help="What the subscriber asks for (9.4.7.2: 訂正、追加又は削除).")
@click.option("--record", required=True, help="The disclosed record, as the subscriber names it (e.g. an audit "
                                               "record number or a request id and field).")
@click.option("--requested", default="", help="What the record should say instead (not for --action delete).")
@json_option
@pass_app
def disclose_correct(app: App, ca_name: str, serial: str, action: str, record: str, requested: str,
                     as_json: bool) -> None:
    """File a subscriber's correction request after the identity check; a reviewer and a CA administrator decide."""
    from ca.disclosure import corrections
    from ca.serials import parse_hex_serial
    from ca.storage.corrections import CorrectionStore
    from ca.storage.engine import session_scope

    with session_scope(app.engine) as session:
        public_id = corrections.file(CorrectionStore(session), ca_name=ca_name, serial=parse_hex_serial(serial),
                                     action=action, record=record, requested=requested,
                                     receptionist=_operator(app, session), now=_now())
    out = {"request_id": public_id, "status": "pending-review"}
    emit_json(out) if as_json else click.echo(f"correction request {public_id} filed: waiting for review")


def _decide(app: App, public_id: str, accept: bool, note: str, step: str) -> None:
    from ca.disclosure import corrections
    from ca.storage.corrections import CorrectionStore
    from ca.storage.engine import session_scope

    with session_scope(app.engine) as session:
        store, op = CorrectionStore(session), _operator(app, session)
        decide = corrections.review if step == "review" else corrections.decide
        status = decide(store, public_id, op, accept=accept, now=_now(), note=note)
    click.echo(f"correction request {public_id}: {status}")


@disclose_group.command("review")
@click.argument("request_id")
@click.option("--reject", is_flag=True, help="Reject instead of passing it on to the CA administrator.")
@click.option("--note", default="")
@pass_app
def disclose_review(app: App, request_id: str, reject: bool, note: str) -> None:
    """Review a correction request (the reviewer is not the receptionist who filed it)."""
    _decide(app, request_id, not reject, note, "review")


@disclose_group.command("decide")
@click.argument("request_id")
@click.option("--reject", is_flag=True, help="Reject instead of approving.")
@click.option("--note", default="")
@pass_app
def disclose_decide(app: App, request_id: str, reject: bool, note: str) -> None:
    """Approve or reject a reviewed correction request (a CA administrator who took no earlier step)."""
    _decide(app, request_id, not reject, note, "decide")


@disclose_group.command("corrections")
@json_option
@pass_app
def disclose_corrections(app: App, as_json: bool) -> None:
    """Correction requests waiting for review or a decision."""
    from ca.storage.corrections import CorrectionStore
    from ca.storage.engine import session_scope

    with session_scope(app.engine, readonly=True) as session:
        waiting = CorrectionStore(session).waiting()
        rows = [{"request_id": r.public_id, "status": r.status, "ca": ca, "serial": format(serial, "x"),
                 "action": r.action, "accepted_at": r.accepted_at} for r, ca, serial in waiting]
    if as_json:
        emit_json(rows)
        return
    table(["request", "status", "ca", "serial", "action", "accepted"],
          [[r["request_id"], r["status"], r["ca"], r["serial"], r["action"], when(r["accepted_at"])] for r in rows])


disclose_group.add_command(disclose_records)
# `revoca cert disclose`: the same command under its older name, its own object (the login gate wraps each path)
cert_disclose = click.Command("disclose", callback=disclose_records.callback, params=list(disclose_records.params),
                              help=disclose_records.help, short_help="The same as `revoca disclose records`.")


def register(cli: click.Group) -> None:
    cli.add_command(disclose_group)
    cert_group = cli.commands.get("cert")
    if isinstance(cert_group, click.Group):  # loaded with `cert` as well: the older name stays
        cert_group.add_command(cert_disclose)
