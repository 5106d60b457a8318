"""How long CRLs and ARLs are valid, how often they are issued, and when to warn (`[crl]` in revoca.toml)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from ca.errors import ConfigError


@dataclasses.dataclass(frozen=True, slots=True)
class CRLConfig:
    """Seed 004 4.9.7: issued every 24 hours, valid 72 hours; warn when less than 24 hours remain.

    Refused at start-up rather than discovered in production: a period that is not shorter
    than the validity (relying parties would see expired CRLs), and a warning threshold that
    normal operation would cross (period + warning longer than validity).
    """

    validity_hours: int = 72
    period_hours: int = 24
    warn_hours: int = 24

    def __post_init__(self) -> None:
        for name in ("validity_hours", "period_hours", "warn_hours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"crl.{name} must be a positive whole number of hours, not {value!r}")
        if self.period_hours >= self.validity_hours:
            raise ConfigError(f"crl.period_hours ({self.period_hours}) must be shorter than crl.validity_hours "
                              f"({self.validity_hours}), or CRLs expire before their successors are issued")
        if self.period_hours + self.warn_hours > self.validity_hours:
            raise ConfigError(f"crl.period_hours + crl.warn_hours ({self.period_hours} + {self.warn_hours}) must "
                              f"not exceed crl.validity_hours ({self.validity_hours}), or every CRL would warn "
                              "before its successor is due")

    @property
    def validity(self) -> dt.timedelta:
        return dt.timedelta(hours=self.validity_hours)

    @property
    def period(self) -> dt.timedelta:
        return dt.timedelta(hours=self.period_hours)

    @property
    def warn_before(self) -> dt.timedelta:
        return dt.timedelta(hours=self.warn_hours)


def crl_config(settings: object) -> CRLConfig:
    """The `[crl]` settings, or the defaults while Settings has no `crl` field yet."""
    found = getattr(settings, "crl", None)
    return found if isinstance(found, CRLConfig) else CRLConfig()
