"""The isolation tests' installation: a copied demo ceremony on SQLite, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.installation import CeremonyTemplates, Installation, demo_installation


@pytest.fixture(scope="module")
def installation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp(request.module.__name__)) as made:
        yield made
