"""What the audit log and the archive need of a time-stamp authority, as small protocols.

The audit checkpoints and the archive stamps are anchored by tokens from revoca's own TSA, but
the core does not import the TSA role: it is handed a `Stamper` (ca.tsa.stamper.CurrentAuthority
is one) and a `TokenCheck` (ca.tsa.known.token_checker makes one), and the CLI wires them in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol


class Stamper(Protocol):
    def stamp(self, session: Any, imprint: bytes, hash_name: str, requester: str) -> Any:
        """A token over `imprint`, kept in the caller's transaction (`session`); returns the
        stored token (a ca.storage.models.TimeStamp row)."""
        ...


#: Checks a stored token (a TimeStamp row) against what it should cover and returns its genTime; raises a
#: RevocaError on anything wrong.
TokenCheck = Callable[[Any, bytes], dt.datetime]
