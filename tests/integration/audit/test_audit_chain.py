"""The audit hash chain: tampering by SQL behind revoca's back is found at the right record.

Checkpoints and prune anchors need the time-stamp authority; they are in test_audit_tsa.py.
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
import sqlalchemy as sa
from alembic import command

from ca import audit
from ca.audit import history_seal
from ca.audit.verify import Report, verify
from ca.storage.engine import alembic_config, make_engine, session_scope, upgrade
from ca.storage.models import AuditEvent, AuditHead, OCSPQuery, TimeStamp

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


def _no_tokens(token: TimeStamp, imprint: bytes) -> dt.datetime:
    raise AssertionError("no checkpoint exists in these tests, so no token is checked")


def _record(engine: sa.Engine, n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        with session_scope(engine) as s:
            audit.record(s, "test.event", actor=f"operator-{i % 3}", at=T0 + dt.timedelta(minutes=i), n=i,
                         note="日本語も")


def _verify(engine: sa.Engine) -> Report:
    with session_scope(engine, readonly=True) as s:
        return verify(s, _no_tokens)


def _sql(engine: sa.Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def _first(report: Report) -> tuple[int | None, str]:
    assert not report.ok
    return report.findings[0].seq, report.findings[0].problem


def test_records_are_chained_gap_free_and_verify(engine: sa.Engine) -> None:
    _record(engine, 12)
    report = _verify(engine)
    assert report.ok, report.findings
    assert (report.first_seq, report.last_seq, report.records) == (1, 12, 12)
    with session_scope(engine, readonly=True) as s:
        seqs = s.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.id)).all()
        head = s.get(AuditHead, 1)
        last = s.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert seqs == list(range(1, 13))
    assert head is not None and last is not None
    assert (head.seq, head.chain_hash) == (12, last.chain_hash)


def test_a_rolled_back_transaction_leaves_no_record_and_no_gap(engine: sa.Engine) -> None:
    _record(engine, 2)
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        audit.record(s, "test.event", actor="x")
        raise RuntimeError("the operation failed")
    _record(engine, 1, start=2)
    report = _verify(engine)
    assert report.ok and report.records == 3


def test_an_edited_detail_is_found_at_that_record(engine: sa.Engine) -> None:
    _record(engine, 10)
    _sql(engine, "UPDATE audit_events SET detail = :d WHERE seq = 6", d=json.dumps({"n": 99}))
    seq, problem = _first(_verify(engine))
    assert seq == 6 and "changed" in problem
    assert len(_verify(engine).findings) == 1  # the walk resynchronises: one edit, one finding


@pytest.mark.parametrize("column,value", [("actor", "someone-else"), ("result", "failure"),
                                          ("event_type", "test.other"),
                                          ("occurred_at", T0 + dt.timedelta(days=1))])
def test_every_column_is_covered(engine: sa.Engine, column: str, value: object) -> None:
    _record(engine, 5)
    _sql(engine, f"UPDATE audit_events SET {column} = :v WHERE seq = 3", v=value)
    assert _first(_verify(engine))[0] == 3


def test_a_deleted_record_is_named_by_the_gap(engine: sa.Engine) -> None:
    _record(engine, 10)
    _sql(engine, "DELETE FROM audit_events WHERE seq = 4")
    seq, problem = _first(_verify(engine))
    assert seq == 5 and "seq 4 deleted" in problem


def test_reordered_records_are_found_where_the_order_changed(engine: sa.Engine) -> None:
    _record(engine, 10)
    _sql(engine, "UPDATE audit_events SET seq = -1 WHERE seq = 7")
    _sql(engine, "UPDATE audit_events SET seq = 7 WHERE seq = 8")
    _sql(engine, "UPDATE audit_events SET seq = 8 WHERE seq = -1")
    report = _verify(engine)
    # 7 and 8 hold each other's record; 9 no longer follows the record now before it
    assert [f.seq for f in report.findings] == [7, 8, 9]


def test_a_truncated_chain_is_found_against_its_head(engine: sa.Engine) -> None:
    _record(engine, 10)
    _sql(engine, "DELETE FROM audit_events WHERE seq > 7")
    seq, problem = _first(_verify(engine))
    assert seq is None and "seq 8..10 are missing" in problem


def test_concurrent_writers_never_share_a_position(engine: sa.Engine) -> None:
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(15):
                with session_scope(engine) as s:
                    audit.record(s, "test.concurrent", actor=f"w{w}", i=i)
                    audit.record(s, "test.concurrent", actor=f"w{w}", i=i, second=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = _verify(engine)
    assert report.ok, report.findings
    assert report.records == 4 * 15 * 2


def test_records_of_earlier_releases_are_chained_by_the_migration(db_url: str) -> None:
    eng = make_engine(db_url)
    cfg = alembic_config(eng.url.render_as_string(hide_password=False))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
    with eng.begin() as conn:
        for i in range(3):
            conn.execute(sa.text("INSERT INTO audit_events (occurred_at, event_type, result, actor, detail) "
                                 "VALUES (:at, 'old.event', 'success', 'old', :d)"),
                         {"at": T0 + dt.timedelta(seconds=i), "d": json.dumps({"i": i})})
    upgrade(eng)
    _record(eng, 2, start=10)
    report = _verify(eng)
    assert report.ok, report.findings
    assert report.records == 5
    eng.dispose()


# --- sealed OCSP and CRL-fetch history -------------------------------------------------------------


def _queries(engine: sa.Engine, n: int, at: dt.datetime) -> None:
    with session_scope(engine) as s:
        s.add_all(OCSPQuery(at=at, channel="signed", nonce=False, response_status="successful",
                            answers=f"{i:x}=good") for i in range(n))


def _seal(engine: sa.Engine, now: dt.datetime) -> list[dict[str, object]]:
    with session_scope(engine) as s:
        return history_seal.seal(s, now)


def test_history_is_sealed_once_settled_and_altered_rows_are_found(engine: sa.Engine) -> None:
    _queries(engine, 40, T0)
    _queries(engine, 5, T0 + dt.timedelta(minutes=10))
    sealed = _seal(engine, T0 + dt.timedelta(minutes=10, seconds=30))  # the last 5 have not settled
    assert [(d["table"], d["first_id"], d["last_id"], d["count"]) for d in sealed] == [("ocsp_queries", 1, 40, 40)]
    assert _seal(engine, T0 + dt.timedelta(minutes=10, seconds=30)) == []
    assert [d["count"] for d in _seal(engine, T0 + dt.timedelta(minutes=12))] == [5]
    assert _verify(engine).ok

    _sql(engine, "UPDATE ocsp_queries SET answers = 'a=revoked' WHERE id = 17")
    seq, problem = _first(_verify(engine))
    assert seq == 1 and "ocsp_queries ids 1..40: rows changed" in problem


def test_deleted_and_back_dated_history_rows_are_found(engine: sa.Engine) -> None:
    _queries(engine, 10, T0)
    _seal(engine, T0 + dt.timedelta(hours=1))
    _sql(engine, "DELETE FROM ocsp_queries WHERE id = 3")
    assert "9 rows now, 10 when sealed" in _first(_verify(engine))[1]
    _sql(engine, "INSERT INTO ocsp_queries (id, at, channel, nonce, response_status, answers) "
                 "VALUES (3, :at, 'signed', false, 'successful', '1=good')", at=T0)
    assert "rows changed" in _first(_verify(engine))[1]  # same count, other content
