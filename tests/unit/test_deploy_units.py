"""The production unit files (deploy/systemd) run each service as the identity revoca expects."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from ca.config import IdentityConfig
from ca.host.identities import SUPPLEMENTARY

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
SERVICE_OF_UNIT = {"revoca-hsm": "signer", "revoca-ra": "ra", "revoca-ocsp": "ocsp", "revoca-tsa": "tsa",
                   "revoca-status": "status", "revoca-scheduler": "scheduler", "revoca-publisher": "publisher",
                   "revoca-web": "web", "revoca-cvs": "cvs"}


def _unit(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / f"{name}.service").read_text())
    return parser["Service"]


@pytest.mark.parametrize("unit", sorted(SERVICE_OF_UNIT))
def test_each_unit_runs_as_its_identity_sandboxed(unit: str) -> None:
    service = _unit(unit)
    ids = IdentityConfig()
    field = SERVICE_OF_UNIT[unit]
    assert service["User"] == getattr(ids, field)
    assert set(service["SupplementaryGroups"].split()) == {getattr(ids, g) for g in SUPPLEMENTARY[field]}
    assert service["NoNewPrivileges"] == "yes" and service["UMask"] == "0007"
    assert service["ProtectSystem"] == "strict" and service["CapabilityBoundingSet"] == ""
    assert service["Restart"] == "on-failure"
    assert service["ExecStart"].split()[1:3] == ["serve", "hsm" if field == "signer" else field]


def test_every_service_has_a_unit() -> None:
    assert {p.stem for p in UNITS.glob("*.service")} == set(SERVICE_OF_UNIT) | {"revoca-backup", "revoca-ocsp-signer"}


def test_the_ocsp_signer_runs_as_the_ocsp_identity() -> None:
    signer, responder = _unit("revoca-ocsp-signer"), _unit("revoca-ocsp")
    for field in ("User", "Group", "SupplementaryGroups", "NoNewPrivileges", "UMask", "ProtectSystem",
                  "CapabilityBoundingSet", "Restart"):
        assert signer[field] == responder[field], field
    assert signer["ExecStart"].split()[1:3] == ["serve", "ocsp-signer"]


def test_the_backup_unit_may_read_every_services_files_and_nothing_more() -> None:
    """Root, because it copies the signer's token store and the RA's key; with only the
    capability to read what it does not own (no chown, no kill, no network admin)."""
    service = _unit("revoca-backup")
    assert service["User"] == "root" and service["CapabilityBoundingSet"] == "CAP_DAC_READ_SEARCH"
    assert service["NoNewPrivileges"] == "yes" and service["UMask"] == "0077"
    assert service["ProtectSystem"] == "strict" and service["Restart"] == "on-failure"
    assert service["ExecStart"].split()[1:3] == ["serve", "backup"]
