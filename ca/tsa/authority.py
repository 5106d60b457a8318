"""The time-stamp authority: stamps an imprint, keeps the token in `time_stamps`, returns the row.

Used in process by the audit chain and the archive, by `revoca tsa stamp`, and by the HTTP
front end (ca.tsa.app).  The clock is injected; the key is the TSA certificate's key in the
token, reached through any KeyStore (the HSM service in production).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ca.errors import InvalidInput
from ca.hsm.signer import KeyStore, Signer
from ca.storage.engine import Session
from ca.storage.store import ReadStore
from ca.storage.time_stamps import StoredToken, TimeStampWrites
from ca.trusted_time import ClockGuard
from ca.tsa import certificate as tsa_certificate
from ca.tsa import errors
from ca.tsa.profile import TSA_POLICY_OID
from ca.tsa.request import check_imprint
from ca.tsa.token import build_tst_info, gen_time_of, sign_token

Clock = Callable[[], dt.datetime]
MAX_REQUESTER = 128  # time_stamps.requester
SIGNATURE_HASH = hashes.SHA512()  # seed 000 section 9: sha512WithRSAEncryption, SHA-512 digestAlgorithm


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TimeStampAuthority:
    """One TSA certificate and its key; `stamp` is the only way revoca issues a token."""

    def __init__(self, certificate: x509.Certificate, signer: Signer, *, time_guard: ClockGuard,
                 chain: Sequence[x509.Certificate] = (), clock: Clock = utc_now, policy: str = TSA_POLICY_OID) -> None:
        """`time_guard` is the process's NTP check (ca.trusted_time), asked before every token."""
        self.certificate = certificate
        # an RSA key signs SHA-512; an ECDSA key (not a seed 000 TSA key) keeps its curve's hash
        self.signer = signer.with_hash(SIGNATURE_HASH) if signer.algorithm.is_rsa else signer
        self.chain = tuple(chain)
        self.policy = policy
        self._clock = clock
        self._time_guard = time_guard

    @classmethod
    def load(cls, session: Session, keys: KeyStore, *, time_guard: ClockGuard,
             clock: Clock = utc_now) -> TimeStampAuthority:
        """The authority of the current TSA certificate (NotFound when there is none: issue one first)."""
        tsa = tsa_certificate.current(ReadStore(session), clock())
        return cls(tsa.certificate, keys.signer(tsa.key_label), time_guard=time_guard, chain=tsa.chain, clock=clock)

    def stamp(self, session: Session, imprint: bytes, hash_name: str, requester: str, nonce: int | None = None,
              cert_req: bool = True) -> StoredToken:
        """Sign a token for `imprint` (a `hash_name` digest), store it in the caller's transaction, return the row.

        RequestRejected (with its PKIFailureInfo) for an imprint the profile refuses or a TSA
        certificate that is not valid now.
        """
        check_imprint(hash_name, imprint)
        if not requester:
            raise InvalidInput("stamp(): name the requester (e.g. 'audit', 'archive', the HTTP client)")
        now = gen_time_of(self._clock())
        cert = self.certificate
        if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            raise errors.RequestRejected(
                errors.SYSTEM_FAILURE, f"the TSA certificate {cert.serial_number:x} is not valid at "
                f"{now:%Y-%m-%dT%H:%M:%SZ}; renew it with `revoca tsa certificate --renew`")
        serial = x509.random_serial_number()  # 159 random bits, as certificate serials
        tst_info = build_tst_info(serial=serial, gen_time=now, hash_name=hash_name, imprint=imprint, nonce=nonce,
                                  tsa_name=cert.subject, policy=self.policy)
        # seed 000 1.3.3: no token on a clock NTP does not confirm (UntrustedTime -> timeNotAvailable)
        self._time_guard.require("time-stamp token", actor=f"tsa for {requester}"[:128])
        token = sign_token(tst_info, certificate=cert, signer=self.signer, chain=self.chain,
                           include_certificates=cert_req)
        return TimeStampWrites(session).add_time_stamp(
            serial=serial, gen_time=now, hash_algorithm=hash_name, message_imprint=imprint,
            requester=requester[:MAX_REQUESTER], token=token)
