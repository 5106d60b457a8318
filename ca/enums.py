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
    # adopted (`revoca ca adopt`) and its revocation history not imported yet: it issues no
    # CRL/ARL, so its numbers cannot restart below the previous system's (ca.adoption)
    ADOPTING = "adopting"
    ACTIVE = "active"
    COMPROMISED = "compromised"
    TERMINATED = "terminated"


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"  # superseded by a rollover; still verifies what it signed
    COMPROMISED = "compromised"
    DESTROYED = "destroyed"  # the private key was destroyed in the token (seed 004 6.2.10; ca.hsm.destruction)


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


class OperatorApproval(enum.StrEnum):
    """How an operator account came to count as a person of its own in acts of several people
    (seed 004 5.2.2, 5.2.4 (3); ca.officers.approval).  No value: never approved."""

    CEREMONY = "ceremony"  # made at the key ceremony (or held a share of it before revision 0007)
    SECOND_PERSON = "second-person"  # registered by a senior operator and approved by another person


class ListType(enum.StrEnum):
    CRL = "crl"  # subscriber certificates
    ARL = "arl"  # CA certificates: self-signed, cross, link
    # RFC 5280 5.2.4: what changed on the CRL since its base; numbered from the CRL's sequence
    DELTA = "delta"


class RequestChannel(enum.StrEnum):
    RA_WINDOW = "ra-window"  # a clerk at a municipal window, subscriber certificates
    ONLINE = "online"  # the subscriber, signing with their own key (seed 004 3.4.1.1)
    DUAL_CONTROL = "dual-control"  # CA-level certificates: receptionist, reviewer, approver
    CA_COMPROMISE = "ca-compromise"  # everything a compromised key signed
    RECORD_CHANGE = "record-change"  # the municipality, on a resident-record change (seed 004 4.9.1(2))


class RequestStatus(enum.StrEnum):
    PENDING_REVIEW = "pending-review"
    PENDING_APPROVAL = "pending-approval"
    COMPLETED = "completed"
    REJECTED = "rejected"


class Applicant(enum.StrEnum):
    SELF = "self"
    AGENT = "agent"


class AgentAuthority(enum.StrEnum):
    """The document that shows an agent's authority to act for the subscriber, checked at the window
    (seed 004 1.3.2; the enforcement rules' article 5(2)(i): the agent's identity and authority)."""

    POWER_OF_ATTORNEY = "power-of-attorney"  # 委任状: a letter of delegation from the subscriber
    PARENTAL_AUTHORITY = "parental-authority"  # 法定代理人 of a minor: the family register (戸籍謄本)
    GUARDIANSHIP = "guardianship"  # 成年後見人: the certificate of registered guardianship (登記事項証明書)


class RecordChangeEvent(enum.StrEnum):
    """What the municipality recorded in the resident register that revokes the signing certificate
    (seed 004 4.9.1(2), 4.9.3.1(3)); the reason each one gives is in ca.revocation.record_changes."""

    NAME_CHANGED = "name-changed"  # the basic four information changed (minor corrections excepted)
    ADDRESS_CHANGED = "address-changed"
    GENDER_CHANGED = "gender-changed"
    DATE_OF_BIRTH_CHANGED = "date-of-birth-changed"
    RECORD_ERROR_FOUND = "record-error-found"  # the certificate differs from the resident record (記録誤り・漏れ)
    DEATH = "death"  # the resident record is deleted (住民票の消除) ...
    EMIGRATION = "emigration"  # ... on moving abroad
    RECORD_DELETED = "record-deleted"  # ... for any other cause: loss of residence, deletion ex officio
    INDIVIDUAL_NUMBER_CARD_ISSUED = "individual-number-card-issued"  # the new card carries a new certificate


class PublicationItem(enum.StrEnum):
    """What one publication writes into a CA's directory entry."""

    CERTIFICATES = "certificates"  # cACertificate (self-signed, link) and crossCertificatePair
    CRL = "crl"
    ARL = "arl"
    DELTA = "delta"  # the delta CRL, as deltaRevocationList (verifiers only, like the CRL)


class PublicationState(enum.StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"  # a newer CRL/ARL or certificate set was published instead


class VerifierStatus(enum.StrEnum):
    ACTIVE = "active"
    REMOVED = "removed"
