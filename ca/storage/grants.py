"""PostgreSQL roles: one per service, with GRANTs for exactly the tables and columns its code uses.

`TABLE` says, per service, which of SELECT/INSERT/UPDATE/DELETE it holds on which table (a
column list where the code reads or writes only some columns); USAGE on a table's id sequence
goes with every INSERT.  It was worked out by following each service's entry point through the
stores it calls (DESIGN.md "Identities and privileges"); a grant that is not obvious says why.
`apply` makes it so: a NOLOGIN role per service (`revoca_ocsp`, ...), REVOKE ALL then GRANT
exactly the table, and a LOGIN role per service named as its Unix user in [identities]
(`revoca-ocsp`, ...) that is a member of it, so that peer authentication over the Unix socket
maps a service's user to its privileges.  No password is set anywhere: peer/ident auth, or a
`.pgpass` the operator keeps, authenticates.

A service whose database URL names a shared role instead runs `SET ROLE revoca_<service>` on
every connection when `database_role_per_service = true` (`role_for`, ca.storage.engine).
SQLite has no roles: file modes (ca.host.layout) keep the database to the services' group.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ca.storage.models import Base

if TYPE_CHECKING:
    from ca.config import IdentityConfig, Settings

SERVICES = ("signer", "ra", "ocsp", "tsa", "status", "scheduler", "publisher", "web", "cvs")
ADMIN = "admin"
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
ALEMBIC = "alembic_version"
SQLITE_NOTE = ("SQLite has no roles: file modes keep the database to the services' group "
               "(ca/host/layout.py); nothing to grant")


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """Privileges on one table: "SELECT", "INSERT", or with columns, "UPDATE(seq, chain_hash)"."""

    table: str
    privileges: tuple[str, ...]
    why: str = ""

    def words(self) -> tuple[str, ...]:
        """The privilege names without their column lists."""
        return tuple(p.split("(", 1)[0].strip() for p in self.privileges)


def _g(table: str, *privileges: str, why: str = "") -> Grant:
    return Grant(table, privileges, why)


# Appending to the audit chain (ca.storage.audit_chain): the head row locked FOR UPDATE and moved
# on, the record inserted (its id comes back through RETURNING, hence SELECT on id alone).
_AUDIT_APPEND = (
    _g("audit_events", "INSERT", "SELECT(id)", why="audit records; RETURNING id needs SELECT on id"),
    _g("audit_head", "SELECT", "UPDATE(seq, chain_hash)", why="the chain's head, locked and advanced at commit"),
)
_SCHEMA_CHECK = _g(ALEMBIC, "SELECT", why="`revoca serve` checks the schema is current at start")
# Every long-running service audits its own start and stop (ca.audit.service_events): it opens a
# run, closes it at a clean stop, and closes its own earlier runs on the host that died uncleanly.
_SERVICE_RUNS = _g("service_runs", "SELECT", "INSERT", "UPDATE(stopped_at, stop)",
                   why="its own start and stop; an unclean earlier run is closed at the next start")
_CA_STATE = (_g("cas", "SELECT"), _g("key_generations", "SELECT", why="ReadStore.cas() loads each CA's keys"),
             _g("certificates", "SELECT"))

TABLE: dict[str, tuple[Grant, ...]] = {
    # ca.hsm.service: the share set and destroyed keys' labels at start, key managers' passwords to
    # deactivate and open ceremony sessions, audit records (shares presented, refusals, the signature
    # ledger), and of the CA data only what judges a streamed list: a key's CA Names and identifier.
    "signer": (
        _SCHEMA_CHECK,
        _g("share_sets", "SELECT"), _g("share_holders", "SELECT"),
        _g("operators", "SELECT", why="holders' names; deactivation checks a key manager's password"),
        _g("operator_roles", "SELECT"),
        _g("destroyed_keys", "SELECT(key_label)", why="a destroyed key is refused, also after a restart"),
        _g("key_generations", "SELECT(id, key_label, ski)",
           why="a streamed CRL/ARL must name the key's CA and carry its key identifier (ca.hsm.crl_stream)"),
        _g("certificates", "SELECT(subject_key_id, der)", why="the Names of the key's CA, from its certificates"),
        *_AUDIT_APPEND, _SERVICE_RUNS,
    ),
    # ca.ra.app: terminals and clerks authenticated, requests and revocations filed, receipts kept.
    "ra": (
        _SCHEMA_CHECK, *_CA_STATE,
        _g("ra_terminals", "SELECT"),
        _g("ra_terminal_scopes", "SELECT", why="the CAs each terminal may act for"),
        _g("operators", "SELECT", why="the clerk's password (HTTP Basic) is checked against its hash"),
        _g("operator_roles", "SELECT"),
        _g("revocation_requests", "SELECT", "INSERT", "UPDATE(receipt)",
           why="UPDATE only to keep the signed receipt; review and approval are the officers' CLI"),
        _g("revocations", "SELECT", "INSERT"),
        *_AUDIT_APPEND, _SERVICE_RUNS,
    ),
    # ocsp: the issuer index and responder certificates, the two per-query lookups
    # (ca.storage.ocsp_lookups), CRLs' nextUpdate, the query history; audit only from the clock guard.
    "ocsp": (
        *_CA_STATE,
        _g("revocations", "SELECT"),
        _g("issued_crls", "SELECT", why="nextUpdate of each CA's CRL"),
        _g("verifiers", "SELECT(id, status, cert_not_after, certificate_id, cert_fingerprint)",
           why="authorization by certificate; never the LDAP password hash"),
        _g("ocsp_queries", "INSERT", "SELECT(id)", why="the history; its compiled INSERT says RETURNING id"),
        _g("ocsp_presigned", "SELECT", "INSERT", "UPDATE", "DELETE",
           why="answers signed ahead by `revoca serve ocsp-signer` (upserted), read by every responder; "
               "a cache of what the signer itself signs, so it drops those of expired certificates (the "
               "only table a service deletes from)"),
        *_AUDIT_APPEND, _SERVICE_RUNS,
    ),
    # ca.tsa: the current TSA certificate (not revoked, its key), each token kept.
    "tsa": (
        *_CA_STATE,
        _g("revocations", "SELECT", why="a revoked TSA certificate is not used"),
        _g("time_stamps", "INSERT", "SELECT(id)", why="every token is kept; RETURNING id"),
        *_AUDIT_APPEND, _SERVICE_RUNS,
    ),
    # ca.status_page: ReportingReads, the publication queue, officers' logins.  Writes nothing but
    # the audit records of those logins and of its own start and stop.
    "status": (
        _SCHEMA_CHECK, *_CA_STATE,
        _g("revocations", "SELECT"), _g("revocation_requests", "SELECT"), _g("issued_crls", "SELECT"),
        _g("publications", "SELECT"),
        _g("operators", "SELECT", why="officers log in with their revoca password"),
        _g("operator_roles", "SELECT"),
        _g("ocsp_queries", "SELECT", why="queries per minute and the OCSP counters"),
        _g("audit_events", "SELECT(id, event_type, result, occurred_at)",
           why="signing and RA counters, the newest verified backup; never who did what (actor, detail)"),
        _g("verifiers", "SELECT(id, name)", why="verifier labels of the OCSP counters"),
        _g("ocsp_presigned", "SELECT(key_id, serial, revocation_id, responder_serial, this_update, next_update, "
           "refresh_at)", why="how fresh the answers signed ahead are (ca.health); never the answers"),
        *_AUDIT_APPEND, _SERVICE_RUNS,
    ),
    # ca.scheduler, ca.crl.issue, ca.audit.keeper (seals, checkpoints), ca.archive.stamping and the
    # in-process TSA that stamps them (ca.tsa.stamper).
    "scheduler": (
        _SCHEMA_CHECK, *_CA_STATE,
        _g("revocations", "SELECT", "UPDATE(entry_der)",
           why="the CRL entry stream; entries stored without their DER are encoded once"),
        _g("crl_counters", "SELECT", "INSERT", "UPDATE", why="CRL numbers, allocated before signing"),
        _g("issued_crls", "SELECT", "INSERT"),
        _g("publications", "INSERT", "SELECT(id)", why="each new CRL/ARL queued for the publisher; RETURNING id"),
        _g("revocation_requests", "SELECT", why="decided requests (and signed online ones) are archived"),
        _g("ocsp_queries", "SELECT", why="the history is sealed into the audit chain and archived"),
        _g("crl_fetches", "SELECT", why="the history is sealed into the audit chain and archived"),
        _g("directory_reads", "SELECT", why="the history is sealed into the audit chain and archived"),
        _g("provision_reports", "SELECT", "INSERT", why="the monthly provision status report is made (ca.reports) "
                                                        "and archived"),
        _g("verifiers", "SELECT(id, name)", why="the provision report names the verifiers"),
        _g("time_stamps", "INSERT", "SELECT", why="tokens of checkpoints and archive rounds; checkpoints are "
                                                  "archived with their tokens"),
        _g("audit_events", "INSERT", "SELECT",
           why="appends; reads the last history seal's range; copies the records into the archive"),
        _g("audit_head", "SELECT", "UPDATE(seq, chain_hash)", why="the chain's head, locked and advanced at commit"),
        _g("audit_checkpoints", "SELECT", "INSERT"),
        _g("audit_archive", "SELECT", "INSERT", why="the audit records' archived copies, made before any prune"),
        _g("archive_stamps", "SELECT", "INSERT"),
        _SERVICE_RUNS,
    ),
    # repository.publisher, verifier_accounts, provision: the queue, what each CA entry holds,
    # the verifiers' LDAP accounts, the provision history from slapd's access log.
    "publisher": (
        _SCHEMA_CHECK, *_CA_STATE,
        _g("revocations", "SELECT", why="revoked certificates leave the entries; revoked verifiers lose access"),
        _g("issued_crls", "SELECT"),
        _g("publications", "SELECT", "INSERT",
           "UPDATE(state, attempts, next_attempt_at, last_error, dn, csn, sha256, published_at)",
           why="the queue's outcomes; never which list a row publishes"),
        _g("verifiers", "SELECT", why="the LDAP accounts carry the verifiers' password hashes"),
        _g("crl_fetches", "SELECT", "INSERT"),
        _g("directory_reads", "SELECT", "INSERT", why="ARL and certificate reads from the access log"),
        *_AUDIT_APPEND, _SERVICE_RUNS,
    ),
    # ca.web (ca.storage.public, notices, provision_reports): what the public pages show, and the
    # change mark it polls.  Only public columns of the certificates; no subscriber data is read
    # (PUBLIC_KINDS), but a column grant cannot say "these kinds", so certificates is whole.
    "web": (
        _SCHEMA_CHECK, _g("cas", "SELECT"), _g("certificates", "SELECT"),
        _g("revocations", "SELECT(id, certificate_id, revocation_time, list_type)",
           why="which CA certificates are revoked and when; never the reason"),
        _g("issued_crls", "SELECT(id, ca_id, list_type, number, this_update, next_update, sha256, size)",
           why="the published ARL's number, dates and digest; never the file"),
        _g("publications", "SELECT(id, issued_crl_id, item, state)", why="which ARL the directory holds"),
        _g("notices", "SELECT"), _g("provision_reports", "SELECT"),
        *_AUDIT_APPEND, _SERVICE_RUNS,
    ),
    # ca.cvs (ca.storage.cvs): anchors, cross and link certificates, the newest lists' files, its
    # own certificate (not revoked).  Reads only; writes nothing but its own start and stop.
    "cvs": (
        _SCHEMA_CHECK, _g("cas", "SELECT(id, kind)"), _g("certificates", "SELECT"),
        _g("revocations", "SELECT(certificate_id)", why="a revoked CVS certificate signs no answer"),
        _g("issued_crls", "SELECT(id, ca_id, list_type, number, signing_key_id, path)",
           why="where the newest CRL and ARL of each CA key are; the file is read, not the row"),
        *_AUDIT_APPEND, _SERVICE_RUNS,
    ),
}


def role_name(service: str) -> str:
    """The NOLOGIN role that holds a service's privileges (`admin`: the officers' CLI)."""
    if service not in (*SERVICES, ADMIN):
        raise ValueError(f"no service {service!r}")
    return f"revoca_{service}"


def role_for(settings: Settings, service: str) -> str | None:
    """The role a service's connections SET ROLE to, or None (`database_role_per_service` unset)."""
    return role_name(service) if settings.database_role_per_service else None


