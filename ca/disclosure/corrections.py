"""Correction requests on disclosed records (seed 004 9.4.7.2: the subscriber may ask that a
disclosed record be corrected, added to or deleted; 5.2.1 (1): the CA administrator manages the
answer; 5.2.1 (3): the receptionist receives requests).

The same dual control as a CA-level revocation (ca.revocation.workflow): a receptionist files it
after checking the subscriber's identity, a reviewer reviews, a CA administrator decides, and the
three are different people.  Every step is audited and names the certificate, so the request and
its outcome appear in the next disclosure.  Records are never rewritten: an approved request is
the correction, kept beside what it corrects.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from ca import audit
from ca.enums import RequestStatus, Role
from ca.errors import InvalidInput, PermissionDenied
from ca.storage.corrections import CorrectionStore

ACTIONS = ("correct", "add", "delete")  # 9.4.7.2: 訂正、追加又は削除
MAX_TEXT = 4000


class Operator(Protocol):
    """The logged-in person taking a step (an operator row from ca.storage.operators)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def role_set(self) -> frozenset[Role]: ...


def file(store: CorrectionStore, *, ca_name: str, serial: int, action: str, record: str, requested: str,
         receptionist: Operator, now: dt.datetime) -> str:
    """File the request; returns its public id."""
    if action not in ACTIONS:
        raise InvalidInput(f"--action {action!r}: one of {', '.join(ACTIONS)}")
    if not record.strip() or len(record) > MAX_TEXT or len(requested) > MAX_TEXT:
        raise InvalidInput(f"name the record to correct (--record, up to {MAX_TEXT} characters) "
                           "and what it should say (--requested)")
    if action != "delete" and not requested.strip():
        raise InvalidInput(f"a request to {action} says what the record should say: give --requested")
    if Role.RECEPTIONIST not in receptionist.role_set:
        raise PermissionDenied(f"operator {receptionist.name} does not hold the receptionist role")
    cert = store.certificate(ca_name, serial)
    row = store.add(certificate=cert, action=action, record=record, requested=requested,
                    receptionist_id=receptionist.id, now=now)
    audit.record(store.session, "disclosure.correction_filed", actor=receptionist.name, at=now, personal_data=True,
                 request=row.public_id, certificate_id=cert.id, ca=ca_name, serial=format(serial, "x"),
                 action=action, record=record, requested=requested)  # the archive keeps the audit log (5.5.1)
    return row.public_id


def _step(store: CorrectionStore, public_id: str, operator: Operator, waiting: RequestStatus,
          role: Role) -> Any:  # the locked row (rows stay in ca.storage)
    row = store.request(public_id)
    if row.status != waiting.value:
        step = "review" if waiting is RequestStatus.PENDING_REVIEW else "approval"
        raise InvalidInput(f"correction request {public_id} is {row.status}, not waiting for {step}")
    if role not in operator.role_set:
        raise PermissionDenied(f"operator {operator.name} does not hold the {role} role")
    if operator.id in {row.receptionist_id, row.reviewer_id} - {None}:
        raise PermissionDenied(f"operator {operator.name} already took part in correction request {public_id}; "
                               f"the {role} must be a different person")
    return row


def review(store: CorrectionStore, public_id: str, reviewer: Operator, *, accept: bool, now: dt.datetime,
           note: str = "") -> str:
    """Pass the request on to the CA administrator, or reject it; returns its new status."""
    row = _step(store, public_id, reviewer, RequestStatus.PENDING_REVIEW, Role.REVIEWER)
    row.reviewer_id, row.reviewed_at = reviewer.id, now
    row.status = (RequestStatus.PENDING_APPROVAL if accept else RequestStatus.REJECTED).value
    if not accept:
        row.decided_at = now
    row.note = (row.note + "\n" + note).strip()
    audit.record(store.session, "disclosure.correction_reviewed", actor=reviewer.name, at=now, request=public_id,
                 certificate_id=row.certificate_id, accepted=accept, note=note)
    return row.status


def decide(store: CorrectionStore, public_id: str, administrator: Operator, *, accept: bool, now: dt.datetime,
           note: str = "") -> str:
    """Approve (the correction stands) or reject a reviewed request; returns its new status."""
    row = _step(store, public_id, administrator, RequestStatus.PENDING_APPROVAL, Role.CA_ADMINISTRATOR)
    row.approver_id, row.decided_at = administrator.id, now
    row.status = (RequestStatus.COMPLETED if accept else RequestStatus.REJECTED).value
    row.note = (row.note + "\n" + note).strip()
    audit.record(store.session, "disclosure.correction_approved" if accept else "disclosure.correction_rejected",
                 actor=administrator.name, at=now, request=public_id, certificate_id=row.certificate_id, note=note)
    return row.status
