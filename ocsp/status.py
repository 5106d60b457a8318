"""The status of one certificate, read from the database at every query.

Reading it every time (one indexed lookup) is what makes a revocation committed through the
RA show in the very next answer; pre-signed answers are only reused when the status read
now is the one they were signed for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Protocol

from ca.storage.ocsp_lookups import Lookups, Presigned
from ca.storage.replica_lag import ReplicaLag


class CertStatus(enum.StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    status: CertStatus
    revoked_at: dt.datetime | None = None
    reason: int | None = None  # CRLReason (1-5, seed 004 4.9.9)


UNKNOWN = Status(CertStatus.UNKNOWN)
GOOD = Status(CertStatus.GOOD)


class StatusSource(Protocol):
    """Where the responder reads a certificate's status: by issuing CA, the key that signed it, serial."""

    def status(self, ca_id: int, key_id: int, serial: int) -> Status: ...


class StoredStatus:
    """The StatusSource of the database: one indexed lookup per certificate (ca.storage.ocsp_lookups)."""

    def __init__(self, lookups: Lookups) -> None:
        self.lookups = lookups

    def status(self, ca_id: int, key_id: int, serial: int) -> Status:
        """Unknown when the CA never issued that serial, or issued it with another of its keys.

        A revocation imported from an adopted CA's CRL (no certificate row, key id None) is the
        CA's word on that serial whichever of its keys the CertID names: serials are the CA's."""
        return _status(self.lookups.status(ca_id, serial), key_id)  # None: a serial no CA of ours issued

    def with_presigned(self, ca_id: int, key_id: int, serial: int) -> tuple[Status, Presigned | None]:
        """The status, and the answer pre-signed for that certificate under that key, in one lookup."""
        row, presigned = self.lookups.status_presigned(ca_id, serial)
        status = _status(row, key_id)
        return status, (presigned if status is not UNKNOWN else None)


class FreshestStatus(StoredStatus):
    """Statuses read from a streaming standby while it is fresh enough, else from the primary.

    `lag` decides per answer (ca.storage.replica_lag: the standby answers only while it has
    replayed what the primary had written at most [database_read_max_lag_ms] ago and holds the
    newest revocation the primary held at the last sample).  `answered` counts answers by source."""

    def __init__(self, replica: Lookups, primary: Lookups, lag: ReplicaLag) -> None:
        super().__init__(replica)
        self.replica, self.primary = StoredStatus(replica), StoredStatus(primary)
        self.lag = lag
        self.answered = {"replica": 0, "primary": 0}

    def status(self, ca_id: int, key_id: int, serial: int) -> Status:
        return self._pick().status(ca_id, key_id, serial)

    def with_presigned(self, ca_id: int, key_id: int, serial: int) -> tuple[Status, Presigned | None]:
        return self._pick().with_presigned(ca_id, key_id, serial)

    def _pick(self) -> StoredStatus:
        if self.lag.freshness().use_replica:
            self.answered["replica"] += 1
            return self.replica
        self.answered["primary"] += 1
        return self.primary


def _status(row: tuple[int | None, dt.datetime | None, int | None] | None, key_id: int) -> Status:
    if row is None or (row[0] is not None and row[0] != key_id):
        return UNKNOWN
    if row[1] is None:
        return GOOD
    return Status(CertStatus.REVOKED, row[1], row[2])
