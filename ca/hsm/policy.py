"""What each caller of the HSM service may have signed, judged by what the bytes are (issue 12).

The services that face the network (RA, OCSP, TSA, status page) reach the signer through its
socket.  Were any request signed, one of them taken over would be a signing oracle: a raw
`sign` with the bridge key made a `CN=Evil Sub CA` certificate that relying parties accepted.
So the service knows its caller (ca.hsm.callers: the Unix identity behind the socket) and
parses what it is asked to sign:

    caller      may sign                                   with keys labelled
    ocsp        OCSP ResponseData                          ocsp-responder/... (ca/... only where
                                                           [hsm] ocsp_ca_keys = true)
    scheduler   CRL/ARL TBSCertList, or a CRL digest       ca/...
                time stamps of what it archives            tsa/...
    ra          CMS signed attributes (receipts)           receipt-signer/...
    tsa         CMS signed attributes of a TSTInfo         tsa/...
    cvs         CMS signed attributes of a validation      cvs-server/...
                answer (eContentType CVS_ANSWER, ca.cvs)
    publisher, status, anyone else: nothing (status and public keys only)
    admin       anything, and make keys: the officers' own CLI on the CA machine (root or the
                signer's own identity), which only key managers' shares ever activated

A streamed CRL arrives as its digest (sign_digest): the bytes cannot be judged, so only the
scheduler and admin may ask for one.  A key destroyed in the token (`revoca ca destroy-key`,
ca.hsm.destruction) signs nothing for anyone again, admin included: `destroyed` holds its
label.  Whatever the policy refuses raises PermissionDenied; the service audits it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from asn1crypto import cms, crl, ocsp, x509

from ca.enums import CertKind
from ca.errors import PermissionDenied
from ca.hsm.response_shape import is_response_data

TST_INFO = "1.2.840.113549.1.9.16.1.4"  # id-ct-TSTInfo (RFC 3161)
CVS_ANSWER = "1.2.392.200149.8.5.9.1"  # the validation server's answer (ca.cvs.answer, which names it too)


class Caller(enum.StrEnum):
    ADMIN = "admin"
    SCHEDULER = "scheduler"
    OCSP = "ocsp"
    RA = "ra"
    TSA = "tsa"
    CVS = "cvs"
    PUBLISHER = "publisher"
    STATUS = "status"
    UNKNOWN = "unknown"


class Signed(enum.StrEnum):
    """What a `sign` request's bytes are."""

    CERTIFICATE = "certificate"  # TBSCertificate
    CRL = "crl"  # TBSCertList (CRL or ARL)
    CRL_DIGEST = "crl-digest"  # sign_digest: a bare hash, not judged (the admin identity only)
    OCSP_RESPONSE = "ocsp-response"  # ResponseData
    TIME_STAMP = "time-stamp"  # CMS signed attributes over a TSTInfo
    CVS_ANSWER = "cvs-answer"  # CMS signed attributes over a validation answer (ca.cvs)
    RECEIPT = "receipt"  # CMS signed attributes over anything else (the RA's receipts)
    OTHER = "other"


class KeyUse(enum.StrEnum):
    """Which key a label names, by the prefix revoca gives labels (ca.hierarchy)."""

    CA = "ca"
    OCSP_RESPONDER = CertKind.OCSP_RESPONDER.value
    RECEIPT_SIGNER = CertKind.RECEIPT_SIGNER.value
    TSA = CertKind.TSA.value
    CVS_SERVER = CertKind.CVS_SERVER.value
    OTHER = "other"


def key_use(label: str) -> KeyUse:
    prefix = label.split("/", 1)[0]
    try:
        return KeyUse(prefix)
    except ValueError:
        return KeyUse.OTHER


