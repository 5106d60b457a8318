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
from typing import Any

from ca.archive.items import RANGES, SINGLES, digest
from ca.storage.archive import ArchiveWrites, NewStamp
from ca.storage.engine import Session
from ca.timestamps import Stamper

ROUND = 20_000  # items per token: a manifest of a few MB at most
REQUESTER = "archive"


def manifest(stamps: Sequence[Any]) -> bytes:
    """One line per stamp (kept ones, or NewStamps of a round being made), in the round's order."""
    return b"".join(
        f"{s.item_type} {s.item_id} {'-' if s.last_item_id is None else s.last_item_id} {s.digest.hex()}\n".encode()
        for s in stamps)


def stamp_round(session: Session, stamper: Stamper, data_dir: Path, now: dt.datetime,
                limit: int = ROUND) -> list[Any]:
    """Stamp up to `limit` unstamped items in one token; [] when there is nothing to stamp."""
    stamps: list[NewStamp] = []
    for kind in SINGLES:
        for row in kind.pending(session, limit - len(stamps)):
            stamps.append(NewStamp(kind.name, row.id, None, digest(kind.chunks(row, data_dir))))
        if len(stamps) >= limit:
            break
    for history in RANGES:
        span = history.next_range(session, now, max(limit - len(stamps), 1))
        if span is not None:
            stamps.append(NewStamp(history.name, span[0], span[1], digest(history.chunks(session, *span))))
    if not stamps:
        return []
    token = stamper.stamp(session, hashlib.sha256(manifest(stamps)).digest(), "sha256", REQUESTER)
    return ArchiveWrites(session).add_round(token, stamps)
