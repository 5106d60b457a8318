"""ca.storage.replica_lag on PostgreSQL: what decides that a status is read from the primary.

The standby that is fresh, and one whose replay is paused while a revocation is filed, are in
tests/e2e/test_nodes.py (a real streaming standby); here the cases that need none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ca.storage.engine import make_engine
from ca.storage.replica_lag import ReplicaLag

from support.database import Databases
from support.tools import free_port


@pytest.fixture
def pg(tmp_path: Path, databases: Databases) -> Iterator[sa.Engine]:
    with databases.fresh("postgresql", tmp_path, template=databases.migrated("postgresql")) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def _away() -> sa.Engine:
    return make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=2")


def test_a_server_that_replays_nothing_is_never_fresh(pg: sa.Engine) -> None:
    """A primary given as the "standby" has no replay position: the primary answers, every time."""
    lag = ReplicaLag(pg, pg, max_lag=60.0, every=0.0)
    for _ in range(3):
        fresh = lag.freshness()
        assert not fresh.use_replica and fresh.staleness is None, fresh


def test_the_standby_away_means_the_primary_answers_and_the_primary_away_the_standby(pg: sa.Engine) -> None:
    away = _away()
    try:
        assert not ReplicaLag(pg, away, max_lag=1.0, every=0.0).freshness().use_replica
        fresh = ReplicaLag(away, pg, max_lag=1.0, every=0.0).freshness()
        assert fresh.use_replica and fresh.why == "the primary cannot be asked"
    finally:
        away.dispose()


def test_samples_are_taken_at_most_every_period(pg: sa.Engine) -> None:
    now = [100.0]
    lag = ReplicaLag(pg, pg, max_lag=1.0, every=0.25, clock=lambda: now[0])
    lag.freshness()
    first = lag._sampled_at  # noqa: SLF001
    now[0] += 0.1
    lag.freshness()
    assert lag._sampled_at == first  # noqa: SLF001
    now[0] += 0.2
    lag.freshness()
    assert lag._sampled_at == pytest.approx(100.3)  # noqa: SLF001
