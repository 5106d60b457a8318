"""Is a backup whole and usable?  Checked the only way that proves it: restored into a scratch
place and read there (seed 004 5.5.7.2: the yearly readability check; issue 17: every backup).

1. every file against the manifest's SHA-256 (nothing missing, changed or added);
2. the database restored into scratch (SQLite: a copy; PostgreSQL: pg_restore into a scratch
   database when the server lets this user create one, else pg_restore --list only, and the
   verdict says so);
3. on the restored copy: the audit chain with its checkpoints (`revoca audit verify`) and every
   archived item against its time-stamp (`revoca archive verify`, all of them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ca.backup.snapshot import FILES_DIR, MANIFEST, files_under, sha256_of
from ca.errors import InvalidInput, NotFound
from ca.storage import dumps
from ca.storage.engine import Session
from ca.timestamps import TokenCheck

# how the tokens of the restored archive are checked: the TSA's certificates as the restored
# database knows them (ca.tsa.known.token_checker, handed in by the caller: the core does not
# import a role)
CheckerFactory = Callable[[Session], TokenCheck]


@dataclasses.dataclass(frozen=True)
class Verification:
    path: Path
    digest: str  # SHA-256 of the manifest
    problems: tuple[str, ...]
    audit_records: int = 0
    archive_items: int = 0
    depth: str = "restored"  # or "listed": PostgreSQL dump read but not restored (no CREATEDB)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        if not self.ok:
            return f"backup {self.path.name}: NOT usable: " + "; ".join(self.problems[:5]) + (
                f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else "")
        what = ("restored into scratch: audit chain of " f"{self.audit_records} records and "
                f"{self.archive_items} archived items verify") if self.depth == "restored" else (
                "the dump reads (pg_restore --list); no scratch database could be created to restore it")
        return f"backup {self.path.name}: intact; {what}"


def read_manifest(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = (path / MANIFEST).read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"{path} is not a revoca backup (no {MANIFEST})") from exc
    try:
        return json.loads(text), hashlib.sha256(text).hexdigest()
    except ValueError as exc:
        raise InvalidInput(f"{path / MANIFEST}: not readable JSON: {exc}") from exc


def verify(path: Path, token_checker: CheckerFactory, scratch_url: str | None = None) -> Verification:
    """`scratch_url`: for a PostgreSQL dump, the server where a scratch database is made to
    restore it into (the installation's own, usually)."""
    manifest, digest = read_manifest(path)
    problems = list(file_problems(path, manifest["files"]))
    if problems:
        return Verification(path, digest, tuple(problems))
    dump_file = path / manifest["database"]["file"]
    if manifest["database"]["kind"] != "sqlite" and scratch_url is None:
        return Verification(path, digest, ("a PostgreSQL dump needs a server to restore it into",))
    with tempfile.TemporaryDirectory(prefix="revoca-backup-check.") as scratch_dir:
        scratch = Path(scratch_dir)
        data_dir = scratch / "data"
        shutil.copytree(path / FILES_DIR, data_dir, symlinks=True)
        with dumps.scratch_database(scratch_url or "", dump_file, scratch) as url:
            if url is None:
                why = dumps.readable(dump_file)
                return Verification(path, digest, (f"{dump_file.name} does not read: {why}",) if why else (),
                                    depth="listed")
            return _check(path, digest, url, data_dir, token_checker)


def file_problems(path: Path, expected: dict[str, str]) -> Iterator[str]:
    """What differs between the files under `path` and the manifest's digests `expected`."""
    present = {str(p.relative_to(path)) for p in files_under(path)}
    for name in sorted(set(expected) - present):
        yield f"{name} is missing"
    for name in sorted(present - set(expected)):
        yield f"{name} is not in the manifest"
    for name in sorted(set(expected) & present):
        if sha256_of(path / name) != expected[name]:
            yield f"{name} differs from the manifest"


def _check(path: Path, digest: str, url: str, data_dir: Path, token_checker: CheckerFactory) -> Verification:
    from ca.archive.verify import verify_everything
    from ca.audit.verify import verify as verify_audit
    from ca.storage.engine import make_engine, session_scope

    engine = make_engine(url)
    try:
        with session_scope(engine, readonly=True) as session:
            checker = token_checker(session)
            report = verify_audit(session, checker)
            items, archive_problems = verify_everything(session, data_dir, checker)
    finally:
        engine.dispose()
    problems = [f"audit: {finding}" for finding in report.findings] + [f"archive: {p}" for p in archive_problems]
    return Verification(path, digest, tuple(problems), audit_records=report.records, archive_items=items)
