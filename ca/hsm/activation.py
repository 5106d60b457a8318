"""Activation state of the HSM: shares are collected in memory until M are present.

In the manner of Vault's unseal: each key manager presents one share; when the threshold
is reached the secret is combined, the token is opened and the shares are dropped.  Shares
are checked one by one against the digests recorded at the key ceremony, so a wrong,
foreign or repeated share is refused with its holder named instead of spoiling the set.
"""

from __future__ import annotations

import dataclasses
import threading

from ca.errors import InvalidInput, NotActivated
from ca.hsm import shares as sharing
from ca.hsm.token import Token, TokenSession


@dataclasses.dataclass(frozen=True, slots=True)
class Holder:
    index: int
    operator: str
    digest: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class ShareSetInfo:
    set_id: int
    threshold: int
    total: int
    holders: tuple[Holder, ...]

    def holder(self, index: int) -> Holder | None:
        return next((h for h in self.holders if h.index == index), None)


@dataclasses.dataclass(frozen=True, slots=True)
class ActivationStatus:
    token_label: str
    activated: bool
    threshold: int
    total: int
    presented_by: tuple[str, ...]

    @property
    def needed(self) -> int:
        return 0 if self.activated else self.threshold - len(self.presented_by)

    def line(self) -> str:
        if self.activated:
            return f"token {self.token_label}: activated ({self.threshold} of {self.total} key managers)"
        return (f"token {self.token_label}: not activated; {self.needed} more key manager share(s) needed "
                f"({len(self.presented_by)} of {self.threshold} presented, {self.total} issued)")


class Activation:
    def __init__(self, token: Token, share_set: ShareSetInfo) -> None:
        self._token = token
        self._set = share_set
        self._lock = threading.Lock()
        self._pending: dict[int, sharing.Share] = {}
        self._session: TokenSession | None = None

    def status(self) -> ActivationStatus:
        with self._lock:
            return self._status()

    def _status(self) -> ActivationStatus:
        presented = tuple(self._set.holder(i).operator for i in sorted(self._pending))  # type: ignore[union-attr]
        return ActivationStatus(self._token.label, self._session is not None, self._set.threshold,
                                self._set.total, presented)

    def present(self, share_text: str) -> tuple[ActivationStatus, str]:
        """Take one share; returns the new status and the holder's name (for the audit log)."""
        share = sharing.parse_share(share_text)
        with self._lock:
            if self._session is not None:
                raise InvalidInput(f"token {self._token.label} is already activated; no share needed")
            if share.set_id != self._set.set_id:
                raise InvalidInput(
                    f"this share belongs to share set {share.set_id}, but the token uses set {self._set.set_id}")
            holder = self._set.holder(share.index)
            if holder is None:
                raise InvalidInput(f"share set {self._set.set_id} has no share {share.index}")
            if not share.matches(holder.digest):
                raise InvalidInput(f"share {share.index} is not the one issued to key manager {holder.operator}")
            if share.index in self._pending:
                raise InvalidInput(
                    f"share {share.index} ({holder.operator}) was already presented; "
                    f"{self._status().needed} more needed from other key managers")
            self._pending[share.index] = share
            if len(self._pending) >= self._set.threshold:
                try:
                    secret = sharing.combine(list(self._pending.values()))
                    self._session = self._token.open(sharing.user_pin(secret))
                finally:
                    self._pending.clear()
                    secret = b""
            return self._status(), holder.operator

    def deactivate(self) -> None:
        with self._lock:
            self._pending.clear()
            if self._session is not None:
                self._session.close()
                self._session = None

    def session(self) -> TokenSession:
        """The open token session, or NotActivated with how many shares are still needed."""
        with self._lock:
            if self._session is None:
                st = self._status()
                raise NotActivated(
                    f"HSM not activated: {st.needed} more key manager share(s) needed "
                    f"({len(st.presented_by)} of {st.threshold}); run `revoca hsm activate`")
            return self._session
