"""`revoca audit verify`: prove that no audit record was changed, removed or reordered.

The chain is recomputed from its start (genesis, or the newest prune anchor) record by
record.  After a break the walk resynchronises on the stored hash, so one edited record is
reported once, not as the start of an endless run of errors.  Checkpoints are compared with
the recomputed hashes and their tokens checked; sealed history ranges are re-digested.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from typing import Any

from ca.audit import checkpoints, history_seal
from ca.audit.chain import GENESIS, link_event
from ca.errors import RevocaError
from ca.storage.audit import AuditReads
from ca.storage.engine import Session
from ca.timestamps import TokenCheck

MAX_FINDINGS = 50


@dataclasses.dataclass(frozen=True)
class Finding:
    seq: int | None
    record_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"record seq {self.seq}" + (f" (id {self.record_id})" if self.record_id is not None else "")
        return f"{where}: {self.problem}" if self.seq is not None else self.problem


@dataclasses.dataclass
class Report:
    first_seq: int = 0
    last_seq: int = 0
    records: int = 0
    checkpoints: int = 0
    seals: int = 0
    newest_stamp: dt.datetime | None = None
    findings: list[Finding] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, finding: Finding) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)


def verify(session: Session, check_token: TokenCheck) -> Report:
    report = Report()
    store = AuditReads(session)
    start_seq, previous = _start(store, check_token, report)
    report.first_seq = start_seq + 1
    pending = _checkpoints_by_seq(store, start_seq)
    if start_seq in pending:
        _check_checkpoints(pending.pop(start_seq), start_seq, previous, check_token, report)
    expected = start_seq + 1
    for event in store.events_after(start_seq):
        if event.seq != expected:
            gap = f"seq {expected}" if event.seq == expected + 1 else f"seq {expected}..{event.seq - 1}"
            report.add(Finding(event.seq, event.id, f"the records before it are missing ({gap} deleted)"))
        computed = link_event(previous, event)
        if computed != event.chain_hash:
            report.add(Finding(event.seq, event.id, "changed or moved: its hash does not follow from the record "
                                                    "before it and its own content"))
        elif event.event_type == history_seal.EVENT:
            report.seals += 1
            problem = history_seal.check(session, json.loads(event.detail))
            if problem:
                report.add(Finding(event.seq, event.id, f"sealed history altered: {problem}"))
        if event.seq in pending:
            _check_checkpoints(pending.pop(event.seq), event.seq, computed, check_token, report)
        previous = event.chain_hash  # resynchronise, so one bad record is one finding
        expected = event.seq + 1
        report.records += 1
    report.last_seq = expected - 1
    _check_tail(store, report, pending)
    return report


def _start(store: AuditReads, check_token: TokenCheck, report: Report) -> tuple[int, bytes]:
    anchor = store.newest_anchor()
    if anchor is None:
        return 0, GENESIS
    try:
        _stamp(report, check_token(anchor.time_stamp, checkpoints.of(anchor)))
    except RevocaError as exc:
        report.add(Finding(None, None, f"the prune anchor at seq {anchor.seq} does not verify: {exc}"))
    return anchor.seq, anchor.chain_hash


def _checkpoints_by_seq(store: AuditReads, after: int) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = defaultdict(list)
    for cp in store.checkpoints_from(after):
        found[cp.seq].append(cp)
    return found


def _check_checkpoints(found: list[Any], seq: int, computed: bytes, check_token: TokenCheck,
                       report: Report) -> None:
    for cp in found:
        report.checkpoints += 1
        when = cp.created_at.strftime("%Y-%m-%d %H:%M:%SZ")
        if cp.chain_hash != computed:
            report.add(Finding(seq, None, f"the chain differs from the time-stamped checkpoint of {when} "
                                          "(records up to here were rewritten)"))
            continue
        try:
            _stamp(report, check_token(cp.time_stamp, checkpoints.of(cp)))
        except RevocaError as exc:
            report.add(Finding(seq, None, f"the checkpoint of {when} has a bad time-stamp: {exc}"))


def _check_tail(store: AuditReads, report: Report, unreached: dict[int, list[Any]]) -> None:
    head = store.head()
    if head is not None and head.seq > report.last_seq:
        report.add(Finding(None, None, f"records seq {report.last_seq + 1}..{head.seq} are missing: "
                                       f"the chain ends at seq {report.last_seq} but its head says {head.seq}"))
    for seq in sorted(unreached):
        if seq > report.last_seq:
            report.add(Finding(None, None, f"a time-stamped checkpoint covers seq {seq}, beyond the last "
                                           f"record (seq {report.last_seq}): the chain was truncated"))
            break


def _stamp(report: Report, gen_time: dt.datetime) -> None:
    if report.newest_stamp is None or gen_time > report.newest_stamp:
        report.newest_stamp = gen_time
