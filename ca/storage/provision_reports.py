"""The monthly provision status reports (seed 004 5.2.1 (1), 9.3.3): the tallies they are made
from and the reports kept.

`ProvisionTallyReads` counts a period of the histories the responder and the publisher keep
(ocsp_queries, crl_fetches, directory_reads) per CA, verifier and outcome; ca.reports.provision
turns them into the report.  `ProvisionReportWrites.add` keeps a made report as a new version
of its month; nothing is ever changed.  Callers own the transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterator

import sqlalchemy as sa

from ca.storage.base import SessionStore
from ca.storage.models import CertificateAuthority, CRLFetch, DirectoryRead, OCSPQuery, ProvisionReport, Verifier

_STREAM = 10_000  # OCSP history rows fetched per round trip


@dataclasses.dataclass(frozen=True, slots=True)
class Tally:
    """How many of one kind of provision, for one CA and one requester, had one outcome."""

    section: str  # crl | ocsp | directory
    ca: str  # CA name, "" when the log could not say (a subtree search, an unparsable request)
    requester: str  # verifier name, "(anonymous)", or the bind DN of someone not registered
    outcome: str  # delivered/denied/failed; an OCSP response status or answer; objects/result
    count: int
    numbers: tuple[int, ...] = ()  # the CRL/ARL numbers provided


@dataclasses.dataclass(frozen=True, slots=True)
class KeptReport:
    month: str
    version: int
    period_start: dt.datetime
    period_end: dt.datetime
    made_at: dt.datetime
    made_by: str
    csv: bytes
    sha256: bytes
    time_stamp: bytes | None


def _requester(verifier: str | None, bind_dn: str | None) -> str:
    return verifier or bind_dn or "(anonymous)"


class ProvisionTallyReads(SessionStore):
    def _names(self) -> tuple[dict[int, str], dict[int, str]]:
        cas = {i: n for i, n in self.session.execute(sa.select(CertificateAuthority.id, CertificateAuthority.name))}
        verifiers = {i: n for i, n in self.session.execute(sa.select(Verifier.id, Verifier.name))}
        return cas, verifiers

    def crl_fetches(self, start: dt.datetime, end: dt.datetime) -> list[Tally]:
        """CRL fetches from the directory, per CA, requester and result, with the numbers delivered."""
        cas, verifiers = self._names()
        counts: Counter[tuple[str, str, str]] = Counter()
        numbers: dict[tuple[str, str, str], set[int]] = defaultdict(set)
        rows = self.session.execute(
            sa.select(CRLFetch.ca_id, CRLFetch.verifier_id, CRLFetch.bind_dn, CRLFetch.result, CRLFetch.crl_number)
            .where(CRLFetch.fetched_at >= start, CRLFetch.fetched_at < end))
        for ca_id, verifier_id, bind_dn, result, number in rows:
            key = (cas.get(ca_id, "") if ca_id else "", _requester(verifiers.get(verifier_id or 0), bind_dn), result)
            counts[key] += 1
            if number is not None and result == "delivered":
                numbers[key].add(number)
        return [Tally("crl", *key, count=n, numbers=tuple(sorted(numbers[key])))
                for key, n in sorted(counts.items())]

    def directory_reads(self, start: dt.datetime, end: dt.datetime) -> list[Tally]:
        """Reads of ARLs, CA certificates, cross pairs and verifier accounts, per CA, requester,
        objects and result, with the ARL numbers delivered."""
        cas, verifiers = self._names()
        counts: Counter[tuple[str, str, str]] = Counter()
        numbers: dict[tuple[str, str, str], set[int]] = defaultdict(set)
        rows = self.session.execute(
            sa.select(DirectoryRead.ca_id, DirectoryRead.verifier_id, DirectoryRead.bind_dn, DirectoryRead.objects,
                      DirectoryRead.result, DirectoryRead.arl_number)
            .where(DirectoryRead.read_at >= start, DirectoryRead.read_at < end))
        for ca_id, verifier_id, bind_dn, objects, result, number in rows:
            key = (cas.get(ca_id, "") if ca_id else "", _requester(verifiers.get(verifier_id or 0), bind_dn),
                   f"{objects}:{result}")
            counts[key] += 1
            if number is not None and result == "delivered":
                numbers[key].add(number)
        return [Tally("directory", *key, count=n, numbers=tuple(sorted(numbers[key])))
                for key, n in sorted(counts.items())]

    def ocsp_queries(self, start: dt.datetime, end: dt.datetime) -> list[Tally]:
        """OCSP requests per CA, requester and response status, and the single answers of the
        successful ones per status (good, revoked, unknown): outcome "answer:good" and so on."""
        cas, verifiers = self._names()
        counts: Counter[tuple[str, str, str]] = Counter()
        for ca_id, verifier_id, status, answers in self._stream(start, end):
            ca, who = cas.get(ca_id, "") if ca_id else "", _requester(verifiers.get(verifier_id or 0), None)
            counts[(ca, who, f"request:{status}")] += 1
            for item in filter(None, answers.split(",")):
                counts[(ca, who, f"answer:{item.rpartition('=')[2]}")] += 1
        return [Tally("ocsp", *key, count=n) for key, n in sorted(counts.items())]

    def _stream(self, start: dt.datetime, end: dt.datetime) -> Iterator[tuple[int | None, int | None, str, str]]:
        query = (sa.select(OCSPQuery.ca_id, OCSPQuery.verifier_id, OCSPQuery.response_status, OCSPQuery.answers)
                 .where(OCSPQuery.at >= start, OCSPQuery.at < end)
                 .execution_options(yield_per=_STREAM))
        for row in self.session.execute(query):
            yield row.ca_id, row.verifier_id, row.response_status, row.answers


class ProvisionReportReads(SessionStore):
    def published(self) -> list[KeptReport]:
        """The newest version of each month's report, newest month first."""
        newest = (sa.select(ProvisionReport.month, sa.func.max(ProvisionReport.version).label("version"))
                  .group_by(ProvisionReport.month).subquery())
        rows = self.session.scalars(
            sa.select(ProvisionReport)
            .join(newest, sa.and_(ProvisionReport.month == newest.c.month,
                                  ProvisionReport.version == newest.c.version))
            .order_by(ProvisionReport.month.desc()))
        return [_kept(r) for r in rows]

    def has_month(self, month: str) -> bool:
        return self.session.scalar(sa.select(ProvisionReport.id).where(ProvisionReport.month == month)
                                   .limit(1)) is not None

    def versions(self, month: str) -> list[KeptReport]:
        return [_kept(r) for r in self.session.scalars(
            sa.select(ProvisionReport).where(ProvisionReport.month == month).order_by(ProvisionReport.version))]


class ProvisionReportWrites(ProvisionReportReads):
    def add(self, *, month: str, period_start: dt.datetime, period_end: dt.datetime, made_at: dt.datetime,
            made_by: str, csv: bytes, sha256: bytes, time_stamp: bytes | None) -> KeptReport:
        """Keep a report as the next version of its month."""
        version = (self.session.scalar(sa.select(sa.func.max(ProvisionReport.version))
                                       .where(ProvisionReport.month == month)) or 0) + 1
        row = ProvisionReport(month=month, version=version, period_start=period_start, period_end=period_end,
                              made_at=made_at, made_by=made_by, csv=csv, sha256=sha256, time_stamp=time_stamp)
        self.session.add(row)
        self.session.flush()
        return _kept(row)


def _kept(r: ProvisionReport) -> KeptReport:
    return KeptReport(r.month, r.version, r.period_start, r.period_end, r.made_at, r.made_by, r.csv, r.sha256,
                      r.time_stamp)
