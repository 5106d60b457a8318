"""The bulk import's journal (ca.importing.importer): per file, how many certificates are done.

Written in the transaction of each batch of certificates, so that what it says is exactly what
was committed: a resumed import skips those and goes on with the next one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ca.storage.base import SessionStore
from ca.storage.models import ImportedFile


@dataclasses.dataclass(frozen=True, slots=True)
class FileProgress:
    path: str
    size: int
    mtime_ns: int
    certificates: int  # certificates of the file stored or rejected, from its start
    finished: bool


class ImportJournal(SessionStore):
    def progress(self, path: str) -> FileProgress | None:
        row = self.session.scalar(sa.select(ImportedFile).where(ImportedFile.path == path))
        return None if row is None else FileProgress(row.path, row.size, row.mtime_ns, row.certificates, row.finished)

    def record(self, files: Iterable[FileProgress], now: dt.datetime) -> None:
        """Insert or update each file's progress (one statement per batch)."""
        rows = [{"path": f.path, "size": f.size, "mtime_ns": f.mtime_ns, "certificates": f.certificates,
                 "finished": f.finished, "updated_at": now} for f in files]
        if not rows:
            return
        dialect = self.session.get_bind().dialect.name
        insert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(ImportedFile)
        statement = insert.on_conflict_do_update(
            index_elements=[ImportedFile.path],
            set_={name: insert.excluded[name] for name in ("size", "mtime_ns", "certificates", "finished",
                                                          "updated_at")})
        self.session.execute(statement, rows)
