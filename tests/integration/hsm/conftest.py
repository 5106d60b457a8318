"""Fixtures of tests/integration/hsm: an activated HSM service in this process (support.hsm_service)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.hsm_service import RunningHSM, running_hsm
from support.installation import CeremonyTemplates


@pytest.fixture
def hsm(request: pytest.FixtureRequest, tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[RunningHSM]:
    """On SQLite, unless parametrized (indirect=True) with "postgresql"."""
    with running_hsm(ceremony_templates, getattr(request, "param", "sqlite"), tmp_path) as running:
        yield running


@pytest.fixture
def shared_hsm(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[RunningHSM]:
    """The socket open to group 1 (`daemon`), as to the services' identities: callers of other users."""
    with running_hsm(ceremony_templates, "sqlite", tmp_path, clients_gid=1) as running:
        yield running
