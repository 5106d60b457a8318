"""What every store holds: the caller's session.  The caller owns the transaction
(ca.storage.engine.session_scope); a store only reads and writes inside it."""

from __future__ import annotations

from sqlalchemy.orm import Session


class SessionStore:
    def __init__(self, session: Session) -> None:
        self.session = session
