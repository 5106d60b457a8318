"""TimeStampResp (RFC 3161 2.4.2): a granted token, or a rejection naming its PKIFailureInfo."""

from __future__ import annotations

from asn1crypto import cms, core, tsp

from ca.tsa.errors import InvalidTimeStamp


class TimeStampResp(tsp.TimeStampResp):
    """asn1crypto 1.5 makes timeStampToken mandatory; RFC 3161 2.4.2 has it OPTIONAL (absent on rejection)."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def granted(token: bytes) -> bytes:
    return TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": cms.ContentInfo.load(token)}).dump()


def rejection(fail_info: str, text: str) -> bytes:
    """status rejection with one failInfo bit and a short statusString (the one-line reason)."""
    return TimeStampResp({
        "status": {"status": "rejection", "status_string": [text[:200]], "fail_info": {fail_info}},
    }).dump()  # fmt: skip


def token_of(response: bytes) -> bytes:
    """The token of a granted TimeStampResp; InvalidTimeStamp with the TSA's reason otherwise."""
    try:
        resp = TimeStampResp.load(response, strict=True)
        status = resp["status"].native
        token = resp["time_stamp_token"]
        token_der = None
        if status["status"] in ("granted", "granted_with_mods") and not isinstance(token, core.Void):
            # the bytes as received; checking the token is verify_token's.  Not token.native: that parses
            # every certificate in it (tens of ms), and a dump after it re-encodes the whole token, as
            # asn1crypto marks the algorithm parameters it fills in as changed (about 100 ms more)
            token_der = token.dump()
    except (ValueError, TypeError) as exc:
        raise InvalidTimeStamp(f"not a TimeStampResp: {exc}") from exc
    if token_der is None:
        reason = "; ".join(status.get("status_string") or []) or ", ".join(sorted(status.get("fail_info") or []))
        raise InvalidTimeStamp(f"the TSA answered {status['status']}: {reason}")
    return token_der
