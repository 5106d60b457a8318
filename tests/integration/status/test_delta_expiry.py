"""`revoca status` and /metrics warn about delta CRLs as about complete lists (issue 16): a CA's
newest delta CRL expired, or close to it -- by the share of its validity that [crl] warn_hours is
of a CRL's.  Real lists, signed with the demo token and archived, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

from ca import health
from ca.config import CRLConfig
from ca.crl.freshest import DeltaPolicy
from ca.crl.issue import issue_list
from ca.enums import ListType
from ca.status_page.metrics import RevocaCollector

from support.clock import NO_NTP
from support.installation import Installation
from support.tools import revoca

POLICY = DeltaPolicy("o=JPKI,c=JP")  # valid 180 minutes, the default
MINUTE = dt.timedelta(minutes=1)



def issue(installation: Installation, list_type: ListType, at: dt.datetime) -> int:
    assert installation.keys is not None
    return issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", list_type, now=at,
                      deltas=POLICY, time_guard=NO_NTP).number


def status(installation: Installation, **env: str) -> dict[str, object]:
    _, out, _ = revoca(installation.env(**env), "status", "--json")
    return json.loads(out)  # type: ignore[no-any-return]


def delta_lines(doc: dict[str, object]) -> list[str]:
    return [w for w in doc["warnings"] if "delta CRL" in w]  # type: ignore[attr-defined]


def samples(installation: Installation, now: dt.datetime) -> dict[tuple[str, tuple[str, ...]], float]:
    collector = RevocaCollector(installation.engine, clock=lambda: now)
    return {(s.name, tuple(s.labels.values())): s.value for m in collector.collect() for s in m.samples}


def test_the_window_is_the_share_of_validity_warn_hours_is_of_a_crl_and_never_what_normal_operation_crosses(
        ) -> None:
    assert health.delta_warn_before(CRLConfig()) == 60 * MINUTE  # 24/72 of 180 min, and (180 - 60) / 2
    assert health.delta_warn_before(CRLConfig(delta_period_minutes=30, delta_validity_minutes=60)) == 15 * MINUTE
    assert health.delta_warn_before(CRLConfig(delta_period_minutes=10, delta_validity_minutes=240)) == 80 * MINUTE


def test_an_expired_or_expiring_delta_crl_warns_and_a_fresh_one_does_not(installation: Installation) -> None:
    real = dt.datetime.now(dt.UTC).replace(microsecond=0)
    issue(installation, ListType.CRL, real - 5 * dt.timedelta(hours=1))
    assert not delta_lines(status(installation))  # no delta yet: nothing to say of one

    expired = issue(installation, ListType.DELTA, real - 200 * MINUTE)  # nextUpdate 20 minutes ago
    (newest,) = [d for d in health.newest_deltas(installation.engine) if d.ca_name == "tokyo"]
    assert (newest.number, newest.next_update) == (expired, real - 20 * MINUTE)
    doc = status(installation)
    assert delta_lines(doc) == [
        f"tokyo delta CRL #{expired} expired at {real - 20 * MINUTE:%Y-%m-%d %H:%M:%SZ}: verifiers using delta "
        "CRLs find none current; check that `revoca serve scheduler` runs and the HSM is activated "
        "(`revoca crl issue --ca NAME --type delta`)"]
    assert {"ca": "tokyo", "number": expired} in [{k: d[k] for k in ("ca", "number")}
                                                  for d in doc["deltas"]]  # type: ignore[attr-defined]
    got = samples(installation, real)
    assert got["revoca_delta_crl_next_update_seconds", ("tokyo",)] == -20 * 60
    assert got["revoca_delta_crl_number", ("tokyo",)] == expired
    # deltas turned off: an old delta is nobody's concern
    assert not delta_lines(status(installation, REVOCA_CRL_DELTA_PERIOD_MINUTES="0"))

    closing = issue(installation, ListType.DELTA, real - 150 * MINUTE)  # 30 minutes left, under the hour
    (line,) = delta_lines(status(installation))
    assert line.startswith(f"tokyo delta CRL #{closing} expires in ") and " min (nextUpdate " in line, line
    left = float(line.split("expires in ")[1].split(" min")[0])
    assert 25 <= left <= 30, line

    issue(installation, ListType.DELTA, real - 10 * MINUTE)  # 170 minutes left
    assert not delta_lines(status(installation))
