"""Database rows of the CA core (SQLAlchemy 2).

The schema is created only by the Alembic migrations in migrations/; these classes describe
it for queries.  Enums are stored as their string values so that SQLite and PostgreSQL hold
the same text and a new member needs no type migration.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ca.enums import (
    AgentAuthority,
    Applicant,
    CAKind,
    CAStatus,
    CertKind,
    KeyStatus,
    ListType,
    OperatorApproval,
    PublicationItem,
    PublicationState,
    RecordChangeEvent,
    RequestChannel,
    RequestStatus,
    Role,
    VerifierStatus,
)

SERIAL_HEX_WIDTH = 42  # RFC 5280 allows 20 octets; one spare octet for a sign byte of imports


class SerialNumber(sa.types.TypeDecorator[int]):
    """Certificate serials as Python ints, stored as zero-padded lowercase hex.

    SQL integers stop at 64 bits and serials go to 160, so text it is; the fixed width keeps
    text order equal to numeric order for the CRL stream.
    """

    impl = sa.String(SERIAL_HEX_WIDTH)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        if value < 0:
            raise ValueError(f"serial number {value} is negative")
        return format(value, f"0{SERIAL_HEX_WIDTH}x")

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> int | None:
        return None if value is None else int(value, 16)


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on both backends (SQLite drops the zone, so put it back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _enum(cls: type[enum.Enum], length: int = 24) -> sa.Enum:
    return sa.Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime()}


class CertificateAuthority(Base):
    __tablename__ = "cas"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    kind: Mapped[CAKind] = mapped_column(_enum(CAKind))
    subject_dn: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[CAStatus] = mapped_column(_enum(CAStatus), default=CAStatus.ACTIVE)
    created_at: Mapped[dt.datetime]
    # `revoca ca terminate` (seed 004 5.8, ca.lifecycle.termination): its final lists are out, nothing more is issued
    terminated_at: Mapped[dt.datetime | None]

    keys: Mapped[list[KeyGeneration]] = relationship(
        back_populates="ca", order_by="KeyGeneration.generation"
    )


class ImportedFile(Base):
    """How far `revoca cert import` got in one file (ca.importing.importer): its certificates up to
    `certificates` are stored or rejected, committed with the batch that stored them, so that
    `--resume` skips a finished file and continues a partial one where it stopped.  `size` and
    `mtime_ns` tell a file that changed since (it is then read again from its start)."""

    __tablename__ = "imported_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(sa.Text, unique=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    mtime_ns: Mapped[int] = mapped_column(sa.BigInteger)
    certificates: Mapped[int]
    finished: Mapped[bool]
    updated_at: Mapped[dt.datetime]


class KeyGeneration(Base):
    """One key pair of a CA; a rollover adds the next generation."""

    __tablename__ = "key_generations"
    __table_args__ = (sa.UniqueConstraint("ca_id", "generation"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ca_id: Mapped[int] = mapped_column(sa.ForeignKey("cas.id"))
    generation: Mapped[int]
    # Label of the private key in the PKCS#11 token; NULL for an external CA's key.
    key_label: Mapped[str | None] = mapped_column(sa.String(128), unique=True)
    algorithm: Mapped[str] = mapped_column(sa.String(16))
    spki_der: Mapped[bytes] = mapped_column(sa.LargeBinary)
    ski: Mapped[bytes] = mapped_column(sa.LargeBinary(32), index=True)
    status: Mapped[KeyStatus] = mapped_column(_enum(KeyStatus), default=KeyStatus.ACTIVE)
    created_at: Mapped[dt.datetime]

    ca: Mapped[CertificateAuthority] = relationship(back_populates="keys")


class DestroyedKey(Base):
    """A private key destroyed in the token (seed 004 6.2.10; ca.hsm.destruction): a CA key
    (its key generation is then DESTROYED) or an end-entity key (the certificate that carried it).
    The signer refuses every later request naming the label."""

    __tablename__ = "destroyed_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_label: Mapped[str] = mapped_column(sa.String(128), unique=True)
    ca_id: Mapped[int] = mapped_column(sa.ForeignKey("cas.id"))
    key_generation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("key_generations.id"))
    certificate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("certificates.id"))
    destroyed_at: Mapped[dt.datetime]
    destroyed_by: Mapped[str] = mapped_column(sa.String(255))  # the key managers, "a+b"
    token_objects: Mapped[int]  # objects the token removed (private key, public twin)


class Certificate(Base):
    __tablename__ = "certificates"
    __table_args__ = (
        sa.UniqueConstraint("issuer_ca_id", "serial", name="uq_certificates_issuer_serial"),
        sa.Index("ix_certificates_kind_issuer", "kind", "issuer_ca_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_ca_id: Mapped[int] = mapped_column(sa.ForeignKey("cas.id"))
    # The key that signed it: a CA key compromise revokes everything this key signed.
    issuer_key_id: Mapped[int] = mapped_column(sa.ForeignKey("key_generations.id"), index=True)
    # For CA certificates (self-signed, cross, link): whose key the certificate carries.
    subject_ca_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cas.id"), index=True)
    subject_key_id: Mapped[int | None] = mapped_column(sa.ForeignKey("key_generations.id"))
    # Label of the end-entity key in the token (responder, CVS, TLS); NULL otherwise.
    key_label: Mapped[str | None] = mapped_column(sa.String(128))
    kind: Mapped[CertKind] = mapped_column(_enum(CertKind))
    serial: Mapped[int] = mapped_column(SerialNumber())
    subject_dn: Mapped[str] = mapped_column(sa.Text)
    not_before: Mapped[dt.datetime]
    not_after: Mapped[dt.datetime]
    fingerprint_sha256: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    der: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[dt.datetime]

    issuer_ca: Mapped[CertificateAuthority] = relationship(foreign_keys=[issuer_ca_id])
    subject_ca: Mapped[CertificateAuthority | None] = relationship(foreign_keys=[subject_ca_id])
    issuer_key: Mapped[KeyGeneration] = relationship(foreign_keys=[issuer_key_id])
    subject_key: Mapped[KeyGeneration | None] = relationship(foreign_keys=[subject_key_id])
    revocation: Mapped[Revocation | None] = relationship(back_populates="certificate", uselist=False)


class Revocation(Base):
    """A revoked certificate; rows are never deleted or updated (no un-revoke)."""

    __tablename__ = "revocations"
    __table_args__ = (
        # one revocation per serial and issuing CA, whether or not its certificate is known
        sa.Index("uq_revocations_issuer_serial", "issuer_ca_id", "serial", unique=True),
        # the CRL stream: a range scan in id order that never visits the table (the entry is in the
        # index; issue 16: a quarter less CPU for a million-entry CRL than fetching each row)
        sa.Index("ix_revocations_crl_stream", "issuer_ca_id", "list_type", "id", "entry_der"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL for a revocation imported from an adopted CA's history (ca.adoption.history) whose
    # certificate revoca has not seen: known by issuer and serial only, linked when imported.
    certificate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("certificates.id"), unique=True)
    issuer_ca_id: Mapped[int] = mapped_column(sa.ForeignKey("cas.id"))
    serial: Mapped[int] = mapped_column(SerialNumber())
    revocation_time: Mapped[dt.datetime]
    reason: Mapped[int] = mapped_column(sa.SmallInteger)
    recorded_at: Mapped[dt.datetime]
    # The CRL entry's DER, encoded once at revocation time so CRL issuance only streams.
    entry_der: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # CA certificates go on the ARL, subscriber certificates on the CRL.
    list_type: Mapped[ListType] = mapped_column(_enum(ListType, length=8), default=ListType.CRL,
                                                server_default=ListType.CRL.value)
    request_id: Mapped[int | None] = mapped_column(sa.ForeignKey("revocation_requests.id"))

    certificate: Mapped[Certificate | None] = relationship(back_populates="revocation")


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200), default="")
    # scrypt hash of the operator's password; the password itself is never stored.
    credential_hash: Mapped[str] = mapped_column(sa.String(255))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime]
    # When the password was last set (`operator add`, `operator passwd`): its age is checked at
    # login (ca.officers.passwords, seed 004 5.2.3); read it as `password_set_at`.  Nullable
    # because SQLite cannot add a NOT NULL column to a table others refer to without copying it.
    password_changed_at: Mapped[dt.datetime | None]
    # How the account came to count as a person in acts of several people (ca.officers.approval):
    # made at the key ceremony, or registered by a senior operator and approved by a second
    # person; None: never approved (made before revision 0007), it counts for acts of one only.
    approval: Mapped[OperatorApproval | None] = mapped_column(_enum(OperatorApproval, length=16))
    approved_at: Mapped[dt.datetime | None]
    # Names, not ids: operators are never renamed or deleted, and the audit trail names them too.
    registered_by: Mapped[str | None] = mapped_column(sa.String(64))  # the senior operator
    approved_by: Mapped[str | None] = mapped_column(sa.String(255))  # the second person ("+" between several)

    roles: Mapped[list[OperatorRole]] = relationship(
        back_populates="operator", cascade="all, delete-orphan", order_by="OperatorRole.role"
    )

    @property
    def role_set(self) -> frozenset[Role]:
        return frozenset(r.role for r in self.roles)

    @property
    def approved(self) -> bool:
        """Counts as a person of its own in acts of several people."""
        return self.approval is not None

    @property
    def password_set_at(self) -> dt.datetime:
        """When the password was last set; an account a release before 0007 made while this one's
        schema was in place has no such time yet, and counts from its creation."""
        return self.password_changed_at or self.created_at


class OperatorRole(Base):
    __tablename__ = "operator_roles"

    operator_id: Mapped[int] = mapped_column(sa.ForeignKey("operators.id"), primary_key=True)
    role: Mapped[Role] = mapped_column(_enum(Role), primary_key=True)

    operator: Mapped[Operator] = relationship(back_populates="roles")


class ShareSet(Base):
    """The M-of-N split of a token's activation secret, made at the key ceremony."""

    __tablename__ = "share_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_label: Mapped[str] = mapped_column(sa.String(64))
    threshold: Mapped[int]
    total: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime]

    holders: Mapped[list[ShareHolder]] = relationship(
        back_populates="share_set", order_by="ShareHolder.share_index"
    )


