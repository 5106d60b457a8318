"""From entry bytes to a signed CRL file, in constant memory.

The entries of a CRL are one or more byte ranges of files (`Segment`s): the spool the
database stream was just written to, and possibly the entries of the previous CRL kept by
ca.crl.cache.  The TBSCertList header needs their total length before any of them, which is
why they are spooled rather than hashed as they arrive.

`write_certificate_list` then makes two passes over the entries, 1 MiB at a time through
one reused buffer, so memory does not depend on the entry count:

1. hash the TBS (prefix, entries, suffix) and, beside it, the entries alone (ca.crl.cache
   records that hash, and checks a kept segment against it before anything is signed);
   have the Signer sign it and check the signature.  A Signer in another process (the HSM
   service, ca.hsm.client.ServiceSigner.sign_list) gets the TBS bytes themselves as they are
   hashed, and judges what it signs (ca.hsm.crl_stream); a key in this process signs the digest;
2. write outer header + TBS + signature to a temporary file while computing the file's
   SHA-256 for the archive; fsync it and publish it under its final name, never replacing
   an existing file.

In each pass the second consumer of a block (the entries hash, the file write) runs on a
helper thread: hashlib and file writes release the GIL, so the two cores share the work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ca.crl.tbs import CRLFields
from ca.errors import AlreadyExists, RevocaError, TokenError
from ca.hsm.signer import Signer, verify_signature

BLOCK = 1 << 20


class MissingEntryDER(RevocaError):
    """A revocation row has no pre-encoded entry (entry_der is NULL)."""


class SegmentMismatch(RevocaError):
    """A kept segment no longer has the SHA-256 recorded for it (damaged or altered on disk)."""


Sink = Callable[[memoryview], object]


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """The first `length` bytes of a file, holding `count` entries.

    `sha256_through`, when given, is the SHA-256 of all entries from the start of the first
    segment to the end of this one; the bytes are checked against it before signing.
    """

    path: Path
    length: int
    count: int
    sha256_through: bytes | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Published:
    path: Path
    entries: int
    size: int
    sha256: bytes  # of the whole CRL file, for the archive
    entries_sha256: bytes  # of the entries alone, for ca.crl.cache


def spool_entries(chunks: Iterable[Sequence[bytes | None]], path: Path) -> Segment:
    """Write every chunk's entries to a new file at `path`; raises MissingEntryDER on a None."""
    count = length = 0
    with open(path, "xb") as spool:
        for chunk in chunks:
            try:
                blob = b"".join(chunk)  # type: ignore[arg-type]
            except TypeError:
                raise MissingEntryDER("a revocation has no encoded CRL entry (entry_der is NULL)") from None
            spool.write(blob)
            count += len(chunk)
            length += len(blob)
    return Segment(path, length, count)


def _pump(segments: Sequence[Segment], main: Sink, side: Sink,
          after_segment: Callable[[Segment], None] = lambda _segment: None) -> None:
    """Feed every segment's bytes to `main` (this thread) and `side` (a helper thread) together."""
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crl-writer") as helper:
        for segment in segments:
            left = segment.length
            with open(segment.path, "rb", buffering=0) as source:
                while left:
                    n = source.readinto(view[:min(BLOCK, left)])
                    if not n:
                        raise SegmentMismatch(f"{segment.path} is shorter than the {segment.length} bytes recorded")
                    block = view[:n]
                    pending = helper.submit(side, block)
                    main(block)
                    pending.result()  # before the buffer is filled again
                    left -= n
            after_segment(segment)


def check_signature(signer: Signer, digest: bytes, signature: bytes) -> None:
    """Never publish a bad signature: a faulty RSA-CRT signature can reveal the token's key."""
    try:
        verify_signature(signer.public_key(), signature, digest, Prehashed(signer.algorithm.hash_algorithm))
    except InvalidSignature as exc:
        raise TokenError(f"key {signer.key_label} returned a CRL signature that does not verify; "
                         "CRL withheld, check the token") from exc


def write_certificate_list(fields: CRLFields, segments: Sequence[Segment], signer: Signer,
                           target: Path) -> Published:
    """Sign the CRL made of `fields` and the entries in `segments`, and publish it at `target`."""
    count = sum(s.count for s in segments)
    length = sum(s.length for s in segments)
    prefix = fields.tbs_prefix(length, count)
    suffix = fields.tbs_suffix
    tbs = hashlib.new(signer.algorithm.hash_algorithm.name)
    entries = hashlib.sha256()

    def check(segment: Segment) -> None:
        if segment.sha256_through is not None and entries.copy().digest() != segment.sha256_through:
            raise SegmentMismatch(f"{segment.path} does not match its recorded SHA-256")

    sign_list = getattr(signer, "sign_list", None)
    if sign_list is None:  # a key in this process (the key ceremony, tests): the digest is enough
        tbs.update(prefix)
        _pump(segments, tbs.update, entries.update, check)
        tbs.update(suffix)
        signature = signer.sign_digest(tbs.digest())
    else:  # the HSM service: it gets the TBS itself, and judges it while hashing (ca.hsm.crl_stream)
        def feed(send: Callable[[memoryview | bytes], object]) -> None:
            def both(block: memoryview | bytes) -> None:
                tbs.update(block)
                send(block)

            both(prefix)
            _pump(segments, both, entries.update, check)
            both(suffix)

        signature = sign_list(len(prefix) + length + len(suffix), feed)
    digest = tbs.digest()
    check_signature(signer, digest, signature)

    head = fields.certificate_list_header(len(prefix) + length + len(suffix), signature)
    sha256 = hashlib.sha256()
    partial = target.with_name(f".{target.name}.tmp")
    try:
        with open(partial, "xb") as out:
            for part in (head, prefix):
                sha256.update(part)
                out.write(part)
            _pump(segments, sha256.update, out.write)
            tail = suffix + fields.signature_tail(signature)
            sha256.update(tail)
            out.write(tail)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        publish(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return Published(target, count, size, sha256.digest(), entries.digest())


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(partial: Path, target: Path) -> None:
    """Give the fsynced file its final name atomically, refusing to replace one, and sync the directory.

    A hard link fails when the name exists: a CRL file once published is never overwritten,
    which also catches a CRL counter gone backwards (a database restored from an old backup).
    """
    try:
        os.link(partial, target)
    except FileExistsError:
        raise AlreadyExists(f"{target} already exists; CRL numbers are never reused (database restored "
                            "from a backup? raise the counter in crl_counters past the archived numbers)") from None
    except OSError:  # a file system without hard links: check, then rename
        if target.exists():
            raise AlreadyExists(f"{target} already exists; CRL numbers are never reused") from None
        os.replace(partial, target)
    fsync_directory(target.parent)
