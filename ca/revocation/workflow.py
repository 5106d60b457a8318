"""The rules of revocation (seed 004 3.4, 4.9), independent of how a request arrives.

- Only the five reasons of 4.9.9; certificateHold is refused, there is no suspension.
- Revoking what is already revoked returns the first revocation and changes nothing;
  there is no un-revoke.
- A window clerk, the municipality on a resident-record change, or the subscriber online may
  revoke subscriber certificates at once; CA-level certificates (cross, link, responder, CVS,
  TLS...) need a receptionist, a reviewer and an approver: three different operators (5.2.1).
- An RA terminal acts only for the CAs it is bound to (ra_terminal_scopes); bound to none, it
  may revoke nothing.  Clerks are not bound themselves: the terminal they work at is.
- At the window an agent names the document that showed the authority to act (1.3.2); a
  record change names its event, which gives the reason (ca.revocation.record_changes).
- A CA key compromise (ca.revocation.compromise) revokes everything that key signed.

Every function works in the caller's transaction; the caller commits before it
acknowledges anything, so an acknowledged revocation is durable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from ca import audit
from ca.enums import (
    AgentAuthority,
    Applicant,
    CertKind,
    ListType,
    RecordChangeEvent,
    RequestChannel,
    RequestStatus,
    Role,
)
from ca.errors import InvalidInput, PermissionDenied, RevocaError
from ca.revocation import crl_entry, reasons, record_changes
from ca.revocation.reasons import RevocationReason
from ca.storage.models import Certificate, Operator, Revocation, RevocationRequest
from ca.storage.revocations import RevocationStore


class IdempotencyConflict(RevocaError):
    """The idempotency key was used before for a different request."""

    exit_code = 4


class OutOfScope(PermissionDenied):
    """An RA terminal asked about a certificate of a CA it may not act for (issue 13)."""

    def __init__(self, message: str, *, terminal: str, ca: str, serial: int) -> None:
        super().__init__(message)
        self.terminal, self.ca, self.serial = terminal, ca, serial


def check_scope(store: RevocationStore, terminal_id: int, certificate: Certificate) -> None:
    """Raise OutOfScope unless the terminal is bound to the certificate's issuing CA."""
    terminal = store.terminal_by_id(terminal_id)
    if certificate.issuer_ca_id in terminal.ca_ids:
        return
    issuer = certificate.issuer_ca.name
    if not terminal.ca_ids:
        message = (f"RA terminal {terminal.name} is bound to no CA, so it may revoke nothing; an officer binds it "
                   f"with `revoca ra scope {terminal.name} --ca PREFECTURE`")
    else:
        mine = ", ".join(ca.name for ca in store.terminal_scope(terminal))
        message = (f"RA terminal {terminal.name} acts for {mine} only, not for {issuer}: the certificate is revoked "
                   f"by a municipality of {issuer}")
    raise OutOfScope(message, terminal=terminal.name, ca=issuer, serial=certificate.serial)


def list_type_for(kind: CertKind) -> ListType:
    return ListType.ARL if kind.is_ca_certificate else ListType.CRL


def entry_der(serial: int, when: dt.datetime, reason: int) -> bytes:
    """The revocation's CRL entry, encoded once now and copied into every CRL after."""
    return crl_entry.encode_entry(serial, when, reason)


def revoke_certificate(store: RevocationStore, certificate: Certificate, reason: RevocationReason,
                       now: dt.datetime, *, request: RevocationRequest | None = None) -> tuple[Revocation, bool]:
    """(revocation, created): the first revocation of a certificate is final and is what is returned."""
    existing = store.revocation_of(certificate.id)
    if existing is not None:
        return existing, False
    when = now.replace(microsecond=0)
    revocation = Revocation(
        certificate_id=certificate.id, issuer_ca_id=certificate.issuer_ca_id, serial=certificate.serial,
        revocation_time=when, reason=int(reason), recorded_at=now,
        entry_der=entry_der(certificate.serial, when, int(reason)),
        list_type=list_type_for(certificate.kind), request_id=request.id if request else None,
    )
    stored = store.add_revocation(revocation)
    return stored, stored is revocation


