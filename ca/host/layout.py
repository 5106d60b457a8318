"""Who owns what under the data directory when the services run as their own identities.

Files by need (issue 12); "data" is [identities] data_group, the directory itself is setgid so
that what a service creates there (SQLite's -wal and -shm) belongs to the group:

    path                      owner      group              modes (dir / file)
    .                         root       data               2770
    revoca.db, -wal, -shm     root       data               0660: every service reads and writes rows
    softhsm2.conf, tokens/    signer     signer's own       0700 / 0600: only the signer opens the token
    <socket directory>        signer     signer_clients     0750: who may ask the signer (ca.hsm.policy)
    crls/                     scheduler  crl_readers        2770 / 0640: the scheduler writes, the publisher reads
    ldap/                     ldap       publisher's own    0750 / 0640: slapd runs as ldap; the publisher
                                                            reads the manager password
    tls/                      ra         ra's own           0700 / 0600: the RA's TLS server key
    ocsp/                     ocsp       ocsp's own         0700 / 0600: responder key files
    tsa/                      root       data               2750 / 0640: the TSA certificate, for users
    web/                      web        web's own          0750 / 0640: the public pages' releases (ca.web)
    cvs/                      root       data               2750 / 0640: external CAs' CRLs the validation
                                                            server checks with (ca.cvs), put there by root
    demo-shares/, demo-*/     root       root               0700 / 0600: people's secrets (DEMO ONLY)

Anything else keeps its owner and loses group write and all of the world's bits.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ca.config import Settings
from ca.host.identities import Identities


def _own(path: Path, uid: int, gid: int, dir_mode: int, file_mode: int) -> None:
    """`path` and everything under it (symlinks untouched)."""
    if not path.exists():
        return
    for entry in (path, *path.rglob("*")):
        st = entry.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        os.chown(entry, uid, gid)
        if stat.S_ISSOCK(st.st_mode):
            continue
        os.chmod(entry, dir_mode if stat.S_ISDIR(st.st_mode) else file_mode)


def give_to_identities(settings: Settings, ids: Identities) -> None:
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    data_gid = ids.group_ids["data_group"]
    os.chown(data, 0, data_gid)
    os.chmod(data, 0o2770)
    for name in ("revoca.db", "revoca.db-wal", "revoca.db-shm"):
        if (data / name).exists():
            os.chown(data / name, 0, data_gid)
            os.chmod(data / name, 0o660)
    signer = ids["signer"]
    if settings.softhsm_conf.exists():
        _own(settings.softhsm_conf, signer.uid, signer.gid, 0o700, 0o600)
        _own(settings.softhsm_conf.parent / "tokens", signer.uid, signer.gid, 0o700, 0o600)
    socket_dir = settings.hsm_socket.parent
    socket_dir.mkdir(parents=True, exist_ok=True)
    _own(socket_dir, signer.uid, ids.group_ids["signer_clients"], 0o750, 0o600)
    (data / "crls").mkdir(exist_ok=True)
    _own(data / "crls", ids["scheduler"].uid, ids.group_ids["crl_readers"], 0o2770, 0o640)
    _own(settings.ldap_dir, ids["ldap"].uid, ids["publisher"].gid, 0o750, 0o640)
    _own(data / "tls", ids["ra"].uid, ids["ra"].gid, 0o700, 0o600)
    _own(data / "ocsp", ids["ocsp"].uid, ids["ocsp"].gid, 0o700, 0o600)
    _own(data / "tsa", 0, data_gid, 0o2750, 0o640)
    (data / "web").mkdir(exist_ok=True)
    _own(data / "web", ids["web"].uid, ids["web"].gid, 0o750, 0o640)
    _own(data / "cvs", 0, data_gid, 0o2750, 0o640)
    for private in (settings.demo_shares_dir, data / "demo-terminal", data / "demo-verifier"):
        _own(private, 0, 0, 0o700, 0o600)
