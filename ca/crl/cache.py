"""The entries of a CA's last CRL or ARL, kept so that the next one streams only what is new.

Revocation rows are never updated or deleted (there is no un-revoke), so one CA's list only
grows: yesterday's entries, then today's revocations.  Streaming a million rows out of the
database costs about a second per million in the DB-API alone, and the daily issue of every
CA would pay it again for rows that have not changed; with this cache it pays for the day's
new rows, and the old entries are copied from a file.

Kept beside the CRL files of each CA and list (under the issuance lock):
  entries.der   the entries, concatenated; after a crash it may be longer than recorded,
                and only the recorded length counts
  entries.json  {"max_id", "count", "length", "sha256"}: the rows it holds are exactly those
                with id <= max_id, and the hash of its first `length` bytes

It is used only when the database agrees: in the same snapshot as the stream of newer rows,
the number of rows with id <= max_id must still be `count` (PostgreSQL hands out ids before
commit, so a row with a lower id can commit later; then the whole list is streamed again).
Its bytes are checked against `sha256` while the TBS is hashed, before anything is signed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path

from ca.crl.writer import BLOCK, Segment

ENTRIES = "entries.der"
STATE = "entries.json"


@dataclasses.dataclass(frozen=True, slots=True)
class EntryCache:
    directory: Path
    max_id: int
    count: int
    length: int
    sha256: bytes

    @property
    def segment(self) -> Segment:
        return Segment(self.directory / ENTRIES, self.length, self.count, sha256_through=self.sha256)


def load(directory: Path) -> EntryCache | None:
    """The cache of a CRL directory, or None when there is none or it cannot be trusted."""
    try:
        state = json.loads((directory / STATE).read_text(encoding="utf-8"))
        cache = EntryCache(directory, int(state["max_id"]), int(state["count"]), int(state["length"]),
                           bytes.fromhex(state["sha256"]))
        size = (directory / ENTRIES).stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if min(cache.max_id, cache.count, cache.length) < 0 or size < cache.length or len(cache.sha256) != 32:
        return None
    return cache


def discard(directory: Path) -> None:
    """Forget the cache (the state file first: without it the entries file means nothing)."""
    for name in (STATE, ENTRIES):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()


def save(directory: Path, *, previous: EntryCache | None, added: Segment, max_id: int,
         sha256: bytes) -> EntryCache:
    """Record the entries of the CRL just issued: `previous` (if it was used) followed by `added`.

    With a previous cache the new rows are appended after its recorded length; otherwise the
    spool becomes the entries file.  The state file is replaced last, atomically.  Nothing is
    fsynced: whatever a crash loses or garbles fails the size or SHA-256 check at the next
    issue, which then streams every row, so durability would buy nothing but a second flush
    of tens of megabytes per issue.
    """
    entries = directory / ENTRIES
    if previous is None:
        with contextlib.suppress(FileNotFoundError):
            (directory / STATE).unlink()
        os.replace(added.path, entries)
        count, length = added.count, added.length
    else:
        with open(entries, "rb+") as out, open(added.path, "rb") as source:
            out.truncate(previous.length)
            out.seek(previous.length)
            while block := source.read(BLOCK):
                out.write(block)
        count, length = previous.count + added.count, previous.length + added.length
    cache = EntryCache(directory, max_id, count, length, sha256)
    partial = directory / f".{STATE}.tmp"
    partial.write_text(json.dumps({"max_id": max_id, "count": count, "length": length, "sha256": sha256.hex()}),
                       encoding="utf-8")
    os.replace(partial, directory / STATE)
    return cache
