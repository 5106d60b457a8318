"""Who is on the other end of the HSM socket: the Unix identity the kernel vouches for.

SO_PEERCRED gives the uid of the process that connected (it cannot be forged by the peer).
The uid is mapped to a Caller through [identities] (ca.config.IdentityConfig): each service's
user.  root and the signer's own uid are the admin: the officers' CLI on the CA machine, and
the single-identity layout in which every service runs as one user (not isolated: `revoca
run` as root starts each service as its own identity).  Any other uid may only ask for status
and public keys.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from collections.abc import Mapping

from ca.config import IdentityConfig
from ca.hsm.policy import Caller

_SERVICE_CALLERS = {"scheduler": Caller.SCHEDULER, "ocsp": Caller.OCSP, "ra": Caller.RA, "tsa": Caller.TSA,
                    "cvs": Caller.CVS, "publisher": Caller.PUBLISHER, "status": Caller.STATUS}


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (Linux SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class CallerMap:
    def __init__(self, by_uid: Mapping[int, Caller], admin_uids: frozenset[int]) -> None:
        self.by_uid = dict(by_uid)
        self.admin_uids = admin_uids

    @classmethod
    def from_identities(cls, identities: IdentityConfig) -> CallerMap:
        """Users that do not exist on this machine are left out (they cannot connect anyway)."""
        by_uid: dict[int, Caller] = {}
        for service, caller in _SERVICE_CALLERS.items():
            try:
                by_uid[pwd.getpwnam(getattr(identities, service)).pw_uid] = caller
            except KeyError:
                continue
        return cls(by_uid, frozenset({0, os.getuid()}))

    def caller(self, uid: int) -> Caller:
        if uid in self.admin_uids:
            return Caller.ADMIN
        return self.by_uid.get(uid, Caller.UNKNOWN)


def group_id(name: str) -> int | None:
    """The gid of group `name`, or None where it does not exist (single-identity layout)."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None
