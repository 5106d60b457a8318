"""The high-rate histories (OCSP queries, CRL fetches, directory reads) as sealed and archived ranges of rows.

ca.audit.history_seal commits to settled id ranges in the audit chain, and ca.archive stamps
the same ranges; both hash the rows in the frozen encoding below, one JSON line per row (JSON
escapes newlines in strings, so lines never run together).  Changing a line would make every
seal and stamp already written fail to verify.

Only rows older than SETTLE are taken: on PostgreSQL ids are handed out before commit, so a
younger range might still gain a row from a transaction that has not committed yet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from ca.storage.base import SessionStore
from ca.storage.models import CRLFetch, DirectoryRead, OCSPQuery

SETTLE = dt.timedelta(seconds=60)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


@dataclasses.dataclass(frozen=True)
class HistoryTable:
    """One history table: its model, its time column and its frozen row encoding."""

    name: str
    model: Any
    at: Any  # the time column, which decides whether a row has settled
    row: Callable[[Any], list[Any]]

    def line(self, row: Any) -> bytes:
        return json.dumps(self.row(row), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


TABLES = (
    HistoryTable("ocsp_queries", OCSPQuery, OCSPQuery.at, lambda r: [
        r.id, _iso(r.at), r.verifier_id, r.ca_id, r.channel, r.nonce, r.response_status, r.answers]),
    HistoryTable("crl_fetches", CRLFetch, CRLFetch.fetched_at, lambda r: [
        r.id, r.log_key, _iso(r.fetched_at), r.bind_dn, r.verifier_id, r.dn, r.ca_id,
        _enum_value(r.list_type), r.crl_number, r.result]),
    HistoryTable("directory_reads", DirectoryRead, DirectoryRead.read_at, lambda r: [
        r.id, r.log_key, _iso(r.read_at), r.bind_dn, r.verifier_id, r.dn, r.ca_id, r.objects, r.entries,
        r.arl_number, r.result, r.ldap_result]),
)
NAMES = tuple(t.name for t in TABLES)
_BY_NAME = {t.name: t for t in TABLES}


class HistoryReads(SessionStore):
    def _table(self, name: str) -> HistoryTable:
        return _BY_NAME[name]

    def settled_range(self, name: str, after: int, now: dt.datetime, limit: int) -> tuple[int, int] | None:
        """(after + 1, last): the rows with ids after `after`, contiguous from the start and up to
        `limit` of them, that are older than SETTLE at `now`; None when there is none."""
        table = self._table(name)
        rows = self.session.execute(sa.select(table.model.id, table.at).where(table.model.id > after)
                                    .order_by(table.model.id).limit(limit)).all()
        last = None
        for row_id, at in rows:
            if at > now - SETTLE:
                break
            last = row_id
        return None if last is None else (after + 1, last)

    def rows(self, name: str, first_id: int, last_id: int) -> Iterable[Any]:
        table = self._table(name)
        q = (sa.select(table.model).where(table.model.id >= first_id, table.model.id <= last_id)
             .order_by(table.model.id))
        return self.session.scalars(q.execution_options(yield_per=5000))

    def lines(self, name: str, first_id: int, last_id: int) -> Iterator[bytes]:
        """The rows with first_id <= id <= last_id in the frozen encoding, one line each."""
        table = self._table(name)
        for row in self.rows(name, first_id, last_id):
            yield table.line(row)

    def digest(self, name: str, first_id: int, last_id: int) -> tuple[int, bytes]:
        """How many rows the range holds now, and the SHA-256 over their lines."""
        h, count = hashlib.sha256(), 0
        for line in self.lines(name, first_id, last_id):
            h.update(line)
            count += 1
        return count, h.digest()
