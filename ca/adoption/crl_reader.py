"""A previous system's CRL or ARL, read from its file in bounded memory (issue 14).

cryptography and asn1crypto want the whole CertificateList in memory, parsed: for a CRL of a
million entries that is about 45 MB of DER and, once parsed, far more.  Here the file is read
with positioned reads: the fields before and after revokedCertificates are small and parsed
with asn1crypto; the entries are walked one at a time through a 1 MiB window and each is
decoded by hand (SEQUENCE { INTEGER, Time, extensions? }); the TBSCertList is hashed in 1 MiB
blocks so the signature is checked as a pre-hashed value.  Memory does not grow with the
number of entries.

Each entry keeps its exact bytes: revoca copies them into its own CRLs (Revocation.entry_der),
so a date or an extra non-critical extension (invalidityDate) stays as the previous system
wrote it.  What revoca cannot carry is reported per entry (`RefusedEntry`), never mapped:
reasons outside seed 004 4.9.9's five, an entry without reasonCode (RFC 5280 5.3.1 reads that
as unspecified (0), which is not one of them), certificateIssuer (an indirect CRL), a critical
extension revoca does not know, a malformed time or serial.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from asn1crypto import algos
from asn1crypto import crl as asn1_crl
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ca.der import encoding as der
from ca.errors import InvalidInput
from ca.hsm.signer import verify_signature
from ca.revocation.crl_entry import MAX_SERIAL
from ca.revocation.reasons import ALLOWED_REASONS

WINDOW = 1 << 20
_HEAD = 1 << 16  # the fields before revokedCertificates (version, algorithm, issuer, times) fit easily

_REASON_CODE = bytes.fromhex("551d15")  # 2.5.29.21
_INVALIDITY_DATE = bytes.fromhex("551d18")  # 2.5.29.24
_CERTIFICATE_ISSUER = bytes.fromhex("551d1d")  # 2.5.29.29
_OID = 0x06
_BOOLEAN = 0x01

#: RFC 5280 5.3.1 names, for the refusals
REASON_NAMES = {0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged",
                4: "superseded", 5: "cessationOfOperation", 6: "certificateHold", 8: "removeFromCRL",
                9: "privilegeWithdrawn", 10: "aACompromise"}

# signature algorithms a previous system's list may carry, for checking only (SHA-1 included:
# old lists were signed with it, and checking one proves what it says, it signs nothing new)
_SIGNATURE_HASHES: dict[str, hashes.HashAlgorithm] = {
    f"{name}_{kind}": algorithm for kind in ("rsassa_pkcs1v15", "ecdsa")
    for name, algorithm in (("sha1", hashes.SHA1()), ("sha256", hashes.SHA256()), ("sha384", hashes.SHA384()),
                            ("sha512", hashes.SHA512()))
}
_KNOWN_CRITICAL = {"issuing_distribution_point"}
NO_REASON = ("no reasonCode: RFC 5280 5.3.1 reads that as unspecified (0), which is not one of the five reasons of "
             "seed 004 4.9.9; give the reason the previous system recorded for it, with the same date, in "
             "--index or --csv")


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One revokedCertificates element, with one of the five reasons."""

    serial: int
    revocation_time: dt.datetime
    reason: int
    der: bytes  # the element exactly as the list holds it


@dataclasses.dataclass(frozen=True, slots=True)
class RefusedEntry:
    """An element revoca cannot carry, and why (the serial when it could be read)."""

    serial: int | None
    where: str  # in the file: "byte 1234" (a list), "line 17" (an export)
    why: str
    # an entry refused only for want of a reasonCode: its date, so that the reason the previous
    # system recorded for it (index.txt, CSV) can stand in (ca.adoption.history)
    unreasoned_at: dt.datetime | None = None

    def line(self) -> str:
        who = f"serial {self.serial:#x}" if self.serial is not None else f"the entry at {self.where}"
        return f"{who}: {self.why}"


@dataclasses.dataclass(frozen=True, slots=True)
class ListHeader:
    """Everything of a CertificateList but its entries."""

    issuer: bytes  # DER of the issuer Name, as the list holds it
    this_update: dt.datetime
    next_update: dt.datetime | None
    number: int | None
    authority_key_id: bytes | None
    only_ca_certs: bool  # issuingDistributionPoint onlyContainsCACerts: an ARL
    only_user_certs: bool  # onlyContainsUserCerts: a CRL
    delta: bool
    signature_algorithm: str  # hash and signature, asn1crypto's names: sha256_rsassa_pkcs1v15, sha384_ecdsa
    signature: bytes
    entries_start: int
    entries_end: int
    tbs_start: int
    tbs_end: int
    size: int


