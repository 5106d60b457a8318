"""What the rest of revoca needs of the LDAP publisher, as a small protocol.

Lists reach the repository through the publication queue (ca.storage.publications): issuing a
CRL or ARL queues it in the transaction that archives it, and a publisher drains the queue
into the directory.  Whoever drives a publisher (`revoca repository publish`, `revoca serve
publisher`) depends on `Publisher` here, not on the repository role, which the CA core and the
other roles never import: repository.publisher.LdapPublisher is one, and
repository.service.make_publisher wires it to the configured slapd.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from typing import Protocol


class PublishRound(Protocol):
    """What one round did, in lines an operator reads."""

    @property
    def published(self) -> Sequence[str]:
        """One line per row published (or found already in the directory)."""
        ...

    @property
    def superseded(self) -> int:
        """Rows that will never be published because a newer one was."""
        ...

    @property
    def failed(self) -> Sequence[str]:
        """One line per row that failed; it stays queued with a back-off."""
        ...

    @property
    def unavailable(self) -> str | None:
        """Why the directory could not be reached, if it could not (everything stays queued)."""
        ...

    @property
    def side_errors(self) -> Sequence[str]:
        """What went wrong in the work beside publishing (verifier accounts, provision history)."""
        ...

    @property
    def ok(self) -> bool:
        """Nothing failed and the directory was there."""
        ...


class Publisher(Protocol):
    """Drains the publication queue into a directory: one round at a time, or until stopped."""

    @property
    def uri(self) -> str:
        """Where it publishes (for the log)."""
        ...

    @property
    def base_dn(self) -> str: ...

    @property
    def clock(self) -> Callable[[], dt.datetime]:
        """The time rounds use when not given one."""
        ...

    def requeue_newest(self, now: dt.datetime, *, ca_id: int | None = None) -> int:
        """Queue every CA's (or one CA's) newest CRL, ARL and certificates again; how many rows."""
        ...

    def round(self, now: dt.datetime | None = None, *, side_work: bool | None = None,
              retry_now: bool = False) -> PublishRound:
        """Publish what is due; `side_work` forces (or skips) the work beside publishing,
        `retry_now` takes rows still backing off too."""
        ...

    def run(self, stop: threading.Event, poll: float = ...) -> None:
        """Rounds until `stop` is set, `poll` seconds apart when idle."""
        ...
