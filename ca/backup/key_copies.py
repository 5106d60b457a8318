"""Backups that still hold a destroyed key, and their removal (seed 004 6.2.10.1: copies of a
destroyed private key are destroyed likewise; `revoca ca destroy-key` names them, `revoca backup
purge-key` removes them).

A backup holds the key when it was made while the key was in the token: at or after the key's
creation (its key generation, or the first certificate carrying it) and before its destruction.

Whole backups are removed, never the key's objects inside one (docs/backups.md says why): in a
SoftHSM2 token store a private object's attributes, its label too, are encrypted under the token
key, so finding the key's files means opening the copy with the user PIN (M key managers'
shares) in a second token instance and destroying objects there; the backup would then no
longer be the one whose manifest the audit log recorded as verified, and a mistake would damage
the other keys of a copy that nobody restores until the day it is needed.  Removing whole
backups loses nothing a newer one does not hold: revoca's database only grows (revocations are
final, the audit chain and archive continue), so a backup made after the destruction holds
everything an older one did except the destroyed key.  Hence the rule: a backup made after the
destruction must exist, be recorded as verified, and still match its recorded manifest before
any older one is removed.  Copies on external media cannot be removed from here: they are named,
for the people who hold the media to destroy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from ca import audit
from ca.backup import ledger
from ca.backup.retention import BACKUP_NAME_FORMAT, backups
from ca.backup.verify import file_problems, read_manifest
from ca.errors import InvalidInput
from ca.storage.audit import AuditReads
from ca.storage.backup_keys import BackupKeyReads, DestroyedKeyLife
from ca.storage.engine import Engine, Session, session_scope

PURGED = "backup.key_purged"
LEDGER_WINDOW = 10_000  # ledger records read back (a backup a day for 27 years)


@dataclasses.dataclass(frozen=True, slots=True)
class Holder:
    """A backup made while the key was in the token."""

    name: str
    made: dt.datetime
    path: Path | None  # None: known only as a copy on external media
    media: tuple[str, ...] = ()  # external media it was copied to (`revoca backup mark-offsite`)

    def describe(self) -> str:
        where = [str(self.path)] if self.path else []
        where += [f"off-site on {m}" for m in self.media]
        return f"{self.name} ({', '.join(where)})"


@dataclasses.dataclass(frozen=True, slots=True)
class Purge:
    key: DestroyedKeyLife
    removed: tuple[Holder, ...]
    successor: str  # the newer verified backup that made the removal safe
    media_to_destroy: tuple[str, ...]


def _made(name: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(name, BACKUP_NAME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _detail(event: Any) -> dict[str, Any]:
    try:
        value = json.loads(event.detail or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _held(made: dt.datetime, key: DestroyedKeyLife) -> bool:
    return made < key.destroyed_at and (key.created_at is None or made >= key.created_at)


def holders(session: Session, root: Path, key: DestroyedKeyLife) -> list[Holder]:
    """The backups under `root` and the off-site copies (from the ledger) made while `key` was in the token."""
    media: dict[str, list[str]] = {}
    for event in AuditReads(session).newest_events(limit=LEDGER_WINDOW, event_type=ledger.OFFSITE):
        d = _detail(event)
        if d.get("backup"):
            media.setdefault(str(d["backup"]), []).append(str(d.get("media", "external media")))
    found = {path.name: Holder(path.name, made, path, tuple(sorted(media.get(path.name, ()))))
             for made, path in backups(root) if _held(made, key)}
    for name, on in media.items():
        made = _made(name)
        if name not in found and made is not None and _held(made, key):
            found[name] = Holder(name, made, None, tuple(sorted(on)))
    return sorted(found.values(), key=lambda h: h.made)


def held_by(engine: Engine, root: Path, label: str) -> list[Holder]:
    """For `revoca ca destroy-key`: the backups that hold the key just destroyed."""
    with session_scope(engine, readonly=True) as session:
        return holders(session, root, BackupKeyReads(session).life(label))


def verified_successor(session: Session, root: Path, key: DestroyedKeyLife) -> str:
    """The newest backup made after the destruction that the ledger records as verified and whose
    files still match that manifest (InvalidInput when there is none)."""
    why = "no backup made after the destruction is recorded as verified"
    for event in AuditReads(session).newest_events(limit=LEDGER_WINDOW, event_type=ledger.VERIFIED):
        d = _detail(event)
        name, made = str(d.get("backup", "")), _made(str(d.get("backup", "")))
        if event.result != audit.SUCCESS or made is None or made < key.destroyed_at:
            continue
        path = root / name
        if not path.is_dir():
            why = f"the verified backup {name} is no longer in {root}"
            continue
        _manifest, digest = read_manifest(path)
        problems = list(file_problems(path, _manifest["files"]))
        if digest != d.get("manifest_sha256") or problems:
            why = f"backup {name} no longer matches what was verified ({'; '.join(problems[:2]) or 'manifest changed'})"
            continue
        return name
    raise InvalidInput(f"{why}: take and verify one first (`revoca backup create`), then purge the older ones")


def purge(engine: Engine, root: Path, ca_name: str, ref: str, *, actor: str, dry_run: bool = False) -> Purge:
    """Remove the backups under `root` that hold CA `ca_name`'s destroyed key `ref`, once a newer
    verified backup exists; audited (`backup.key_purged`, and `backup.removed` for each)."""
    with session_scope(engine, readonly=True) as session:
        key = BackupKeyReads(session).destroyed_key(ca_name, ref)
        held = holders(session, root, key)
        successor = verified_successor(session, root, key) if held else ""
    local = tuple(h for h in held if h.path is not None)
    media = tuple(f"{h.name} on {m}" for h in held for m in h.media)
    if not dry_run:
        for holder in local:
            assert holder.path is not None
            shutil.rmtree(holder.path)
        with session_scope(engine) as session:
            for holder in local:
                audit.record(session, ledger.REMOVED, actor=actor, backup=holder.name, path=str(holder.path),
                             why=f"holds the destroyed key {key.label}")
            audit.record(session, PURGED, actor=actor, ca=key.ca_name, key_label=key.label,
                         removed=[h.name for h in local], successor=successor, media_to_destroy=list(media))
    return Purge(key, local, successor, media)
