"""An LDAPv3 connection to the repository (ldap3), with the few operations revoca needs.

Errors come out as revoca errors: `RepositoryUnavailable` when the directory cannot be
reached (the publisher keeps its queue and retries), `RepositoryError` when it answered no.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

import ldap3
from ldap3.core import exceptions as ldap_exc
from ldap3.operation.search import compile_filter, parse_filter
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn, safe_dn
from pyasn1.codec.ber import encoder as ber_encoder

from ca.errors import RevocaError, ServiceUnavailable
from repository import wire

# ldap3 receives in SOCKET_SIZE pieces and re-joins what it has after each one, which is
# quadratic: a 39 MB CRL took 69 s to read with the default 4 KiB and 0.2 s with 4 MiB.
ldap3.set_config_parameter("SOCKET_SIZE", 4 << 20)

ASSERTION_CONTROL = "1.3.6.1.1.12"  # RFC 4528: apply the operation only if the entry matches
NO_SUCH_OBJECT = 32
ASSERTION_FAILED = 122
_T = TypeVar("_T")
LARGE = 1 << 20  # values from this size on (CRLs) are written and read through repository.wire
_CODES = {0: "success", 32: "noSuchObject", 50: "insufficientAccessRights", 53: "unwillingToPerform",
          65: "objectClassViolation", 122: "assertionFailed"}


_CONNECTION_ERRORS = (ldap_exc.LDAPSocketOpenError, ldap_exc.LDAPSocketReceiveError, ldap_exc.LDAPSocketSendError,
                      ldap_exc.LDAPSessionTerminatedByServerError, ldap_exc.LDAPResponseTimeoutError, OSError)


class RepositoryError(RevocaError):
    """The directory refused an operation; the message names the entry and LDAP's reason."""


class RepositoryUnavailable(ServiceUnavailable):
    """The directory could not be reached or did not answer in time."""


class AssertionFailed(RepositoryError):
    """The entry changed between reading and writing (another writer got there first)."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the directory is and whom to bind as."""

    host: str
    port: int
    bind_dn: str | None = None
    password: str | None = None
    timeout: float = 10.0

    @property
    def uri(self) -> str:
        return f"ldap://{self.host}:{self.port}/"


@dataclasses.dataclass(frozen=True)
class Entry:
    dn: str
    attributes: dict[str, list[bytes]]  # keys in lower case, options kept (e.g. "cacertificate;binary")
    csn: str | None  # entryCSN: changes on every write, so it serves as a version for conditional writes

    def values(self, name: str) -> list[bytes]:
        return self.attributes.get(name.lower(), [])


def normal_dn(dn: str) -> str:
    """A DN in the form used for comparison (attribute types lower case, spaces trimmed)."""
    return safe_dn(dn).lower()


def parent_dns(dn: str, base_dn: str) -> list[str]:
    """The DNs between `base_dn` (exclusive) and `dn` (inclusive), outermost first."""
    rdns = [f"{attr}={value}" for attr, value, _sep in parse_dn(dn, escape=True)]
    base_len = len(parse_dn(base_dn))
    return [",".join(rdns[i:]) for i in range(len(rdns) - base_len - 1, -1, -1)]


def is_under(dn: str, base_dn: str) -> bool:
    return normal_dn(dn).endswith("," + normal_dn(base_dn)) or normal_dn(dn) == normal_dn(base_dn)


