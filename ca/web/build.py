"""Making the site: read what is public, render it, and put the files where a web server finds
them without ever seeing half a site.

`build` reads the database (one read-only transaction, so every page shows the same moment) and
the directory's ARLs.  `write_tree` replaces a plain directory (`revoca web build --out DIR`, for
any web server); `publish_release` writes a new release beside the old ones and moves the
`current` symlink to it in one rename (`revoca serve web`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

from ca.errors import InvalidInput
from ca.storage.engine import Engine, session_scope
from ca.storage.notices import NoticeReads
from ca.storage.provision_reports import ProvisionReportReads
from ca.storage.public import PublicReads
from ca.web.arls import directory_arls
from ca.web.render import render
from ca.web.site import PracticeStatement, Site, gather

MARKER = ".revoca-web"  # names a directory revoca wrote, so that replacing it never removes anyone else's
KEEP_RELEASES = 3


@dataclasses.dataclass(frozen=True, slots=True)
class Sources:
    """Where the site's content comes from besides the database."""

    ldap_host: str = "127.0.0.1"
    ldap_port: int = 1389
    base_dn: str = "o=JPKI,c=JP"
    practice: PracticeStatement | None = None


def practice_statement(value: str | None) -> PracticeStatement | None:
    """`--practice-statement`: an http(s) URL is linked, a file is copied (UTF-8 text)."""
    if not value:
        return None
    if value.startswith(("https://", "http://")):
        return PracticeStatement(title=value, url=value)
    path = Path(value)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"practice statement {value}: cannot be read as UTF-8 text ({exc}); give a readable "
                           "file or an https:// URL") from exc
    return PracticeStatement(title=path.name, text=text)


def mark(engine: Engine, now: dt.datetime) -> str:
    with session_scope(engine, readonly=True) as session:
        return PublicReads(session).change_mark(now)


def build(engine: Engine, sources: Sources, now: dt.datetime) -> tuple[Site, dict[str, bytes]]:
    """The site as it is now and its files."""
    with session_scope(engine, readonly=True) as session:
        public = PublicReads(session)
        cas, certificates, arls = public.cas(), public.certificates(), public.published_arls()
        notices = NoticeReads(session).notices()
        reports = ProvisionReportReads(session).published()
        change = public.change_mark(now)
    in_directory = directory_arls(sources.ldap_host, sources.ldap_port, sources.base_dn) if arls else {}
    site = gather(cas=cas, certificates=certificates, arls=arls, arl_bytes=in_directory.get, notices=notices,
                  reports=reports, practice=sources.practice, now=now, mark=change)
    return site, render(site)


def _write(files: dict[str, bytes], root: Path, *, public: bool) -> None:
    """`public`: readable by every local user (another web server's); else by the web identity's
    group only, as everything under the data directory (ca.host.layout)."""
    file_mode, dir_mode = (0o644, 0o755) if public else (0o640, 0o750)
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(file_mode)
    (root / MARKER).write_text("written by revoca web build; replaced whole at each build\n")
    for directory in (root, *(p for p in root.rglob("*") if p.is_dir())):
        directory.chmod(dir_mode)


def write_tree(files: dict[str, bytes], out: Path) -> None:
    """Replace `out` with exactly these files (world-readable: the pages are public).  An `out`
    that exists must be empty or one revoca wrote before."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise InvalidInput(f"{out} holds files revoca did not write; give an empty or new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    _write(files, fresh, public=True)
    old = out.parent / f".{out.name}.old"
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    fresh.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def current(root: Path) -> Path:
    return root / "current"


def publish_release(files: dict[str, bytes], root: Path, name: str) -> Path:
    """Write a release under root/releases and point root/current at it (an atomic rename);
    older releases beyond the last few are removed."""
    releases = root / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    target = releases / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=releases))
    _write(files, staging, public=False)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    link = root / f".current.{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(Path("releases") / name)
    os.replace(link, current(root))
    kept = sorted((p for p in releases.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
    for old in kept[:-KEEP_RELEASES]:
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target
