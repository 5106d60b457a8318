"""The municipal record-change channel (seed 004 4.9.1(2), 4.9.2, 4.9.3.1(3)): which changes of the
resident record revoke the signing certificate, and with which reason (4.9.9).

The municipality records the change; nobody comes to the window, so there is no applicant and
no identity document.  The reason is never chosen by the caller: it follows from the event.

- name-changed, address-changed, gender-changed, date-of-birth-changed: the resident record's
  entries (the basic four information) changed, so what the certificate says changed:
  affiliationChanged;
- record-error-found: the certificate differs from the resident record (an error or an
  omission): affiliationChanged;
- death, emigration, record-deleted: the resident record was deleted; the certificate is no
  longer needed: cessationOfOperation;
- individual-number-card-issued: the new card carries a new certificate: superseded.
"""

from __future__ import annotations

from ca.enums import RecordChangeEvent
from ca.errors import InvalidInput
from ca.revocation.reasons import RECORD_CHANGE_REASONS, RevocationReason

E, R = RecordChangeEvent, RevocationReason
REASON_OF: dict[RecordChangeEvent, RevocationReason] = {
    E.NAME_CHANGED: R.AFFILIATION_CHANGED,
    E.ADDRESS_CHANGED: R.AFFILIATION_CHANGED,
    E.GENDER_CHANGED: R.AFFILIATION_CHANGED,
    E.DATE_OF_BIRTH_CHANGED: R.AFFILIATION_CHANGED,
    E.RECORD_ERROR_FOUND: R.AFFILIATION_CHANGED,
    E.DEATH: R.CESSATION_OF_OPERATION,
    E.EMIGRATION: R.CESSATION_OF_OPERATION,
    E.RECORD_DELETED: R.CESSATION_OF_OPERATION,
    E.INDIVIDUAL_NUMBER_CARD_ISSUED: R.SUPERSEDED,
}
assert set(REASON_OF) == set(RecordChangeEvent) and set(REASON_OF.values()) <= RECORD_CHANGE_REASONS


def parse_event(value: object) -> RecordChangeEvent:
    """An event by its name; anything else is refused, naming what was sent."""
    known = ", ".join(e.value for e in RecordChangeEvent)
    if not isinstance(value, str):
        raise InvalidInput(f'name the record-change "event" by its name, one of {known}')
    try:
        return RecordChangeEvent(value)
    except ValueError:
        shown = value if len(value) <= 64 else value[:64] + "..."
        raise InvalidInput(f"record-change event {shown!r} is not one of {known}") from None


def reason_for(event: RecordChangeEvent) -> RevocationReason:
    return REASON_OF[event]
