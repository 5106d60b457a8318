"""The two queries every OCSP answer makes, on a DB-API connection of the thread's own.

Speed path: OCSP per-query lookups (and the pre-signed answer read with the status, issue 16).
Why not SQLAlchemy's execution here: its per-execution overhead (about 50 µs) was most of an
answer's time once parsing and signing were cached.  The SQL is compiled once by SQLAlchemy
from the models for the engine's dialect, so table and column names still come from one place; only parameter and result
conversion is done here, by hand, the way ca.storage.models' types store values (serials as
zero-padded hex, times as UTC).  The connection is in autocommit, so every lookup sees what
was committed before it (a revocation shows in the next answer).  Used by ocsp.status and
ocsp.responder; kept in the storage layer since it is database code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.sql.compiler import SQLCompiler

from ca.storage.engine import unavailable
from ca.storage.models import SERIAL_HEX_WIDTH, Certificate, PresignedResponse, Revocation, Verifier

# A revocation is one per (issuing CA, serial) (uq_revocations_issuer_serial), matched so even
# before an adopted CA's imported revocation is linked to its certificate row.
_STATUS = (sa.select(Certificate.issuer_key_id, Revocation.revocation_time, Revocation.reason)
           .select_from(Certificate).outerjoin(Revocation, sa.and_(Revocation.issuer_ca_id == Certificate.issuer_ca_id,
                                                                  Revocation.serial == Certificate.serial))
           .where(Certificate.issuer_ca_id == sa.bindparam("ca_id"), Certificate.serial == sa.bindparam("serial")))
# The same, with the answer pre-signed for the certificate (ocsp.presigner), in the same round trip.
_P = PresignedResponse
_STATUS_PRESIGNED = (
    sa.select(Certificate.issuer_key_id, Revocation.revocation_time, Revocation.reason, Revocation.id,
              _P.revocation_id, _P.responder_serial, _P.this_update, _P.next_update, _P.signed)
    .select_from(Certificate).outerjoin(Revocation, sa.and_(Revocation.issuer_ca_id == Certificate.issuer_ca_id,
                                                           Revocation.serial == Certificate.serial))
    .outerjoin(_P, sa.and_(_P.key_id == Certificate.issuer_key_id, _P.serial == Certificate.serial))
    .where(Certificate.issuer_ca_id == sa.bindparam("ca_id"), Certificate.serial == sa.bindparam("serial")))
# An adopted CA's history (ca.adoption.history) names serials revoca holds no certificate for.
_IMPORTED = (sa.select(Revocation.revocation_time, Revocation.reason)
             .where(Revocation.issuer_ca_id == sa.bindparam("ca_id"), Revocation.serial == sa.bindparam("serial")))
_VERIFIER = (sa.select(Verifier.id, Verifier.status, Verifier.cert_not_after, Revocation.id)
             .outerjoin(Revocation, Revocation.certificate_id == Verifier.certificate_id)
             .where(Verifier.cert_fingerprint == sa.bindparam("fingerprint")))


@dataclasses.dataclass(frozen=True, slots=True)
class Presigned:
    """A stored pre-signed answer: whether it says the status now, who signed it, when it is good for,
    its signed part."""

    current: bool  # signed for the revocation read now (or, for none, as good)
    responder_serial: int | None
    this_update: dt.datetime
    next_update: dt.datetime
    signed: bytes


class Lookups:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._status_sql, self._status_params = compile_positional(_STATUS, engine)
        self._verifier_sql, self._verifier_params = compile_positional(_VERIFIER, engine)
        self._imported_sql, self._imported_params = compile_positional(_IMPORTED, engine)
        self._presigned_sql, self._presigned_params = compile_positional(_STATUS_PRESIGNED, engine)
        self._sqlite = engine.dialect.name == "sqlite"

    def _cursor(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            pooled = self.engine.raw_connection()  # made by the pool: SQLite gets its pragmas
            conn = pooled.driver_connection
            assert conn is not None  # only an invalidated pool connection has lost its DB-API one
            pooled.detach()  # ours for good: it must never go back to the pool in autocommit
            if not self._sqlite:
                conn.autocommit = True
            self._local.conn = conn
        return conn.cursor()

    def _run(self, sql: str, names: tuple[str, ...], values: dict[str, object]) -> tuple[Any, ...] | None:
        params = tuple(values[n] for n in names)
        try:
            cur = self._cursor()
            cur.execute(sql, params)
            row = cur.fetchone()
            cur.close()
        except (sa.exc.DBAPIError, self.engine.dialect.loaded_dbapi.Error) as exc:
            self.reset()  # a dropped connection: the next lookup opens a new one
            raise unavailable(exc) from exc  # OCSP answers tryLater
        except Exception:
            self.reset()
            raise
        return row

    def reset(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def status(self, ca_id: int, serial: int) -> tuple[int | None, dt.datetime | None, int | None] | None:
        """(issuer key id, revocation time, reason) of the certificate, or None if the CA never issued it
        (nor could have: a serial too long for the column).  The key id is None for a revocation
        imported from an adopted CA's history whose certificate revoca does not hold."""
        if serial < 0 or serial.bit_length() > SERIAL_HEX_WIDTH * 4:
            return None
        values = {"ca_id": ca_id, "serial": format(serial, f"0{SERIAL_HEX_WIDTH}x")}
        row = self._run(self._status_sql, self._status_params, values)
        if row is not None:
            return row[0], _time(row[1]), row[2]
        return self._imported(values)

    def _imported(self, values: dict[str, object]) -> tuple[None, dt.datetime | None, int | None] | None:
        imported = self._run(self._imported_sql, self._imported_params, values)
        if imported is None:
            return None
        return None, _time(imported[0]), imported[1]

    def status_presigned(self, ca_id: int, serial: int) -> tuple[
            tuple[int | None, dt.datetime | None, int | None] | None, Presigned | None]:
        """`status`, and the pre-signed answer stored for the certificate (None if there is none)."""
        if serial < 0 or serial.bit_length() > SERIAL_HEX_WIDTH * 4:
            return None, None
        values = {"ca_id": ca_id, "serial": format(serial, f"0{SERIAL_HEX_WIDTH}x")}
        row = self._run(self._presigned_sql, self._presigned_params, values)
        if row is None:
            return self._imported(values), None
        status = row[0], _time(row[1]), row[2]
        if row[8] is None:
            return status, None
        this_update, next_update = _time(row[6]), _time(row[7])
        assert this_update is not None and next_update is not None
        responder = None if row[5] is None else int(row[5], 16)
        return status, Presigned(row[3] == row[4], responder, this_update, next_update, bytes(row[8]))

    def verifier(self, fingerprint: bytes) -> tuple[int, str, dt.datetime, bool] | None:
        """(id, status, certificate notAfter, certificate revoked) of the verifier with that certificate."""
        row = self._run(self._verifier_sql, self._verifier_params, {"fingerprint": fingerprint})
        if row is None:
            return None
        not_after = _time(row[2])
        assert not_after is not None
        return row[0], row[1], not_after, row[3] is not None


def compile_positional(statement: sa.ClauseElement, engine: sa.Engine) -> tuple[str, tuple[str, ...]]:
    """SQL text in the driver's positional style, and the parameter names in order."""
    # a fresh dialect of the same kind, told to write positional markers (SQLAlchemy may use
    # named ones with psycopg once connected); both drivers take these
    style: Literal["qmark", "format"] = "qmark" if engine.dialect.name == "sqlite" else "format"
    assert isinstance(engine.dialect, DefaultDialect)  # every SQLAlchemy dialect derives from it
    dialect = type(engine.dialect)(paramstyle=style)
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)  # a statement (not DDL) compiles with the SQL compiler
    if not compiled.positiontup:
        raise RuntimeError(f"{engine.dialect.name}: expected a positional DB-API parameter style")
    return compiled.string, tuple(compiled.positiontup)


def _time(value: object) -> dt.datetime | None:
    """A stored time as aware UTC (SQLite gives text without a zone, PostgreSQL an aware datetime)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
