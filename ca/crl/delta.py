"""Delta CRLs (RFC 5280 5.2.4): what was revoked since a CA's newest complete CRL.

A verifier that holds the day's complete CRL (53 MB at a million entries) fetches only the
delta to learn what changed since.  A delta of CA X:

* names its base in DeltaCRLIndicator (critical): the newest archived CRL of X, whose snapshot
  (`revocations_through`, the highest revocation id it holds) is known;
* lists every revocation after that snapshot, up to its own; on PostgreSQL also the rows with
  a lower id that committed after the base's snapshot (ids are handed out before commit; the
  base's entry count tells whether any did), found by their recording time;
* takes its own cRLNumber from the CRL's sequence (ca.storage.crl_issuance.SEQUENCES), so it
  is above its base's, as verifiers check;
* has the base's issuer, AKI and IssuingDistributionPoint (openssl compares them), and is
  archived, audited and queued for LDAP (deltaRevocationList;binary) exactly like a CRL.

Nothing is removed from CRLs (no un-revoke, no hold), so a delta only adds entries.  The
scheduler (ca.scheduler) issues one every [crl] delta_period_minutes, at once after a base,
and when delta_burst revocations are waiting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from ca.crl.tbs import CRLFields
from ca.crl.writer import MissingEntryDER, Published, spool_entries, write_certificate_list
from ca.enums import ListType
from ca.errors import InvalidInput, RevocaError
from ca.hsm.signer import Signer
from ca.revocation.crl_entry import encode_entry
from ca.storage.engine import Engine, Session, session_scope
from ca.storage.store import ReadStore, Store

log = logging.getLogger("revoca.crl")

# How long a revocation's transaction may stay open between its id and its commit and still be
# found by the late-row check (PostgreSQL only; see the module docstring).
LATE_COMMIT = dt.timedelta(minutes=10)

Snapshot = Callable[[Engine], AbstractContextManager[Session]]


@dataclasses.dataclass(frozen=True, slots=True)
class Base:
    """What a delta needs of its base CRL."""

    number: int
    revocations_through: int  # the highest revocation id it holds
    entries: int
    this_update: dt.datetime


def base_of(engine: Engine, ca_id: int, key_id: int, ca_name: str) -> Base:
    """The newest complete CRL of the CA signed with its current key `key_id` (a delta has its
    base's AKI); InvalidInput when there is none a delta can refer to."""
    with session_scope(engine, readonly=True) as session:
        row = ReadStore(session).newest_issued(ca_id, ListType.CRL, signing_key_id=key_id)
        if row is not None and row.revocations_through is not None:
            return Base(row.number, row.revocations_through, row.entries, row.this_update)
    raise InvalidInput(f"CA {ca_name} has no complete CRL a delta can refer to (none issued with its current key "
                       "since revision 0016); issue one with `revoca crl issue --type crl` first")


def sign_delta(snapshot: Snapshot, engine: Engine, ca_id: int, base: Base, fields: CRLFields, signer: Signer,
               directory: Path, chunk_rows: int) -> tuple[Published, int]:
    """Spool the rows after the base's snapshot (and any that committed late below it), sign and
    write the delta; also the highest revocation id it holds.  `snapshot` is ca.crl.issue's."""
    spool_path = directory / f".{fields.number}.entries.tmp"
    try:
        for _attempt in range(2):
            spool_path.unlink(missing_ok=True)
            try:
                with snapshot(engine) as session:
                    store = ReadStore(session)
                    top = store.last_crl_entry_id(ca_id, ListType.CRL)
                    late: list[bytes | None] = []
                    # SQLite's single writer hands out ids in commit order: no row can appear late there
                    if engine.dialect.name != "sqlite" and store.count_crl_entries(
                            ca_id, ListType.CRL, up_to_id=base.revocations_through) != base.entries:
                        late = store.late_crl_entries(ca_id, ListType.CRL, up_to_id=base.revocations_through,
                                                      recorded_since=base.this_update - LATE_COMMIT)
                        log.info("rows at or below CRL #%d's snapshot committed after it: the delta lists the %d "
                                 "recorded since shortly before it", base.number, len(late))
                    chunks = store.crl_entry_chunks(ca_id, ListType.CRL, after_id=base.revocations_through,
                                                    up_to_id=top, rows=chunk_rows)
                    with contextlib.closing(chunks):
                        spool = spool_entries(_then(late, chunks), spool_path)
                return write_certificate_list(fields, [spool], signer, directory / f"{fields.number}.crl"), top
            except MissingEntryDER:
                with session_scope(engine) as session:
                    filled = Store(session).fill_missing_crl_entries(ca_id, ListType.CRL, encode_entry)
                log.warning("encoded %d CRL entries that were stored without entry_der", filled)
        raise RevocaError(f"could not assemble the entries of {directory}; see the log")
    finally:
        spool_path.unlink(missing_ok=True)


def deltas_due(engine: Engine, now: dt.datetime, *, period: dt.timedelta, burst: int) -> list[str]:
    """The CAs whose delta CRL is due at `now`: none yet against the newest base (a new base is
    followed by its first delta at once), the last one `period` old, or `burst` revocations (> 0)
    waiting."""
    with session_scope(engine, readonly=True) as session:
        states = ReadStore(session).delta_states()
    return [s.ca_name for s in states
            if s.delta_this_update is None or s.delta_this_update + period <= now
            or (burst > 0 and s.waiting >= burst)]


def _then(first: list[bytes | None], rest: Iterable[Sequence[bytes | None]]) -> Iterator[Sequence[bytes | None]]:
    if first:
        yield first
    yield from rest
