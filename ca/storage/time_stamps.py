"""The time-stamp tokens the TSA issued (`time_stamps`): the TSA adds each one in the caller's
transaction (ca.tsa.authority), so a stamped audit checkpoint and its token commit together."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from ca.storage.base import SessionStore
from ca.storage.models import TimeStamp


class StoredToken(Protocol):
    """A kept token as the TSA role and its checkers read it (a TimeStamp row, read-only), so that
    they need not name the row type."""

    @property
    def id(self) -> int: ...
    @property
    def serial(self) -> int: ...
    @property
    def gen_time(self) -> dt.datetime: ...
    @property
    def hash_algorithm(self) -> str: ...
    @property
    def message_imprint(self) -> bytes: ...
    @property
    def requester(self) -> str: ...
    @property
    def token(self) -> bytes: ...


class TimeStampWrites(SessionStore):
    def add_time_stamp(self, *, serial: int, gen_time: dt.datetime, hash_algorithm: str, message_imprint: bytes,
                       requester: str, token: bytes) -> TimeStamp:
        row = TimeStamp(serial=serial, gen_time=gen_time, hash_algorithm=hash_algorithm,
                        message_imprint=message_imprint, requester=requester, token=token)
        self.session.add(row)
        self.session.flush()
        return row
