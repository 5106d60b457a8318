"""The errors a user of revoca can hit.

Each carries one line saying what was wrong and what to do; the CLI prints that line and
exits non-zero, the web apps map the class to a status.  Anything that is not a
RevocaError is a bug and keeps its traceback.
"""

from __future__ import annotations


class RevocaError(Exception):
    """Base of every expected failure; str(err) is the one line shown to the user."""

    exit_code = 1


class ConfigError(RevocaError):
    """revoca.toml or an environment override is wrong."""

    exit_code = 2


class NotFound(RevocaError):
    """A named CA, certificate, operator or key does not exist."""

    exit_code = 3


class AlreadyExists(RevocaError):
    """The thing to create is already there with different content."""

    exit_code = 4


class InvalidInput(RevocaError):
    """A file, share or argument could not be used as given."""

    exit_code = 5


class TokenError(RevocaError):
    """The PKCS#11 module or token is missing or refused an operation."""

    exit_code = 6


class NotActivated(RevocaError):
    """Signing was asked of the HSM before enough key managers presented their shares."""

    exit_code = 7


class PermissionDenied(RevocaError):
    """The operator lacks the role, or the credential does not match."""

    exit_code = 8


class ServiceUnavailable(RevocaError):
    """A revoca service this command talks to is not running."""

    exit_code = 9


class DatabaseUnavailable(ServiceUnavailable):
    """The database is busy beyond the wait, full, or unreachable: nothing was stored."""


class IntegrityFailure(RevocaError):
    """A stored record, chain or time-stamp does not verify: evidence of tampering or damage."""

    exit_code = 10


class UntrustedTime(RevocaError):
    """The clock could not be confirmed against the configured NTP servers; nothing was signed."""

    exit_code = 11
