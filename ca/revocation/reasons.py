"""The revocation reasons, in one place (seed 004 4.9.9; RFC 5280 5.3.1 numbers and names).

Only keyCompromise(1), cACompromise(2), affiliationChanged(3), superseded(4) and
cessationOfOperation(5).  certificateHold(6) is refused: revoca offers no suspension
(seed 004 4.9.13).  The database column, the CRL entry encoder, OCSP and the RA API all
take their reasons from here.
"""

from __future__ import annotations

import enum

from ca.errors import InvalidInput


class RevocationReason(enum.IntEnum):
    """The only reasons seed 004 4.9.9 allows; RFC 5280 numbers.  No certificateHold."""

    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5


#: RFC 5280 spelling of each reason, as the RA API and the CLI accept and show it.
REASON_NAMES = {
    "keyCompromise": RevocationReason.KEY_COMPROMISE,
    "cACompromise": RevocationReason.CA_COMPROMISE,
    "affiliationChanged": RevocationReason.AFFILIATION_CHANGED,
    "superseded": RevocationReason.SUPERSEDED,
    "cessationOfOperation": RevocationReason.CESSATION_OF_OPERATION,
}
RFC_NAME = {v: k for k, v in REASON_NAMES.items()}
#: The reason codes a CRL entry or OCSP answer may carry.
ALLOWED_REASONS = frozenset(int(r) for r in RevocationReason)
CERTIFICATE_HOLD = 6


def parse_reason(value: object) -> RevocationReason:
    """A reason by RFC 5280 name or number; certificateHold and unknown values are refused."""
    if value == CERTIFICATE_HOLD or value == "certificateHold":
        raise InvalidInput("certificateHold is refused: revoca offers no suspension (seed 004 4.9.13); "
                           "use one of " + ", ".join(REASON_NAMES))
    if isinstance(value, str) and value in REASON_NAMES:
        return REASON_NAMES[value]
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return RevocationReason(value)
        except ValueError:
            pass
    raise InvalidInput(f"reason {value!r} is not allowed; use one of {', '.join(REASON_NAMES)} (1-5)")
