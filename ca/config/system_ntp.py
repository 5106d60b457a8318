"""The NTP servers the machine itself is configured with, as revoca's default (issue 15).

A CA that signs on an unchecked clock can date a CRL days off (seed 004 6.8).  Where the
operator wrote no [time] ntp_servers, revoca checks its clock against the servers the
machine's own time daemon uses: chrony, ntpd/ntpsec or systemd-timesyncd, read from their
configuration files (explicit `server`/`pool`/`peer` lines and timesyncd's NTP=; never
timesyncd's built-in fallback, which nobody here chose).  A machine configured with none
gets none, and revoca says so when it starts.

Only the host (and an explicit port) is taken: the daemons' options (iburst, maxpoll, key...)
mean nothing to revoca's one-shot SNTP check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

CHRONY = (Path("/etc/chrony/chrony.conf"), Path("/etc/chrony.conf"))
CHRONY_DIRS = (Path("/etc/chrony/conf.d"), Path("/etc/chrony/sources.d"))
NTPD = (Path("/etc/ntpsec/ntp.conf"), Path("/etc/ntp.conf"))
TIMESYNCD = (Path("/etc/systemd/timesyncd.conf"),)
TIMESYNCD_DIRS = (Path("/etc/systemd/timesyncd.conf.d"),)


@dataclasses.dataclass(frozen=True)
class SystemServers:
    servers: tuple[str, ...]
    source: str  # the file they were read from, or "" when the machine has none


def discover(root: Path = Path("/")) -> SystemServers:
    """The first daemon configuration naming any server, in the order chrony, ntpd, timesyncd
    (the order in which Debian prefers them when several are installed)."""
    for files, dirs, parse in ((CHRONY, CHRONY_DIRS, _daemon_lines), (NTPD, (), _daemon_lines),
                               (TIMESYNCD, TIMESYNCD_DIRS, _timesyncd_lines)):
        paths = _existing(root, files, dirs)
        # one daemon's files read as one, in the daemon's order: chrony adds the sources of its
        # conf.d, a timesyncd drop-in replaces NTP=
        text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in paths)
        if servers := _unique(parse(text)):
            return SystemServers(servers, ", ".join("/" + p.relative_to(root).as_posix() for p in paths))
    return SystemServers((), "")


def _existing(root: Path, files: Iterable[Path], dirs: Iterable[Path]) -> list[Path]:
    found = [root / p.relative_to("/") for p in files]
    for d in dirs:
        here = root / d.relative_to("/")
        if here.is_dir():
            found += sorted(here.glob("*.conf")) + sorted(here.glob("*.sources"))
    return [p for p in found if p.is_file()]


def _daemon_lines(text: str) -> list[str]:
    """chrony.conf / ntp.conf: `server HOST [options]`, `pool HOST [options]`, `peer HOST ...`."""
    servers = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] in ("server", "pool", "peer"):
            host = words[1]
            port = _option(words[2:], "port")
            servers.append(_host_port(host, port))
    return servers


def _timesyncd_lines(text: str) -> list[str]:
    """timesyncd.conf: `NTP=host host ...` in [Time]; an empty NTP= resets the list."""
    servers: list[str] = []
    section = ""
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            section = line
        elif section == "[Time]" and line.startswith("NTP="):
            names = line.removeprefix("NTP=").split()
            servers = names if names else []
    return servers


def _option(words: list[str], name: str) -> str | None:
    if name in words and words.index(name) + 1 < len(words):
        return words[words.index(name) + 1]
    return None


def _host_port(host: str, port: str | None) -> str:
    if port is None or port == "123":
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _unique(servers: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(servers))
