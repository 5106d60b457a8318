"""Reading an RFC 3161 TimeStampReq strictly: anything the profile does not allow is rejected
with the PKIFailureInfo that names it, never half-accepted."""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import tsp

from ca.der.parse_errors import PARSE_ERRORS
from ca.tsa import errors
from ca.tsa.profile import IMPRINT_HASHES, MAX_NONCE_BITS, TSA_POLICY_OID

MAX_REQUEST_BYTES = 4096  # an imprint of 64 bytes with a nonce and a policy is under 120


@dataclass(frozen=True, slots=True)
class TimeStampRequest:
    hash_name: str
    imprint: bytes
    nonce: int | None
    cert_req: bool

    def __post_init__(self) -> None:
        check_imprint(self.hash_name, self.imprint)
        if self.nonce is not None and self.nonce.bit_length() > MAX_NONCE_BITS:
            raise errors.RequestRejected(errors.BAD_DATA_FORMAT, f"nonce longer than {MAX_NONCE_BITS} bits")


def check_imprint(hash_name: str, imprint: bytes) -> None:
    """badAlg for a hash outside seed 000 section 9, badDataFormat for an imprint of the wrong length."""
    algorithm = IMPRINT_HASHES.get(hash_name)
    if algorithm is None:
        raise errors.RequestRejected(
            errors.BAD_ALG, f"hash algorithm {hash_name} is not accepted; use one of {', '.join(IMPRINT_HASHES)}")
    if not isinstance(imprint, bytes) or len(imprint) != algorithm.digest_size:
        size = len(imprint) if isinstance(imprint, bytes) else type(imprint).__name__
        raise errors.RequestRejected(
            errors.BAD_DATA_FORMAT, f"a {hash_name} imprint is {algorithm.digest_size} bytes, not {size}")


def parse_request(der: bytes) -> TimeStampRequest:
    """The request in `der`, or RequestRejected naming what is wrong with it."""
    if len(der) > MAX_REQUEST_BYTES:
        raise errors.RequestRejected(errors.BAD_DATA_FORMAT, f"request longer than {MAX_REQUEST_BYTES} bytes")
    try:
        req = tsp.TimeStampReq.load(der, strict=True)
        req.native  # asn1crypto parses lazily: force every field now, inside this try  # noqa: B018
        version = req["version"].native
        imprint = req["message_imprint"]
        hash_oid = imprint["hash_algorithm"]["algorithm"].dotted
        hash_params = imprint["hash_algorithm"]["parameters"].native
        hashed = imprint["hashed_message"].native
        policy = req["req_policy"].dotted if req["req_policy"].native is not None else None
        nonce = req["nonce"].native
        cert_req = bool(req["cert_req"].native)
        extensions = req["extensions"].native
    except PARSE_ERRORS as exc:
        raise errors.RequestRejected(errors.BAD_DATA_FORMAT, f"not a DER TimeStampReq: {exc}") from exc
    if version != "v1":
        raise errors.RequestRejected(errors.BAD_DATA_FORMAT, f"TimeStampReq version {version} is not v1")
    hash_name = _HASH_NAMES.get(hash_oid)
    if hash_name is None:
        raise errors.RequestRejected(errors.BAD_ALG, f"imprint hash {hash_oid} is not accepted; "
                                                     f"use one of {', '.join(IMPRINT_HASHES)}")
    if hash_params is not None:  # absent or NULL (RFC 5754 3)
        raise errors.RequestRejected(errors.BAD_ALG, f"imprint hash {hash_name} with parameters")
    if policy is not None and policy != TSA_POLICY_OID:
        raise errors.RequestRejected(errors.UNACCEPTED_POLICY,
                                     f"policy {policy} is not offered; this TSA stamps under {TSA_POLICY_OID}")
    if extensions:
        raise errors.RequestRejected(errors.UNACCEPTED_EXTENSION, "request extensions are not supported")
    return TimeStampRequest(hash_name=hash_name, imprint=hashed, nonce=nonce, cert_req=cert_req)


# the OIDs of IMPRINT_HASHES (NIST CSOR), so that no name lookup of asn1crypto can widen the set
_HASH_NAMES = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
if set(_HASH_NAMES.values()) != set(IMPRINT_HASHES):
    raise RuntimeError("ca.tsa.request: imprint hash OIDs out of step with the profile")
