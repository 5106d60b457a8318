"""A node killed mid-list leaves `.N.crl.tmp` and entry spools; the next leader sweeps them."""

from pathlib import Path

from ca.crl.issue import sweep_partial_files


def test_partial_files_go_and_finished_lists_stay(tmp_path: Path) -> None:
    delta = tmp_path / "crls" / "tokyo" / "delta"
    crl = tmp_path / "crls" / "tokyo" / "crl"
    delta.mkdir(parents=True)
    crl.mkdir(parents=True)
    (delta / ".2.crl.tmp").write_bytes(b"half a list")
    (delta / ".2.entries.tmp").write_bytes(b"spool")
    (delta / "1.crl").write_bytes(b"a finished list")
    (crl / "7.crl").write_bytes(b"another")

    assert sweep_partial_files(tmp_path) == 1
    assert sorted(p.name for p in delta.iterdir() if p.name != ".lock") == ["1.crl"]
    assert (crl / "7.crl").exists()
    assert sweep_partial_files(tmp_path) == 0


def test_no_list_directory_yet_is_nothing_to_sweep(tmp_path: Path) -> None:
    assert sweep_partial_files(tmp_path) == 0
