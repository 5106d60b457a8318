"""The publisher with more than one provider ([repository] providers, mirror mode): when the one
in use cannot be reached it writes to the next, and stays there.  (The two providers replicating
each other, and a provider killed mid-run, are tests/e2e/test_nodes.py.)"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from ca.crl.issue import issue_list
from ca.enums import ListType
from repository.publisher import LdapPublisher
from repository.readback import held_lists
from repository.slapd import LocalSlapd

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, demo_installation
from support.settings import LDAP_BASE, NOW
from support.tools import free_port


def test_the_publisher_writes_to_the_next_provider_when_the_first_is_down(
        tmp_path: Path, ceremony_templates: CeremonyTemplates, slapd: LocalSlapd) -> None:
    with demo_installation(ceremony_templates, "sqlite", tmp_path / "site") as made:
        up = slapd.endpoint(timeout=3)
        down = dataclasses.replace(up, port=free_port())  # nothing listens there
        publisher = LdapPublisher(made.engine, down, LDAP_BASE, made.data_dir, fallbacks=[up])
        later = NOW + dt.timedelta(days=1)
        issued = issue_list(made.engine, made.keys, made.data_dir, "tokyo", ListType.CRL, now=later,
                            time_guard=NO_NTP)
        report = publisher.round(later)
        assert report.ok and report.unavailable is None, report
        assert any(f"#{issued.number}" in line for line in report.published), report
        assert publisher.endpoint is up  # it stays on the one that answered
        tokyo = next(h for h in held_lists(made.engine, up, LDAP_BASE) if (h.ca_name, h.list_type) ==
                     ("tokyo", ListType.CRL))
        assert tokyo.number == issued.number

        # both down: one line naming each, and the queue is kept
        slapd.stop()
        report = publisher.round(later + dt.timedelta(hours=1))
        assert report.unavailable is not None
        assert up.uri in report.unavailable and down.uri in report.unavailable
