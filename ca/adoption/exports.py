"""A previous system's revocation records as exported: `openssl ca`'s index.txt, or a CSV (issue 14).

Read line by line, so a million records take no more memory than one.  Each revoked record
becomes an `Entry` whose DER revoca encodes itself (ca.revocation.crl_entry); each record
revoca cannot carry is a `RefusedEntry` naming its line, never a mapped guess:

index.txt (tab-separated, as `openssl ca` writes it; only `R` lines are revocations):
    R <TAB> notAfter <TAB> revocationDate[,reason[,arg]] <TAB> serial (hex) <TAB> file <TAB> subject
  reasons as openssl spells them: keyCompromise, CACompromise, affiliationChanged, superseded,
  cessationOfOperation.  None (openssl's unspecified), certificateHold/holdInstruction and
  removeFromCRL are refused; so are keyTime and CAkeyTime, which carry an invalidity date that
  this reader does not keep (import those entries from the CRL, which holds them whole).

CSV (UTF-8, a header line naming the columns, any order):
    serial            hex, with or without 0x
    revocation_date   ISO 8601 with its offset (2019-04-01T09:30:00Z); whole seconds
    reason            an RFC 5280 name (keyCompromise ...) or its number, one of the five
    list              optional: crl (subscriber certificates, the default) or arl (CA certificates)
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

from ca.adoption.crl_reader import Entry, RefusedEntry
from ca.enums import ListType
from ca.errors import InvalidInput
from ca.revocation.crl_entry import MAX_SERIAL, encode_entry
from ca.revocation.reasons import REASON_NAMES, RevocationReason

_OPENSSL_REASONS = {
    "keycompromise": RevocationReason.KEY_COMPROMISE,
    "cacompromise": RevocationReason.CA_COMPROMISE,
    "affiliationchanged": RevocationReason.AFFILIATION_CHANGED,
    "superseded": RevocationReason.SUPERSEDED,
    "cessationofoperation": RevocationReason.CESSATION_OF_OPERATION,
}
_OPENSSL_REFUSED = {
    "unspecified": "unspecified (0) is not one of the five reasons of seed 004 4.9.9",
    "certificatehold": "certificateHold (6) is refused: no suspension in seed 004 4.9.13",
    "holdinstruction": "certificateHold (6) is refused: no suspension in seed 004 4.9.13",
    "removefromcrl": "removeFromCRL (8) is refused: no un-revoke in seed 004 4.9.13",
    "keytime": "keyTime carries an invalidity date this reader does not keep; import the entry from the CRL",
    "cakeytime": "CAkeyTime carries an invalidity date this reader does not keep; import the entry from the CRL",
}


@dataclasses.dataclass(frozen=True, slots=True)
class ExportedEntry:
    entry: Entry
    list_type: ListType


def _refuse(serial: int | None, line: int, why: str) -> RefusedEntry:
    return RefusedEntry(serial, f"line {line}", why)


def _serial(text: str) -> int | None:
    text = text.strip().lower().removeprefix("0x")
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value if 0 < value <= MAX_SERIAL else None


def _entry(serial: int, when: dt.datetime, reason: RevocationReason) -> Entry:
    when = when.astimezone(dt.UTC)
    return Entry(serial=serial, revocation_time=when, reason=int(reason), der=encode_entry(serial, when, int(reason)))


Advance = Callable[[int], object]


def _lines(path: Path, advance: Advance | None) -> Iterator[str]:
    """The file's lines decoded as UTF-8, reporting the bytes read (for a progress bar)."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if advance is not None:
                advance(len(raw))
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"{path}: line {number} is not UTF-8") from exc


