"""LDAPv3 messages for the one value that is large (a national CRL, tens of MB), encoded and
parsed here rather than by ldap3 (RFC 4511 4.1.1, 4.5, 4.6; BER with definite lengths).

Why by hand: ldap3 builds every request as pyasn1 objects and keeps a decoded copy for its
log; for a 53 MB CRL that meant pyasn1 copying the value at each level of the message, and
ldap3 formatting the value into its error text when it failed to decode it as UTF-8 (about a
second of CPU per publication, issue 16).  Reading it back, ldap3 turns every value into
pyasn1 objects and tries to format it as text.  Here the value is sent as it is (the message
is header + value + trailer, written with three sends) and received into one buffer.

Only what the publisher needs: a Modify with controls (the assertion on the entryCSN) and a
base-scope Search for some attributes.  The messages go over the connection ldap3 already
bound (ldap3's synchronous strategy reads nothing between operations), with message ids from
ldap3's own counter.  tests/unit/repository/test_wire.py compares the encodings with ldap3's
and parses responses slapd sent.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Sequence

from ca.der import encoding as der

# RFC 4511 protocolOp tags (APPLICATION, constructed unless noted)
MODIFY_REQUEST = 0x66
MODIFY_RESPONSE = 0x67
SEARCH_REQUEST = 0x63
SEARCH_ENTRY = 0x64
SEARCH_DONE = 0x65
SEARCH_REFERENCE = 0x73
EXTENDED_RESPONSE = 0x78
ENUMERATED = 0x0A
BOOLEAN = 0x01
SET = 0x31
CONTROLS = 0xA0
PRESENT = 0x87  # Filter present [7] IMPLICIT AttributeDescription
MODIFY_OPERATIONS = {"MODIFY_ADD": 0, "MODIFY_DELETE": 1, "MODIFY_REPLACE": 2}

Control = tuple[str, bool, bytes | None]  # (OID, criticality, controlValue)


class WireError(Exception):
    """A message from the server that does not parse."""


def _string(value: str | bytes) -> bytes:
    return der.tlv(der.OCTET_STRING, value.encode() if isinstance(value, str) else value)


def _controls(controls: Sequence[Control]) -> bytes:
    if not controls:
        return b""
    body = b""
    for oid, critical, value in controls:
        body += der.tlv(der.SEQUENCE, _string(oid) + (der.TRUE if critical else b"")
                        + (_string(value) if value is not None else b""))
    return der.tlv(CONTROLS, body)


def modify_message(message_id: int, dn: str, changes: Sequence[tuple[int, str, Sequence[bytes | bytearray]]],
                   controls: Sequence[Control] = ()) -> list[bytes | memoryview]:
    """The ModifyRequest as pieces to send in order; values are not copied (the pieces around
    them are small)."""
    pieces: list[bytes | memoryview] = []
    change_parts: list[list[bytes | memoryview]] = []
    for operation, attribute, values in changes:
        vals: list[bytes | memoryview] = []
        for value in values:
            vals += [der.header(der.OCTET_STRING, len(value)), memoryview(value)]
        vals_len = sum(len(v) for v in vals)
        modification = [_string(attribute), der.header(SET, vals_len), *vals]
        mod_len = sum(len(p) for p in modification)
        change = [der.tlv(ENUMERATED, bytes([operation])), der.header(der.SEQUENCE, mod_len), *modification]
        change_parts.append([der.header(der.SEQUENCE, sum(len(p) for p in change)), *change])
    changes_len = sum(len(p) for part in change_parts for p in part)
    request = [_string(dn), der.header(der.SEQUENCE, changes_len), *(p for part in change_parts for p in part)]
    request_len = sum(len(p) for p in request)
    body = [der.integer(message_id), der.header(MODIFY_REQUEST, request_len), *request, _controls(controls)]
    pieces = [der.header(der.SEQUENCE, sum(len(p) for p in body)), *body]
    return pieces


def search_base_message(message_id: int, dn: str, attributes: Sequence[str]) -> bytes:
    """A base-scope SearchRequest for `attributes` with the filter (objectClass=*)."""
    request = (_string(dn) + der.tlv(ENUMERATED, b"\x00") + der.tlv(ENUMERATED, b"\x00") + der.integer(0)
               + der.integer(0) + der.tlv(BOOLEAN, b"\x00") + der.tlv(PRESENT, b"objectClass")
               + der.tlv(der.SEQUENCE, b"".join(_string(a) for a in attributes)))
    return der.tlv(der.SEQUENCE, der.integer(message_id) + der.tlv(SEARCH_REQUEST, request))


def send(sock: socket.socket, pieces: Sequence[bytes | memoryview]) -> None:
    for piece in pieces:
        sock.sendall(piece)


def _length(data: memoryview | bytes, offset: int) -> tuple[int, int]:
    """(content length, offset of the content) for the length octets at `offset`."""
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    n = first & 0x7F
    if n == 0 or n > 8:
        raise WireError("indefinite or oversized BER length in an LDAP message")
    return int.from_bytes(data[offset + 1:offset + 1 + n], "big"), offset + 1 + n


def _tlv(data: memoryview, offset: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at `offset`."""
    if offset + 2 > len(data):
        raise WireError("truncated LDAP message")
    length, start = _length(data, offset + 1)
    if start + length > len(data):
        raise WireError("truncated LDAP message")
    return data[offset], start, start + length


