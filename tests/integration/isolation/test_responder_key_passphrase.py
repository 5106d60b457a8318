"""A responder key file's passphrase is not beside it (issue 12).

Found: the OCSP key file's passphrase lay beside the key, so a copy of the data directory
opened it.  `[ocsp] passphrase_file` (or the systemd credential `ocsp-passphrase`) keeps it
elsewhere; the old place still works, with a warning.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ca.config import OCSPConfig
from ca.hsm.signer import KeyAlgorithm
from ocsp.keys import CREDENTIAL, ResponderKeys, keys_dir, passphrase_path
from ocsp.renewal import issue_key_file

from support.installation import Installation


def test_a_configured_passphrase_lives_outside_the_data_directory(installation: Installation,
                                                                   tmp_path: Path) -> None:
    secret = tmp_path / "etc" / "ocsp-passphrase"
    settings = dataclasses.replace(installation.settings, ocsp=OCSPConfig(passphrase_file=str(secret)))
    cert, key_path = issue_key_file(settings, installation.engine, installation.keys, "tokyo",
                                    algorithm=KeyAlgorithm.P256, now=dt.datetime.now(dt.UTC), actor="test")
    assert secret.exists() and secret.stat().st_mode & 0o077 == 0
    assert not (settings.data_dir / "ocsp" / "passphrase").exists()
    assert key_path.is_relative_to(settings.data_dir)
    with pytest.raises(TypeError):  # encrypted: the data directory alone does not open it
        serialization.load_pem_private_key(key_path.read_bytes(), None)
    keys = ResponderKeys(installation.keys, keys_dir(settings), passphrase_path(settings))
    label = f"file:{key_path.stem}"
    assert keys.signer(label).public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo) == \
        cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_systemd_credential_is_used_and_the_old_place_warns(installation: Installation, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / CREDENTIAL).write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert passphrase_path(installation.settings) == credentials / CREDENTIAL
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with caplog.at_level(logging.WARNING, logger="revoca.ocsp"):
        beside = passphrase_path(installation.settings)
    assert beside == installation.settings.data_dir / "ocsp" / "passphrase"
    assert "beside the keys" in caplog.text
