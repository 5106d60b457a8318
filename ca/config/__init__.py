"""Settings: one TOML file (revoca.toml) with REVOCA_* environment overrides.

Parsed strictly into frozen dataclasses: an unknown key is an error rather than a silently
ignored typo, and the defaults run on one machine with nothing configured.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from ca.errors import ConfigError
from ca.officers.passwords import PasswordPolicy

KEY_ALGORITHMS = ("rsa2048", "rsa3072", "rsa4096", "p256", "p384")

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"

# The 47 prefectures whose governors ran the regional CAs; tests build them all and
# `[hierarchy] regional = "all"` picks them too.
PREFECTURES = (
    "Hokkaido", "Aomori", "Iwate", "Miyagi", "Akita", "Yamagata", "Fukushima", "Ibaraki",
    "Tochigi", "Gunma", "Saitama", "Chiba", "Tokyo", "Kanagawa", "Niigata", "Toyama",
    "Ishikawa", "Fukui", "Yamanashi", "Nagano", "Gifu", "Shizuoka", "Aichi", "Mie", "Shiga",
    "Kyoto", "Osaka", "Hyogo", "Nara", "Wakayama", "Tottori", "Shimane", "Okayama",
    "Hiroshima", "Yamaguchi", "Tokushima", "Kagawa", "Ehime", "Kochi", "Fukuoka", "Saga",
    "Nagasaki", "Kumamoto", "Oita", "Miyazaki", "Kagoshima", "Okinawa",
)  # fmt: skip

DEMO_REGIONAL = ("Tokyo", "Osaka", "Hokkaido")


@dataclasses.dataclass(frozen=True, slots=True)
class CAConfig:
    name: str
    subject: str

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"CA name {self.name!r} must be letters, digits, '-' or '_'")
        try:
            x509.Name.from_rfc4514_string(self.subject)
        except ValueError as exc:
            raise ConfigError(f"CA {self.name}: subject {self.subject!r} is not an RFC 4514 DN: {exc}") from exc


def regional_ca(prefecture: str) -> CAConfig:
    return CAConfig(
        name=prefecture.lower(),
        subject=f"CN=Governor of {prefecture},OU={prefecture},OU=Prefectural CA,O=JPKI,C=JP",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class HSMConfig:
    module: str = SOFTHSM_MODULE
    token_label: str = "revoca"
    # SoftHSM2 only: where its config and token files live; empty means under data_dir.
    softhsm_conf: str = ""
    threshold: int = 2
    shares: int = 3
    key_algorithm: str = "rsa2048"
    socket: str = ""
    # The signer lets the OCSP identity use CA keys (for `revoca serve ocsp --ca-signed`); off,
    # OCSP may sign only with delegated responder keys (ca.hsm.policy).
    ocsp_ca_keys: bool = False
    # How many processes of the HSM service sign, each with a token session of its own
    # (ca.hsm.pool): 0 means one per CPU; 1 signs in the service itself, one signature at a time.
    signer_processes: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.ocsp_ca_keys, bool):
            raise ConfigError(f"hsm.ocsp_ca_keys must be true or false, not {self.ocsp_ca_keys!r}")
        if isinstance(self.signer_processes, bool) or not isinstance(self.signer_processes, int) \
                or not 0 <= self.signer_processes <= 256:
            raise ConfigError(f"hsm.signer_processes must be a number from 0 (one per CPU) to 256, "
                              f"not {self.signer_processes!r}")
        if self.key_algorithm not in KEY_ALGORITHMS:
            raise ConfigError(
                f"hsm.key_algorithm {self.key_algorithm!r} is not one of {', '.join(KEY_ALGORITHMS)}"
            )
        if not 1 <= self.threshold <= self.shares <= 255:
            raise ConfigError(
                f"hsm.threshold {self.threshold} of hsm.shares {self.shares} is impossible; "
                "need 1 <= threshold <= shares <= 255"
            )
        if self.threshold < 2 and self.shares > 1:
            raise ConfigError("hsm.threshold must be at least 2: one key manager alone may not activate")

    @property
    def signer_pool_size(self) -> int:
        """signer_processes with 0 read as the number of CPUs this process may run on."""
        return self.signer_processes or len(os.sched_getaffinity(0)) or 1

    @property
    def is_softhsm(self) -> bool:
        return "softhsm" in Path(self.module).name


@dataclasses.dataclass(frozen=True, slots=True)
class HierarchyConfig:
    bridge: CAConfig = CAConfig(name="bridge", subject="CN=Bridge CA,OU=Bridge CA,O=JPKI,C=JP")
    regional: tuple[CAConfig, ...] = tuple(regional_ca(p) for p in DEMO_REGIONAL)
    # The DNS name put in the TLS and CVS server certificates (RFC 6761 keeps .localhost local;
    # a bare "localhost" is not a valid dNSName for pkilint).
    server_name: str = "revoca.localhost"

    def __post_init__(self) -> None:
        names = [self.bridge.name] + [r.name for r in self.regional]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigError(f"hierarchy: CA names must be unique, repeated: {', '.join(sorted(dupes))}")


@dataclasses.dataclass(frozen=True, slots=True)
class RepositoryConfig:
    """The LDAP repository revoca runs itself (a local slapd on loopback under data_dir/ldap)."""

    base_dn: str = "o=JPKI,c=JP"
    port: int = 1389
    # Other providers of the same directory (multi-provider syncrepl / mirror mode, the same rootdn
    # and password), "ldap://host:port/": the publisher writes to the next when one is down.
    providers: tuple[str, ...] = ()
    # Seconds between the publisher's rounds when its queue is idle, and between a standby
    # publisher's asks for the lease: a new list is in the directory, and a standby has taken over
    # from a publisher that went, within about this (`revoca serve publisher --poll` overrides it).
    publisher_poll_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"repository.port {self.port} is not a TCP port")
        if isinstance(self.publisher_poll_seconds, bool) or not isinstance(self.publisher_poll_seconds, int | float) \
                or not 0.1 <= self.publisher_poll_seconds <= 3600:
            raise ConfigError("repository.publisher_poll_seconds must be a number of seconds, 0.1 to 3600")
        if isinstance(self.providers, str) or not all(isinstance(p, str) for p in self.providers):
            raise ConfigError('repository.providers must be a list of URLs such as ["ldap://10.0.0.2:1389/"]')
        object.__setattr__(self, "providers", tuple(self.providers))
        for url in self.providers:
            split_ldap_url(url)
        if not all("=" in rdn and rdn.split("=", 1)[1] for rdn in self.base_dn.split(",")):
            raise ConfigError(f"repository.base_dn {self.base_dn!r} is not a DN such as o=JPKI,c=JP")


def split_ldap_url(url: str) -> tuple[str, int]:
    """"ldap://host:port/" (or without the slash) -> (host, port); port 389 when not given."""
    m = re.fullmatch(r"ldap://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?/?", url.strip())
    if m is None or not 1 <= int(m[2] or 389) <= 65535:
        raise ConfigError(f"repository.providers: {url!r} is not an LDAP URL such as ldap://10.0.0.2:1389/")
    return m[1].strip("[]"), int(m[2] or 389)


def split_ntp_server(server: str) -> tuple[str, int]:
    """"host", "host:port", "[v6 address]" or "[v6 address]:port" -> (host, port); port 123 by default."""
    text = server.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigError(f"time.ntp_servers: {server!r} is not host, host:port or [address]:port")
        port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:  # a name, an IPv4 address or a bare IPv6 address
        host, port = text, ""
    if not host or any(c.isspace() for c in host):
        raise ConfigError(f"time.ntp_servers: {server!r} names no host")
    if not port:
        return host, 123
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"time.ntp_servers: {server!r} has no valid UDP port")
    return host, int(port)


@dataclasses.dataclass(frozen=True, slots=True)
class TimeConfig:
    """Trusted time (seed 004 6.8, seed 000 1.3.3): the NTP servers the clock is checked against
    before anything is signed.  No server (the embedded default) means signing on the system
    clock unchecked, with one warning per process; see ca.trusted_time for the policy."""

    ntp_servers: tuple[str, ...] = ()
    max_offset_s: float = 1.0  # seed 000 1.3.3: stop issuing beyond +-1 s
    timeout_s: float = 2.0  # per server, all queried at once
    recheck_s: float = 60.0  # how long a good check is reused (keeps OCSP's hot path free)
    # where ntp_servers came from (revoca.toml, the environment, or the machine's own time
    # daemon: ca.config.system_ntp); set by load_settings, shown at start-up
    ntp_source: str = ""

    def __post_init__(self) -> None:
        servers = self.ntp_servers
        if not isinstance(servers, list | tuple) or not all(isinstance(s, str) for s in servers):
            raise ConfigError('time.ntp_servers must be a list of "host[:port]" strings')
        for server in servers:
            split_ntp_server(server)
        object.__setattr__(self, "ntp_servers", tuple(s.strip() for s in servers))
        for name, low, high in (("max_offset_s", 0.001, 3600), ("timeout_s", 0.001, 60), ("recheck_s", 0, 86400)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ConfigError(f"time.{name} must be a number of seconds from {low:g} to {high:g}, not {value!r}")
            object.__setattr__(self, name, float(value))
        if len(set(self.ntp_servers)) != len(self.ntp_servers):
            raise ConfigError("time.ntp_servers: a server is listed twice")


@dataclasses.dataclass(frozen=True, slots=True)
class CRLConfig:
    """Seed 004 4.9.7: issued every 24 hours, valid 72 hours; warn when less than 24 hours remain.

    Refused at start-up rather than discovered in production: a period that is not shorter
    than the validity (relying parties would see expired CRLs), and a warning threshold that
    normal operation would cross (period + warning longer than validity).
    """

    validity_hours: int = 72
    period_hours: int = 24
    warn_hours: int = 24
    # Delta CRLs (RFC 5280 5.2.4): every delta_period_minutes (0: none, and complete CRLs carry
    # no Freshest CRL), at once when delta_burst revocations wait since the last one; each
    # valid delta_validity_minutes.  delta_host: host[:port] verifiers reach the repository at,
    # named in the Freshest CRL URL (empty: ldap:///..., their own configured server).
    delta_period_minutes: int = 60
    delta_validity_minutes: int = 180
    delta_burst: int = 1000
    delta_host: str = ""

    def __post_init__(self) -> None:
        for name in ("validity_hours", "period_hours", "warn_hours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"crl.{name} must be a positive whole number of hours, not {value!r}")
        for name in ("delta_period_minutes", "delta_validity_minutes", "delta_burst"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"crl.{name} must be a whole number, 0 or more, not {value!r}")
        if self.deltas and self.delta_validity_minutes <= self.delta_period_minutes:
            raise ConfigError(f"crl.delta_validity_minutes ({self.delta_validity_minutes}) must be longer than "
                              f"crl.delta_period_minutes ({self.delta_period_minutes}), or delta CRLs expire "
                              "before their successors are issued")
        if self.deltas and self.delta_period_minutes >= self.period_hours * 60:
            raise ConfigError(f"crl.delta_period_minutes ({self.delta_period_minutes}) must be shorter than "
                              f"crl.period_hours ({self.period_hours} h); 0 turns delta CRLs off")
        if not isinstance(self.delta_host, str) or not all(c.isalnum() or c in "-.:[]" for c in self.delta_host):
            raise ConfigError(f"crl.delta_host must be host or host:port, not {self.delta_host!r}")
        if self.period_hours >= self.validity_hours:
            raise ConfigError(f"crl.period_hours ({self.period_hours}) must be shorter than crl.validity_hours "
                              f"({self.validity_hours}), or CRLs expire before their successors are issued")
        if self.period_hours + self.warn_hours > self.validity_hours:
            raise ConfigError(f"crl.period_hours + crl.warn_hours ({self.period_hours} + {self.warn_hours}) must "
                              f"not exceed crl.validity_hours ({self.validity_hours}), or every CRL would warn "
                              "before its successor is due")

    @property
    def validity(self) -> dt.timedelta:
        return dt.timedelta(hours=self.validity_hours)

    @property
    def period(self) -> dt.timedelta:
        return dt.timedelta(hours=self.period_hours)

    @property
    def warn_before(self) -> dt.timedelta:
        return dt.timedelta(hours=self.warn_hours)

    @property
    def deltas(self) -> bool:
        return self.delta_period_minutes > 0

    @property
    def delta_period(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.delta_period_minutes)

    @property
    def delta_validity(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.delta_validity_minutes)


def _rate(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1_000_000:
        raise ConfigError(f"{where} must be a number of requests per second from 0 (no limit) to 1000000, "
                          f"not {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True, slots=True)
class OCSPConfig:
    """Rate limits of the responder, per worker process and per second (0: none); beyond them a
    client address gets HTTP 429 with Retry-After and a verifier gets tryLater (RFC 6960 2.3).
    Behind a load balancer every request comes from its address: raise or zero the address limit."""

    rate_per_address: float = 1000.0
    rate_per_verifier: float = 1000.0
    # The passphrase of responder key files, kept apart from them (ocsp.keys.passphrase_path).
    passphrase_file: str = ""
    # Sign every answer with the CA key itself (RFC 6960 2.6), as `revoca serve ocsp --ca-signed`
    # does; the signer must allow it too ([hsm] ocsp_ca_keys).  Off, answers are signed only by
    # a valid delegated responder certificate, and a CA key without one is answered tryLater.
    ca_signed: bool = False
    # `revoca status` warns when the last valid responder certificate of a CA key ends within this.
    responder_warn_days: int = 30
    # The key of the delegated responder certificates the ceremony and a rollover make in the token
    # (`revoca ocsp renew --algorithm` chooses per renewal). P-256 by default: a nonce or an unknown
    # serial costs one signature per query, and SoftHSM2 signs P-256 many times faster than
    # RSA-2048 (issue 16); RSA keys remain for relying parties that cannot verify ECDSA.
    responder_algorithm: str = "p256"

    def __post_init__(self) -> None:
        for name in ("rate_per_address", "rate_per_verifier"):
            object.__setattr__(self, name, _rate(f"ocsp.{name}", getattr(self, name)))
        if not isinstance(self.passphrase_file, str):
            raise ConfigError(f"ocsp.passphrase_file must be a path, not {self.passphrase_file!r}")
        if not isinstance(self.ca_signed, bool):
            raise ConfigError(f"ocsp.ca_signed must be true or false, not {self.ca_signed!r}")
        if self.responder_algorithm not in KEY_ALGORITHMS:
            raise ConfigError(f"ocsp.responder_algorithm {self.responder_algorithm!r} is not one of "
                              f"{', '.join(KEY_ALGORITHMS)}")
        days = self.responder_warn_days
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
            raise ConfigError(f"ocsp.responder_warn_days must be a number of days from 1 to 365 (a responder "
                              f"certificate lasts one year), not {days!r}")

    @property
    def responder_warn_before(self) -> dt.timedelta:
        return dt.timedelta(days=self.responder_warn_days)


@dataclasses.dataclass(frozen=True, slots=True)
class TSAConfig:
    """Who may ask the time-stamp authority, and how fast: `allowed_clients` lists addresses or
    networks ("10.0.0.0/8", "::1"; empty: anyone who can reach it); `rate_per_address` is per
    worker process and per second (0: no limit), beyond it HTTP 429 with Retry-After."""

    rate_per_address: float = 50.0
    allowed_clients: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_per_address", _rate("tsa.rate_per_address", self.rate_per_address))
        clients = self.allowed_clients
        if not isinstance(clients, list | tuple) or not all(isinstance(c, str) for c in clients):
            raise ConfigError('tsa.allowed_clients must be a list of addresses or networks such as "10.0.0.0/8"')
        for client in clients:
            try:
                ipaddress.ip_network(client.strip(), strict=False)
            except ValueError as exc:
                raise ConfigError(f"tsa.allowed_clients: {client!r} is not an address or network") from exc
        object.__setattr__(self, "allowed_clients", tuple(c.strip() for c in clients))


@dataclasses.dataclass(frozen=True, slots=True)
class BackupConfig:
    """Seed 004 5.4.5, 5.5.4: daily backups.  `dir` should be on another disk or machine than the
    data directory (default: <data_dir>/backups, which protects against mistakes, not against
    losing the disk); daily backups older than `keep_days` are removed unless recorded as copied
    to external media; `revoca status` warns when the newest verified one is older than
    `max_age_hours`."""

    dir: str = ""
    keep_days: int = 31
    max_age_hours: int = 36

    def __post_init__(self) -> None:
        for name in ("keep_days", "max_age_hours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"backup.{name} must be a positive whole number, not {value!r}")


#: Record kinds the seeds keep longer than others, kept at least this many years unless
#: [audit.retention_by_kind] names them: seed 000 4.5 keeps the records that assure time quality
#: (the clock checks) and the time-stamp authority's records 10 years.
SEED_RETENTION_FLOORS: tuple[tuple[str, int], ...] = (("time.*", 10), ("tsa.*", 10))
MAX_RETENTION_YEARS = 100


@dataclasses.dataclass(frozen=True, slots=True)
class AuditConfig:
    """How long audit records stay in the database before `revoca audit prune` may delete them
    (they are archived first, ca.archive).  Seed 004 5.4.3 asks at least 1 year, seed 003 7
    years, seed 000 10 years for its logs: the default is 10.  `retention_by_kind` overrides it
    per record kind, an event type ("operator.login") or a prefix ("ocsp.*"), in whole years;
    the most specific match wins.  SEED_RETENTION_FLOORS keep some kinds longer than a lowered
    default unless named here."""

    retention_years: int = 10
    retention_by_kind: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        _retention_years("audit.retention_years", self.retention_years)
        by_kind = self.retention_by_kind
        if isinstance(by_kind, dict):
            by_kind = tuple(by_kind.items())
        if not isinstance(by_kind, tuple):
            raise ConfigError('[audit.retention_by_kind] must be a table such as {"ocsp.*" = 7}')
        for kind, years in by_kind:
            head = kind[:-2] if isinstance(kind, str) and kind.endswith(".*") else kind
            if not isinstance(head, str) or not head or not all(c.isalnum() or c in "._-" for c in head) \
                    or head.startswith(".") or head.endswith("."):
                raise ConfigError(f"[audit.retention_by_kind]: {kind!r} is not an event type (operator.login) "
                                  "or a prefix (ocsp.*)")
            _retention_years(f"[audit.retention_by_kind] {kind}", years)
        object.__setattr__(self, "retention_by_kind", tuple(sorted(by_kind)))

    def years_for(self, event_type: str) -> int:
        """The retention of one record kind, in whole years."""
        named = _most_specific(self.retention_by_kind, event_type)
        if named is not None:
            return named
        floor = _most_specific(SEED_RETENTION_FLOORS, event_type)
        return max(self.retention_years, floor or 0)

    def shortest_years(self) -> int:
        """No record kind is kept less than this."""
        return min([self.retention_years, *(years for _kind, years in self.retention_by_kind)])


def _retention_years(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RETENTION_YEARS:
        raise ConfigError(f"{where} must be a whole number of years from 1 (seed 004 5.4.3) to "
                          f"{MAX_RETENTION_YEARS}, not {value!r}")


def _most_specific(rules: tuple[tuple[str, int], ...], event_type: str) -> int | None:
    """The years of the rule naming `event_type` exactly, else of its longest matching prefix."""
    best: tuple[int, int] | None = None  # (length of the match, years)
    for kind, years in rules:
        if kind == event_type:
            return years
        if kind.endswith(".*") and event_type.startswith(kind[:-1]) and (best is None or len(kind) > best[0]):
            best = (len(kind), years)
    return None if best is None else best[1]


@dataclasses.dataclass(frozen=True, slots=True)
class OperatorsConfig:
    """The officers' passwords are changed periodically (seed 004 5.2.3): a CLI login with a
    password older than `max_password_age_days` is refused (except `revoca operator passwd`, which
    sets a new one), and within `warn_days` of that age each login warns (ca.officers.passwords)."""

    max_password_age_days: int = 90
    warn_days: int = 14

    def __post_init__(self) -> None:
        for name in ("max_password_age_days", "warn_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3650:
                raise ConfigError(f"operators.{name} must be a whole number of days from 0 to 3650, not {value!r}")
        if not 0 <= self.warn_days < self.max_password_age_days:
            raise ConfigError(f"operators.warn_days ({self.warn_days}) must be less than "
                              f"operators.max_password_age_days ({self.max_password_age_days})")

    @property
    def password_policy(self) -> PasswordPolicy:
        return PasswordPolicy.from_days(self.max_password_age_days, self.warn_days)


@dataclasses.dataclass(frozen=True, slots=True)
class CAPolicyConfig:
    """`[ca]`: what the CAs revoca runs may still do (seed 004 5.6, 1.3.1.2).

    `new_keys = false` (the default: the seed's CA, winding down) refuses a key rollover and
    the issuance of new subscriber certificates, each with one line and an audit record
    (ca.lifecycle.key_policy); the key ceremony that starts a brand-new CA (`revoca init`) is not
    affected.  A deployment that renews its keys sets `new_keys = true`."""

    new_keys: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.new_keys, bool):
            raise ConfigError(f"ca.new_keys must be true or false, not {self.new_keys!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class IdentityConfig:
    """The Unix user each service runs as, and the group that may reach the signer's socket.

    `revoca run` started as root creates the ones missing and starts each service as its own
    user (issue 12); the signer tells its callers apart by them (ca.hsm.callers)."""

    signer: str = "revoca-hsm"
    ra: str = "revoca-ra"
    ocsp: str = "revoca-ocsp"
    tsa: str = "revoca-tsa"
    status: str = "revoca-status"
    scheduler: str = "revoca-scheduler"
    publisher: str = "revoca-publisher"
    web: str = "revoca-web"  # the public web repository (ca.web)
    cvs: str = "revoca-cvs"  # the certificate validation server (ca.cvs)
    ldap: str = "revoca-ldap"
    signer_clients: str = "revoca-signer"  # group: may connect to the HSM socket
    data_group: str = "revoca-data"  # group: the database and the data directory itself
    crl_readers: str = "revoca-crls"  # group: the CRL spool (scheduler writes, publisher reads)
    # "auto": own identities when `revoca run` starts as root; "off": every service as the caller
    mode: str = "auto"

    USERS = ("signer", "ra", "ocsp", "tsa", "status", "scheduler", "publisher", "web", "cvs", "ldap")
    GROUPS = ("signer_clients", "data_group", "crl_readers")

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "off"):
            raise ConfigError(f'identities.mode must be "auto" or "off", not {self.mode!r}')
        for field in (*self.USERS, *self.GROUPS):
            name = getattr(self, field)
            if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
                raise ConfigError(f"identities.{field} must be a user or group name, not {name!r}")
        users = [getattr(self, f) for f in self.USERS]
        if len(set(users)) != len(users):
            raise ConfigError("identities: each service needs a user of its own")


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str = ""
    # A read-only replica (a PostgreSQL streaming standby) the OCSP responders read statuses from;
    # "" reads from database_url.  Everything that writes still goes to database_url (issue 15).
    database_read_url: str = ""
    # Bounded staleness of those reads: a status is read from the replica only while it has replayed
    # everything the primary had written this many milliseconds ago (and every revocation the primary
    # held at the last sample); otherwise from the primary (ca.storage.replica_lag).
    database_read_max_lag_ms: int = 1000
    # PostgreSQL: each service's connections SET ROLE to its own role (ca.storage.grants)
    database_role_per_service: bool = False
    hsm: HSMConfig = HSMConfig()
    hierarchy: HierarchyConfig = HierarchyConfig()
    crl: CRLConfig = CRLConfig()
    repository: RepositoryConfig = RepositoryConfig()
    time: TimeConfig = TimeConfig()
    ocsp: OCSPConfig = OCSPConfig()
    tsa: TSAConfig = TSAConfig()
    identities: IdentityConfig = IdentityConfig()
    backup: BackupConfig = BackupConfig()
    audit: AuditConfig = AuditConfig()
    operators: OperatorsConfig = OperatorsConfig()
    ca: CAPolicyConfig = CAPolicyConfig()

    def __post_init__(self) -> None:
        if not isinstance(self.database_role_per_service, bool):
            raise ConfigError("database_role_per_service must be true or false")
        if not isinstance(self.database_read_url, str):
            raise ConfigError("database_read_url must be a database URL (a string)")
        if isinstance(self.database_read_max_lag_ms, bool) or not isinstance(self.database_read_max_lag_ms, int) \
                or not 10 <= self.database_read_max_lag_ms <= 3_600_000:
            raise ConfigError("database_read_max_lag_ms must be a whole number of milliseconds, 10 to 3600000")

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'revoca.db'}"

    @property
    def read_url(self) -> str:
        """Where a reader that may lag behind (the OCSP responders' status reads) reads: the replica, if any."""
        return self.database_read_url or self.db_url

    @property
    def hsm_socket(self) -> Path:
        return Path(self.hsm.socket) if self.hsm.socket else self.data_dir / "run" / "hsm.sock"

    @property
    def softhsm_conf(self) -> Path:
        return Path(self.hsm.softhsm_conf) if self.hsm.softhsm_conf else self.data_dir / "softhsm2.conf"

    @property
    def ldap_dir(self) -> Path:
        return self.data_dir / "ldap"

    @property
    def backup_dir(self) -> Path:
        return Path(self.backup.dir) if self.backup.dir else self.data_dir / "backups"

    @property
    def demo_shares_dir(self) -> Path:
        return self.data_dir / "demo-shares"


def _strict(cls: type, table: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dict(table)


def _ca(table: Any, where: str) -> CAConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table with name and subject")
    return CAConfig(**_strict(CAConfig, table, where))


def _hierarchy(table: dict[str, Any]) -> HierarchyConfig:
    values = _strict(HierarchyConfig, table, "[hierarchy]")
    if "bridge" in values:
        values["bridge"] = _ca(values["bridge"], "[hierarchy.bridge]")
    if "regional" in values:
        regional = values["regional"]
        if regional == "all":
            values["regional"] = tuple(regional_ca(p) for p in PREFECTURES)
        elif isinstance(regional, list):
            values["regional"] = tuple(
                regional_ca(r) if isinstance(r, str) else _ca(r, "[[hierarchy.regional]]")
                for r in regional
            )
        else:
            raise ConfigError('hierarchy.regional must be "all" or a list of prefectures or tables')
    return HierarchyConfig(**values)


# Environment overrides: REVOCA_<NAME> for top-level keys, REVOCA_HSM_<NAME> for [hsm], and so on.
def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in ("data_dir", "database_url", "database_read_url"):
        if f"REVOCA_{f.upper()}" in env:
            out[f] = env[f"REVOCA_{f.upper()}"]
    if "REVOCA_DATABASE_READ_MAX_LAG_MS" in env:
        out["database_read_max_lag_ms"] = _parsed(env, "REVOCA_DATABASE_READ_MAX_LAG_MS", int, "an integer")
    hsm: dict[str, Any] = {}
    for fld in dataclasses.fields(HSMConfig):
        key = f"REVOCA_HSM_{fld.name.upper()}"
        if key in env:
            if fld.type == "int":
                hsm[fld.name] = _parsed(env, key, int, "an integer")
            elif fld.type == "bool":
                hsm[fld.name] = _parsed(env, key, _boolean, "true or false")
            else:
                hsm[fld.name] = env[key]
    if hsm:
        out["hsm"] = hsm
    crl: dict[str, Any] = {}
    if "REVOCA_CRL_DELTA_HOST" in env:
        crl["delta_host"] = env["REVOCA_CRL_DELTA_HOST"]
    for f in ("validity_hours", "period_hours", "warn_hours", "delta_period_minutes", "delta_validity_minutes",
              "delta_burst"):
        key = f"REVOCA_CRL_{f.upper()}"
        if key in env:
            crl[f] = _parsed(env, key, int, "an integer")
    if crl:
        out["crl"] = crl
    repository: dict[str, Any] = {}
    if "REVOCA_REPOSITORY_BASE_DN" in env:
        repository["base_dn"] = env["REVOCA_REPOSITORY_BASE_DN"]
    if "REVOCA_REPOSITORY_PROVIDERS" in env:  # comma-separated
        repository["providers"] = tuple(u.strip() for u in env["REVOCA_REPOSITORY_PROVIDERS"].split(",") if u.strip())
    if "REVOCA_REPOSITORY_PORT" in env:
        repository["port"] = _parsed(env, "REVOCA_REPOSITORY_PORT", int, "an integer")
    if "REVOCA_REPOSITORY_PUBLISHER_POLL_SECONDS" in env:
        repository["publisher_poll_seconds"] = _parsed(env, "REVOCA_REPOSITORY_PUBLISHER_POLL_SECONDS", float,
                                                       "a number of seconds")
    if repository:
        out["repository"] = repository
    if time := _time_overrides(env):
        out["time"] = time
    for table, fields in (("ocsp", ("rate_per_address", "rate_per_verifier")), ("tsa", ("rate_per_address",))):
        numbers = {f: _parsed(env, key, float, "a number") for f in fields
                   if (key := f"REVOCA_{table.upper()}_{f.upper()}") in env}
        if numbers:
            out[table] = numbers
    if "REVOCA_CA_NEW_KEYS" in env:
        out["ca"] = {"new_keys": _parsed(env, "REVOCA_CA_NEW_KEYS", _boolean, "true or false")}
    if "REVOCA_AUDIT_RETENTION_YEARS" in env:
        out["audit"] = {"retention_years": _parsed(env, "REVOCA_AUDIT_RETENTION_YEARS", int, "a whole number of years")}
    operators = {f: _parsed(env, key, int, "a whole number of days") for f in ("max_password_age_days", "warn_days")
                 if (key := f"REVOCA_OPERATORS_{f.upper()}") in env}
    if operators:
        out["operators"] = operators
    return out


def _time_overrides(env: dict[str, str]) -> dict[str, Any]:
    """REVOCA_TIME_NTP_SERVERS is a comma-separated list (empty: none); the others are seconds."""
    time: dict[str, Any] = {}
    if (servers := env.get("REVOCA_TIME_NTP_SERVERS")) is not None:
        time["ntp_servers"] = [s.strip() for s in servers.split(",") if s.strip()]
    for f in ("max_offset_s", "timeout_s", "recheck_s"):
        key = f"REVOCA_TIME_{f.upper()}"
        if key in env:
            time[f] = _parsed(env, key, float, "a number of seconds")
    return time


def _boolean(text: str) -> bool:
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text.strip().lower())
    if value is None:
        raise ValueError(text)
    return value


def _parsed(env: dict[str, str], key: str, convert: Callable[[str], Any], what: str) -> Any:
    try:
        return convert(env[key])
    except ValueError as exc:
        raise ConfigError(f"{key} must be {what}, not {env[key]!r}") from exc


def load_settings(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None, *,
                  system_root: Path = Path("/")) -> Settings:
    """Read revoca.toml (REVOCA_CONFIG, else ./revoca.toml if present) and apply REVOCA_* overrides;
    NTP servers default to the machine's own (read under `system_root`)."""
    env = dict(os.environ) if env is None else env
    path = path or env.get("REVOCA_CONFIG")
    raw: dict[str, Any] = {}
    if path is None and Path("revoca.toml").exists():
        path = "revoca.toml"
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    overrides = _env_overrides(env)
    tables = ("hsm", "crl", "repository", "time", "ocsp", "tsa", "audit", "operators", "ca")
    raw = {**raw, **{k: v for k, v in overrides.items() if k not in tables}}
    for table in tables:
        if table in overrides:
            raw[table] = {**raw.get(table, {}), **overrides[table]}
    raw["time"] = {**raw.get("time", {}), **_ntp_servers(raw.get("time", {}), overrides.get("time", {}), path,
                                                         system_root)}
    return settings_from_dict(raw)


def _ntp_servers(time: dict[str, Any], from_env: dict[str, Any], path: str | os.PathLike[str] | None,
                 system_root: Path) -> dict[str, Any]:
    """Where the servers come from: the environment, revoca.toml, else the machine's own time
    daemon (issue 15: NTP by default wherever the machine has any)."""
    if "ntp_servers" in from_env:
        return {"ntp_source": "REVOCA_TIME_NTP_SERVERS"}
    if "ntp_servers" in time:
        return {"ntp_source": str(path)}
    from ca.config.system_ntp import discover

    found = discover(system_root)
    return {"ntp_servers": list(found.servers), "ntp_source": found.source}


def settings_from_dict(raw: dict[str, Any]) -> Settings:
    values = _strict(Settings, raw, "revoca.toml")
    try:
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        if "hsm" in values:
            values["hsm"] = HSMConfig(**_strict(HSMConfig, values["hsm"], "[hsm]"))
        if "hierarchy" in values:
            values["hierarchy"] = _hierarchy(values["hierarchy"])
        if "repository" in values:
            values["repository"] = RepositoryConfig(**_strict(RepositoryConfig, values["repository"], "[repository]"))
        if "crl" in values:
            values["crl"] = CRLConfig(**_strict(CRLConfig, values["crl"], "[crl]"))
        if "time" in values:
            values["time"] = TimeConfig(**_strict(TimeConfig, values["time"], "[time]"))
        if "ocsp" in values:
            values["ocsp"] = OCSPConfig(**_strict(OCSPConfig, values["ocsp"], "[ocsp]"))
        if "tsa" in values:
            values["tsa"] = TSAConfig(**_strict(TSAConfig, values["tsa"], "[tsa]"))
        if "backup" in values:
            values["backup"] = BackupConfig(**_strict(BackupConfig, values["backup"], "[backup]"))
        if "operators" in values:
            values["operators"] = OperatorsConfig(**_strict(OperatorsConfig, values["operators"], "[operators]"))
        if "identities" in values:
            values["identities"] = IdentityConfig(**_strict(IdentityConfig, values["identities"], "[identities]"))
        if "audit" in values:
            values["audit"] = AuditConfig(**_strict(AuditConfig, values["audit"], "[audit]"))
        if "ca" in values:
            values["ca"] = CAPolicyConfig(**_strict(CAPolicyConfig, values["ca"], "[ca]"))
        return Settings(**values)
    except TypeError as exc:
        raise ConfigError(f"revoca.toml: {exc}") from exc