class ShareHolder(Base):
    """Which key manager holds share i; only a digest is kept, never the share."""

    __tablename__ = "share_holders"

    share_set_id: Mapped[int] = mapped_column(sa.ForeignKey("share_sets.id"), primary_key=True)
    share_index: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(sa.ForeignKey("operators.id"))
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary(32))

    share_set: Mapped[ShareSet] = relationship(back_populates="holders")
    operator: Mapped[Operator] = relationship()


class AuditEvent(Base):
    """Security-relevant events (seed 004 5.4.1): type, time, result, actor."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(index=True)
    event_type: Mapped[str] = mapped_column(sa.String(64))
    result: Mapped[str] = mapped_column(sa.String(16))
    actor: Mapped[str] = mapped_column(sa.String(128))
    detail: Mapped[str] = mapped_column(sa.Text, default="{}")
    # The hash chain (ca.audit.chain): seq is the position in the chain, gap-free from 1 (or
    # from the last pruning anchor); chain_hash = SHA-256(previous chain_hash || this record).
    seq: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    chain_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))


class AuditHead(Base):
    """The chain's newest position: one row, locked by every transaction that appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    chain_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))


class AuditCheckpoint(Base):
    """A time-stamped commitment to the chain up to `seq`: periodic, at CRL/ARL issuance, or
    the anchor left when the auditor prunes records older than the retention."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    chain_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    reason: Mapped[str] = mapped_column(sa.String(24))  # periodic | crl | arl | prune
    created_at: Mapped[dt.datetime]
    time_stamp_id: Mapped[int] = mapped_column(sa.ForeignKey("time_stamps.id"))
    # for a prune anchor: the records removed were seq pruned_from..seq, pruned_count of them
    pruned_from: Mapped[int | None] = mapped_column(sa.BigInteger)
    pruned_count: Mapped[int | None] = mapped_column(sa.BigInteger)
    actor: Mapped[str] = mapped_column(sa.String(128), default="")

    time_stamp: Mapped[TimeStamp] = relationship()


class TimeStamp(Base):
    """Every RFC 3161 token revoca's time-stamp authority issued, kept whole (seed 000 9)."""

    __tablename__ = "time_stamps"

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[int] = mapped_column(SerialNumber(), unique=True)
    gen_time: Mapped[dt.datetime] = mapped_column(index=True)
    hash_algorithm: Mapped[str] = mapped_column(sa.String(16))  # sha256 | sha384 | sha512
    message_imprint: Mapped[bytes] = mapped_column(sa.LargeBinary(64))
    # who asked: "audit", "archive", or the HTTP client
    requester: Mapped[str] = mapped_column(sa.String(128))
    token: Mapped[bytes] = mapped_column(sa.LargeBinary)  # the TimeStampToken (CMS ContentInfo), DER