class CRLFile:
    """A CRL/ARL file (DER, or PEM turned into DER in a temporary file first) opened for reading."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stack = contextlib.ExitStack()
        self.position = 0  # where entries() has read to: for a progress bar
        try:
            source: BinaryIO = self._stack.enter_context(open(self.path, "rb"))
            if source.read(11) == b"-----BEGIN ":
                source.seek(0)
                source = self._stack.enter_context(_pem_to_der(source))
            self._fd = source.fileno()
            self.header = _read_header(self._fd, os.fstat(self._fd).st_size, self.path)
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> CRLFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def sha256(self) -> bytes:
        """Of the DER (what the archive keeps)."""
        return self._digest(hashlib.sha256(), 0, self.header.size)

    def copy_to(self, target: Path) -> None:
        """Write the DER to `target` in blocks."""
        with open(target, "wb") as out:
            for block in self._blocks(0, self.header.size):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())

    def verify(self, public_key: object, *, who: str) -> None:
        """The list's signature under `public_key`, over the TBSCertList hashed in blocks; InvalidInput if not."""
        h = self.header
        algorithm = _SIGNATURE_HASHES.get(h.signature_algorithm)
        if algorithm is None:
            raise InvalidInput(f"{self.path}: signature algorithm {h.signature_algorithm} is not one revoca checks "
                               "(RSA PKCS#1 v1.5 or ECDSA with SHA-1/2)")
        digest = self._digest(hashes.Hash(algorithm), h.tbs_start, h.tbs_end)
        try:
            verify_signature(public_key, h.signature, digest, Prehashed(algorithm))
        except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError) as exc:
            raise InvalidInput(f"{self.path}: the signature does not verify under {who}; it was not signed by the "
                               "adopted key (or the file is damaged), nothing imported") from exc

    def entries(self) -> Iterator[Entry | RefusedEntry]:
        """Each element of revokedCertificates in file order, through a 1 MiB window."""
        start, end = self.header.entries_start, self.header.entries_end
        window, base = b"", start
        position = start
        while position < end:
            rel = position - base
            if len(window) - rel < 16:  # the next header may straddle the window's end
                window, base, rel = window[rel:] + os.pread(self._fd, min(WINDOW, end - base - len(window)),
                                                            base + len(window)), position, 0
            try:
                tag, content, length = der.read_header(window, rel)
            except (ValueError, IndexError) as exc:
                raise InvalidInput(f"{self.path}: the entry at byte {position} is not DER ({exc})") from exc
            total = content - rel + length
            if tag != der.SEQUENCE or position + total > end:
                raise InvalidInput(f"{self.path}: the entry at byte {position} is not a SEQUENCE inside the list")
            if rel + total > len(window):
                need = rel + total - len(window)
                window = window[rel:] + os.pread(self._fd, max(need, min(WINDOW, end - base - len(window))),
                                                 base + len(window))
                base, rel = position, 0
            self.position = position + total
            yield parse_entry(window[rel:rel + total], position)
            position += total

    def _blocks(self, start: int, end: int) -> Iterator[bytes]:
        position = start
        while position < end:
            block = os.pread(self._fd, min(WINDOW, end - position), position)
            if not block:
                raise InvalidInput(f"{self.path}: the file ends before its last byte (truncated?)")
            position += len(block)
            yield block

    def _digest(self, hasher: Any, start: int, end: int) -> bytes:
        """hashlib's or cryptography's hash of bytes start..end of the file."""
        for block in self._blocks(start, end):
            hasher.update(block)
        return bytes(hasher.finalize() if isinstance(hasher, hashes.Hash) else hasher.digest())


@contextlib.contextmanager
def _pem_to_der(source: BinaryIO) -> Iterator[BinaryIO]:
    """The base64 body of a PEM file decoded line by line into an unnamed temporary file."""
    with tempfile.TemporaryFile() as out:
        inside = False
        carry = b""
        for line in source:
            line = line.strip()
            if line.startswith(b"-----BEGIN "):
                inside = True
                continue
            if line.startswith(b"-----END "):
                break
            if inside and line:
                carry += line
                cut = len(carry) - len(carry) % 4
                out.write(base64.b64decode(carry[:cut], validate=True))
                carry = carry[cut:]
        if carry:
            out.write(base64.b64decode(carry, validate=True))
        out.flush()
        out.seek(0)
        yield out


def _at(fd: int, position: int, path: Path, what: str) -> tuple[int, int, int]:
    """(tag, absolute content offset, content length) of the TLV at `position` in the file."""
    try:
        tag, start, length = der.read_header(os.pread(fd, 16, position), 0)
    except (ValueError, IndexError) as exc:
        raise InvalidInput(f"{path}: not a CRL ({what} at byte {position} is not DER)") from exc
    return tag, position + start, length


