"""The vocabulary of revoca's records: kinds of CA and certificate, list types, trusted roles,
request and publication states.  Plain enums, so that code which names a kind or a role need
not import the storage layer; ca.storage.models stores them by their string values.
"""

from __future__ import annotations

import enum


class CAKind(enum.StrEnum):
    BRIDGE = "bridge"
    REGIONAL = "regional"
    EXTERNAL = "external"


class CAStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPROMISED = "compromised"
    TERMINATED = "terminated"


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"  # superseded by a rollover; still verifies what it signed
    COMPROMISED = "compromised"


class CertKind(enum.StrEnum):
    SUBSCRIBER = "subscriber"
    SELF_SIGNED = "self-signed"
    CROSS = "cross"
    LINK_OLD_WITH_NEW = "link-old-with-new"
    LINK_NEW_WITH_OLD = "link-new-with-old"
    OCSP_RESPONDER = "ocsp-responder"
    CVS_SERVER = "cvs-server"
    TLS = "tls"
    RECEIPT_SIGNER = "receipt-signer"  # signs the receipts the RA terminals print
    RA_TERMINAL = "ra-terminal"  # TLS client certificate of a registered RA terminal
    VERIFIER = "verifier"  # client certificate of a registered verifier (LDAP account, OCSP requests)
    TSA = "tsa"  # the time-stamp authority's certificate (critical id-kp-timeStamping EKU)

    @property
    def is_ca_certificate(self) -> bool:
        """Listed on the ARL rather than the CRL."""
        return self in (CertKind.SELF_SIGNED, CertKind.CROSS, CertKind.LINK_OLD_WITH_NEW,
                        CertKind.LINK_NEW_WITH_OLD)


class Role(enum.StrEnum):
    """Trusted roles of seed 004 5.2.1 (and the RA window staff of 5.2.1.2)."""

    CA_ADMINISTRATOR = "ca-administrator"
    KEY_MANAGER = "key-manager"
    RECEPTIONIST = "receptionist"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    SENIOR_OPERATOR = "senior-operator"
    OPERATOR = "operator"
    INTERNAL_AUDITOR = "internal-auditor"


class ListType(enum.StrEnum):
    CRL = "crl"  # subscriber certificates
    ARL = "arl"  # CA certificates: self-signed, cross, link


class RequestChannel(enum.StrEnum):
    RA_WINDOW = "ra-window"  # a clerk at a municipal window, subscriber certificates
    ONLINE = "online"  # the subscriber, signing with their own key (seed 004 3.4.1.1)
    DUAL_CONTROL = "dual-control"  # CA-level certificates: receptionist, reviewer, approver
    CA_COMPROMISE = "ca-compromise"  # everything a compromised key signed


class RequestStatus(enum.StrEnum):
    PENDING_REVIEW = "pending-review"
    PENDING_APPROVAL = "pending-approval"
    COMPLETED = "completed"
    REJECTED = "rejected"


class Applicant(enum.StrEnum):
    SELF = "self"
    AGENT = "agent"


class PublicationItem(enum.StrEnum):
    """What one publication writes into a CA's directory entry."""

    CERTIFICATES = "certificates"  # cACertificate (self-signed, link) and crossCertificatePair
    CRL = "crl"
    ARL = "arl"


class PublicationState(enum.StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"  # a newer CRL/ARL or certificate set was published instead


class VerifierStatus(enum.StrEnum):
    ACTIVE = "active"
    REMOVED = "removed"
