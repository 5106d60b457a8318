"""The "no new keys" policy (seed 004 5.6, 6.1.1.1, 1.3.1.2): a CA winding down renews no key pair
and issues no new subscriber certificate until its last one ends.

`[ca] new_keys = false` (ca.config.CAPolicyConfig; the default, as the seed's CA) makes revoca
refuse, with one line and a `policy.refused` audit record:

- `revoca ca rollover` (a new CA key pair);
- importing a subscriber certificate whose notBefore is later than the moment its CA came under
  revoca (its creation or adoption): such a certificate was issued after issuance stopped, so
  the key was used outside the policy (`revoca cert import` names the file and goes on).

The key ceremony of a brand-new CA (`revoca init`) is not affected: it is how another deployment
starts, and it makes the CA, not a new key of an existing one.
"""

from __future__ import annotations

import datetime as dt

from ca import audit
from ca.config import CAPolicyConfig
from ca.errors import PermissionDenied
from ca.storage.engine import Engine

EVENT = "policy.refused"
SETTING = "[ca] new_keys = false"


class NewKeysRefused(PermissionDenied):
    """An act the no-new-keys policy forbids; the message names the act and the setting."""


def require_new_keys(engine: Engine, policy: CAPolicyConfig, *, act: str, ca: str, actor: str) -> None:
    """Raise NewKeysRefused (audited) when `policy` forbids `act` (e.g. "key rollover") on `ca`."""
    if policy.new_keys:
        return
    error = NewKeysRefused(f"{act} of CA {ca} refused: this installation renews no keys and issues no new "
                           f"certificates ({SETTING}, seed 004 5.6); nothing was changed")
    audit.record_failure(engine, EVENT, actor=actor, error=str(error), act=act, ca=ca)
    raise error


def issued_after_stop(policy: CAPolicyConfig, *, not_before: dt.datetime, ca_since: dt.datetime,
                      ca: str) -> str | None:
    """Why a subscriber certificate may not be imported under `policy` (None: it may).

    `ca_since` is when the CA came under revoca; a certificate dated later was issued after the
    CA stopped issuing.  A minute of slack covers the ceremony's own demo certificates, which
    are dated with the CA."""
    if policy.new_keys:
        return None
    since = ca_since if ca_since.tzinfo else ca_since.replace(tzinfo=dt.UTC)
    if not_before > since + dt.timedelta(minutes=1):
        return (f"issued {not_before:%Y-%m-%dT%H:%M:%SZ}, after CA {ca} stopped issuing "
                f"({since:%Y-%m-%dT%H:%M:%SZ}; {SETTING}, seed 004 5.6)")
    return None
