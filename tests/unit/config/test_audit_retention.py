"""[audit] retention per record kind (seed 004 5.4.3, seed 003, seed 000 4.5)."""

from pathlib import Path

import pytest

from ca.config import load_settings, settings_from_dict
from ca.errors import ConfigError


def test_the_default_keeps_every_kind_ten_years() -> None:
    audit = settings_from_dict({}).audit
    assert audit.retention_years == 10
    assert {audit.years_for(t) for t in ("operator.login", "time.checked", "service.started")} == {10}


def test_a_kind_is_kept_as_its_most_specific_rule_says() -> None:
    audit = settings_from_dict({"audit": {"retention_years": 7, "retention_by_kind": {
        "ocsp.*": 5, "ocsp.query.*": 3, "operator.login": 8}}}).audit
    assert audit.years_for("ocsp.signed") == 5
    assert audit.years_for("ocsp.query.refused") == 3
    assert audit.years_for("operator.login") == 8
    assert audit.years_for("revocation.approved") == 7
    assert audit.shortest_years() == 3


def test_clock_and_tsa_records_keep_seed_000s_ten_years_unless_named() -> None:
    audit = settings_from_dict({"audit": {"retention_years": 7}}).audit
    assert (audit.years_for("time.checked"), audit.years_for("tsa.issued")) == (10, 10)
    named = settings_from_dict({"audit": {"retention_years": 7, "retention_by_kind": {"time.*": 2}}}).audit
    assert named.years_for("time.checked") == 2


@pytest.mark.parametrize(("table", "match"), [
    ({"retention_years": 0}, "from 1"),
    ({"retention_years": "10"}, "whole number"),
    ({"retention_by_kind": {"*": 3}}, "not an event type"),
    ({"retention_by_kind": {"ocsp.": 3}}, "not an event type"),
    ({"retention_by_kind": {"ocsp.*": 0.5}}, "whole number"),
    ({"retention_days": 10}, "unknown key"),
])
def test_impossible_retentions_are_refused(table: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        settings_from_dict({"audit": table})


def test_the_file_and_the_environment_set_it(tmp_path: Path) -> None:
    path = tmp_path / "revoca.toml"
    path.write_text('[audit]\nretention_years = 7\n[audit.retention_by_kind]\n"ocsp.*" = 5\n', encoding="utf-8")
    audit = load_settings(path, env={"REVOCA_AUDIT_RETENTION_YEARS": "8"}).audit
    assert (audit.retention_years, audit.retention_by_kind) == (8, (("ocsp.*", 5),))
