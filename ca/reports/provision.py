"""The provision status report, 「失効情報等の提供状況報告書」 (seed 004 5.2.1 (1), 5.5.1.1, 9.3.3):
for one calendar month (UTC), how much revocation information was provided to whom.

Made from the histories revoca keeps anyway: the OCSP query history (ocsp.history writes it),
the CRL fetches and directory reads the publisher takes from slapd's access log
(repository.provision).  One CSV, a row per section, CA, requester and outcome:

    section    what                                  outcome
    crl        CRL fetches from the directory        delivered | denied | failed
    directory  ARL, CA certificate, cross pair and   <objects>:delivered | <objects>:denied
               verifier account reads
    ocsp       OCSP requests by response status,     request:<status> | answer:good|revoked|unknown
               and the single answers they gave

`numbers` lists the CRL/ARL numbers delivered; `total` rows sum each section and outcome.  The
CA administrator makes it (`revoca report provision`), or the scheduler does, an hour into the
next month (`make_if_due`, through ca.audit.keeper).  The report is kept
(ca.storage.provision_reports, a new version when a month is made again),
time-stamped by revoca's TSA when a Stamper is given, and not confidential (9.3.3): the web
repository publishes the newest version of each month.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections import Counter
from collections.abc import Sequence

from ca import audit
from ca.errors import InvalidInput
from ca.storage.engine import Engine, session_scope
from ca.storage.provision_reports import (
    KeptReport,
    ProvisionReportReads,
    ProvisionReportWrites,
    ProvisionTallyReads,
    Tally,
)
from ca.timestamps import Stamper

SCHEDULE_GRACE = dt.timedelta(hours=1)  # after a month ends, before the scheduler reports it
HEADER = ("section", "ca", "requester", "outcome", "count", "numbers")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def month_period(month: str) -> tuple[dt.datetime, dt.datetime]:
    """"2026-11" -> [2026-11-01T00:00Z, 2026-12-01T00:00Z)."""
    m = _MONTH.fullmatch(month)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise InvalidInput(f"month {month!r} is not YYYY-MM, e.g. 2026-11")
    year, mon = int(m.group(1)), int(m.group(2))
    start = dt.datetime(year, mon, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=dt.UTC)
    return start, end


def tallies(engine: Engine, start: dt.datetime, end: dt.datetime) -> list[Tally]:
    with session_scope(engine, readonly=True) as session:
        reads = ProvisionTallyReads(session)
        return [*reads.crl_fetches(start, end), *reads.directory_reads(start, end), *reads.ocsp_queries(start, end)]


def to_csv(rows: Sequence[Tally]) -> bytes:
    """The report's CSV (UTF-8, CRLF as RFC 4180 has it): the rows, then a total per section and outcome."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    totals: Counter[tuple[str, str]] = Counter()
    for t in rows:
        writer.writerow((t.section, t.ca, t.requester, t.outcome, t.count, " ".join(map(str, t.numbers))))
        totals[(t.section, t.outcome)] += t.count
    for (section, outcome), count in sorted(totals.items()):
        writer.writerow(("total", section, "", outcome, count, ""))
    return out.getvalue().encode("utf-8")


def make(engine: Engine, month: str, *, made_by: str, now: dt.datetime, stamper: Stamper | None) -> KeptReport:
    """Count the month, keep the report (with a time-stamp over its CSV when `stamper` is given),
    and audit it.  A month not over yet may be made; it says so by its period_end > made_at."""
    start, end = month_period(month)
    if start > now:
        raise InvalidInput(f"month {month} has not begun; nothing was provided yet")
    body = to_csv(tallies(engine, start, end))
    digest = hashlib.sha256(body).digest()
    with session_scope(engine) as session:
        token = stamper.stamp(session, digest, "sha256", "provision-report").token if stamper else None
        kept = ProvisionReportWrites(session).add(month=month, period_start=start, period_end=end, made_at=now,
                                                  made_by=made_by, csv=body, sha256=digest, time_stamp=token)
        audit.record(session, "report.provision", actor=made_by, month=month, version=kept.version,
                     sha256=digest.hex(), time_stamped=token is not None)
    return kept


def previous_month(now: dt.datetime) -> str:
    return (now.astimezone(dt.UTC).replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def make_if_due(engine: Engine, now: dt.datetime, *, stamper: Stamper | None, made_by: str,
                grace: dt.timedelta = SCHEDULE_GRACE) -> KeptReport | None:
    """The scheduler's monthly report: last month's, once `grace` has passed since it ended (the
    access log and the OCSP history of its last minutes are in by then), if none was made yet."""
    month = previous_month(now - grace)
    with session_scope(engine, readonly=True) as session:
        if ProvisionReportReads(session).has_month(month):
            return None
    return make(engine, month, made_by=made_by, now=now, stamper=stamper)


def parse(body: bytes) -> list[dict[str, str]]:
    """A report's CSV back as rows (tests, and anyone checking a downloaded report)."""
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
