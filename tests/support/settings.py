"""The test installations' fixed clock, directory base and settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ca.config import Settings, settings_from_dict

NOW = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
LDAP_BASE = "o=JPKI,c=JP"
LDAP_ROOT_PASSWORD = "root-secret"
# SoftHSM2 keeps each installation's tokens in its own data directory, so one label serves all
# (and lets support.installation copy a token from one installation to another).
TOKEN_LABEL = "revoca-test"


def make_settings(tmp_path: Path, db_url: str, **overrides: object) -> Settings:
    raw: dict[str, object] = {
        "data_dir": str(tmp_path / "var"),
        "database_url": db_url,
        "hsm": {"token_label": TOKEN_LABEL, "key_algorithm": "p256"},
        # the tests roll keys over; the seed's "no new keys" default has tests of its own
        # (tests/integration/ca/test_key_policy.py)
        "ca": {"new_keys": True},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}  # type: ignore[dict-item]
        else:
            raw[key] = value
    return settings_from_dict(raw)


# The HSM service signs in its own process in the services the tests start (tests/conftest.py sets
# this in the environment): with `[hsm] signer_processes` left at one per CPU, each `revoca serve
# hsm` would start a pool of signing processes, each a Python start and a token login (~0.3 s of
# CPU, ~100 per run).  The pool has tests of its own (hsm/test_signer_pool.py and
# status/test_status_signer.py set it), and the end-to-end tests run with the product's default
# (tests/e2e/conftest.py).
SIGNER_PROCESSES_ENV = "REVOCA_HSM_SIGNER_PROCESSES"