@dataclasses.dataclass(frozen=True, slots=True)
class Filing:
    """What a request says, whatever the channel."""

    channel: RequestChannel
    certificate: Certificate
    reason: RevocationReason
    applicant: Applicant | None = None
    identity_document_checked: bool = False
    terminal_id: int | None = None
    receptionist: Operator | None = None
    idempotency_key: str | None = None
    note: str = ""
    # online: the CMS SignedData as received, kept with the request and archived (seed 004 5.5.1.2)
    signed_request: bytes | None = None
    agent_authority: AgentAuthority | None = None
    record_change_event: RecordChangeEvent | None = None

    def digest(self) -> bytes:
        """What the idempotency key must always stand for."""
        content: dict[str, object] = {
            "cert": self.certificate.id, "reason": int(self.reason), "applicant": self.applicant,
            "id_checked": self.identity_document_checked, "channel": self.channel.value}
        # only when present, so that requests filed before these fields keep their digests
        if self.agent_authority is not None:
            content["agent_authority"] = self.agent_authority.value
        if self.record_change_event is not None:
            content["record_change_event"] = self.record_change_event.value
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()


def file_request(store: RevocationStore, filing: Filing, now: dt.datetime, *,
                 actor: str) -> tuple[RevocationRequest, bool]:
    """Record a request (and, outside dual control, the revocation). Returns (request, created)."""
    if filing.terminal_id is not None and filing.idempotency_key:
        earlier = store.request_by_idempotency(filing.terminal_id, filing.idempotency_key)
        if earlier is not None:
            return _same_request(earlier, filing), False
    kind = filing.certificate.kind
    dual = filing.channel is RequestChannel.DUAL_CONTROL
    at_once = (RequestChannel.RA_WINDOW, RequestChannel.ONLINE, RequestChannel.RECORD_CHANGE)
    if filing.channel in at_once and kind is not CertKind.SUBSCRIBER:
        raise PermissionDenied(f"a {kind} certificate is revoked under dual control (receptionist, reviewer, "
                               "approver), not at an RA window")
    if filing.terminal_id is not None:
        check_scope(store, filing.terminal_id, filing.certificate)
    elif filing.channel is RequestChannel.RECORD_CHANGE:
        raise PermissionDenied("a record change is filed by the municipality at a registered RA terminal")
    if filing.channel is RequestChannel.RA_WINDOW:
        _check_window(filing)
    elif filing.channel is RequestChannel.RECORD_CHANGE:
        _check_record_change(filing)
    elif filing.agent_authority is not None or filing.record_change_event is not None:
        raise InvalidInput(f"a {filing.channel} request names neither an agent's authority nor a record-change event")
    reasons.check_channel(filing.channel, filing.reason)
    if dual and (filing.receptionist is None or Role.RECEPTIONIST not in filing.receptionist.role_set):
        raise PermissionDenied("a dual-control request must be filed by an operator with the receptionist role")
    request = RevocationRequest(
        public_id=str(uuid.uuid4()), channel=filing.channel,
        status=RequestStatus.PENDING_REVIEW if dual else RequestStatus.COMPLETED,
        terminal_id=filing.terminal_id, idempotency_key=filing.idempotency_key, request_digest=filing.digest(),
        certificate_id=filing.certificate.id, reason=int(filing.reason), applicant=filing.applicant,
        identity_document_checked=filing.identity_document_checked,
        agent_authority=filing.agent_authority, record_change_event=filing.record_change_event,
        receptionist_id=filing.receptionist.id if filing.receptionist else None,
        accepted_at=now, decided_at=None if dual else now, note=filing.note, signed_request=filing.signed_request,
    )
    stored = store.add_request(request)
    if stored is None:  # a concurrent duplicate with the same idempotency key won the race
        assert filing.terminal_id is not None and filing.idempotency_key
        earlier = store.request_by_idempotency(filing.terminal_id, filing.idempotency_key)
        if earlier is None:
            raise RevocaError("the request could not be stored; try again")
        return _same_request(earlier, filing), False
    revocation = None
    if not dual:
        revocation, _created = revoke_certificate(store, filing.certificate, filing.reason, now, request=request)
    audit.record(store.session, "revocation.request_filed", actor=actor, request=request.public_id,
                 channel=filing.channel.value, certificate_id=filing.certificate.id, reason=int(filing.reason),
                 status=request.status.value,
                 revoked_by_this=bool(revocation is not None and revocation.request_id == request.id),
                 **_who_asked(filing))
    return request, True