def _read_header(fd: int, size: int, path: Path) -> ListHeader:
    tag, tbs_start, outer_length = _at(fd, 0, path, "CertificateList")
    if tag != der.SEQUENCE or tbs_start + outer_length != size:
        raise InvalidInput(f"{path}: not a DER CRL (the outer SEQUENCE does not span the file)")
    tag, p, tbs_length = _at(fd, tbs_start, path, "tbsCertList")
    tbs_end = p + tbs_length
    if tag != der.SEQUENCE or tbs_end > size:
        raise InvalidInput(f"{path}: not a CRL (tbsCertList)")
    before: list[tuple[int, bytes]] = []  # version?, signature, issuer, thisUpdate, nextUpdate?: small
    entries: tuple[int, int] | None = None
    extensions = b""
    while p < tbs_end:
        tag, start, length = _at(fd, p, path, "a tbsCertList field")
        end = start + length
        if end > tbs_end:
            raise InvalidInput(f"{path}: not a CRL (a field overruns tbsCertList)")
        if (tag == der.SEQUENCE and entries is None and not extensions and before
                and before[-1][0] in (der.UTC_TIME, der.GENERALIZED_TIME)):
            entries = (start, end)  # revokedCertificates: walked later, never read whole
        elif tag == der.CONTEXT_0_CONSTRUCTED and not extensions:
            extensions = os.pread(fd, end - p, p)
        elif entries is not None or extensions or end - p > _HEAD:
            raise InvalidInput(f"{path}: not a CRL (unexpected field at byte {p})")
        else:
            before.append((tag, os.pread(fd, end - p, p)))
        p = end
    entries_start, entries_end = entries or (p, p)
    tail = os.pread(fd, min(size - tbs_end, _HEAD), tbs_end)
    try:
        tbs = asn1_crl.TbsCertList.load(der.tlv(der.SEQUENCE, b"".join(v for _, v in before) + extensions))
        issuer = tbs["issuer"].dump()
        this_update = tbs["this_update"].native
        next_update = tbs["next_update"].native
        inner_algorithm = tbs["signature"].dump()
        parsed_extensions = list(tbs["crl_extensions"])
        _, alg_start, alg_length = der.read_header(tail, 0)
        outer = algos.SignedDigestAlgorithm.load(tail[:alg_start + alg_length])
        sig_tag, sig_start, sig_length = der.read_header(tail, alg_start + alg_length)
        if sig_tag != der.BIT_STRING or sig_start + sig_length != len(tail):
            raise ValueError("signatureValue is not the BIT STRING ending the list")
        signature = tail[sig_start + 1:sig_start + sig_length]  # after the unused-bits octet
        algorithm = f"{outer.hash_algo}_{outer.signature_algo}"
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidInput(f"{path}: not a CRL ({exc})") from exc
    if inner_algorithm != outer.dump():
        raise InvalidInput(f"{path}: the two signature algorithm fields differ (RFC 5280 5.1.1.2)")
    number = aki = None
    only_ca = only_user = delta = False
    for extension in parsed_extensions:
        name = extension["extn_id"].native
        value = extension["extn_value"].parsed
        if name == "crl_number":
            number = int(value.native)
        elif name == "authority_key_identifier":
            aki = value["key_identifier"].native
        elif name == "issuing_distribution_point":
            only_ca = bool(value["only_contains_ca_certs"].native)
            only_user = bool(value["only_contains_user_certs"].native)
        elif name == "delta_crl_indicator":
            delta = True
        elif extension["critical"].native and name not in _KNOWN_CRITICAL:
            raise InvalidInput(f"{path}: the list carries critical extension {extension['extn_id'].dotted}, which "
                               "revoca does not understand; nothing imported")
    if this_update is None:
        raise InvalidInput(f"{path}: not a CRL (no thisUpdate)")
    return ListHeader(issuer=issuer, this_update=_aware(this_update), next_update=_aware(next_update),  # type: ignore[arg-type]
                      number=number, authority_key_id=aki, only_ca_certs=only_ca, only_user_certs=only_user,
                      delta=delta, signature_algorithm=algorithm, signature=signature,
                      entries_start=entries_start, entries_end=entries_end, tbs_start=tbs_start, tbs_end=tbs_end,
                      size=size)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# The crlEntryExtensions of an entry that carries only reasonCode (non-critical), for each of the
# five reasons: what almost every entry of a CRL looks like, recognised by one dictionary lookup.
_ONLY_REASON = {
    der.tlv(der.SEQUENCE, der.tlv(der.SEQUENCE, der.oid("2.5.29.21") + der.tlv(
        der.OCTET_STRING, der.tlv(der.ENUMERATED, bytes((reason,)))))): reason
    for reason in ALLOWED_REASONS
}


