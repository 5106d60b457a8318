"""Stamping what the archive has not yet stamped, a round at a time.

One token per round keeps the TSA's work small: its imprint is the SHA-256 of the round's
manifest, one line per item ("type id last-id sha256"), so each item is still checked on
its own and the manifest itself is what `openssl ts -verify -data` checks offline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from ca.archive.items import RANGES, SINGLES, digest
from ca.audit.checkpoints import Stamper
from ca.storage.models import ArchiveStamp

ROUND = 20_000  # items per token: a manifest of a few MB at most
REQUESTER = "archive"


def manifest(stamps: Sequence[ArchiveStamp]) -> bytes:
    return b"".join(
        f"{s.item_type} {s.item_id} {'-' if s.last_item_id is None else s.last_item_id} {s.digest.hex()}\n".encode()
        for s in stamps)


def stamp_round(session: Session, stamper: Stamper, data_dir: Path, now: dt.datetime,
                limit: int = ROUND) -> list[ArchiveStamp]:
    """Stamp up to `limit` unstamped items in one token; [] when there is nothing to stamp."""
    stamps: list[ArchiveStamp] = []
    for kind in SINGLES:
        for row in kind.pending(session, limit - len(stamps)):
            stamps.append(ArchiveStamp(item_type=kind.name, item_id=row.id, last_item_id=None,
                                       digest=digest(kind.chunks(row, data_dir))))
        if len(stamps) >= limit:
            break
    for history in RANGES:
        span = history.next_range(session, now, max(limit - len(stamps), 1))
        if span is not None:
            stamps.append(ArchiveStamp(item_type=history.name, item_id=span[0], last_item_id=span[1],
                                       digest=digest(history.chunks(session, *span))))
    if not stamps:
        return []
    token = stamper.stamp(session, hashlib.sha256(manifest(stamps)).digest(), "sha256", REQUESTER)
    for stamp in stamps:
        stamp.time_stamp = token
    session.add_all(stamps)
    session.flush()
    return stamps
