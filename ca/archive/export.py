"""`revoca archive export`: a self-contained bundle an auditor checks offline with openssl.

Per stamping round: the manifest, the token over it, and every item's bytes; at the top the
certificates to check the tokens with and verify.sh, which needs only openssl and sha256sum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.archive.items import TYPES, HistoryRange
from ca.archive.stamping import manifest
from ca.errors import InvalidInput, NotFound
from ca.storage.archive import ArchiveReads
from ca.storage.engine import Session

_SCRIPT = """#!/bin/sh
# Checks every round of this revoca archive export offline: the RFC 3161 token over the
# round's manifest with openssl, then each item file against its manifest line with sha256sum.
set -u
cd "$(dirname "$0")"
status=0
rounds=0
for round in rounds/*/; do
  rounds=$((rounds + 1))
  if ! openssl ts -verify -data "${round}manifest.txt" -in "${round}token.tst" -token_in \\
       -CAfile ca.pem -untrusted tsa.pem >/dev/null 2>&1; then
    echo "FAILED: ${round}token.tst does not verify over ${round}manifest.txt"; status=1; continue
  fi
  if ! (cd "$round" && while read -r type id last digest; do
          case "$type" in %(cases)s esac
          if [ "$last" = "-" ]; then f="items/$type-$id.$suffix"; else f="items/$type-$id-$last.$suffix"; fi
          echo "$digest  $f"
        done < manifest.txt | sha256sum -c --quiet); then
    echo "FAILED: an item of ${round} differs from its manifest line"; status=1
  fi
done
if [ "$status" -eq 0 ]; then echo "verified: $rounds rounds"; fi
exit "$status"
"""


@dataclasses.dataclass(frozen=True)
class Exported:
    rounds: int
    items: int
    path: Path


def file_name(stamp: Any) -> str:
    kind = TYPES[stamp.item_type]
    span = f"{stamp.item_id}" + ("" if stamp.last_item_id is None else f"-{stamp.last_item_id}")
    return f"{stamp.item_type}-{span}.{kind.suffix}"


def export(session: Session, data_dir: Path, out: Path, tsa_certificates: Sequence[x509.Certificate]) -> Exported:
    """The bundle in `out`; `tsa_certificates` are the TSA certificates the tokens are checked
    with (ca.tsa.known.tsa_certificates, handed in by the CLI)."""
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} is not empty: export into a new directory")
    out.mkdir(parents=True, exist_ok=True)
    store = ArchiveReads(session)
    _write_certificates(store, tsa_certificates, out)
    cases = " ".join(f'{name}) suffix={kind.suffix} ;;' for name, kind in TYPES.items())
    script = out / "verify.sh"
    script.write_text(_SCRIPT % {"cases": cases})
    script.chmod(0o755)
    rounds = items = 0
    for token in store.round_tokens():
        stamps = store.round_stamps(token.id)
        folder = out / "rounds" / f"{token.id:08d}"
        (folder / "items").mkdir(parents=True)
        (folder / "manifest.txt").write_bytes(manifest(stamps))
        (folder / "token.tst").write_bytes(token.token)
        for stamp in stamps:
            _write_item(session, data_dir, stamp, folder / "items" / file_name(stamp))
        rounds, items = rounds + 1, items + len(stamps)
    return Exported(rounds, items, out)


def _write_item(session: Session, data_dir: Path, stamp: Any, path: Path) -> None:
    kind = TYPES[stamp.item_type]
    if isinstance(kind, HistoryRange):
        assert stamp.last_item_id is not None
        chunks = kind.chunks(session, stamp.item_id, stamp.last_item_id)
    else:
        try:
            row = kind.get(session, stamp.item_id)
        except NotFound:  # gone: leave it missing, and verify.sh reports it
            return
        chunks = kind.chunks(row, data_dir)
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)


def _write_certificates(store: ArchiveReads, tsa_certificates: Sequence[x509.Certificate], out: Path) -> None:
    (out / "ca.pem").write_bytes(b"".join(_pem(der) for der in store.self_signed_ders()))
    (out / "tsa.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in tsa_certificates))


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
