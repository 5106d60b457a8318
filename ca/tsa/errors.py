"""Why a time-stamp request was refused, and why a token does not verify.

Both are InvalidInput (ca.errors), so the CLI prints their one line and exits non-zero;
`RequestRejected` also carries the RFC 3161 PKIFailureInfo bit that the HTTP edge puts into
a rejection TimeStampResp.
"""

from __future__ import annotations

from ca.errors import InvalidInput, RevocaError, UntrustedTime

# RFC 3161 2.4.2 PKIFailureInfo, by asn1crypto's names
BAD_ALG = "bad_alg"
BAD_REQUEST = "bad_request"
BAD_DATA_FORMAT = "bad_data_format"
TIME_NOT_AVAILABLE = "time_not_available"
UNACCEPTED_POLICY = "unaccepted_policy"
UNACCEPTED_EXTENSION = "unaccepted_extensions"
SYSTEM_FAILURE = "system_failure"


class RequestRejected(InvalidInput):
    """A TimeStampReq (or stamp() call) the TSA will not grant; `fail_info` says why, for the client."""

    def __init__(self, fail_info: str, message: str) -> None:
        super().__init__(message)
        self.fail_info = fail_info


class InvalidTimeStamp(InvalidInput):
    """A time-stamp token that does not prove what it is asked to prove; the message names the fault."""


def fail_info_of(exc: RevocaError) -> str:
    """The PKIFailureInfo for an error met while stamping: the request's own, timeNotAvailable when the
    clock is not trusted (RFC 3161 2.4.2), else a system failure."""
    if isinstance(exc, RequestRejected):
        return exc.fail_info
    return TIME_NOT_AVAILABLE if isinstance(exc, UntrustedTime) else SYSTEM_FAILURE
