"""What to issue at once after a CA key compromise (seed 004 4.9.12, 5.7.3).

The compromise (ca.revocation.compromise) revokes the key's own certificates (on the CA's
ARL), the cross certificates other CAs issued to it (on *their* ARLs) and everything it
signed (on its CRL and ARL).  So: the CA's CRL and ARL, and the ARL of every CA of ours that
certified it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from ca.config import Settings
from ca.crl.freshest import delta_policy
from ca.crl.issue import issue_many
from ca.enums import ListType
from ca.errors import RevocaError
from ca.hsm.signer import KeyStore
from ca.storage.engine import Engine, session_scope
from ca.storage.store import ReadStore
from ca.trusted_time import ClockGuard


def compromise_targets(engine: Engine, ca_name: str) -> list[tuple[str, ListType]]:
    with session_scope(engine) as session:
        store = ReadStore(session)
        ca = store.ca(ca_name)
        certifiers = [c.name for c in store.certifiers_of(ca)]
    return [(ca_name, ListType.CRL), (ca_name, ListType.ARL)] + [(name, ListType.ARL) for name in certifiers]


def issue_after_compromise(engine: Engine, keys: KeyStore, settings: Settings, ca_name: str, *,
                           time_guard: ClockGuard) -> Iterator[str]:
    """For `revoca ca compromise`: issue at once through the HSM service; one line per list issued.

    Raises a RevocaError naming what could not be issued, after the lines of what was, so the
    command ends with a non-zero exit code.
    """
    report = issue_many(engine, keys, settings.data_dir, compromise_targets(engine, ca_name),
                        now=dt.datetime.now(dt.UTC), time_guard=time_guard, validity=settings.crl.validity,
                        actor="ca-compromise", deltas=delta_policy(settings))
    for info in report.issued:
        yield info.line()
    if report.failed:
        raise RevocaError("; ".join(f.line() for f in report.failed)
                          + f"; issue them as soon as possible with `revoca crl issue --ca {ca_name}`")