class ArchiveStamp(Base):
    """One archived item (or a range of history rows) committed to by a time-stamp (seed 004 5.5).

    Items stamped together share one token, whose imprint is the SHA-256 over the stamps of
    that round in id order (ca.archive); `digest` is the SHA-256 of the item's canonical bytes.
    """

    __tablename__ = "archive_stamps"
    __table_args__ = (sa.Index("ix_archive_stamps_item", "item_type", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_type: Mapped[str] = mapped_column(sa.String(32))
    item_id: Mapped[int]
    last_item_id: Mapped[int | None]  # for a range of history rows: item_id..last_item_id
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    time_stamp_id: Mapped[int] = mapped_column(sa.ForeignKey("time_stamps.id"), index=True)

    time_stamp: Mapped[TimeStamp] = relationship()


class RATerminal(Base):
    """A registered RA terminal, known by the SHA-256 of its TLS client certificate."""

    __tablename__ = "ra_terminals"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    certificate_id: Mapped[int] = mapped_column(sa.ForeignKey("certificates.id"))
    cert_fingerprint: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime]
    # The municipality whose window the terminal serves (a label: the scope is the CA list below).
    municipality: Mapped[str] = mapped_column(sa.String(200), default="", server_default=sa.text("''"))

    # The CAs (prefectures) it may act for; none: it may revoke nothing (fail closed).
    scope: Mapped[list[RATerminalScope]] = relationship(
        back_populates="terminal", cascade="all, delete-orphan", order_by="RATerminalScope.ca_id")

    @property
    def ca_ids(self) -> frozenset[int]:
        return frozenset(s.ca_id for s in self.scope)


class RATerminalScope(Base):
    """One CA an RA terminal may act for (issue 13): a municipality's window revokes only the
    certificates of its own prefecture's CA."""

    __tablename__ = "ra_terminal_scopes"

    terminal_id: Mapped[int] = mapped_column(sa.ForeignKey("ra_terminals.id"), primary_key=True)
    ca_id: Mapped[int] = mapped_column(sa.ForeignKey("cas.id"), primary_key=True)

    terminal: Mapped[RATerminal] = relationship(back_populates="scope")


class RevocationRequest(Base):
    """One request to revoke, from a window, online, under dual control or by compromise."""

    __tablename__ = "revocation_requests"
    __table_args__ = (
        sa.UniqueConstraint("terminal_id", "idempotency_key", name="uq_requests_terminal_idempotency"),
        sa.Index("ix_requests_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    channel: Mapped[RequestChannel] = mapped_column(_enum(RequestChannel))
    status: Mapped[RequestStatus] = mapped_column(_enum(RequestStatus))
    terminal_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ra_terminals.id"))
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(128))
    # SHA-256 of the request's content: the same idempotency key with other content is refused.
    request_digest: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    certificate_id: Mapped[int] = mapped_column(sa.ForeignKey("certificates.id"), index=True)
    reason: Mapped[int] = mapped_column(sa.SmallInteger)
    applicant: Mapped[Applicant | None] = mapped_column(_enum(Applicant, length=8))
    identity_document_checked: Mapped[bool] = mapped_column(default=False)
    # an agent at the window: the document that showed the authority to act (seed 004 1.3.2)
    agent_authority: Mapped[AgentAuthority | None] = mapped_column(_enum(AgentAuthority, length=24))
    # the municipal record-change channel: the event recorded (seed 004 4.9.1(2))
    record_change_event: Mapped[RecordChangeEvent | None] = mapped_column(_enum(RecordChangeEvent, length=32))
    receptionist_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operators.id"))
    reviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operators.id"))
    approver_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operators.id"))
    accepted_at: Mapped[dt.datetime]
    reviewed_at: Mapped[dt.datetime | None]
    decided_at: Mapped[dt.datetime | None]
    note: Mapped[str] = mapped_column(sa.Text, default="")
    # CMS SignedData over the receipt, signed by the receipt key (what the terminal prints).
    receipt: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # An online request's CMS SignedData exactly as the subscriber sent it (seed 004 5.5.1.2:
    # the online revocation application is archived); None for the other channels.
    signed_request: Mapped[bytes | None] = mapped_column(sa.LargeBinary)

    certificate: Mapped[Certificate] = relationship()


class CRLCounter(Base):
    """The last CRL/ARL number handed out per CA and list; bumped and committed before signing."""

    __tablename__ = "crl_counters"

    ca_id: Mapped[int] = mapped_column(sa.ForeignKey("cas.id"), primary_key=True)
    list_type: Mapped[ListType] = mapped_column(_enum(ListType, length=8), primary_key=True)
    last_number: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class IssuedCRL(Base):
    """The archive of every CRL and ARL issued (the "revocation information file" of seed 004 1.1)."""

    __tablename__ = "issued_crls"
    __table_args__ = (sa.UniqueConstraint("ca_id", "list_type", "number", name="uq_issued_crls_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ca_id: Mapped[int] = mapped_column(sa.ForeignKey("cas.id"))
    list_type: Mapped[ListType] = mapped_column(_enum(ListType, length=8))
    number: Mapped[int] = mapped_column(sa.BigInteger)
    signing_key_id: Mapped[int] = mapped_column(sa.ForeignKey("key_generations.id"))
    this_update: Mapped[dt.datetime]
    next_update: Mapped[dt.datetime]
    entries: Mapped[int]
    size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    # Relative to the data directory; the DER itself lives in a file, CRLs reach tens of MB.
    path: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[dt.datetime]
    # The highest revocation id the list holds (its snapshot): a delta CRL lists the rows after
    # its base's.  NULL for lists issued before revision 0016 (no delta refers to those).
    revocations_through: Mapped[int | None] = mapped_column(sa.BigInteger)
    # Delta CRLs (list_type delta) only: the DeltaCRLIndicator, the number of the base CRL.
    base_number: Mapped[int | None] = mapped_column(sa.BigInteger)


class Publication(Base):
    """The durable publication queue (and its history): one row per thing to put into LDAP.

    Rows are added in the same transaction as what they publish (an issued CRL/ARL), so a
    signed list is never lost between signing and the directory, whatever LDAP is doing.
    """

    __tablename__ = "publications"
    __table_args__ = (sa.Index("ix_publications_state_due", "state", "next_attempt_at"),
                      sa.Index("ix_publications_ca_item", "ca_id", "item", "state"))

    id: Mapped[int] = mapped_column(primary_key=True)
    ca_id: Mapped[int] = mapped_column(sa.ForeignKey("cas.id"))
    item: Mapped[PublicationItem] = mapped_column(_enum(PublicationItem, length=16))
    issued_crl_id: Mapped[int | None] = mapped_column(sa.ForeignKey("issued_crls.id"))
    number: Mapped[int | None] = mapped_column(sa.BigInteger)  # the CRL number, for CRL and ARL rows
    # SHA-256 of the value to publish (the CRL DER, or the digest of the certificate set)
    sha256: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    state: Mapped[PublicationState] = mapped_column(_enum(PublicationState, length=16),
                                                    default=PublicationState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime]
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    dn: Mapped[str | None] = mapped_column(sa.Text)  # where it was published
    # the entry's entryCSN right after this write: while the entry still has it, the directory
    # holds what the database says, and the publisher need not read a 40 MB CRL to compare
    csn: Mapped[str | None] = mapped_column(sa.String(64))
    enqueued_at: Mapped[dt.datetime]
    published_at: Mapped[dt.datetime | None]


class Verifier(Base):
    """A registered verifier (seed 004 1.3): may read CRLs over LDAP and ask OCSP for status.

    The database is the source of truth; the LDAP account is a projection of this row that the
    publisher keeps in step (so a lost or rebuilt directory gets its accounts back).
    """

    __tablename__ = "verifiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    ldap_dn: Mapped[str] = mapped_column(sa.Text)
    # the userPassword value slapd checks ({ARGON2}...); None for certificate-only (SASL EXTERNAL)
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    cert_der: Mapped[bytes] = mapped_column(sa.LargeBinary)
    cert_fingerprint: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    cert_subject_dn: Mapped[str] = mapped_column(sa.Text)
    cert_issuer_dn: Mapped[str] = mapped_column(sa.Text)
    cert_serial: Mapped[int] = mapped_column(SerialNumber())
    cert_not_after: Mapped[dt.datetime]
    # set when revoca issued the certificate, so its revocation is known here
    certificate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("certificates.id"))
    status: Mapped[VerifierStatus] = mapped_column(_enum(VerifierStatus, length=16), default=VerifierStatus.ACTIVE)
    created_at: Mapped[dt.datetime]
    removed_at: Mapped[dt.datetime | None]
    removed_reason: Mapped[str] = mapped_column(sa.Text, default="")


class CRLFetch(Base):
    """Provision history (seed 004 5.5.1.2): which verifier read which CRL from LDAP, and when.

    Read from slapd's accesslog; `log_key` is the log entry's reqStart, so reading the log
    twice records nothing twice.
    """

    __tablename__ = "crl_fetches"

    id: Mapped[int] = mapped_column(primary_key=True)
    log_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    fetched_at: Mapped[dt.datetime] = mapped_column(index=True)
    bind_dn: Mapped[str] = mapped_column(sa.Text)
    verifier_id: Mapped[int | None] = mapped_column(sa.ForeignKey("verifiers.id"), index=True)
    dn: Mapped[str] = mapped_column(sa.Text)  # the entry searched
    ca_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cas.id"))
    list_type: Mapped[ListType | None] = mapped_column(_enum(ListType, length=8))
    crl_number: Mapped[int | None] = mapped_column(sa.BigInteger)  # what the directory held then
    result: Mapped[str] = mapped_column(sa.String(16))  # delivered | denied | failed


class OCSPQuery(Base):
    """OCSP query history (seed 004 5.5.1.2): who asked about which certificates, and what they were told.

    Written in batches by the responder (ocsp.history), so recording costs little per query.
    """

    __tablename__ = "ocsp_queries"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    verifier_id: Mapped[int | None] = mapped_column(sa.ForeignKey("verifiers.id"), index=True)
    ca_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cas.id"))
    channel: Mapped[str] = mapped_column(sa.String(8))  # signed | tls | none
    nonce: Mapped[bool]
    # the OCSPResponse status (successful, malformedRequest, unauthorized, internalError, ...)
    response_status: Mapped[str] = mapped_column(sa.String(24))
    # one item per CertID, in request order: "<serial hex>=good|revoked|unknown"
    answers: Mapped[str] = mapped_column(sa.Text, default="")


class PresignedResponse(Base):
    """One OCSP answer signed ahead (issue 16): what every responder, on every machine, serves for a
    no-nonce SHA-1 CertID without signing (ocsp.presigner writes, ca.storage.ocsp_lookups reads).

    Keyed by the CA key that issued the certificate and its serial.  `revocation_id` is the status
    it was signed for (NULL: good; a revocation row is never changed nor deleted, so its id says
    time and reason): a responder serves it only while that is still the status it reads, so a
    revocation the signer has not caught up with is signed on demand, never answered stale.
    `signed` is the BasicOCSPResponse without its certs field (tbsResponseData, signatureAlgorithm,
    signature): the responder certificate, outside the signature, is added when served, so it is
    not stored a million times.
    """

    __tablename__ = "ocsp_presigned"

    key_id: Mapped[int] = mapped_column(sa.ForeignKey("key_generations.id"), primary_key=True)
    serial: Mapped[int] = mapped_column(SerialNumber(), primary_key=True)
    ca_id: Mapped[int] = mapped_column(sa.ForeignKey("cas.id"))  # the refresh finds the certificate by (CA, serial)
    revocation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("revocations.id"))  # NULL: signed as good
    # the delegated responder certificate that signed (NULL: the CA key itself, [ocsp] ca_signed)
    responder_serial: Mapped[int | None] = mapped_column(SerialNumber())
    this_update: Mapped[dt.datetime]
    next_update: Mapped[dt.datetime]
    refresh_at: Mapped[dt.datetime] = mapped_column(index=True)  # when the signer signs it again
    signed: Mapped[bytes] = mapped_column(sa.LargeBinary)


class DirectoryRead(Base):
    """Reads of what the directory publishes to everyone (seed 004 5.4.1, 5.5.1.2): ARLs, CA
    certificates and cross-certificate pairs, and the verifiers' own account certificates.

    Read from slapd's accesslog beside the CRL fetches (repository.provision): one row per log
    entry (`log_key`, its reqStart), anonymous reads included; `objects` names what was asked
    for ("arl,ca-certificate,cross-pair", "verifier-certificate").
    """

    __tablename__ = "directory_reads"

    id: Mapped[int] = mapped_column(primary_key=True)
    log_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    read_at: Mapped[dt.datetime] = mapped_column(index=True)
    bind_dn: Mapped[str] = mapped_column(sa.Text)  # "" for anonymous
    verifier_id: Mapped[int | None] = mapped_column(sa.ForeignKey("verifiers.id"), index=True)
    dn: Mapped[str] = mapped_column(sa.Text)  # the entry or base searched
    ca_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cas.id"))
    objects: Mapped[str] = mapped_column(sa.String(64))
    entries: Mapped[int]  # entries the search returned
    arl_number: Mapped[int | None] = mapped_column(sa.BigInteger)  # the ARL the directory held then
    result: Mapped[str] = mapped_column(sa.String(16))  # delivered | denied
    ldap_result: Mapped[int]


class ServiceRun(Base):
    """One run of a long-running service, from its start to its stop (ca.audit.service_events).

    A run that never recorded its stop ended uncleanly (killed, crashed, power lost); the next
    start of the same service on the same host finds it and says so in its audit record.
    """

    __tablename__ = "service_runs"
    __table_args__ = (sa.Index("ix_service_runs_open", "service", "host", "stopped_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service: Mapped[str] = mapped_column(sa.String(32))
    host: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int]
    identity: Mapped[str] = mapped_column(sa.String(64))  # the Unix user it ran as
    started_at: Mapped[dt.datetime]
    stopped_at: Mapped[dt.datetime | None]
    stop: Mapped[str | None] = mapped_column(sa.String(16))  # clean | unclean | failed


class AuditArchive(Base):
    """A copy of a range of audit records, made for the archive before any may be pruned (seed 004
    5.5.1.2 "各種ログ", seed 000 4.5, seed 003): the JSON lines ca.archive stamps and exports, kept
    here so that the archive still holds them after `revoca audit prune` deleted the records."""

    __tablename__ = "audit_archive"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_seq: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    last_seq: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[dt.datetime]


class Notice(Base):
    """A notice to relying parties on the web repository (seed 004 2.2, 4.9.12(1), 5.7.3, 5.8):
    a CA key compromise or a CA's termination, with when it happened and what to do now.

    Written in the transaction of the act it announces (ca.revocation.compromise, `revoca ca
    terminate`) through ca.storage.notices; never updated or deleted, a later notice supersedes.
    """

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    ca_id: Mapped[int] = mapped_column(sa.ForeignKey("cas.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # compromise | termination
    occurred_at: Mapped[dt.datetime]  # when it took effect (the revocation time of a compromise)
    recorded_at: Mapped[dt.datetime]
    recorded_by: Mapped[str] = mapped_column(sa.String(255))  # the operators, "a+b"
    summary_ja: Mapped[str] = mapped_column(sa.Text)
    summary_en: Mapped[str] = mapped_column(sa.Text)
    action_ja: Mapped[str] = mapped_column(sa.Text)  # what relying parties must do
    action_en: Mapped[str] = mapped_column(sa.Text)


class ProvisionReport(Base):
    """A monthly provision status report (seed 004 5.2.1, 5.5.1.1, 9.3.3 「失効情報等の提供状況報告書」):
    how much revocation information was provided to whom, made from the OCSP query history and
    the directory's access log (ca.reports.provision).  Not confidential (9.3.3): the web
    repository publishes the newest version of each month.  Made again, a month gets a new version;
    no version is ever changed."""

    __tablename__ = "provision_reports"
    __table_args__ = (sa.UniqueConstraint("month", "version", name="uq_provision_reports_month_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(sa.String(7))  # YYYY-MM, UTC
    version: Mapped[int]
    period_start: Mapped[dt.datetime]
    period_end: Mapped[dt.datetime]  # exclusive
    made_at: Mapped[dt.datetime]
    made_by: Mapped[str] = mapped_column(sa.String(255))
    csv: Mapped[bytes] = mapped_column(sa.LargeBinary)  # the report itself, UTF-8 CSV
    sha256: Mapped[bytes] = mapped_column(sa.LargeBinary(32))  # of csv
    # an RFC 3161 token from revoca's TSA over csv; None when no TSA was configured
    time_stamp: Mapped[bytes | None] = mapped_column(sa.LargeBinary)


class CorrectionRequest(Base):
    """A subscriber's request to correct, add to or delete records disclosed to them (seed 004
    9.4.7.2, 5.2.1 (1)): filed by a receptionist after the identity check, reviewed by a reviewer,
    decided by a CA administrator, three different people (ca.disclosure.corrections).  Records
    themselves are never rewritten (the audit log is a hash chain): an approved request stands
    beside the record it corrects and later disclosures show it."""

    __tablename__ = "correction_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    certificate_id: Mapped[int] = mapped_column(sa.ForeignKey("certificates.id"), index=True)
    action: Mapped[str] = mapped_column(sa.String(8))  # correct | add | delete
    record: Mapped[str] = mapped_column(sa.Text)  # which disclosed record, as the subscriber names it
    requested: Mapped[str] = mapped_column(sa.Text)  # what they ask it to say instead
    status: Mapped[str] = mapped_column(sa.String(20), index=True)  # a RequestStatus value
    receptionist_id: Mapped[int] = mapped_column(sa.ForeignKey("operators.id"))
    reviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operators.id"))
    approver_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operators.id"))
    accepted_at: Mapped[dt.datetime]
    reviewed_at: Mapped[dt.datetime | None]
    decided_at: Mapped[dt.datetime | None]
    note: Mapped[str] = mapped_column(sa.Text, default="")
