"""Ceremony sessions: what lets the HSM service sign a certificate, make a key or destroy one.

Seed 004 5.2.2 and 6.2 put every operation of a CA private key beyond the routine signatures
(lists, OCSP responses, receipts, time stamps) in the hands of several key managers together.
The service does not take a caller's word for it, not even root's: M different key managers
(M = the activation threshold) send their names and passwords over the socket (never argv or
the environment), the service checks them against the operators table itself (ca.hsm.service),
and opens a session bound to that one connection, for a few minutes.  Certificate signatures,
key generation, relabelling and destruction need that session; it ends when the connection
closes, when the client closes it, or when it expires, and its opening and end are audited with
the names and what was done inside it.

The session belongs to the connection, not to a token that could be handed on: another process,
even of the same user, has a connection of its own and no session on it.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from ca.errors import PermissionDenied
from ca.hsm.policy import Caller

TTL = dt.timedelta(minutes=10)

NO_SESSION = ("{what} needs a ceremony session opened by {m} different key managers on this connection "
              "(the officers' CLI opens it with the key managers who log in for the act, e.g. "
              "`revoca ca rollover --operator A --operator B`); seed 004 5.2.2")


@dataclasses.dataclass(slots=True)
class CeremonySession:
    key_managers: tuple[str, ...]
    opened_at: dt.datetime
    expires: float  # time.monotonic()
    done: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def expired(self) -> bool:
        return time.monotonic() >= self.expires

    def summary(self) -> dict[str, Any]:
        """What the audit record of its end carries: who, since when, and what was done."""
        return {"key_managers": list(self.key_managers), "opened_at": self.opened_at.isoformat(),
                "done": dict(sorted(self.done.items()))}


@dataclasses.dataclass(slots=True)
class Connection:
    """One client connection to the service: who the kernel says it is, and its session if any."""

    caller: Caller
    session: CeremonySession | None = None
    # the socket's bytes, for a request followed by a stream (`sign_list`, ca.hsm.crl_stream)
    read: Callable[[int], bytes] | None = None
    write: Callable[[bytes], object] | None = None

    def open(self, key_managers: tuple[str, ...], ttl: dt.timedelta = TTL) -> CeremonySession:
        self.session = CeremonySession(key_managers, dt.datetime.now(dt.UTC),
                                       time.monotonic() + ttl.total_seconds())
        return self.session

    def take(self) -> CeremonySession | None:
        """The session, which this connection then no longer has (closing it)."""
        session, self.session = self.session, None
        return session

    def require(self, what: str, threshold: int) -> CeremonySession:
        """The open session; PermissionDenied when there is none (an expired one is closed by the
        service first, see HSMService._session)."""
        if self.session is None:
            raise PermissionDenied(NO_SESSION.format(what=what, m=threshold))
        return self.session
