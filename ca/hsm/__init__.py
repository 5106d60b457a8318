"""Keys in a PKCS#11 token, activated by M of N key managers.

`token` talks PKCS#11, `shares` splits and checks the activation secret, `activation`
collects shares, `service` holds the activated token for the other processes and `client`
is how they reach it; `policy` says what each caller may have signed, `sessions` are the key
managers' ceremony sessions that certificates, new keys and destruction need, `crl_stream`
judges a streamed CRL or ARL while hashing it; `destruction` decides when a key may be
destroyed, by M key managers.
"""

from __future__ import annotations

from pathlib import Path

from ca.config import Settings
from ca.hsm.token import Token


def token_for(settings: Settings) -> Token:
    conf: Path | None = settings.softhsm_conf if settings.hsm.is_softhsm else None
    return Token(settings.hsm.module, settings.hsm.token_label, softhsm_conf=conf)