def _check_window(filing: Filing) -> None:
    """Seed 004 3.4, 4.9.2.1, 1.3.2: the subscriber or an agent, identified by a document; an
    agent also shows the authority to act."""
    if not filing.identity_document_checked:
        raise InvalidInput("the applicant's identity document must be checked before a window revocation")
    if filing.record_change_event is not None:
        raise InvalidInput("a window revocation names no record-change event; record changes are filed as such")
    kinds = ", ".join(a.value for a in AgentAuthority)
    if filing.applicant is Applicant.AGENT and filing.agent_authority is None:
        raise InvalidInput(f"an agent must show the authority to act for the subscriber (seed 004 1.3.2): "
                           f"name agent_authority, one of {kinds}")
    if filing.applicant is not Applicant.AGENT and filing.agent_authority is not None:
        raise InvalidInput("agent_authority is for an agent; the subscriber in person (applicant self) shows none")


def _check_record_change(filing: Filing) -> None:
    """Seed 004 4.9.1(2), 4.9.2: the municipality records the change; nobody applies."""
    if filing.record_change_event is None:
        raise InvalidInput("a record-change revocation names its record-change event")
    if filing.applicant is not None or filing.identity_document_checked or filing.agent_authority is not None:
        raise InvalidInput("a record-change revocation has no applicant, identity document or agent")
    expected = record_changes.reason_for(filing.record_change_event)
    if filing.reason is not expected:
        raise InvalidInput(f"the reason of {filing.record_change_event} is {reasons.RFC_NAME[expected]}, "
                           f"not {reasons.RFC_NAME[filing.reason]} (seed 004 4.9.9)")


def _who_asked(filing: Filing) -> dict[str, Any]:
    """What the audit record adds about the applicant or the event, when there is something."""
    fields = {"applicant": filing.applicant, "agent_authority": filing.agent_authority,
              "record_change_event": filing.record_change_event}
    return {k: v.value for k, v in fields.items() if v is not None}


def _same_request(earlier: RevocationRequest, filing: Filing) -> RevocationRequest:
    if earlier.request_digest != filing.digest():
        raise IdempotencyConflict(
            f"idempotency key {filing.idempotency_key!r} was already used for a different request "
            f"({earlier.public_id}); use a new key for a new request")
    return earlier


def _step(store: RevocationStore, public_id: str, operator: Operator, waiting: RequestStatus,
          role: Role) -> RevocationRequest:
    """The request, if it waits for this step and the operator may take it: the role, and a
    person who has not yet acted on this request (three different people in all)."""
    request = store.request(public_id)
    if request.status is not waiting:
        step = "review" if waiting is RequestStatus.PENDING_REVIEW else "approval"
        raise InvalidInput(f"request {public_id} is {request.status}, not waiting for {step}")
    if role not in operator.role_set:
        raise PermissionDenied(f"operator {operator.name} does not hold the {role} role")
    if operator.id in {request.receptionist_id, request.reviewer_id} - {None}:
        raise PermissionDenied(f"operator {operator.name} already took part in request {public_id}; "
                               f"the {role} must be a different person")
    return request


def review(store: RevocationStore, public_id: str, reviewer: Operator, *, accept: bool, now: dt.datetime,
           note: str = "") -> RevocationRequest:
    request = _step(store, public_id, reviewer, RequestStatus.PENDING_REVIEW, Role.REVIEWER)
    request.reviewer_id, request.reviewed_at = reviewer.id, now
    request.status = RequestStatus.PENDING_APPROVAL if accept else RequestStatus.REJECTED
    if not accept:
        request.decided_at = now
    request.note = (request.note + "\n" + note).strip()
    audit.record(store.session, "revocation.reviewed", actor=reviewer.name, request=public_id, accepted=accept)
    return request


def approve(store: RevocationStore, public_id: str, approver: Operator, *, accept: bool, now: dt.datetime,
            note: str = "") -> tuple[RevocationRequest, Revocation | None]:
    request = _step(store, public_id, approver, RequestStatus.PENDING_APPROVAL, Role.APPROVER)
    request.approver_id, request.decided_at = approver.id, now
    request.status = RequestStatus.COMPLETED if accept else RequestStatus.REJECTED
    request.note = (request.note + "\n" + note).strip()
    revocation = None
    if accept:
        revocation, _ = revoke_certificate(store, request.certificate, RevocationReason(request.reason), now,
                                           request=request)
    audit.record(store.session, "revocation.approved" if accept else "revocation.rejected", actor=approver.name,
                 request=public_id, certificate_id=request.certificate_id)
    return request, revocation
