"""Each service its own Unix identity (issue 12): made when missing, looked up for the launcher.

`revoca run` started as root creates the system users and groups of [identities]
(ca.config.IdentityConfig) that do not exist yet, with useradd/groupadd (no home, no login
shell), and starts every service as its own user with the groups it needs as supplementary
groups (so /etc/group is not edited for memberships):

    service     user                 supplementary groups
    hsm         identities.signer    data_group, signer_clients
    ra, ocsp, tsa, status
                identities.<service> data_group, signer_clients
    scheduler   identities.scheduler data_group, signer_clients, crl_readers
    publisher   identities.publisher data_group, crl_readers
    web         identities.web       data_group
    cvs         identities.cvs       data_group, signer_clients, crl_readers

ca.host.layout gives the files under the data directory to these identities.
"""

from __future__ import annotations

import dataclasses
import fcntl
import grp
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from ca.config import IdentityConfig
from ca.errors import ConfigError

LOCK = Path("/run/revoca-identities.lock")  # useradd run by two launchers at once would fight over /etc/passwd

# the supplementary groups of each service, by IdentityConfig field
SUPPLEMENTARY = {
    "signer": ("data_group", "signer_clients"),
    "ra": ("data_group", "signer_clients"),
    "ocsp": ("data_group", "signer_clients"),
    "tsa": ("data_group", "signer_clients"),
    "status": ("data_group", "signer_clients"),
    "scheduler": ("data_group", "signer_clients", "crl_readers"),
    "publisher": ("data_group", "crl_readers"),
    "web": ("data_group",),  # reads public rows only; never the signer, never the CRL spool
    "cvs": ("data_group", "signer_clients", "crl_readers"),  # signs answers; reads the lists it checks with
    "ldap": (),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    user: str
    uid: int
    gid: int  # the user's own group
    groups: tuple[int, ...]  # supplementary


@dataclasses.dataclass(frozen=True, slots=True)
class Identities:
    """The services' identities and the shared groups' ids."""

    by_service: dict[str, Identity]
    group_ids: dict[str, int]  # by IdentityConfig field: signer_clients, data_group, crl_readers

    def __getitem__(self, service: str) -> Identity:
        return self.by_service[service]


def wanted(config: IdentityConfig) -> bool:
    """Whether services run as identities of their own: as root, unless [identities] mode = "off"."""
    return config.mode == "auto" and os.geteuid() == 0


def unreachable(data_dir: Path, socket_dir: Path) -> list[Path]:
    """What the services need that another user could not reach (e.g. a Python installed under
    /root, 0700, or a data directory inside a private one): empty when identities can run."""
    import ca

    code = [Path(sys.executable).resolve(), Path(ca.__file__).resolve().parent]
    code += [Path(p).resolve() for p in sys.path if p.endswith("site-packages")]
    missing = [p for p in code if not _open_to_others(p)]
    # the data and socket directories are given to the identities; their parents must let them pass
    data = data_dir.resolve()
    for directory in (data, socket_dir.resolve()):
        outside = [p for p in directory.parents if p.exists() and p != data and data not in p.parents]
        if not all(p.stat().st_mode & 0o001 for p in outside):
            missing.append(directory)
    return missing


def _open_to_others(path: Path) -> bool:
    for parent in reversed(path.parents):
        if not parent.stat().st_mode & 0o001:
            return False
    return bool(path.stat().st_mode & (0o001 if path.is_dir() or path.suffix == "" else 0o004))


def ensure(config: IdentityConfig) -> Identities:
    """Create what is missing (root only), then look every identity up."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for field in IdentityConfig.GROUPS:
            _ensure_group(getattr(config, field))
        for field in IdentityConfig.USERS:
            _ensure_user(getattr(config, field))
    return lookup(config)


def lookup(config: IdentityConfig) -> Identities:
    try:
        group_ids = {field: grp.getgrnam(getattr(config, field)).gr_gid for field in IdentityConfig.GROUPS}
        by_service = {}
        for field in IdentityConfig.USERS:
            entry = pwd.getpwnam(getattr(config, field))
            by_service[field] = Identity(entry.pw_name, entry.pw_uid, entry.pw_gid,
                                         tuple(group_ids[g] for g in SUPPLEMENTARY[field]))
    except KeyError as exc:
        raise ConfigError(f"identities: {exc.args[0]} does not exist; `revoca run` as root creates it") from exc
    return Identities(by_service, group_ids)


def _run(*argv: str) -> None:
    tool = shutil.which(argv[0], path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if tool is None:
        raise ConfigError(f"{argv[0]} not found: create the user or group {argv[-1]} yourself")
    proc = subprocess.run([tool, *argv[1:]], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ConfigError(f"{argv[0]} {argv[-1]} failed: {proc.stderr.strip() or proc.returncode}")


def _ensure_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        _run("groupadd", "--system", name)


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        _run("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "--comment", "revoca service", name)
