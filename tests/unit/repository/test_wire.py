"""repository.wire without a server: the hand-written ModifyRequest and SearchRequest are byte
for byte what ldap3 (pyasn1) encodes for the same operation, and the parser reads messages that
ldap3 encodes.  The exchange with a real slapd is covered by tests/integration/repository."""

from __future__ import annotations

import socket
import threading

import ldap3
from ldap3.operation.modify import modify_operation
from ldap3.operation.search import search_operation
from ldap3.protocol.convert import build_controls_list
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.utils.conv import escape_filter_chars
from pyasn1.codec.ber import encoder

from repository import wire
from repository.directory import _assertion

DN = "CN=Governor of Tokyo,OU=Tokyo,OU=Prefectural CA,O=JPKI,C=JP"
ATTR = "certificateRevocationList;binary"


def ldap3_message(message_id: int, op: str, request: object, controls: object = None) -> bytes:
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = ProtocolOp().setComponentByName(op, request)
    if controls is not None:
        message["controls"] = build_controls_list(controls)
    return encoder.encode(message)


def test_modify_with_a_large_value_and_an_assertion_equals_ldap3s_encoding() -> None:
    value = bytes(range(256)) * 5000  # 1.28 MB, long-form lengths at every level
    controls = [_assertion(f"(entryCSN={escape_filter_chars('20261203081500.123456Z#000000#000#000000')})")]
    changes = {ATTR: [(ldap3.MODIFY_REPLACE, [value])], "objectClass": [(ldap3.MODIFY_ADD, ["certificationAuthority"])]}
    theirs = ldap3_message(7, "modifyRequest", modify_operation(DN, changes, auto_encode=True), controls)
    ours = b"".join(wire.modify_message(7, DN, [(2, ATTR, [value]), (0, "objectClass", [b"certificationAuthority"])],
                                        controls))
    # RFC 4511 5.1: a TRUE BOOLEAN is encoded as FF; pyasn1 writes 01 (any non-zero is BER's TRUE)
    assert ours == theirs.replace(b"\x04\x0c1.3.6.1.1.12\x01\x01\x01", b"\x04\x0c1.3.6.1.1.12\x01\x01\xff")


def test_base_search_equals_ldap3s_encoding() -> None:
    request = search_operation(DN, "(objectClass=*)", ldap3.BASE, ldap3.DEREF_NEVER, [ATTR, "entryCSN"], 0, 0,
                               False, auto_escape=True, auto_encode=True, schema=None, validator=None,
                               check_names=False)
    assert wire.search_base_message(300, DN, [ATTR, "entryCSN"]) == ldap3_message(300, "searchRequest", request)


def test_messages_are_received_whole_and_parsed_across_many_small_reads() -> None:
    value = b"\x30\x84" + bytes(3_000_000)
    entry = (wire.der.tlv(0x30, wire.der.integer(9) + wire.der.tlv(wire.SEARCH_ENTRY, wire._string(DN) + wire.der.tlv(
        0x30, wire.der.tlv(0x30, wire._string(ATTR) + wire.der.tlv(wire.SET, wire._string(value)))
        + wire.der.tlv(0x30, wire._string("entryCSN") + wire.der.tlv(wire.SET, wire._string(b"csn-1")))))))
    done = wire.der.tlv(0x30, wire.der.integer(9) + wire.der.tlv(
        wire.SEARCH_DONE, wire.der.tlv(wire.ENUMERATED, b"\x00") + wire._string("") + wire._string("")))
    left, right = socket.socketpair()
    try:
        sender = threading.Thread(target=lambda: [left.sendall(entry[i:i + 1000]) for i in range(0, len(entry), 1000)]
                                  + [left.sendall(done)])
        sender.start()
        first = wire.parse(wire.receive(right))
        second = wire.parse(wire.receive(right))
        sender.join()
    finally:
        left.close()
        right.close()
    assert (first.message_id, first.op) == (9, wire.SEARCH_ENTRY)
    dn, attrs = wire.parse_entry(first.body)
    assert dn == DN and attrs == {ATTR.lower(): [value], "entrycsn": [b"csn-1"]}
    assert (second.op, wire.parse_result(second.body).code) == (wire.SEARCH_DONE, 0)