def login_names(identities: IdentityConfig) -> dict[str, str]:
    """Each service's LOGIN role: its Unix user ([identities]), so peer authentication maps it."""
    return {service: getattr(identities, service) for service in SERVICES}


def sequence_tables(service: str) -> tuple[str, ...]:
    """The tables a service inserts into that take their id from a sequence."""
    with_id = {t.name for t in Base.metadata.sorted_tables if [c.name for c in t.primary_key.columns] == ["id"]}
    return tuple(g.table for g in TABLE[service] if "INSERT" in g.words() and g.table in with_id)


def has_roles(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    service: str
    role: str
    login: str | None
    grants: tuple[Grant, ...]
    sequences: tuple[str, ...]

    def line(self) -> str:
        who = f"{self.role} (login {self.login})" if self.login else self.role
        if self.service == ADMIN:
            return (f"{ADMIN}: {who}: SELECT, INSERT, UPDATE, DELETE on every table; "
                    "USAGE, SELECT, UPDATE on every sequence")
        by_privilege: dict[str, list[str]] = {}
        for g in self.grants:
            for p in g.privileges:
                word, _, columns = p.partition("(")
                by_privilege.setdefault(word.strip(), []).append(g.table + (f"({columns}" if columns else ""))
        parts = [f"{word} {', '.join(tables)}" for word in PRIVILEGES if (tables := by_privilege.get(word))]
        if self.sequences:
            parts.append(f"USAGE on the sequences of {', '.join(self.sequences)}")
        return f"{self.service}: {who}: " + "; ".join(parts)


def apply(engine: sa.Engine, identities: IdentityConfig) -> list[Applied]:
    """Create the roles where missing and set every service's privileges to exactly TABLE.

    Roles belong to the whole PostgreSQL cluster, privileges to this database: running it again,
    or for another database of the same cluster, changes nothing it should not."""
    if not has_roles(engine):
        raise ValueError(SQLITE_NOTE)
    logins = login_names(identities)
    roles = {service: role_name(service) for service in (*SERVICES, ADMIN)}
    quote: Callable[[str], str] = engine.dialect.identifier_preparer.quote_identifier
    with engine.connect() as conn:
        for role in roles.values():
            _ensure_role(conn, quote, role, login=False)
        for service, login in logins.items():
            _ensure_role(conn, quote, login, login=True)
            _ensure_member(conn, quote, roles[service], login)
        with conn.begin():
            me, superuser = conn.execute(sa.text(
                "SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user")).one()
        if not superuser:  # a shared URL's role must be a member to SET ROLE (database_role_per_service)
            for service in SERVICES:
                _ensure_member(conn, quote, roles[service], me)
        with conn.begin():
            schema = quote(conn.scalar(sa.text("SELECT current_schema()")))
            tables = [ALEMBIC, *(t.name for t in Base.metadata.sorted_tables)]
            for role in roles.values():
                r = quote(role)
                conn.execute(sa.text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {r}"))
                conn.execute(sa.text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {r}"))
                conn.execute(sa.text(f"GRANT USAGE ON SCHEMA {schema} TO {r}"))
            out = []
            for service in SERVICES:
                r = quote(roles[service])
                for g in TABLE[service]:
                    conn.execute(sa.text(f"GRANT {', '.join(g.privileges)} ON TABLE {quote(g.table)} TO {r}"))
                sequences = sequence_tables(service)
                for table in sequences:
                    seq = conn.scalar(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table})
                    if seq:  # already quoted and qualified by PostgreSQL
                        conn.execute(sa.text(f"GRANT USAGE ON SEQUENCE {seq} TO {r}"))
                out.append(Applied(service, roles[service], logins[service], TABLE[service], sequences))
            admin = quote(roles[ADMIN])
            for table in tables:
                conn.execute(sa.text(f"GRANT {', '.join(PRIVILEGES)} ON TABLE {quote(table)} TO {admin}"))
            conn.execute(sa.text(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {admin}"))
            out.append(Applied(ADMIN, roles[ADMIN], None, (), ()))
    return out


def apply_at_start(engine: sa.Engine, identities: IdentityConfig, *, role_per_service: bool) -> str | None:
    """`revoca run` on PostgreSQL: `apply` (idempotent: run at every start, it also takes back
    what an older TABLE granted), and one line saying so; None on SQLite.  A role that may not
    create roles gets one line naming what to do instead of a stop: the roles are then missing,
    not wrong."""
    if not has_roles(engine):
        return None
    try:
        applied = apply(engine, identities)
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        return (f"WARNING: the per-service database roles were not applied ({first}); run `revoca db grant` "
                "as a role that may create roles")
    used = ("each service sets its role (database_role_per_service)" if role_per_service else
            "each service's Unix user logs in as its own role under peer authentication; or set "
            "database_role_per_service = true for a shared URL")
    return f"database roles: {len(applied)} roles applied (`revoca db grant` shows them); {used}"


def _retrying(conn: sa.Connection, done: str, params: Mapping[str, str], statement: str) -> None:
    """Run `statement` unless `done` (a query) says it is done; roles are shared by every database
    of the cluster, so another `apply` may do the same at the same moment: then look again."""
    for attempt in range(5):
        try:
            with conn.begin():
                if conn.scalar(sa.text(done), params):
                    return
                conn.execute(sa.text(statement))
            return
        except sa.exc.DBAPIError:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


def _ensure_role(conn: sa.Connection, quote: Callable[[str], str], role: str, *, login: bool) -> None:
    _retrying(conn, "SELECT 1 FROM pg_roles WHERE rolname = :r", {"r": role},
              f"CREATE ROLE {quote(role)} {'LOGIN' if login else 'NOLOGIN'}")


def _ensure_member(conn: sa.Connection, quote: Callable[[str], str], role: str, member: str) -> None:
    _retrying(conn, "SELECT pg_has_role(:m, :r, 'MEMBER')", {"m": member, "r": role},
              f"GRANT {quote(role)} TO {quote(member)}")


def check_table(tables: Iterable[str] | None = None) -> list[str]:
    """What is wrong with TABLE (unknown tables or privileges, a service missing); empty when fine."""
    known = set(tables) if tables is not None else {ALEMBIC, *(t.name for t in Base.metadata.sorted_tables)}
    problems = [f"no entry for {s}" for s in SERVICES if s not in TABLE]
    for service, grants in TABLE.items():
        for g in grants:
            if g.table not in known:
                problems.append(f"{service}: no table {g.table}")
            problems.extend(f"{service}: {g.table}: unknown privilege {w}" for w in g.words() if w not in PRIVILEGES)
    return problems
