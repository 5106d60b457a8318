"""ocsp.shared_answers: the table of answers the workers of one responder share (issue 16)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ocsp import shared_answers
from ocsp.shared_answers import BODY_MAX, SLOT, SharedAnswers, key_of

NOW = 1_800_000_000


@pytest.fixture
def table(tmp_path: Path) -> SharedAnswers:
    return SharedAnswers(shared_answers.create(tmp_path, size=64 * SLOT))


def test_another_mapping_of_the_same_file_reads_what_one_wrote(tmp_path: Path) -> None:
    path = shared_answers.create(tmp_path, size=64 * SLOT)
    worker_1, worker_2 = SharedAnswers(path), SharedAnswers(path)
    key = key_of(b"responder", b"cert id", b"unknown")
    assert worker_2.get(key, NOW) is None
    worker_1.put(key, NOW + 60, b"signed answer")
    assert worker_2.get(key, NOW) == b"signed answer"


def test_an_entry_is_served_only_until_its_refresh_time(table: SharedAnswers) -> None:
    key = key_of(b"k")
    table.put(key, NOW + 60, b"answer")
    assert table.get(key, NOW + 59) == b"answer"
    assert table.get(key, NOW + 60) is None


def test_another_key_in_the_same_slot_is_a_miss_and_replaces_it(table: SharedAnswers) -> None:
    first = key_of(b"first")
    other = next(k for k in (key_of(str(n).encode()) for n in range(10_000))
                 if k != first and int.from_bytes(k[:8], "big") % table.slots == int.from_bytes(first[:8], "big")
                 % table.slots)
    table.put(first, NOW + 60, b"one")
    assert table.get(other, NOW) is None
    table.put(other, NOW + 60, b"two")
    assert (table.get(first, NOW), table.get(other, NOW)) == (None, b"two")


def test_a_torn_or_altered_slot_is_a_miss(table: SharedAnswers) -> None:
    key = key_of(b"k")
    table.put(key, NOW + 60, b"x" * 300)
    at = int.from_bytes(key[:8], "big") % table.slots * SLOT
    table._map[at + 200:at + 201] = b"y"  # a write of another worker caught half-way
    assert table.get(key, NOW) is None


def test_the_file_never_grows_whatever_is_put(tmp_path: Path) -> None:
    path = shared_answers.create(tmp_path, size=64 * SLOT)
    table = SharedAnswers(path)
    for n in range(5000):
        table.put(key_of(n.to_bytes(4, "big")), NOW + 60, b"a" * (n % BODY_MAX))
    table.put(key_of(b"too big"), NOW + 60, b"b" * (BODY_MAX + 1))
    assert table.get(key_of(b"too big"), NOW) is None
    assert path.stat().st_size == 64 * SLOT


def test_the_file_is_the_owner_s_alone_and_orphans_of_dead_servers_go(tmp_path: Path) -> None:
    path = shared_answers.create(tmp_path, size=SLOT)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    orphan = tmp_path / "revoca-ocsp-answers-999999999-x"  # no such pid
    orphan.write_bytes(b"\0" * SLOT)
    live = tmp_path / f"revoca-ocsp-answers-{os.getpid()}-y"
    live.write_bytes(b"\0" * SLOT)
    shared_answers.create(tmp_path, size=SLOT)
    assert not orphan.exists() and live.exists() and path.exists()


def test_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(shared_answers.ENVIRON, raising=False)
    assert SharedAnswers.from_environment() is None
    monkeypatch.setenv(shared_answers.ENVIRON, str(tmp_path / "gone"))
    assert SharedAnswers.from_environment() is None  # each worker keeps its own answers, as before
    monkeypatch.setenv(shared_answers.ENVIRON, str(shared_answers.create(tmp_path, size=SLOT)))
    assert SharedAnswers.from_environment() is not None
