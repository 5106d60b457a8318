"""`revoca archive verify TYPE:ID`: is this stored record intact, and when was it stamped?

The verification on request of seed 001: the item's bytes are read again and hashed, the
hash is compared with the stamped one, the round's manifest is rebuilt from every stamp that
shares the token, and the token is checked against that manifest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

from ca.archive.items import HistoryRange, digest, parse_ref
from ca.archive.stamping import manifest
from ca.errors import NotFound, RevocaError
from ca.storage.archive import ArchiveReads
from ca.storage.engine import Session
from ca.timestamps import TokenCheck


@dataclasses.dataclass(frozen=True)
class Verdict:
    ref: str  # what was checked: "crl:12", or "ocsp-queries:1..5000" for a history range
    intact: bool
    stamped_at: dt.datetime | None
    token_serial: int | None
    problem: str | None = None


def verify_item(session: Session, data_dir: Path, ref: str, check_token: TokenCheck) -> Verdict:
    kind, number = parse_ref(ref)
    store = ArchiveReads(session)
    if isinstance(kind, HistoryRange):
        stamp = store.stamp_covering(kind.name, number)
    else:
        stamp = store.stamp_of(kind.name, number)
    if stamp is None:
        raise NotFound(f"{ref} has not been stamped (yet): `revoca archive stamp` stamps what is waiting")
    shown = f"{kind.name}:{stamp.item_id}" + (f"..{stamp.last_item_id}" if stamp.last_item_id else "")
    token = stamp.time_stamp

    def bad(problem: str) -> Verdict:
        return Verdict(shown, False, token.gen_time, token.serial, problem)

    try:
        if isinstance(kind, HistoryRange):
            assert stamp.last_item_id is not None
            now_digest = digest(kind.chunks(session, stamp.item_id, stamp.last_item_id))
        else:
            now_digest = digest(kind.chunks(kind.get(session, number), data_dir))
    except NotFound as exc:
        return bad(f"the record is gone: {exc}")
    if now_digest != stamp.digest:
        return bad("the stored record differs from what was stamped")
    round_stamps = store.round_stamps(stamp.time_stamp_id)
    try:
        gen_time = check_token(token, hashlib.sha256(manifest(round_stamps)).digest())
    except RevocaError as exc:
        return bad(f"the time-stamp does not verify: {exc}")
    return Verdict(shown, True, gen_time, token.serial)


def verify_everything(session: Session, data_dir: Path, check_token: TokenCheck) -> tuple[int, list[str]]:
    """Every stamped item and every round's token (a restored backup's check): how many items
    were checked, and one line per problem.  Each round's token is checked once."""
    store = ArchiveReads(session)
    checked, problems = 0, []
    for token in store.round_tokens():
        stamps = store.round_stamps(token.id)
        try:
            check_token(token, hashlib.sha256(manifest(stamps)).digest())
        except RevocaError as exc:
            problems.append(f"time-stamp {token.serial:x}: does not verify: {exc}")
        for stamp in stamps:
            kind, _ = parse_ref(f"{stamp.item_type}:{stamp.item_id}")
            shown = f"{stamp.item_type}:{stamp.item_id}" + (f"..{stamp.last_item_id}" if stamp.last_item_id else "")
            try:
                if isinstance(kind, HistoryRange):
                    assert stamp.last_item_id is not None
                    now_digest = digest(kind.chunks(session, stamp.item_id, stamp.last_item_id))
                else:
                    now_digest = digest(kind.chunks(kind.get(session, stamp.item_id), data_dir))
            except NotFound as exc:
                problems.append(f"{shown}: the record is gone: {exc}")
                continue
            checked += 1
            if now_digest != stamp.digest:
                problems.append(f"{shown}: the stored record differs from what was stamped")
    return checked, problems
