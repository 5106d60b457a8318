"""Activation state of the HSM: shares are collected in memory until M are present.

In the manner of Vault's unseal: each key manager presents one share; when the threshold
is reached the secret is combined, the token is opened and the shares are dropped.  Shares
are checked one by one against the digests recorded at the key ceremony, so a wrong,
foreign or repeated share is refused with its holder named instead of spoiling the set.

With `signer_processes` > 1 the activation also starts that many signing processes
(ca.hsm.pool), each with a token session of its own: `sign`/`sign_digest` use this process's
session when it is free and a free child when it is not; deactivation stops the children
before the token session closes.
"""

from __future__ import annotations

import dataclasses
import threading

from ca.errors import InvalidInput, NotActivated
from ca.hsm import shares as sharing
from ca.hsm.pool import SignerPool
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
    signer_processes: int = 1  # [hsm] signer_processes as the service runs it (1: it signs itself)
    signers_up: int = 0  # of those, the processes running now (0 when not activated)
    signers_given_up: bool = False  # the pool stopped starting them after repeated failures

    @property
    def needed(self) -> int:
        return 0 if self.activated else self.threshold - len(self.presented_by)

    def line(self) -> str:
        if self.activated:
            pool = (f"; signing processes {self.signers_up} of {self.signer_processes} up"
                    if self.signer_processes > 1 else "")
            return f"token {self.token_label}: activated ({self.threshold} of {self.total} key managers){pool}"
        return (f"token {self.token_label}: not activated; {self.needed} more key manager share(s) needed "
                f"({len(self.presented_by)} of {self.threshold} presented, {self.total} issued)")


class Activation:
    def __init__(self, token: Token, share_set: ShareSetInfo, *, signer_processes: int = 1) -> None:
        """`signer_processes`: 1 signs in this process (one signature at a time); N > 1 in a pool
        of N processes (ca.hsm.pool)."""
        if signer_processes < 1:
            raise InvalidInput(f"signer_processes must be at least 1, not {signer_processes}")
        self._token = token
        self._set = share_set
        self._lock = threading.Lock()
        self._pending: dict[int, sharing.Share] = {}
        self._session: TokenSession | None = None
        self._processes = signer_processes
        self._pool: SignerPool | None = None

    def status(self) -> ActivationStatus:
        with self._lock:
            return self._status()

    def _status(self) -> ActivationStatus:
        presented = tuple(self._set.holder(i).operator for i in sorted(self._pending))  # type: ignore[union-attr]
        pool = self._pool
        return ActivationStatus(self._token.label, self._session is not None, self._set.threshold,
                                self._set.total, presented, signer_processes=self._processes,
                                signers_up=pool.alive() if pool is not None else 0,
                                signers_given_up=pool is not None and pool.given_up)

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
                    self._open(sharing.user_pin(secret))
                finally:
                    self._pending.clear()
                    secret = b""
            return self._status(), holder.operator

    def _open(self, pin: str) -> None:
        """Log in (the lock held) and start the signing processes, which log in for themselves."""
        self._session = self._token.open(pin)
        if self._processes > 1:
            self._pool = SignerPool(self._token, pin, self._processes)

    def deactivate(self) -> None:
        with self._lock:
            self._pending.clear()
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.close()
            if self._session is not None:
                self._session.close()
                self._session = None

    @property
    def pool(self) -> SignerPool | None:
        """The signing processes while activated with more than one (tests, the bench)."""
        return self._pool

    def sign(self, label: str, data: bytes, hash_name: str | None = None) -> bytes:
        """Sign already-judged bytes: in this process's session when it is free (no pipe to cross),
        else in a free signing process, else (none ready) waiting for this process's session."""
        session, pool = self._session_and_pool()
        signature = None
        if pool is not None:
            signature = session.try_sign(label, data, hash_name)
            if signature is None:
                signature = pool.sign(label, data, hash_name)
        return signature if signature is not None else session.sign(label, data, hash_name)

    def sign_digest(self, label: str, digest: bytes, hash_name: str | None = None) -> bytes:
        session, pool = self._session_and_pool()
        signature = None
        if pool is not None:
            signature = session.try_sign(label, digest, hash_name, digest=True)
            if signature is None:
                signature = pool.sign_digest(label, digest, hash_name)
        return signature if signature is not None else session.signer(label, hash_name=hash_name).sign_digest(digest)

    def keys_changed(self) -> None:
        """A key was made, relabelled or destroyed: the signing processes start afresh."""
        pool = self._pool
        if pool is not None:
            pool.renew()

    def _session_and_pool(self) -> tuple[TokenSession, SignerPool | None]:
        session = self.session()
        return session, self._pool

    def session(self) -> TokenSession:
        """The open token session, or NotActivated with how many shares are still needed."""
        with self._lock:
            if self._session is None:
                st = self._status()
                raise NotActivated(
                    f"HSM not activated: {st.needed} more key manager share(s) needed "
                    f"({len(st.presented_by)} of {st.threshold}); run `revoca hsm activate`")
            return self._session