def _exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the LDAP server closed the connection")
        data += chunk
    return data


def receive(sock: socket.socket) -> memoryview:
    """One whole LDAPMessage from the socket, read into one buffer."""
    head = _exactly(sock, 2)
    if head[0] != der.SEQUENCE:
        raise WireError(f"an LDAP message starts with 0x{head[0]:02x}, not a SEQUENCE")
    if head[1] & 0x80:
        head += _exactly(sock, head[1] & 0x7F)
    length, start = _length(head, 1)
    buffer = bytearray(start + length)
    buffer[:start] = head
    view = memoryview(buffer)
    got = start
    while got < len(buffer):
        n = sock.recv_into(view[got:], min(len(buffer) - got, 8 << 20))
        if not n:
            raise ConnectionError("the LDAP server closed the connection")
        got += n
    return view


@dataclasses.dataclass(frozen=True)
class Message:
    message_id: int
    op: int  # protocolOp tag
    body: memoryview  # protocolOp contents


def parse(message: memoryview) -> Message:
    _tag, start, end = _tlv(message, 0)
    tag, id_start, id_end = _tlv(message, start)
    if tag != der.INTEGER:
        raise WireError("an LDAP message without a messageID")
    op, op_start, op_end = _tlv(message, id_end)
    return Message(int.from_bytes(message[id_start:id_end], "big", signed=True), op, message[op_start:op_end])


@dataclasses.dataclass(frozen=True)
class Result:
    code: int
    matched_dn: str
    message: str


def parse_result(body: memoryview) -> Result:
    _t, s1, e1 = _tlv(body, 0)
    _t, s2, e2 = _tlv(body, e1)
    _t, s3, e3 = _tlv(body, e2)
    return Result(int.from_bytes(body[s1:e1], "big"), bytes(body[s2:e2]).decode(errors="replace"),
                  bytes(body[s3:e3]).decode(errors="replace"))


def parse_entry(body: memoryview) -> tuple[str, dict[str, list[bytes]]]:
    """A SearchResultEntry: its DN and attributes (names as the server sent them, lower-cased)."""
    _t, s, e = _tlv(body, 0)
    dn = bytes(body[s:e]).decode()
    _t, list_start, list_end = _tlv(body, e)
    attributes: dict[str, list[bytes]] = {}
    offset = list_start
    while offset < list_end:
        _t, a_start, a_end = _tlv(body, offset)
        _t, n_start, n_end = _tlv(body, a_start)
        name = bytes(body[n_start:n_end]).decode().lower()
        _t, v_start, v_end = _tlv(body, n_end)
        values = attributes.setdefault(name, [])
        v = v_start
        while v < v_end:
            _t, s, e = _tlv(body, v)
            values.append(bytes(body[s:e]))
            v = e
        offset = a_end
    return dn, attributes