class Directory:
    """One bound connection; use as a context manager (`with Directory(endpoint) as d:`)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._conn: ldap3.Connection | None = None

    def __enter__(self) -> Directory:
        ep = self.endpoint
        seconds = max(1, round(ep.timeout))  # ldap3 wants whole seconds
        server = ldap3.Server(ep.host, port=ep.port, connect_timeout=seconds, get_info=ldap3.NONE)
        try:
            conn = ldap3.Connection(server, user=ep.bind_dn, password=ep.password, receive_timeout=seconds,
                                    raise_exceptions=False, read_only=False, auto_referrals=False)
            if not conn.bind():
                result = conn.result or {}
                raise RepositoryError(f"LDAP bind as {ep.bind_dn or 'anonymous'} at {ep.uri} refused: "
                                      f"{result.get('description', 'no answer')} {result.get('message', '')}".strip())
        except _CONNECTION_ERRORS as exc:
            raise RepositoryUnavailable(f"LDAP directory at {ep.uri} unreachable: {_reason(exc)}") from exc
        self._conn = conn
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.unbind()
            self._conn = None

    @property
    def conn(self) -> ldap3.Connection:
        if self._conn is None:
            raise RuntimeError("Directory used outside its with block")
        return self._conn

    def _call(self, what: str, dn: str, fn, *args, **kwargs):
        try:
            ok = fn(*args, **kwargs)
        except _CONNECTION_ERRORS as exc:
            raise RepositoryUnavailable(f"LDAP {what} {dn}: connection to {self.endpoint.uri} lost: "
                                        f"{_reason(exc)}") from exc
        return ok, self.conn.result or {}

    # -- reading -----------------------------------------------------------------------------

    def read(self, dn: str, attributes: Iterable[str] = ("*",)) -> Entry | None:
        """The entry at `dn` with the attributes asked for (and its entryCSN), or None if there is none."""
        attrs = [*attributes, "entryCSN"]
        ok, result = self._call("read", dn, self.conn.search, dn, "(objectClass=*)", search_scope=ldap3.BASE,
                                attributes=attrs)
        if result.get("result") == NO_SUCH_OBJECT:
            return None
        if result.get("result") not in (0, None):
            raise _refused("read", dn, result)
        found = [r for r in self.conn.response or [] if r.get("type") == "searchResEntry"]
        return _entry(found[0]) if found else None

    def read_large(self, dn: str, attributes: Iterable[str]) -> Entry | None:
        """`read` for attributes holding large values (CRLs), through repository.wire: the values
        are received into one buffer and copied once, not turned into pyasn1 objects and text."""
        def search() -> tuple[bool, dict, Entry | None]:
            conn = self.conn
            message_id = conn.server.next_message_id()
            wire.send(conn.socket, [wire.search_base_message(message_id, dn, [*attributes, "entryCSN"])])
            found: Entry | None = None
            while True:
                message = wire.parse(wire.receive(conn.socket))
                if message.message_id != message_id:
                    continue  # e.g. a notice of disconnection (id 0) would be followed by a closed socket
                if message.op == wire.SEARCH_ENTRY:
                    entry_dn, attrs = wire.parse_entry(message.body)
                    csn = attrs.pop("entrycsn", [None])[0]
                    found = Entry(dn=entry_dn, attributes=attrs, csn=csn.decode() if csn else None)
                elif message.op == wire.SEARCH_DONE:
                    done = wire.parse_result(message.body)
                    return done.code == 0, {"result": done.code, "description": _CODES.get(done.code, "error"),
                                            "message": done.message}, found
        ok, result, found = self._wire("read", dn, search)
        if result.get("result") == NO_SUCH_OBJECT:
            return None
        if not ok:
            raise _refused("read", dn, result)
        return found

    def _wire(self, what: str, dn: str, operation: Callable[[], _T]) -> _T:
        try:
            return operation()
        except (*_CONNECTION_ERRORS, wire.WireError) as exc:
            self._conn = None  # the exchange broke off mid-message: the connection is of no further use
            raise RepositoryUnavailable(f"LDAP {what} {dn}: connection to {self.endpoint.uri} lost: "
                                        f"{_reason(exc)}") from exc

    def _raw_modify(self, dn: str, changes: Mapping[str, Sequence[tuple[str, Sequence[object]]]],
                    controls: Sequence[tuple[str, bool, bytes]]) -> tuple[bool, dict]:
        conn = self.conn
        message_id = conn.server.next_message_id()
        encoded = [(wire.MODIFY_OPERATIONS[op], attr, [bytes(v) if isinstance(v, bytes | bytearray) else str(v).encode()
                                                       for v in values])
                   for attr, specs in changes.items() for op, values in specs]
        wire.send(conn.socket, wire.modify_message(message_id, dn, encoded, controls))
        while True:
            message = wire.parse(wire.receive(conn.socket))
            if message.message_id == message_id and message.op == wire.MODIFY_RESPONSE:
                done = wire.parse_result(message.body)
                return done.code == 0, {"result": done.code, "description": _CODES.get(done.code, "error"),
                                        "message": done.message}

    def attribute_types(self, dn: str) -> set[str]:
        """The names (lower case, without options) of the user attributes `dn` has, without their values."""
        ok, result = self._call("read", dn, self.conn.search, dn, "(objectClass=*)", search_scope=ldap3.BASE,
                                attributes=["*"], types_only=True)
        if result.get("result") not in (0, None):
            raise _refused("read", dn, result)
        found = [r for r in self.conn.response or [] if r.get("type") == "searchResEntry"]
        names = (found[0].get("raw_attributes") or {}).keys() if found else ()
        return {str(n).split(";", 1)[0].lower() for n in names}

    def search(self, base: str, filter_: str = "(objectClass=*)", *, attributes: Iterable[str] = ("*",),
               scope: str = "one") -> list[Entry]:
        scopes = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}
        ok, result = self._call("search", base, self.conn.search, base, filter_, search_scope=scopes[scope],
                                attributes=[*attributes, "entryCSN"])
        if result.get("result") == NO_SUCH_OBJECT:
            return []
        if result.get("result") not in (0, None):
            raise _refused("search", base, result)
        return [_entry(r) for r in self.conn.response or [] if r.get("type") == "searchResEntry"]

    # -- writing -----------------------------------------------------------------------------

    def add(self, dn: str, object_classes: Iterable[str], attributes: dict[str, object]) -> None:
        ok, result = self._call("add", dn, self.conn.add, dn, list(object_classes), attributes)
        if not ok:
            raise _refused("add", dn, result)

    def modify(self, dn: str, changes: Mapping[str, Sequence[tuple[str, Sequence[object]]]], *,
               if_csn: str | None = None) -> None:
        """Apply `changes`; with `if_csn`, only if the entry still has that entryCSN (else AssertionFailed).

        Changes carrying a value of LARGE bytes or more (a CRL) go out through repository.wire."""
        controls = [_assertion(f"(entryCSN={escape_filter_chars(if_csn)})")] if if_csn else None
        if any(isinstance(v, bytes | bytearray) and len(v) >= LARGE
               for specs in changes.values() for _op, values in specs for v in values):
            ok, result = self._wire("modify", dn, lambda: self._raw_modify(dn, changes, controls or []))
        else:
            ok, result = self._call("modify", dn, self.conn.modify, dn, changes, controls=controls)
        if not ok:
            if result.get("result") == ASSERTION_FAILED:
                raise AssertionFailed(f"LDAP entry {dn} changed while revoca was writing it; will read it again")
            raise _refused("modify", dn, result)

    def delete(self, dn: str) -> bool:
        """Delete `dn`; False when it was not there."""
        ok, result = self._call("delete", dn, self.conn.delete, dn)
        if result.get("result") == NO_SUCH_OBJECT:
            return False
        if not ok:
            raise _refused("delete", dn, result)
        return True

    def ensure_parents(self, dn: str, base_dn: str) -> None:
        """Create the entries between the base and `dn` (exclusive) that are missing."""
        for parent in parent_dns(dn, base_dn)[:-1]:
            if self.read(parent, ("1.1",)) is None:
                attr, value = _first_rdn(parent)
                classes = CONTAINER_CLASSES.get(attr)
                if classes is None:
                    raise RepositoryError(f"cannot create LDAP container {parent}: no object class for {attr}=")
                attrs: dict[str, object] = {attr: value}
                self.add(parent, classes, attrs)


#: Structural classes for the containers created above an entry, by the RDN's attribute type.
CONTAINER_CLASSES = {
    "ou": ("organizationalUnit",),
    "o": ("organization",),
    "l": ("locality",),
    "st": ("locality",),
    "c": ("country",),
    "cn": ("applicationProcess",),
    "dc": ("dcObject", "organization"),
}


def _first_rdn(dn: str) -> tuple[str, str]:
    attr, value, _sep = parse_dn(dn)[0]
    return attr.lower(), value


def _entry(raw: dict) -> Entry:
    attrs = {k.lower(): list(v) for k, v in (raw.get("raw_attributes") or {}).items()}
    csn = attrs.pop("entrycsn", [None])[0]
    return Entry(dn=raw["dn"], attributes=attrs, csn=csn.decode() if isinstance(csn, bytes) else csn)


def _assertion(filter_: str) -> tuple[str, bool, bytes]:
    node = parse_filter(filter_, None, auto_escape=True, auto_encode=True, validator=None, check_names=False)
    return (ASSERTION_CONTROL, True, ber_encoder.encode(compile_filter(node.elements[0])))


def _refused(what: str, dn: str, result: dict) -> RepositoryError:
    message = (result.get("message") or "").strip()
    return RepositoryError(f"LDAP {what} {dn} refused: {result.get('description', 'error')}"
                           f" ({result.get('result')}){': ' + message if message else ''}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


@contextlib.contextmanager
def connect(endpoint: Endpoint) -> Iterator[Directory]:
    with Directory(endpoint) as directory:
        yield directory