def read_index(path: Path, advance: Advance | None = None) -> Iterator[ExportedEntry | RefusedEntry]:
    """The `R` records of an `openssl ca` index.txt, in file order."""
    for number, line in enumerate(_lines(path, advance), start=1):
        line = line.rstrip("\r\n")
        if not line or not line.startswith("R"):
            continue
        fields = line.split("\t")
        if len(fields) < 4 or fields[0] != "R":
            yield _refuse(None, number, "not an index.txt record (status, notAfter, revocation, serial, ...)")
            continue
        serial = _serial(fields[3])
        if serial is None:
            yield _refuse(None, number, f"serial {fields[3]!r} is not a positive hex integer of at most 160 bits")
            continue
        parts = fields[2].split(",")
        when = _asn1_time(parts[0])
        if when is None:
            yield _refuse(serial, number, f"revocation date {parts[0]!r} is not YYMMDDHHMMSSZ / YYYYMMDDHHMMSSZ")
            continue
        if len(parts) == 1:
            yield _refuse(serial, number, "no reason: openssl's unspecified (0), which is not one of the five "
                                          "reasons of seed 004 4.9.9")
            continue
        key = parts[1].strip().lower()
        if key in _OPENSSL_REASONS and len(parts) == 2:
            yield ExportedEntry(_entry(serial, when, _OPENSSL_REASONS[key]), ListType.CRL)
        else:
            yield _refuse(serial, number, _OPENSSL_REFUSED.get(key, f"reason {parts[1]!r} is not one openssl "
                                                                    "writes, nor one of the five"))


def read_csv(path: Path, advance: Advance | None = None) -> Iterator[ExportedEntry | RefusedEntry]:
    """The rows of a CSV export (see the module's docstring for its columns), in file order."""
    rows = csv.DictReader(_lines(path, advance))
    missing = {"serial", "revocation_date", "reason"} - set(rows.fieldnames or ())
    if missing:
        raise InvalidInput(f"{path}: the CSV header lacks column(s) {', '.join(sorted(missing))} "
                           "(serial, revocation_date, reason[, list])")
    for row in rows:
        number = rows.line_num
        serial = _serial(row.get("serial") or "")
        if serial is None:
            yield _refuse(None, number, f"serial {row.get('serial')!r} is not a positive hex integer of at most "
                                        "160 bits")
            continue
        when = _iso_time(row.get("revocation_date") or "")
        if when is None:
            yield _refuse(serial, number, f"revocation_date {row.get('revocation_date')!r} is not ISO 8601 with "
                                          "its offset in whole seconds (2019-04-01T09:30:00Z)")
            continue
        reason = _reason(row.get("reason") or "")
        if isinstance(reason, str):
            yield _refuse(serial, number, reason)
            continue
        kind = (row.get("list") or "crl").strip().lower()
        if kind not in ("crl", "arl"):
            yield _refuse(serial, number, f"list {kind!r} is neither crl nor arl")
            continue
        yield ExportedEntry(_entry(serial, when, reason), ListType(kind))


def _reason(text: str) -> RevocationReason | str:
    text = text.strip()
    if text in REASON_NAMES:
        return REASON_NAMES[text]
    if text.isdigit():
        value = int(text)
        if value in {int(r) for r in RevocationReason}:
            return RevocationReason(value)
        if value == 6:
            return "certificateHold (6) is refused: no suspension in seed 004 4.9.13"
    return f"reason {text!r} is refused: only {', '.join(REASON_NAMES)} (1-5, seed 004 4.9.9)"


def _asn1_time(text: str) -> dt.datetime | None:
    text = text.strip()
    if not text.endswith("Z") or not text[:-1].isdigit():
        return None
    try:
        if len(text) == 13:
            year = int(text[:2])
            when = dt.datetime.strptime(f"{1900 + year if year >= 50 else 2000 + year}{text[2:12]}", "%Y%m%d%H%M%S")
        elif len(text) == 15:
            when = dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S")
        else:
            return None
    except ValueError:
        return None
    return when.replace(tzinfo=dt.UTC)


def _iso_time(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is None or when.microsecond:
        return None
    return when.astimezone(dt.UTC)