def parse_entry(data: bytes, offset: int = 0) -> Entry | RefusedEntry:
    """One revokedCertificates element (the bytes of its SEQUENCE), decoded by hand."""
    fast = _usual_entry(data)
    if fast is not None:
        return fast
    serial: int | None = None
    try:
        _, p, length = der.read_header(data, 0)
        end = p + length
        tag, start, length = der.read_header(data, p)
        if tag != der.INTEGER or length == 0:
            return _refused(None, offset, "userCertificate is not an INTEGER")
        serial = int.from_bytes(data[start:start + length], "big", signed=True)
        if not 0 < serial <= MAX_SERIAL:
            return _refused(serial, offset, "the serial number is not a positive integer of at most 160 bits")
        tag, start, length = der.read_header(data, start + length)
        when = _time(tag, data[start:start + length])
        if when is None:
            return _refused(serial, offset, "revocationDate is not a UTCTime or GeneralizedTime of RFC 5280 "
                                                "4.1.2.5 (YYMMDDHHMMSSZ / YYYYMMDDHHMMSSZ)")
        p = start + length
        reason: int | None = None
        if p < end:
            tag, p, length = der.read_header(data, p)
            if tag != der.SEQUENCE or p + length != end:
                return _refused(serial, offset, "crlEntryExtensions is not a SEQUENCE ending the entry")
            while p < end:
                _, q, length = der.read_header(data, p)
                extension_end = q + length
                tag, start, length = der.read_header(data, q)
                oid = data[start:start + length] if tag == _OID else b""
                q = start + length
                critical = False
                if data[q] == _BOOLEAN:
                    _, start, length = der.read_header(data, q)
                    critical = data[start:start + length] != b"\x00"
                    q = start + length
                tag, start, length = der.read_header(data, q)
                value = data[start:start + length]
                if oid == _REASON_CODE:
                    vtag, vstart, vlength = der.read_header(value, 0)
                    if vtag != der.ENUMERATED or vlength != 1:
                        return _refused(serial, offset, "reasonCode is not a one-octet ENUMERATED")
                    reason = value[vstart]
                elif oid == _CERTIFICATE_ISSUER:
                    return _refused(serial, offset, "the entry names another certificate issuer (an indirect "
                                                        "CRL); revoca imports a CA's own list only")
                elif critical and oid != _INVALIDITY_DATE:
                    return _refused(serial, offset, "the entry carries a critical extension revoca does not know")
                p = extension_end
    except (ValueError, IndexError):
        return _refused(serial, offset, "the entry is not DER")
    if reason is None:
        return RefusedEntry(serial, f"byte {offset}", NO_REASON, unreasoned_at=when)
    if reason not in ALLOWED_REASONS:
        name = REASON_NAMES.get(reason, "not an RFC 5280 reason")
        why = ("no suspension in seed 004 4.9.13" if reason == 6
               else "only keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation (seed "
                    "004 4.9.9)")
        return _refused(serial, offset, f"reason {name} ({reason}) is refused: {why}")
    return Entry(serial=serial, revocation_time=when, reason=reason, der=bytes(data))


def _usual_entry(data: bytes) -> Entry | None:
    """SEQUENCE { INTEGER (short), UTCTime, reasonCode only }, or None for the general decoder."""
    try:
        if data[0] != der.SEQUENCE or data[1] >= 0x80 or data[1] + 2 != len(data) or data[2] != der.INTEGER:
            return None
        end = 4 + data[3]
        if data[3] >= 0x80 or data[end] != der.UTC_TIME or data[end + 1] != 13:
            return None
        reason = _ONLY_REASON.get(data[end + 15:])
        if reason is None:
            return None
        serial = int.from_bytes(data[4:end], "big", signed=True)
        when = _time(der.UTC_TIME, data[end + 2:end + 15])
    except IndexError:
        return None
    if when is None or not 0 < serial <= MAX_SERIAL:
        return None
    return Entry(serial=serial, revocation_time=when, reason=reason, der=bytes(data))


def _refused(serial: int | None, offset: int, why: str) -> RefusedEntry:
    return RefusedEntry(serial, f"byte {offset}", why)


def _time(tag: int, value: bytes) -> dt.datetime | None:
    """RFC 5280 4.1.2.5.1/2: UTCTime YYMMDDHHMMSSZ (1950-2049), GeneralizedTime YYYYMMDDHHMMSSZ.

    Parsed by hand (strptime costs more than the rest of the entry, times a million)."""
    if tag == der.UTC_TIME and len(value) == 13 and value[12] == 0x5A and value[:12].isdigit():
        year = int(value[0:2])
        year += 1900 if year >= 50 else 2000
        v = value[2:12]
    elif tag == der.GENERALIZED_TIME and len(value) == 15 and value[14] == 0x5A and value[:14].isdigit():
        year = int(value[0:4])
        v = value[4:14]
    else:
        return None
    try:
        return dt.datetime(year, int(v[0:2]), int(v[2:4]), int(v[4:6]), int(v[6:8]), int(v[8:10]), tzinfo=dt.UTC)
    except ValueError:
        return None
