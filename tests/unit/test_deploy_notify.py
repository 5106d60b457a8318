"""The unit files wait for READY=1 (Type=notify) and watch the loops that ping from their work."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
#: services whose own main loop pings (ca.host.notify), with the longest a healthy loop goes without
WATCHED = {"revoca-scheduler": 600, "revoca-publisher": 300, "revoca-hsm": 60, "revoca-ocsp-signer": 120}
#: services under gunicorn or granian: READY=1 only; their workers are watched by the server itself
READY_ONLY = ("revoca-ra", "revoca-ocsp", "revoca-tsa", "revoca-status")


def _service(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / f"{name}.service").read_text())
    return parser["Service"]


@pytest.mark.parametrize("unit", sorted(WATCHED))
def test_a_loop_that_pings_is_watched(unit: str) -> None:
    service = _service(unit)
    assert (service["Type"], service["NotifyAccess"]) == ("notify", "main")
    assert service["WatchdogSec"] == f"{WATCHED[unit]}s" and service["Restart"] == "on-failure"


@pytest.mark.parametrize("unit", READY_ONLY)
def test_a_server_is_ready_when_it_listens_and_has_no_watchdog(unit: str) -> None:
    service = _service(unit)
    assert (service["Type"], service["NotifyAccess"]) == ("notify", "main")
    assert "WatchdogSec" not in service
