"""Reading certificates out of files, one at a time: PEM bundles and (concatenated) DER.

A national population comes as bundles of millions of certificates; reading a bundle whole
would hold gigabytes, so `blocks` streams it: each certificate's DER with its position in the
file and the byte offset after it (for the progress bar), or why that piece is not one.  The
DER is not parsed here (ca.importing.importer does that once, for the signature check).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography import x509

SUFFIXES = {".pem", ".crt", ".cer", ".der"}
_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"
_SNIFF = 1 << 16


@dataclasses.dataclass(frozen=True, slots=True)
class Block:
    """One certificate's place in a file: its DER, or the reason there is none."""

    index: int  # 0-based, counting certificates only (other PEM blocks, e.g. keys, are passed over)
    der: bytes | None
    error: str | None
    only: bool  # the file's one and only block: messages then name the file alone
    end: int  # byte offset just after it


def certificate_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Each file given, and the certificate files (by suffix) under each directory given, sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            yield path


def total_size(paths: Iterable[Path]) -> int:
    """Bytes in the files `certificate_files` would give (for a progress bar), without keeping their names."""
    total = 0
    for path in certificate_files(paths):
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return total


def read_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM (one or many) or DER file; ValueError with a reason otherwise."""
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def blocks(path: Path, *, skip: int = 0) -> Iterator[Block]:
    """The certificates of `path` in order; the first `skip` are passed over undecoded (a resumed
    import).  A file with no certificate at all gives one error block."""
    with open(path, "rb") as f:
        head = f.read(_SNIFF)
        f.seek(0)
        pieces = _pem(f, skip) if b"-----BEGIN" in head else _der(f, skip)
        yield from _with_only(pieces)


def _with_only(pieces: Iterator[tuple[int, bytes | None, str | None, int]]) -> Iterator[Block]:
    previous = next(pieces, None)
    if previous is None:
        return
    first = True
    for current in pieces:
        yield Block(previous[0], previous[1], previous[2], False, previous[3])
        previous, first = current, False
    yield Block(previous[0], previous[1], previous[2], first and previous[0] == 0, previous[3])


def _pem(f: BinaryIO, skip: int) -> Iterator[tuple[int, bytes | None, str | None, int]]:
    index, offset, inside = 0, 0, False
    body: list[bytes] = []
    for line in f:
        offset += len(line)
        stripped = line.strip()
        if not inside:
            if stripped == _BEGIN:
                inside, body = True, []
            continue
        if stripped != _END:
            if index >= skip:
                body.append(stripped)
            continue
        inside = False
        if index >= skip:
            try:
                yield index, base64.b64decode(b"".join(body), validate=True), None, offset
            except (binascii.Error, ValueError) as exc:
                yield index, None, f"bad base64 in the PEM block: {exc}", offset
        index += 1
    if inside:
        yield index, None, "a PEM certificate block without its END line (truncated?)", offset
    elif index == 0:
        yield 0, None, "no CERTIFICATE block in it", offset


def _der(f: BinaryIO, skip: int) -> Iterator[tuple[int, bytes | None, str | None, int]]:
    """Concatenated DER certificates: each a SEQUENCE whose length its header gives."""
    size = os.fstat(f.fileno()).st_size
    index, offset = 0, 0
    if size == 0:
        yield 0, None, "empty file", 0
        return
    while offset < size:
        header = f.read(6)
        if len(header) < 2 or header[0] != 0x30:
            yield index, None, "not DER: no SEQUENCE where a certificate should start", size
            return
        if header[1] < 0x80:
            length, used = header[1], 2
        else:
            count = header[1] & 0x7F
            if not 1 <= count <= 4 or len(header) < 2 + count:
                yield index, None, "not DER: an impossible length", size
                return
            length, used = int.from_bytes(header[2:2 + count], "big"), 2 + count
        if offset + used + length > size:
            yield index, None, f"truncated: the certificate needs {used + length} bytes, {size - offset} left", size
            return
        f.seek(offset)
        der = f.read(used + length)
        offset += used + length
        if index == 0 and offset < size and not _parses(der):  # random bytes that began like a SEQUENCE
            yield 0, None, "not DER: the first certificate does not parse", size
            return
        if index >= skip:
            yield index, der, None, offset
        index += 1


def _parses(der: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(der).serial_number  # noqa: B018
    except ValueError:
        return False
    return True
