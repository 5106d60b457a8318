"""Certificate serial numbers at the edges: hex text in, a checked positive integer out.

RFC 5280 4.1.2.2: positive, at most 20 octets.  The database column has room for 21 octets
(some old CAs padded a sign byte), and nothing wider may enter or text order would no longer
be numeric order.
"""

from __future__ import annotations

import re

from ca.errors import InvalidInput

MAX_OCTETS = 21
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def check_serial(serial: int) -> int:
    if serial <= 0:
        raise InvalidInput(f"serial number {serial} is not positive (RFC 5280 4.1.2.2)")
    if serial.bit_length() > 8 * MAX_OCTETS:
        raise InvalidInput(f"serial number is {(serial.bit_length() + 7) // 8} octets long; at most 20 are allowed")
    return serial


def parse_hex_serial(text: str) -> int:
    """'0a:1b:...' or '0a1b...' (as openssl and browsers print it) to an int."""
    cleaned = text.strip().replace(":", "")
    if not _HEX.match(cleaned):
        raise InvalidInput(f"serial {text!r} is not hexadecimal (digits 0-9, a-f, optionally separated by ':')")
    return check_serial(int(cleaned, 16))
