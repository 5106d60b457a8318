"""An installation worth backing up: its HSM service issued every CA's lists and the archive
stamped them (tests/integration/ca/test_backup_restore*.py, on SQLite and on PostgreSQL)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import sqlalchemy as sa

from ca.archive.stamping import stamp_round
from ca.ceremony import read_share_file
from ca.config import load_settings
from ca.crl.issue import issue_all
from ca.hsm.client import HSMClient
from ca.storage.engine import session_scope
from ca.storage.models import IssuedCRL
from ca.tsa.certificate import ensure_certificate
from ca.tsa.stamper import CurrentAuthority

from support.cli import Cli, start_hsm, stop_hsm
from support.clock import NO_NTP
from support.officers import KEY_MANAGERS


@contextlib.contextmanager
def issued_and_stamped(cli: Cli, now: dt.datetime) -> Iterator[Cli]:
    """`cli` with its HSM service running (activated with shares 1 and 2), a TSA certificate, every
    CA's lists issued at `now` and stamped into the archive."""
    hsm = start_hsm(cli)
    try:
        client = HSMClient(cli.socket)
        for i in (1, 2):
            client.activate(read_share_file(cli.share_file(i)))
        # the TSA certificate is a ceremony act: two key managers open the session (ca.hsm.sessions)
        client.open_ceremony([(name, cli.password(name)) for name in KEY_MANAGERS[:2]])
        settings = load_settings(env=cli.env)
        ensure_certificate(settings, cli.engine, client, now=now - dt.timedelta(minutes=5), actor="test")
        issue_all(cli.engine, client, cli.data, now=now, time_guard=NO_NTP)
        with session_scope(cli.engine) as session:
            assert stamp_round(session, CurrentAuthority(client, NO_NTP), cli.data, now)
        client.close()
        yield cli
    finally:
        stop_hsm(hsm)


def list_numbers(engine: sa.Engine) -> dict[tuple[int, str], int]:
    """(CA id, list type) -> the newest CRL/ARL number."""
    with session_scope(engine, readonly=True) as session:
        rows = session.execute(sa.select(IssuedCRL.ca_id, IssuedCRL.list_type, sa.func.max(IssuedCRL.number))
                               .group_by(IssuedCRL.ca_id, IssuedCRL.list_type)).all()
    return {(ca, str(kind)): number for ca, kind, number in rows}
