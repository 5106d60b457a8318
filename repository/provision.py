"""Provision history (seed 004 5.5.1.2): which verifier fetched which CRL from LDAP, and when;
and beside it every read of what the directory publishes to all (seed 004 5.4.1: all access
concerning status checking): ARLs, CA certificates, cross-certificate pairs, and the verifiers'
own accounts.

slapd's accesslog overlay writes every search and bind of the directory into ``cn=accesslog``
(see repository/slapd.py); `ingest` turns that log into provision-history rows (stored by
ca.storage.provision) and audit records, then deletes what it read so the log stays small.
The rules, per log entry:

* a successful search (result 0, at least one entry, values not just attribute names) by a
  bind DN that is a registered verifier's, reaching a CA entry and asking for
  certificateRevocationList (any option, or all user attributes): ``delivered``, with the
  number of the CRL the directory held then (the newest published CRL publication of that CA
  at the search's time).  With base scope on a CA entry the CA is known; a one-level or
  subtree search that reaches CA entries is one row with no CA and ``dn`` = its base, since
  the log says how many entries came back but not which;
* the same by a verifier removed before the search: ``denied`` (the publisher takes removed
  verifiers out of the LDAP group, so the access rules hid the value);
* anyone else (anonymous, or a DN that is no verifier) naming certificateRevocationList in
  the attributes or the filter: ``denied``, whatever the result: the access rules hide the
  value, and an officer should see the attempts.  "All attributes" from them is the ordinary
  anonymous read of CA certificates and ARLs, and is not counted;
* a failed bind to a DN under the verifiers container: a ``failed`` row (no CA, ``dn`` = the
  bind DN) and a ``repository.bind`` failure in the audit log;
* everything else (successful binds, the rootdn's own operations) is deleted from the log.

Reads of the public objects are directory reads (`DirectoryRead`, ca.storage.provision), one
row per log entry, whoever asked (anonymous included, ``bind_dn`` ""), naming the objects
asked for (``objects``): ``arl``, ``ca-certificate``, ``cross-pair`` when a search reaches CA
entries and names those attributes (or all user attributes): ``delivered`` when it returned
entries (with the number of the ARL the directory held then, base scope), ``denied`` when
slapd refused it (the LDAP result code is kept); and ``verifier-account`` for a search at or
under the verifiers container: ``delivered`` when a verifier read its own account (its
certificate), ``denied`` for anyone else (the access rules hide the accounts).  A search that
found nothing (result 0, no entry) or asked for values of nothing of these is not a read.
They are a history, like the CRL fetches and the OCSP queries, not audit records: anonymous
relying parties read ARLs and CA certificates at any rate, and one chained audit record each
would cost what it costs the responder; the audit chain commits to them in sealed ranges
(ca.audit.history_seal), the archive stamps them, and the auditor's timeline shows them
(ca.audit.timeline).

Each log entry gives at most one row of each table, keyed by its reqStart (`log_key`,
unique).  A failed bind's audit record is written in the same transaction as its ``failed``
row, so the unique key guards both: after a crash between the commit and the deletion of the
log entries, the next round finds the keys recorded and adds nothing, neither rows nor audit
records.

The verifier's status is judged from the database, which the publisher projects into LDAP;
an LDAP account in the verifiers group with no database row would read CRLs unrecorded here
as deliveries (its explicit requests show as ``denied``).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Protocol

from ldap3.utils.dn import parse_dn

from ca import audit
from ca.enums import ListType, PublicationItem, VerifierStatus
from ca.errors import NotFound
from ca.storage.engine import Engine, Session, session_scope
from ca.storage.provision import AlreadyRecorded, ProvisionReads, ProvisionWrites
from ca.storage.publications import PublicationReads
from ca.storage.store import ReadStore
from ca.storage.verifiers import VerifierReads
from repository.directory import Directory, is_under, normal_dn
from repository.entries import ca_entry_dn
from repository.slapd import ACCESSLOG_SUFFIX

DELIVERED = "delivered"
DENIED = "denied"
FAILED = "failed"  # a bind to a verifier DN that slapd refused

#: What a directory read may name (DirectoryRead.objects, comma-separated in this order).
ARL = "arl"
CA_CERTIFICATE = "ca-certificate"
CROSS_PAIR = "cross-pair"
VERIFIER_ACCOUNT = "verifier-account"
PUBLIC_OBJECTS = (ARL, CA_CERTIFICATE, CROSS_PAIR)

#: The accesslog attributes read; everything else in a log entry is not needed.
LOG_ATTRIBUTES = ("objectClass", "reqStart", "reqType", "reqAuthzID", "reqDN", "reqResult", "reqScope",
                  "reqFilter", "reqAttr", "reqAttrsOnly", "reqEntries", "reqMethod")
#: certificateRevocationList and deltaRevocationList (verifiers only, like it) by name and by OID
#: (RFC 4523), lower case, without options.
_CRL_NAMES = frozenset({"certificaterevocationlist", "2.5.4.39", "deltarevocationlist", "2.5.4.53"})
#: The public attributes of a CA entry by name and OID (RFC 4523), lower case, without options.
_PUBLIC_ATTRS = {"authorityrevocationlist": ARL, "2.5.4.38": ARL, "cacertificate": CA_CERTIFICATE,
                 "2.5.4.37": CA_CERTIFICATE, "crosscertificatepair": CROSS_PAIR, "2.5.4.40": CROSS_PAIR}
_USER_CERTIFICATE = frozenset({"usercertificate", "2.5.4.36"})
#: LDAP result codes a failed bind usually carries, named for the audit log.
_RESULT_NAMES = {32: "noSuchObject", 34: "invalidDNSyntax", 48: "inappropriateAuthentication",
                 49: "invalidCredentials", 50: "insufficientAccessRights", 53: "unwillingToPerform"}


@dataclasses.dataclass(frozen=True, slots=True)
class LogEntry:
    """One accesslog entry, as far as the provision history needs it."""

    dn: str  # the entry's DN in cn=accesslog, to delete it once recorded
    key: str  # reqStart, e.g. 20261122052603.000009Z
    at: dt.datetime  # reqStart as an aware UTC time
    type: str  # search | bind | ...
    authz_dn: str  # reqAuthzID: the bound DN; "" for anonymous (and for binds themselves)
    target_dn: str  # reqDN: the search base, or the DN bound as
    result: int  # reqResult, an LDAP result code
    scope: str = ""  # base | one | sub | subord
    filter: str = ""
    attrs: tuple[str, ...] | None = None  # None: none named, i.e. all user attributes
    attrs_only: bool = False
    entries: int = 0
    method: str = ""  # bind method (SIMPLE, SASL/...)


@dataclasses.dataclass(frozen=True, slots=True)
class IngestReport:
    """What one `ingest` round did; counts are of accesslog entries."""

    at: dt.datetime
    read: int  # log entries read
    delivered: int  # rows recorded per result
    denied: int
    failed_binds: int
    already_recorded: int  # entries whose row an earlier, interrupted round committed
    deleted: int  # log entries removed from cn=accesslog
    reads: int = 0  # directory reads recorded (ARLs, certificates, verifier accounts)

    @property
    def recorded(self) -> int:
        return self.delivered + self.denied + self.failed_binds


class _Verifier(Protocol):
    """What deciding a log entry needs of a registered verifier (a row of ca.storage.verifiers)."""

    id: int
    name: str
    status: VerifierStatus
    removed_at: dt.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class Fetch:
    """One row of the provision history as a log entry makes it (stored by ca.storage.provision)."""

    log_key: str  # the log entry's reqStart
    fetched_at: dt.datetime
    bind_dn: str
    verifier_id: int | None
    dn: str
    ca_id: int | None
    list_type: ListType | None
    crl_number: int | None
    result: str  # DELIVERED | DENIED | FAILED


@dataclasses.dataclass(frozen=True, slots=True)
class Read:
    """One directory read as a log entry makes it (stored by ca.storage.provision as a DirectoryRead)."""

    log_key: str
    read_at: dt.datetime
    bind_dn: str
    verifier_id: int | None
    dn: str
    ca_id: int | None
    objects: str  # e.g. "arl,ca-certificate,cross-pair"
    entries: int
    arl_number: int | None
    result: str  # DELIVERED | DENIED
    ldap_result: int


@dataclasses.dataclass(frozen=True, slots=True)
class FetchRecord:
    """One row of the provision history, with names instead of ids."""

    fetched_at: dt.datetime
    result: str
    verifier: str | None  # the registered verifier's name; None for anonymous and unknown DNs
    bind_dn: str  # "" for anonymous
    ca: str | None  # None when the search reached several entries, or for a failed bind
    dn: str  # the searched entry or base, or the DN bound as
    list_type: str | None
    crl_number: int | None


# -- reading the log ------------------------------------------------------------------------------


def read_log(directory: Directory) -> list[LogEntry]:
    """The accesslog entries now in the directory, oldest first (the rootdn alone may read them).

    One search reads them all: a publisher round ingests every few minutes, so the log holds
    what those minutes brought, not months of it.
    """
    raw = directory.search(ACCESSLOG_SUFFIX, "(|(objectClass=auditSearch)(objectClass=auditBind))",
                           attributes=LOG_ATTRIBUTES, scope="one")
    entries = [entry for entry in (_log_entry(r.dn, r.attributes) for r in raw) if entry is not None]
    entries.sort(key=lambda e: e.key)
    return entries


def _log_entry(dn: str, attrs: dict[str, list[bytes]]) -> LogEntry | None:
    def one(name: str, default: str = "") -> str:
        values = attrs.get(name.lower())
        return values[0].decode("utf-8", "replace") if values else default

    key = one("reqStart")
    at = _parse_generalized_time(key)
    if at is None:
        return None  # not a log record (nothing else lives one level below cn=accesslog)
    authz = one("reqAuthzID")
    if authz.lower().startswith("dn:"):
        authz = authz[3:]
    names = attrs.get("reqattr")
    return LogEntry(
        dn=dn, key=key, at=at, type=one("reqType").lower(), authz_dn=authz.strip(), target_dn=one("reqDN").strip(),
        result=_int(one("reqResult"), -1), scope=one("reqScope").lower(), filter=one("reqFilter"),
        attrs=tuple(v.decode("utf-8", "replace") for v in names) if names else None,
        attrs_only=one("reqAttrsOnly").upper() == "TRUE", entries=_int(one("reqEntries"), 0), method=one("reqMethod"),
    )


def _parse_generalized_time(value: str) -> dt.datetime | None:
    if not value.endswith("Z"):
        return None
    whole, _, fraction = value[:-1].partition(".")
    try:
        at = dt.datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    if fraction.isdigit():
        at += dt.timedelta(microseconds=int(fraction[:6].ljust(6, "0")))
    return at


def _int(value: str, default: int) -> int:
    try:
        return int(value)
    except ValueError:
        return default


# -- deciding what an entry means -----------------------------------------------------------------


def _dn(value: str) -> str:
    """normal_dn, tolerating what a client sent that is no DN (slapd logs the search anyway)."""
    try:
        return normal_dn(value)
    except Exception:  # ldap3 raises several types for malformed DNs
        return value.strip().lower()


def _depth(ndn: str) -> int:
    try:
        return len(parse_dn(ndn))
    except Exception:
        return ndn.count(",") + 1


def _covers(scope: str, base: str, entry: str) -> bool:
    """Whether a search with `scope` at (normalised) `base` reaches the (normalised) `entry`."""
    if scope == "base":
        return entry == base
    under = base == "" or entry.endswith("," + base)  # "" is the root DSE: everything is below it
    if scope == "one":
        return under and _depth(entry) == (0 if base == "" else _depth(base)) + 1
    if scope in ("subord", "children"):
        return under
    return under or entry == base  # sub


def _names_crl(attrs: Iterable[str]) -> bool:
    return any(a.split(";", 1)[0].strip().lower() in _CRL_NAMES for a in attrs)


def _filter_names_crl(filter_: str) -> bool:
    text = filter_.lower()
    return any(f"({name}" in text.replace(" ", "") for name in _CRL_NAMES)


def _asks_all(attrs: tuple[str, ...] | None) -> bool:
    return attrs is None or "*" in attrs


@dataclasses.dataclass
class _Context:
    """The database facts an ingest round decides with, loaded once per round."""

    base_dn: str
    own_dn: str  # normalised DN ingest is bound as (the publisher's rootdn): its operations are skipped
    verifiers_dn: str
    ca_by_entry: dict[str, int]  # normalised CA entry DN -> CA id
    verifiers_by_dn: dict[str, list[_Verifier]]
    crl_history: dict[int, tuple[list[dt.datetime], list[int | None]]]  # CA id -> published_at, number
    arl_history: dict[int, tuple[list[dt.datetime], list[int | None]]] = dataclasses.field(default_factory=dict)

    def verifier(self, bind_dn: str, at: dt.datetime) -> tuple[_Verifier | None, bool]:
        """The verifier with this LDAP DN and whether it was registered (not removed) at `at`."""
        candidates = self.verifiers_by_dn.get(_dn(bind_dn), []) if bind_dn else []
        for v in candidates:
            if v.removed_at > at if v.removed_at is not None else v.status == VerifierStatus.ACTIVE:
                return v, True
        return (candidates[0], False) if candidates else (None, False)

    def crl_number(self, ca_id: int, at: dt.datetime) -> int | None:
        return _number_at(self.crl_history, ca_id, at)

    def arl_number(self, ca_id: int, at: dt.datetime) -> int | None:
        return _number_at(self.arl_history, ca_id, at)


def _number_at(history: dict[int, tuple[list[dt.datetime], list[int | None]]], ca_id: int,
               at: dt.datetime) -> int | None:
    times, numbers = history.get(ca_id, ([], []))
    i = bisect.bisect_right(times, at)
    return numbers[i - 1] if i else None


def _by_ca(published: list[tuple[int, dt.datetime, int | None]]) -> dict[int, tuple[list[dt.datetime],
                                                                                   list[int | None]]]:
    history: dict[int, tuple[list[dt.datetime], list[int | None]]] = {}
    for ca_id, published_at, number in published:
        times, numbers = history.setdefault(ca_id, ([], []))
        times.append(published_at)
        numbers.append(number)
    return history


def _load_context(session: Session, base_dn: str, own_dn: str) -> _Context:
    cas = ReadStore(session).cas()  # external CAs too: a search may name any entry
    verifiers: dict[str, list[_Verifier]] = {}
    for v in VerifierReads(session).newest_first():
        verifiers.setdefault(_dn(v.ldap_dn), []).append(v)
    # The CRL (ARL) in the directory at any time is the newest one published by then.
    publications = PublicationReads(session)
    return _Context(
        base_dn=base_dn, own_dn=_dn(own_dn) if own_dn else "", verifiers_dn=_dn(f"ou=verifiers,{base_dn}"),
        ca_by_entry={_dn(ca_entry_dn(ca, base_dn)): ca.id for ca in cas}, verifiers_by_dn=verifiers,
        crl_history=_by_ca(publications.crl_publication_history()),
        arl_history=_by_ca(publications.crl_publication_history(PublicationItem.ARL)),
    )


def _row_for(entry: LogEntry, ctx: _Context) -> Fetch | None:
    """The provision-history row one log entry makes, or None when it is not about the CRL."""
    if entry.type == "bind":
        return _bind_row(entry, ctx)
    if entry.type != "search":
        return None
    authz = _dn(entry.authz_dn) if entry.authz_dn else ""
    if authz and authz == ctx.own_dn:
        return None
    base = _dn(entry.target_dn)
    reached = [ca_id for dn, ca_id in ctx.ca_by_entry.items() if _covers(entry.scope, base, dn)]
    exact = ctx.ca_by_entry.get(base) if entry.scope == "base" else None
    verifier, registered = ctx.verifier(entry.authz_dn, entry.at)
    if verifier is not None:
        got_values = entry.result == 0 and entry.entries >= 1 and not entry.attrs_only
        wants = _asks_all(entry.attrs) or (entry.attrs is not None and _names_crl(entry.attrs))
        if not (got_values and wants and reached):
            return None
        result = DELIVERED if registered else DENIED
    elif (entry.attrs is not None and _names_crl(entry.attrs)) or _filter_names_crl(entry.filter):
        result = DENIED
    else:
        return None
    return Fetch(
        log_key=entry.key, fetched_at=entry.at, bind_dn=entry.authz_dn, verifier_id=verifier.id if verifier else None,
        dn=entry.target_dn, ca_id=exact, list_type=ListType.CRL,
        crl_number=ctx.crl_number(exact, entry.at) if exact is not None else None, result=result,
    )


def _public_objects(attrs: tuple[str, ...] | None) -> tuple[str, ...]:
    """The public objects of a CA entry a search asks the values of."""
    if _asks_all(attrs):
        return PUBLIC_OBJECTS
    assert attrs is not None
    named = {_PUBLIC_ATTRS.get(a.split(";", 1)[0].strip().lower()) for a in attrs}
    return tuple(o for o in PUBLIC_OBJECTS if o in named)


def _read_for(entry: LogEntry, ctx: _Context) -> Read | None:
    """The directory read one log entry makes, or None when it read none of the objects."""
    if entry.type != "search":
        return None
    authz = _dn(entry.authz_dn) if entry.authz_dn else ""
    if authz and authz == ctx.own_dn:
        return None
    base = _dn(entry.target_dn)
    ca_id = None
    if base == ctx.verifiers_dn or base.endswith("," + ctx.verifiers_dn):
        objects: tuple[str, ...] = (VERIFIER_ACCOUNT,)
        if not (authz and authz == base):
            result = DENIED  # the access rules hide every account from anyone but itself
        elif entry.result == 0 and entry.entries >= 1 and not entry.attrs_only and (
                _asks_all(entry.attrs) or any(a.split(";", 1)[0].strip().lower() in _USER_CERTIFICATE
                                              for a in entry.attrs or ())):
            result = DELIVERED
        else:
            return None
    else:
        objects = () if entry.attrs_only else _public_objects(entry.attrs)
        if not objects or not any(_covers(entry.scope, base, dn) for dn in ctx.ca_by_entry):
            return None
        if entry.result != 0:
            result = DENIED
        elif entry.entries >= 1:
            result = DELIVERED
        else:
            return None  # found nothing: no value was read
        ca_id = ctx.ca_by_entry.get(base) if entry.scope == "base" else None
    verifier, _registered = ctx.verifier(entry.authz_dn, entry.at)
    return Read(
        log_key=entry.key, read_at=entry.at, bind_dn=entry.authz_dn, verifier_id=verifier.id if verifier else None,
        dn=entry.target_dn, ca_id=ca_id, objects=",".join(objects), entries=entry.entries,
        arl_number=ctx.arl_number(ca_id, entry.at) if ca_id is not None and ARL in objects else None,
        result=result, ldap_result=entry.result,
    )


def _bind_row(entry: LogEntry, ctx: _Context) -> Fetch | None:
    target = _dn(entry.target_dn) if entry.target_dn else ""
    if entry.result == 0 or not target or target == ctx.verifiers_dn or not is_under(target, ctx.verifiers_dn):
        return None
    verifier, _registered = ctx.verifier(entry.target_dn, entry.at)
    return Fetch(log_key=entry.key, fetched_at=entry.at, bind_dn=entry.target_dn,
                 verifier_id=verifier.id if verifier else None, dn=entry.target_dn, ca_id=None, list_type=None,
                 crl_number=None, result=FAILED)


# -- recording ------------------------------------------------------------------------------------


def record(engine: Engine, entries: Sequence[LogEntry], base_dn: str, *, own_dn: str,
           now: dt.datetime) -> IngestReport:
    """Record `entries` in one transaction, skipping log keys already recorded.

    `own_dn` is the DN the reader was bound as (the publisher's rootdn); its searches are the
    publisher's own and are skipped.  Safe to call again with the same entries.
    """
    for attempt in (1, 2):
        try:
            return _record_once(engine, entries, base_dn, own_dn=own_dn, now=now)
        except AlreadyRecorded:
            if attempt == 2:
                raise
            # another round recorded some of these keys between our check and our insert;
            # the second pass sees them and skips them
    raise AssertionError("unreachable")


def _record_once(engine: Engine, entries: Sequence[LogEntry], base_dn: str, *, own_dn: str,
                 now: dt.datetime) -> IngestReport:
    counts = {DELIVERED: 0, DENIED: 0, FAILED: 0}
    with session_scope(engine) as session:
        store = ProvisionWrites(session)
        ctx = _load_context(session, base_dn, own_dn)
        rows = [(entry, row) for entry in entries if (row := _row_for(entry, ctx)) is not None]
        done = store.recorded_keys([row.log_key for _entry, row in rows])
        names = {v.id: v.name for vs in ctx.verifiers_by_dn.values() for v in vs}
        new = [(entry, row) for entry, row in rows if row.log_key not in done]
        already = len(rows) - len(new)
        reads = [read for entry in entries if (read := _read_for(entry, ctx)) is not None]
        read_done = store.recorded_read_keys([read.log_key for read in reads])
        new_reads = [read for read in reads if read.log_key not in read_done]
        # a key another round recorded meanwhile raises AlreadyRecorded here: `record` tries again
        store.add_fetches(dataclasses.asdict(row) for _entry, row in new)
        store.add_reads(dataclasses.asdict(read) for read in new_reads)
        for entry, row in new:
            counts[row.result] += 1
            if row.result == FAILED:
                # The audit time is when revoca recorded it, so the audit log stays in time
                # order; the bind's own time is in the detail.
                audit.record(session, "repository.bind", actor=entry.target_dn[:128], result=audit.FAILURE, at=now,
                             bind_dn=entry.target_dn, verifier=names.get(row.verifier_id or 0),
                             ldap_result=entry.result, ldap_error=_RESULT_NAMES.get(entry.result, ""),
                             method=entry.method, attempted_at=entry.at.isoformat(), log_key=entry.key)
    return IngestReport(at=now, read=len(entries), delivered=counts[DELIVERED], denied=counts[DENIED],
                        failed_binds=counts[FAILED], already_recorded=already, deleted=0, reads=len(new_reads))


def purge(directory: Directory, entries: Iterable[LogEntry]) -> int:
    """Delete recorded log entries from cn=accesslog; returns how many were still there."""
    return sum(1 for entry in entries if directory.delete(entry.dn))


def ingest(engine: Engine, directory: Directory, base_dn: str, *, now: dt.datetime) -> IngestReport:
    """Read the accesslog, record the provision history, then delete what was read.

    `directory` must be bound as the rootdn (only it reads and deletes cn=accesslog).  The
    rows are committed before any log entry is deleted, and recording skips keys already
    there, so a crash at any point loses nothing and doubles nothing.
    """
    entries = read_log(directory)
    if not entries:
        return IngestReport(at=now, read=0, delivered=0, denied=0, failed_binds=0, already_recorded=0, deleted=0)
    report = record(engine, entries, base_dn, own_dn=directory.endpoint.bind_dn or "", now=now)
    return dataclasses.replace(report, deleted=purge(directory, entries))


# -- reading the history --------------------------------------------------------------------------


def fetches(engine: Engine, *, verifier: str | None = None, since: dt.datetime | None = None,
            limit: int | None = 100) -> list[FetchRecord]:
    """The provision history, newest first: all of it, or one verifier's (by name), from `since` on."""
    if since is not None and since.tzinfo is None:
        raise ValueError("since must be timezone-aware (UTC)")
    with session_scope(engine, readonly=True) as session:
        verifier_id = None
        if verifier is not None:
            verifier_id = VerifierReads(session).id_of(verifier)
            if verifier_id is None:
                raise NotFound(f"no verifier named {verifier!r}")
        rows = ProvisionReads(session).fetches(verifier_id=verifier_id, since=since, limit=limit)
        return [
            FetchRecord(fetched_at=row.fetched_at, result=row.result, verifier=verifier_name, bind_dn=row.bind_dn,
                        ca=ca_name, dn=row.dn, list_type=row.list_type.value if row.list_type else None,
                        crl_number=row.crl_number)
            for row, verifier_name, ca_name in rows
        ]
