"""What to issue at once after a CA key compromise (seed 004 4.9.12, 5.7.3).

The compromise revokes the key's own certificates (self-signed, links: on the CA's ARL), the
cross certificates other CAs issued to it (on *their* ARLs) and everything it signed (on its
CRL and ARL).  So: the CA's CRL and ARL, and the ARL of every CA of ours that certified it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from ca.db import session_scope
from ca.errors import RevocaError
from ca.models import ListType
from ca.store import ReadStore


def compromise_targets(engine: sa.Engine, ca_name: str) -> list[tuple[str, ListType]]:
    with session_scope(engine) as session:
        store = ReadStore(session)
        ca = store.ca(ca_name)
        certifiers = [c.name for c in store.certifiers_of(ca)]
    return [(ca_name, ListType.CRL), (ca_name, ListType.ARL)] + [(name, ListType.ARL) for name in certifiers]


def issue_after_compromise(app: Any, ca_name: str) -> Iterator[str]:
    """For `revoca ca compromise`: issue at once through the HSM service; one line per list issued.

    `app` is the CLI's App (engine, settings, hsm()).  Raises a RevocaError naming what could not
    be issued, after the lines of what was, so the command ends with a non-zero exit code.
    """
    from ca.crl.config import crl_config
    from ca.crl.issue import issue_many

    report = issue_many(app.engine, app.hsm(), app.settings.data_dir, compromise_targets(app.engine, ca_name),
                        now=dt.datetime.now(dt.UTC), validity=crl_config(app.settings).validity,
                        actor="ca-compromise")
    for info in report.issued:
        yield info.line()
    if report.failed:
        raise RevocaError("; ".join(f.line() for f in report.failed)
                          + f"; issue them as soon as possible with `revoca crl issue --ca {ca_name}`")
