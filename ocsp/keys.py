"""Where responder keys live: the PKCS#11 token (default) or encrypted key files.

Signing through SoftHSM2 is slower than OpenSSL in process (RSA-2048: about 660 signs/s in
one session against 1,700/s), so a delegated responder key (1 year, revocable, never a CA
key) may instead be a PKCS#8 file encrypted with a passphrase kept apart from it.  Such a
certificate's row carries the key label ``file:<name>``; the file is
``<data_dir>/ocsp/keys/<name>.key``.  The passphrase (made on first use) is read from, in order:
``[ocsp] passphrase_file``; the systemd credential ``ocsp-passphrase``
(``$CREDENTIALS_DIRECTORY``, `LoadCredentialEncrypted=` keeps it encrypted at rest); else
``<data_dir>/ocsp/passphrase``, beside the keys, with a warning at every start: a copy of the
data directory would then hold both the keys and what opens them (issue 12).  The certificates
with such keys are issued by ocsp.renewal.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from ca.config import Settings
from ca.errors import InvalidInput, NotFound
from ca.hsm.signer import KeyAlgorithm, KeyStore, Signer, SoftwareSigner
from ocsp.issuers import FILE_PREFIX

log = logging.getLogger("revoca.ocsp")


def keys_dir(settings: Settings) -> Path:
    return settings.data_dir / "ocsp" / "keys"


CREDENTIAL = "ocsp-passphrase"


def passphrase_path(settings: Settings) -> Path:
    if settings.ocsp.passphrase_file:
        return Path(settings.ocsp.passphrase_file)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / CREDENTIAL).exists():
        return Path(credentials) / CREDENTIAL
    beside = settings.data_dir / "ocsp" / "passphrase"
    log.warning("the passphrase of the OCSP responder key files is %s, beside the keys: set [ocsp] "
                "passphrase_file to a path outside the data directory (or give it as the systemd credential %s)",
                beside, CREDENTIAL)
    return beside


def read_passphrase(path: Path, *, create: bool = False) -> bytes:
    if not path.exists():
        if not create:
            raise NotFound(f"{path} is missing: the passphrase of the OCSP responder key files")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_bytes().strip()


def is_file_label(label: str | None) -> bool:
    return label is not None and label.startswith(FILE_PREFIX)


class ResponderKeys:
    """A KeyStore for the responder: ``file:`` labels from the key files, the rest from the token."""

    def __init__(self, token: KeyStore, directory: Path, passphrase_file: Path) -> None:
        self.token = token
        self.directory = directory
        self.passphrase_file = passphrase_file
        self._files: dict[str, Signer] = {}

    def generate(self, label: str, algorithm: KeyAlgorithm):
        return self.token.generate(label, algorithm)

    def signer(self, label: str) -> Signer:
        if not is_file_label(label):
            return self.token.signer(label)
        signer = self._files.get(label)
        if signer is None:
            name = label[len(FILE_PREFIX):]
            path = self.directory / f"{name}.key"
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), read_passphrase(self.passphrase_file))
            except FileNotFoundError as exc:
                raise NotFound(f"responder key file {path} is missing") from exc
            except (ValueError, TypeError) as exc:
                raise InvalidInput(f"responder key file {path} cannot be opened with {self.passphrase_file}: "
                                   f"{exc}") from exc
            signer = self._files[label] = SoftwareSigner(key, label)  # type: ignore[arg-type]
        return signer

