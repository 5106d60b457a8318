"""The CRL/ARL scheduler driven by an injected clock: catch-up at start, one issue per period,
issue at once after a key compromise, expiry warnings, retries; nothing here sleeps."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509

from ca.config import CRLConfig
from ca.crl.after_compromise import issue_after_compromise
from ca.crl.issue import BOTH, issue_all, issue_list
from ca.enums import CertKind, KeyStatus, ListType
from ca.errors import ConfigError, NotActivated, RevocaError
from ca.revocation.crl_entry import encode_entry
from ca.scheduler import RETRY, Scheduler, expiry_warnings
from ca.storage.engine import session_scope
from ca.storage.models import CRLCounter, Revocation
from ca.storage.store import Store

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.settings import NOW

LISTS = {(ca, t) for ca in ("bridge", "tokyo", "osaka", "hokkaido") for t in BOTH}
H = dt.timedelta(hours=1)


@pytest.fixture
def installation(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    """A demo installation of the test's own (the scheduler issues into it)."""
    with demo_installation(ceremony_templates, "sqlite", tmp_path) as made:
        yield made


def scheduler(installation: Installation, config: CRLConfig | None = None, **kwargs: Any) -> Scheduler:
    return Scheduler(installation.engine, installation.keys, installation.data_dir, config, **kwargs, time_guard=NO_NTP)


def issued(result: Any) -> set[tuple[str, ListType]]:
    return {(i.ca_name, i.list_type) for i in result.issued}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_first_tick_issues_every_ca_list_and_clears_the_warnings(kind: str, tmp_path: Path,
                                                                ceremony_templates: CeremonyTemplates) -> None:
    with demo_installation(ceremony_templates, kind, tmp_path) as installation:
        assert len(expiry_warnings(installation.engine, NOW)) == 8
        assert all("none issued yet" in line for line in expiry_warnings(installation.engine, NOW))
        result = scheduler(installation).tick(NOW)
        assert issued(result) == LISTS and not result.failed and not result.warnings
        assert all(i.this_update == NOW and i.next_update == NOW + 72 * H and i.number == 1 for i in result.issued)
        assert result.next_tick == NOW + 24 * H
        assert expiry_warnings(installation.engine, NOW) == []


def test_nothing_is_due_within_the_period_and_everything_after_it(installation: Installation) -> None:
    s = scheduler(installation)
    s.tick(NOW)
    assert issued(s.tick(NOW + 23 * H)) == set()
    later = s.tick(NOW + 24 * H)
    assert issued(later) == LISTS
    assert {i.number for i in later.issued} == {2}
    assert all(i.this_update == NOW + 24 * H for i in later.issued)


def test_catch_up_at_start_issues_only_what_is_older_than_the_period(installation: Installation) -> None:
    issue_all(installation.engine, installation.keys, installation.data_dir, now=NOW - 30 * H, time_guard=NO_NTP)
    issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.CRL, now=NOW - H,
               time_guard=NO_NTP)
    started = scheduler(installation, clock=lambda: NOW)  # a restart after a day and a half away
    result = started.tick()
    assert issued(result) == LISTS - {("tokyo", ListType.CRL)}
    assert result.next_tick == NOW - H + 24 * H  # tokyo's CRL falls due first


def test_warns_when_less_than_a_day_is_left_and_when_expired(installation: Installation,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    scheduler(installation).tick(NOW)
    soon = expiry_warnings(installation.engine, NOW + 49 * H)
    assert len(soon) == 8 and all("expires in 23.0 h" in line for line in soon)
    assert "tokyo CRL #1 expires in 23.0 h (nextUpdate 2026-11-04 09:00:00Z)" in soon[2]
    late = expiry_warnings(installation.engine, NOW + 73 * H)
    assert len(late) == 8 and all("expired at 2026-11-04 09:00:00Z" in line for line in late)
    stuck = Scheduler(installation.engine, Inactive(), installation.data_dir, time_guard=NO_NTP)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="revoca.scheduler"):
        result = stuck.tick(NOW + 49 * H)
    assert len(result.warnings) == 8 and "expires in 23.0 h" in caplog.text


class Inactive:
    """The HSM service before M key managers have presented their shares."""

    def signer(self, label: str) -> object:
        raise NotActivated("the HSM service needs 2 more key manager shares")


def test_failed_issues_are_reported_and_retried_without_spending_numbers(installation: Installation) -> None:
    s = Scheduler(installation.engine, Inactive(), installation.data_dir, time_guard=NO_NTP)  # type: ignore[arg-type]
    result = s.tick(NOW)
    assert not result.issued and {(f.ca_name, f.list_type) for f in result.failed} == LISTS
    assert all("2 more key manager shares" in f.error for f in result.failed)
    assert result.next_tick == NOW + RETRY
    with session_scope(installation.engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(CRLCounter)) == 0
    assert issued(scheduler(installation).tick(NOW + RETRY)) == LISTS


