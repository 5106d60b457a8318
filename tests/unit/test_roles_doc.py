"""docs/roles.md shows ca.cli.acts as the login gate enforces it: the table is the rendering of
ACTS, so a changed row that was not written into the guide fails here."""

from __future__ import annotations

from pathlib import Path

from ca.cli.acts import ACTS, DOC_BEGIN, DOC_END, Admission, markdown_table, who

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "roles.md"


def test_the_table_in_docs_roles_md_is_the_rendering_of_acts() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert doc.count(DOC_BEGIN) == 1 and doc.count(DOC_END) == 1, "the markers around the table"
    shown = doc.split(DOC_BEGIN, 1)[1].split(DOC_END, 1)[0]
    assert shown == markdown_table(), (
        "docs/roles.md is not ca.cli.acts: run python -c 'from ca.cli.acts import rewrite_doc; rewrite_doc()'")


def test_the_table_has_one_line_per_command() -> None:
    lines = markdown_table().splitlines()[2:]
    assert [line.split("`")[1] for line in lines] == [f"revoca {path}" for path in sorted(ACTS)]


def test_the_readme_and_the_runbook_link_it() -> None:
    assert "docs/roles.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "roles.md" in (ROOT / "docs" / "operator-runbook.md").read_text(encoding="utf-8")


def test_people_are_counted_as_the_gate_counts_them() -> None:
    assert who(ACTS["ca compromise"]) == ("2 × senior-operator", "2")
    assert who(ACTS["ca cross-certify"]) == ("senior-operator; M × key-manager", "1 + M")
    assert who(ACTS["ca rollover"]) == ("M × key-manager", "M")
    assert who(ACTS["cert unrevoke"])[1] == "-" and ACTS["cert unrevoke"].admission is Admission.NOBODY
