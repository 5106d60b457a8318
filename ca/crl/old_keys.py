"""Lists signed by a retired CA key, so that certificates it signed stay checkable by default clients.

After `revoca ca rollover` the CA's CRL and ARL are signed by the new key.  A relying party
that trusts the old self-signed certificate and runs `openssl verify -crl_check` with default
flags accepts only a CRL signed by the key that signed the certificate (it finds the CRL's
signer by AKI in the certificate's own path; only `-extended_crl` follows the link
certificates), and answers `unable to get certificate CRL` for every certificate of the old
key.  So each retired key that signed a still unexpired certificate keeps signing a list of
its own (ca.storage.retired_keys has the query), until the last such certificate expires:

- same issuer name, same IssuingDistributionPoint, the retired key's AKI, signed by that key;
- the same entries as the current key's list: serial numbers are unique per CA name across
  its keys, so every entry is right for any certificate of that name, and a history import
  knows serials, not which key signed them;
- numbered from the CA's one sequence for that list (shared with the current key's lists and
  its delta CRLs): the current key's list is issued right after, so it keeps the highest
  number (RFC 5280 5.2.3 asks only that numbers increase per issuer and scope; one sequence
  per issuer name never shows two different lists under one number);
- written under crls/<ca>/<crl|arl>/key-<generation>/ and archived like every list, but not
  queued for the LDAP entry on its own: the publisher writes each retired key's newest list
  beside the current key's when it publishes that (the attribute then has two values; the
  current key's, with the higher number, is what read-back and number checks look at).

The scheduler (ca.scheduler) issues them in the same round as the current key's list of that
CA, before it; a retired key's list falling due on its own makes its CA's round due too.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from pathlib import Path

from ca.config import CRLConfig
from ca.crl.issue import IssuedCRLInfo, IssueFailure, IssueReport, issue_list
from ca.enums import ListType
from ca.errors import RevocaError
from ca.hsm.signer import KeyStore
from ca.storage.engine import Engine, session_scope
from ca.storage.retired_keys import RetiredKeyDuty, RetiredKeyReads
from ca.trusted_time import ClockGuard

log = logging.getLogger("revoca.crl")
VALIDITY = CRLConfig().validity


def duties(engine: Engine, now: dt.datetime) -> list[RetiredKeyDuty]:
    """Every retired key that still owes a CRL or ARL at `now` (read-only)."""
    with session_scope(engine, readonly=True) as session:
        return RetiredKeyReads(session).retired_key_duties(now)


def due(found: Iterable[RetiredKeyDuty], now: dt.datetime, period: dt.timedelta) -> set[tuple[str, ListType]]:
    """The (CA, list) rounds a retired key's own list makes due: never issued, or a period old."""
    return {(d.ca_name, d.list_type) for d in found
            if d.last_this_update is None or _aware(d.last_this_update) + period <= now}


def issue_before(engine: Engine, keys: KeyStore, data_dir: Path, targets: Iterable[tuple[str, ListType]],
                 found: Iterable[RetiredKeyDuty], *, now: dt.datetime, time_guard: ClockGuard,
                 validity: dt.timedelta = VALIDITY, actor: str = "revoca") -> IssueReport:
    """The retired keys' lists of each (CA, list) in `targets`, to be issued just before the current one."""
    wanted = set(targets)
    issued: list[IssuedCRLInfo] = []
    failed: list[IssueFailure] = []
    for duty in found:
        if (duty.ca_name, duty.list_type) not in wanted:
            continue
        try:
            info = issue_list(engine, keys, data_dir, duty.ca_name, duty.list_type, now=now, validity=validity,
                              time_guard=time_guard, actor=actor, key_generation=duty.generation)
            issued.append(info)
            log.info("issued %s with retired key generation %d (it signed certificates valid until %s)",
                     info.line(), duty.generation, f"{_aware(duty.until):%Y-%m-%d}")
        except RevocaError as exc:
            log.error("%s %s of retired key %d not issued: %s", duty.ca_name, duty.list_type.value, duty.generation,
                      exc)
            failed.append(IssueFailure(duty.ca_name, duty.list_type, f"retired key {duty.generation}: {exc}",
                                       exc.exit_code))
    return IssueReport(tuple(issued), tuple(failed))


def expiry_lines(found: Iterable[RetiredKeyDuty], now: dt.datetime, validity: dt.timedelta,
                 warn_before: dt.timedelta) -> list[str]:
    """One line per retired key's list that was never issued or will expire within `warn_before`."""
    lines = []
    for d in found:
        label = f"{d.ca_name} {d.list_type.value.upper()} of retired key {d.generation}"
        if d.last_this_update is None:
            lines.append(f"{label}: none issued yet; certificates it signed (valid until {_aware(d.until):%Y-%m-%d})"
                         " cannot be checked by clients trusting its self-signed certificate")
        elif _aware(d.last_this_update) + validity - now < warn_before:
            ends = _aware(d.last_this_update) + validity
            lines.append(f"{label} {'expired' if ends <= now else 'expires'} at {ends:%Y-%m-%d %H:%M:%SZ}; "
                         "check that `revoca serve scheduler` runs")
    return lines


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
