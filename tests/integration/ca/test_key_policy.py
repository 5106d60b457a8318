"""The "no new keys" policy (seed 004 5.6): `[ca] new_keys = false`, the default of the seed's CA,
refuses a rollover and the import of certificates issued after the CA stopped issuing, each with
one line and an audit record; `new_keys = true` allows them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import ceremony, hierarchy
from ca.config import CAPolicyConfig, Settings, load_settings, settings_from_dict
from ca.errors import ConfigError
from ca.hsm import shares as sharing
from ca.hsm import token_for
from ca.hsm.signer import KeyAlgorithm
from ca.hsm.token import TokenSession
from ca.importing.importer import import_certificates
from ca.issuance import Issuer
from ca.lifecycle.key_policy import NewKeysRefused
from ca.storage.engine import session_scope
from ca.storage.store import Store
from ca.subscribers import generate_subscribers

from support.cli import demo_cli
from support.clock import NO_NTP
from support.installation import CeremonyTemplates
from support.ra_fixtures import audit_events
from support.settings import NOW


def test_the_default_is_the_seeds_ca_without_new_keys(tmp_path: Path) -> None:
    assert Settings().ca.new_keys is False
    assert load_settings(env={}, system_root=tmp_path).ca.new_keys is False
    assert settings_from_dict({"ca": {"new_keys": True}}).ca.new_keys is True
    assert load_settings(env={"REVOCA_CA_NEW_KEYS": "true"}, system_root=tmp_path).ca.new_keys is True
    with pytest.raises(ConfigError, match=r"ca.new_keys must be true or false"):
        settings_from_dict({"ca": {"new_keys": "yes"}})
    with pytest.raises(ConfigError, match=r"\[ca\]: unknown key\(s\) new_key"):
        settings_from_dict({"ca": {"new_key": True}})


def test_rollover_is_refused_with_one_line_and_audited(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> None:
    with demo_cli(ceremony_templates, "sqlite", tmp_path) as cli:
        cli.env["REVOCA_CA_NEW_KEYS"] = "false"
        before = len(audit_events(cli.engine, "policy.refused"))
        # refused before the HSM is asked for anything: no service runs here at all
        cli.fails("ca", "rollover", "tokyo", code=8,
                  match=r"key rollover of CA tokyo refused: this installation renews no keys .*"
                        r"\[ca\] new_keys = false, seed 004 5.6\); nothing was changed")
        refused = audit_events(cli.engine, "policy.refused")
        assert len(refused) == before + 1
        assert refused[-1].result == "failure"
        assert json.loads(refused[-1].detail)["act"] == "key rollover"
        with session_scope(cli.engine) as session:
            store = Store(session)
            assert [k.generation for k in store.ca("tokyo").keys] == [1]


@pytest.fixture
def token_session(settings: Settings, initialized: ceremony.CeremonyResult) -> Iterator[TokenSession]:
    session = token_for(settings).open(sharing.user_pin(sharing.combine([s for _, s in initialized.shares[:2]])))
    yield session
    session.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_library_refuses_a_rollover_too(engine: sa.Engine, token_session: TokenSession) -> None:
    with session_scope(engine) as s, pytest.raises(NewKeysRefused, match=r"key rollover of CA osaka refused"):
        hierarchy.rollover(hierarchy.Context(store=Store(s), keys=token_session, now=NOW, actor="test",
                                             algorithm=KeyAlgorithm.P256, new_keys=False, time_guard=NO_NTP), "osaka")


def _issuer(engine: sa.Engine, keys: TokenSession, name: str) -> Issuer:
    with session_scope(engine) as s:
        store = Store(s)
        ca = store.ca(name)
        key = store.current_key(ca)
        return Issuer(name=x509.Name.from_rfc4514_string(ca.subject_dn), signer=keys.signer(key.key_label),
                      key_id=key.ski)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_import_refuses_certificates_issued_after_the_ca_stopped_issuing(
        tmp_path: Path, engine: sa.Engine, token_session: TokenSession) -> None:
    issuer = _issuer(engine, token_session, "tokyo")
    files = {}
    for name, when in (("old", NOW), ("new", NOW + dt.timedelta(days=30))):
        cert, _key = next(generate_subscribers(issuer, 1, now=when, time_guard=NO_NTP))
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    report = import_certificates(engine, [files["old"], files["new"]], policy=CAPolicyConfig(new_keys=False))
    assert report.imported == 1
    assert len(report.rejected) == 1
    assert report.rejected[0].startswith(f"{files['new']}: issued 2026-12-01T09:00:00Z, after CA tokyo stopped "
                                         "issuing (2026-11-01T09:00:00Z; [ca] new_keys = false")
    # a deployment that still issues takes it
    again = import_certificates(engine, [files["new"]], policy=CAPolicyConfig(new_keys=True))
    assert (again.imported, again.rejected) == (1, [])
