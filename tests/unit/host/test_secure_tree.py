"""ca.host.files.secure_tree: the world's permissions off a data directory, at every service start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ca.host import files


def test_takes_the_worlds_permissions_off_and_counts_what_it_changed(tmp_path: Path) -> None:
    (tmp_path / "crls").mkdir(mode=0o755)
    (tmp_path / "crls" / "1.crl").write_bytes(b"x")
    os.chmod(tmp_path / "crls" / "1.crl", 0o644)
    (tmp_path / "own.key").write_bytes(b"k")
    os.chmod(tmp_path / "own.key", 0o600)
    os.chmod(tmp_path, 0o755)
    assert files.secure_tree(tmp_path) == 3
    assert files.world_readable(tmp_path) == []
    assert stat.S_IMODE((tmp_path / "own.key").stat().st_mode) == 0o600
    assert files.secure_tree(tmp_path) == 0


def test_a_file_moved_away_between_its_look_and_its_chmod_is_skipped(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Found: a service starting while the scheduler renamed a CRL's partial file into place failed
    with FileNotFoundError.  The rename is made to happen in that window, every time."""
    partial, final = tmp_path / "7.crl.part", tmp_path / "7.crl"
    partial.write_bytes(b"x")
    os.chmod(partial, 0o644)
    os.chmod(tmp_path, 0o700)
    chmod = os.chmod

    def rename_first(path: os.PathLike[str] | str, mode: int) -> None:
        if Path(path) == partial:
            os.replace(partial, final)  # what the other process did just then
        chmod(path, mode)

    monkeypatch.setattr(files.os, "chmod", rename_first)
    assert files.secure_tree(tmp_path) == 0
    assert final.read_bytes() == b"x"