def classify(data: bytes) -> Signed:
    """What `data` is, parsed in full and re-encoded to the same bytes (anything else: OTHER).

    The responders' ResponseData, the most frequent by far, is first recognised by a walker that
    says yes only to its exact shape (ca.hsm.response_shape, a tenth of the full parse's time)."""
    if is_response_data(data):
        return Signed.OCSP_RESPONSE
    for kind, spec in ((Signed.CERTIFICATE, x509.TbsCertificate), (Signed.OCSP_RESPONSE, ocsp.ResponseData),
                       (Signed.CRL, crl.TbsCertList)):
        if _is(data, spec, whole=kind is not Signed.CRL):
            return kind
    attributes = _signed_attributes(data)
    if attributes is not None:
        if TST_INFO in attributes:
            return Signed.TIME_STAMP
        return Signed.CVS_ANSWER if CVS_ANSWER in attributes else Signed.RECEIPT
    return Signed.OTHER


def _is(data: bytes, spec: Any, *, whole: bool) -> bool:
    """`data` is one DER `spec`; `whole=False` (CRLs, up to a million entries) checks the fields
    before the entries and that the structure spans exactly `data`."""
    try:
        value = spec.load(data, strict=True)
        if whole:
            value.native  # noqa: B018 -- parses every field; malformed ones raise here
            return bool(value.dump(force=True) == data)
        value["issuer"].native  # noqa: B018
        value["this_update"].native  # noqa: B018
        return value["signature"]["algorithm"].dotted is not None
    except Exception:  # whatever does not parse as `spec` is not one (ca.der is not imported: no package cycle)
        return False


def _signed_attributes(data: bytes) -> set[str] | None:
    """The content types named in `data` if it is a DER SET OF CMS attributes with a
    content-type and a message-digest attribute (RFC 5652 5.3), else None."""
    try:
        attributes = cms.CMSAttributes.load(data, strict=True)
        types = {a["type"].dotted: a for a in attributes}
        if "1.2.840.113549.1.9.3" not in types or "1.2.840.113549.1.9.4" not in types:
            return None
        if attributes.dump(force=True) != data:
            return None
        return {v.dotted for v in types["1.2.840.113549.1.9.3"]["values"]}
    except Exception:  # not CMS attributes
        return None


@dataclass(frozen=True, slots=True)
class SigningPolicy:
    ocsp_ca_keys: bool = False  # OCSP may sign with CA keys (`revoca serve ocsp --ca-signed`)
    destroyed: frozenset[str] = frozenset()  # labels of keys destroyed in the token

    def with_destroyed(self, labels: Iterable[str]) -> SigningPolicy:
        return replace(self, destroyed=self.destroyed | frozenset(labels))

    def allowed(self, caller: Caller, signed: Signed, use: KeyUse) -> bool:
        if caller is Caller.ADMIN:
            return True
        if caller is Caller.OCSP:
            return signed is Signed.OCSP_RESPONSE and (
                use is KeyUse.OCSP_RESPONDER or (self.ocsp_ca_keys and use is KeyUse.CA))
        if caller is Caller.SCHEDULER:  # issues lists (whole, or streamed: `sign_list`, judged as they
            # come, ca.hsm.crl_stream; never a bare digest), and time-stamps each into the archive (ca.archive)
            return (signed is Signed.CRL and use is KeyUse.CA) or (
                signed is Signed.TIME_STAMP and use is KeyUse.TSA)
        if caller is Caller.RA:
            return signed is Signed.RECEIPT and use is KeyUse.RECEIPT_SIGNER
        if caller is Caller.TSA:
            return signed is Signed.TIME_STAMP and use is KeyUse.TSA
        if caller is Caller.CVS:
            return signed is Signed.CVS_ANSWER and use is KeyUse.CVS_SERVER
        return False

    def check(self, caller: Caller, signed: Signed, label: str) -> None:
        if label in self.destroyed:
            raise PermissionDenied(f"key {label} was destroyed (seed 004 6.2.10): nothing is signed with it again")
        use = key_use(label)
        if not self.allowed(caller, signed, use):
            raise PermissionDenied(f"the {caller} identity may not sign {signed} data with key {label} "
                                   f"({use} key); see ca.hsm.policy")

    @staticmethod
    def check_admin(caller: Caller, what: str) -> None:
        if caller is not Caller.ADMIN:
            raise PermissionDenied(f"only the officers' CLI on the CA machine may {what}; not the {caller} identity")
