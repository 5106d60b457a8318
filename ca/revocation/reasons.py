"""The revocation reasons, in one place (seed 004 4.9.9; RFC 5280 5.3.1 numbers and names).

Only keyCompromise(1), cACompromise(2), affiliationChanged(3), superseded(4) and
cessationOfOperation(5).  certificateHold(6) is refused: revoca offers no suspension
(seed 004 4.9.13).  The database column, the CRL entry encoder, OCSP and the RA API all
take their reasons from here, and which channel may file which reason (`check_channel`).
"""

from __future__ import annotations

import enum

from ca.enums import RequestChannel
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
#: What a municipal record change can give (ca.revocation.record_changes maps each event to one of them).
RECORD_CHANGE_REASONS = frozenset({RevocationReason.AFFILIATION_CHANGED, RevocationReason.SUPERSEDED,
                                   RevocationReason.CESSATION_OF_OPERATION})
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


def check_channel(channel: RequestChannel, reason: RevocationReason) -> None:
    """Seed 004 4.9.3.1: a subscriber may revoke online only to stop using the service ((1):
    cessationOfOperation); a compromised, lost or damaged key or an unusable card is reported at
    the window ((2)); a municipal record change (4.9.1(2)) gives affiliationChanged, superseded or
    cessationOfOperation, never keyCompromise.  cACompromise is the CA-compromise path's alone
    (4.9.3.1(4), 4.9.12(1): `revoca ca compromise`), never a filing."""
    if reason is RevocationReason.CA_COMPROMISE:
        raise InvalidInput("cACompromise is used only by the CA-compromise procedure (`revoca ca compromise`, seed "
                           "004 4.9.12); a filed revocation takes one of the other reasons")
    if channel is RequestChannel.RECORD_CHANGE and reason not in RECORD_CHANGE_REASONS:
        raise InvalidInput(f"{RFC_NAME[reason]} cannot come from a resident-record change (seed 004 4.9.1(2)): "
                           "a compromised, lost or damaged key is reported by the subscriber at the window "
                           "(4.9.3.1(2))")
    if channel is RequestChannel.ONLINE and reason is not RevocationReason.CESSATION_OF_OPERATION:
        raise InvalidInput(f"{RFC_NAME[reason]} cannot be filed online: online revocation is for ending the use of "
                           "the certificate (cessationOfOperation, seed 004 4.9.3.1(1)); a compromised, lost or "
                           "damaged key is reported at the municipal window (4.9.3.1(2))")
