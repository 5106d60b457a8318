"""What the audit hash chain costs, one run.

    .venv/bin/python bench/audit.py [--records 100000] [--per-transaction 1] [--db-url URL]

Appends N audit records through `ca.audit.record` (linked at commit under the lock on the
chain's head), `--per-transaction` records per transaction, then verifies the whole chain
with `revoca audit verify`'s own code.  The reference is the same rows inserted the way the
log was written before the chain: plain ORM inserts, one transaction each batch.

The last line is

    audit records=N chained_per_s=X plain_per_s=Y verify_per_s=Z
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from ca import audit
from ca.audit.verify import verify
from ca.storage.engine import make_engine, session_scope, upgrade
from ca.storage.models import AuditEvent


def _no_tokens(*_: object) -> dt.datetime:
    raise AssertionError("no checkpoints in this bench")


def _fresh(url: str | None, directory: Path, name: str) -> sa.Engine:
    engine = make_engine(url or f"sqlite:///{directory / name}")
    upgrade(engine)
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--per-transaction", type=int, default=1)
    parser.add_argument("--db-url", help="a database to use (default: SQLite files in a temporary directory); "
                                         "it must be empty")
    args = parser.parse_args()
    n, per = args.records, args.per_transaction
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="rvbench") as tmp:
        chained = _fresh(args.db_url, Path(tmp), "chained.db")
        started = time.perf_counter()
        for first in range(0, n, per):
            with session_scope(chained) as s:
                for i in range(first, min(first + per, n)):
                    audit.record(s, "bench.event", actor="bench", at=now, n=i, serial=f"{i:040x}")
        chained_s = time.perf_counter() - started

        with session_scope(chained, readonly=True) as s:
            started = time.perf_counter()
            report = verify(s, _no_tokens)
            verify_s = time.perf_counter() - started
        assert report.ok and report.records == n, report.findings
        chained.dispose()

        if args.db_url:  # one database given: the reference reuses it after clearing the chain
            plain = make_engine(args.db_url)
            with plain.begin() as conn:
                conn.execute(sa.delete(AuditEvent))
        else:
            plain = _fresh(None, Path(tmp), "plain.db")
        started = time.perf_counter()
        seq = 10**12  # out of the chain's way: the reference writes no links
        for first in range(0, n, per):
            with session_scope(plain) as s:
                for i in range(first, min(first + per, n)):
                    seq += 1
                    s.add(AuditEvent(occurred_at=now, event_type="bench.event", result="success", actor="bench",
                                     detail=json.dumps({"n": i, "serial": f"{i:040x}"}, sort_keys=True),
                                     seq=seq, chain_hash=bytes(32)))
        plain_s = time.perf_counter() - started
        plain.dispose()

    print(f"{'':24}{'records/s':>12}")
    print(f"{'chained (revoca)':24}{n / chained_s:12.0f}")
    print(f"{'plain inserts (ref)':24}{n / plain_s:12.0f}")
    print(f"{'verify':24}{n / verify_s:12.0f}")
    print(f"audit records={n} chained_per_s={n / chained_s:.0f} plain_per_s={n / plain_s:.0f} "
          f"verify_per_s={n / verify_s:.0f}")


if __name__ == "__main__":
    main()