def _compromise_tokyo(installation: Installation) -> tuple[set[int], set[int]]:
    """What `revoca ca compromise tokyo` leaves behind: key marked, its certificates revoked (cACompromise)."""
    with session_scope(installation.engine) as session:
        store = Store(session)
        tokyo, bridge = store.ca("tokyo"), store.ca("bridge")
        store.crl_signing_key(tokyo).status = KeyStatus.COMPROMISED
        ca_certs = [c for c in store.certificates(subject_ca=tokyo) if c.kind.is_ca_certificate]
        subscribers = list(store.certificates(issuer=tokyo, kinds=[CertKind.SUBSCRIBER], limit=3))
        for cert in ca_certs + subscribers:
            session.add(Revocation(certificate_id=cert.id, issuer_ca_id=cert.issuer_ca_id, serial=cert.serial,
                                   revocation_time=NOW, reason=2, recorded_at=NOW,
                                   entry_der=encode_entry(cert.serial, NOW, 2),
                                   list_type=ListType.ARL if cert.kind.is_ca_certificate else ListType.CRL))
        assert {c.issuer_ca_id for c in ca_certs} == {tokyo.id, bridge.id}
        return {c.serial for c in ca_certs}, {c.serial for c in subscribers}


def test_issue_now_after_a_compromise_covers_the_ca_and_those_who_certified_it(installation: Installation) -> None:
    s = scheduler(installation)
    s.tick(NOW)
    ca_serials, subscriber_serials = _compromise_tokyo(installation)
    report = s.issue_now("tokyo", NOW + H)
    assert issued(report) == {("tokyo", ListType.CRL), ("tokyo", ListType.ARL), ("bridge", ListType.ARL)}
    by_list = {(i.ca_name, i.list_type): x509.load_der_x509_crl(i.path.read_bytes()) for i in report.issued}
    listed = {key: {r.serial_number for r in crl} for key, crl in by_list.items()}
    assert listed[("tokyo", ListType.CRL)] == subscriber_serials
    assert listed[("tokyo", ListType.ARL)] | listed[("bridge", ListType.ARL)] == ca_serials
    tokyo_root = next(x509.load_der_x509_certificate(c.der) for c in _self_signed(installation, "tokyo"))
    assert by_list[("tokyo", ListType.CRL)].is_signature_valid(tokyo_root.public_key())  # the compromised key signs


def _self_signed(installation: Installation, ca: str) -> list[Any]:
    with session_scope(installation.engine) as session:
        store = Store(session)
        return list(store.certificates(issuer=store.ca(ca), kinds=[CertKind.SELF_SIGNED]))


def test_issue_after_compromise_prints_one_line_per_list_and_fails_loudly(installation: Installation) -> None:
    _compromise_tokyo(installation)
    lines = list(issue_after_compromise(installation.engine, installation.keys, installation.settings, "tokyo",
                                        time_guard=NO_NTP))
    assert [line.split(":")[0] for line in lines] == ["tokyo CRL #1", "tokyo ARL #1", "bridge ARL #1"]
    with pytest.raises(RevocaError, match="revoca crl issue --ca tokyo"):
        list(issue_after_compromise(installation.engine, Inactive(), installation.settings, "tokyo", time_guard=NO_NTP))


def test_shorter_period_and_validity_from_the_configuration(installation: Installation) -> None:
    s = scheduler(installation, CRLConfig(validity_hours=48, period_hours=12, warn_hours=12))
    first = s.tick(NOW)
    assert all(i.next_update == NOW + 48 * H for i in first.issued) and first.next_tick == NOW + 12 * H
    assert issued(s.tick(NOW + 12 * H)) == LISTS
    assert s.expiry_warnings(NOW + 12 * H) == []


def test_run_ticks_until_stopped(installation: Installation) -> None:
    stop = threading.Event()
    calls = []

    def clock() -> dt.datetime:
        calls.append(1)
        if len(calls) > 1:  # after the first round: stop, as SIGTERM would
            stop.set()
        return NOW

    scheduler(installation, clock=clock).run(stop)
    assert scheduler(installation).due(NOW) == []


@pytest.mark.parametrize(("values", "message"), [
    ({"period_hours": 72}, "shorter than crl.validity_hours"),
    ({"period_hours": 24, "warn_hours": 49}, "must not exceed"),
    ({"validity_hours": 0}, "positive whole number"),
    ({"warn_hours": 1.5}, "positive whole number"),
    ({"period_hours": True}, "positive whole number"),
])
def test_impossible_configurations_are_refused_at_start(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CRLConfig(**values)


def test_defaults_are_the_seeds_72_24_24(installation: Installation) -> None:
    config = installation.settings.crl
    assert (config.validity, config.period, config.warn_before) == (72 * H, 24 * H, 24 * H)


def test_lists_from_a_clock_that_was_ahead_or_that_expire_before_the_next_round_are_warned_about(
        installation: Installation) -> None:
    """Issue 15: with the clock 50 h ahead, future-dated lists were issued and `expiry_warnings`
    said nothing; a next round after a list's nextUpdate was not noticed either."""

    scheduler(installation).tick(NOW)  # every list issued at NOW: nothing to say
    assert expiry_warnings(installation.engine, NOW + H) == []
    ahead = issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.CRL,
                       now=NOW + 50 * H, time_guard=NO_NTP)
    warnings = expiry_warnings(installation.engine, NOW + H)
    assert [w for w in warnings if "in the future" in w] == [
        f"tokyo CRL #{ahead.number} has thisUpdate {NOW + 50 * H:%Y-%m-%d %H:%M:%SZ}, in the future: it was issued "
        "on a clock that was ahead; check NTP"]
    short = issue_list(installation.engine, installation.keys, installation.data_dir, "osaka", ListType.ARL,
                       now=NOW + 2 * H, validity=20 * H, time_guard=NO_NTP)  # shorter than the 24 h period
    warnings = expiry_warnings(installation.engine, NOW + 3 * H)
    assert any(w.startswith(f"osaka ARL #{short.number}: the next round (") and "comes only after it expires" in w
               for w in warnings), warnings
