"""The end-to-end tests run revoca as installed: with the product's defaults (tests/conftest.py
makes the HSM service sign in its own process everywhere else)."""

from __future__ import annotations

import pytest

from support.settings import SIGNER_PROCESSES_ENV


@pytest.fixture(autouse=True)
def _product_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SIGNER_PROCESSES_ENV, raising=False)
