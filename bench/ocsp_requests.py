"""The requests of bench/ocsp.py: which serials are asked, the signed OCSP requests, and the check of every answer.

The population is N revoked certificates of one CA (bench/crl.py `entries`: 159-bit serials,
revocation times and reasons), G good ones (certificates of that CA, not revoked: entries
N..N+G-1 of the same generator, so their serials never meet a revoked one) and serials the CA
never issued (bit 157 set and 158 clear, where every issued one has bit 158 set).  A mix
(`Mix`: percentages of revoked, good and unknown) chooses K distinct serials from it, each
share drawn uniformly without replacement from its part of the population, then shuffled
together: the order the requests are sent in.  The same seed gives the same serials.

Every request is what a registered verifier sends: one SHA-1 CertID, signed by the verifier
(RSA-2048, SHA-256), naming itself and carrying its certificate (RFC 6960 4.1.2); with a
nonce, a nonce of 16 random bytes of its own per request.  They are signed in parallel
processes (about 0.6 ms each on one core), once per run, before anything is timed.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import hashlib
import importlib.util
import os
import random
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp as x509_ocsp

_HERE = Path(__file__).resolve().parent


def bench_module(name: str):  # type: ignore[no-untyped-def]
    """bench/<name>.py, loaded by its path once (bench/ is not a package, and bench/ocsp.py would
    hide the ocsp package if bench/ were on sys.path)."""
    key = f"bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, _HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[key]


crl_bench = bench_module("crl")

from ocsp.issuers import public_key_bits  # noqa: E402

REVOKED, GOOD, UNKNOWN = "revoked", "good", "unknown"
REASON_FLAGS = {1: x509.ReasonFlags.key_compromise, 2: x509.ReasonFlags.ca_compromise,
                3: x509.ReasonFlags.affiliation_changed, 4: x509.ReasonFlags.superseded,
                5: x509.ReasonFlags.cessation_of_operation}
CERT_STATUS = {REVOKED: x509_ocsp.OCSPCertStatus.REVOKED, GOOD: x509_ocsp.OCSPCertStatus.GOOD,
               UNKNOWN: x509_ocsp.OCSPCertStatus.UNKNOWN}
MAX_ERROR_SHARE = 0.01  # requests without an HTTP 200 OCSP `successful` answer a pass may have


# -- the mix -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mix:
    """Shares of the K serials, in percent."""

    revoked: int = 75
    good: int = 0
    unknown: int = 25

    @classmethod
    def parse(cls, text: str) -> Mix:
        """'revoked=75,unknown=25' (shares left out are 0; they must add up to 100)."""
        shares = {REVOKED: 0, GOOD: 0, UNKNOWN: 0}
        for part in text.split(","):
            name, _, value = part.partition("=")
            if name.strip() not in shares or not value.strip().isdigit():
                raise ValueError(f"{part!r}: expected revoked=P, good=P or unknown=P (percent)")
            shares[name.strip()] = int(value)
        if sum(shares.values()) != 100:
            raise ValueError(f"the shares add up to {sum(shares.values())}, not 100")
        return cls(shares[REVOKED], shares[GOOD], shares[UNKNOWN])

    def counts(self, k: int) -> tuple[int, int, int]:
        """(revoked, good, unknown) of K serials."""
        revoked, good = round(k * self.revoked / 100), round(k * self.good / 100)
        return revoked, good, k - revoked - good

    def __str__(self) -> str:
        return ",".join(f"{n}={v}" for n, v in ((REVOKED, self.revoked), (GOOD, self.good), (UNKNOWN, self.unknown))
                        if v)


@dataclasses.dataclass(frozen=True)
class Expected:
    """One request's serial and the answer it must get."""

    serial: int
    status: str  # REVOKED, GOOD or UNKNOWN
    revoked_at: dt.datetime | None = None
    reason: int | None = None
    nonce: bytes | None = None

    def with_nonce(self, nonce: bytes | None) -> Expected:
        return dataclasses.replace(self, nonce=nonce)


def good_serials(n_revoked: int, n_good: int) -> Iterator[int]:
    """The serials of the G good certificates (after the N revoked in bench/crl.py's sequence)."""
    for serial, _, _ in crl_bench.entries(n_good, start=n_revoked):
        yield serial


def unknown_serials(k: int, seed: int) -> list[int]:
    """K serials the CA never issued (bit 158 clear: every issued one has it set), all different."""
    rng = random.Random(f"unknown-{seed}")
    found: dict[int, None] = {}  # in the order drawn: the first K of K+1 are the K
    while len(found) < k:
        found[(1 << 157) | rng.getrandbits(120)] = None
    return list(found)


def choose(n_revoked: int, n_good: int, k: int, mix: Mix, seed: int = 16) -> list[Expected]:
    """K distinct serials in the mix's shares, each share uniform over its part, shuffled."""
    k_revoked, k_good, k_unknown = mix.counts(k)
    if k_revoked > n_revoked or k_good > n_good:
        raise ValueError(f"{k} serials at {mix} need {k_revoked} revoked and {k_good} good certificates; "
                         f"the population has {n_revoked} and {n_good}: ask for fewer serials or more entries")
    rng = random.Random(seed)
    wanted = set(rng.sample(range(n_revoked), k_revoked))
    chosen = [Expected(serial, REVOKED, when, reason)
              for i, (serial, when, reason) in enumerate(crl_bench.entries(n_revoked)) if i in wanted]
    good = set(rng.sample(range(n_good), k_good))
    chosen += [Expected(serial, GOOD) for i, serial in enumerate(good_serials(n_revoked, n_good)) if i in good]
    # one more unknown serial than asked: the probe (`probe_serial`), which no pass asks about
    chosen += [Expected(serial, UNKNOWN) for serial in unknown_serials(k_unknown + 1, seed)[1:]]
    rng.shuffle(chosen)
    return chosen


def probe_serial(seed: int = 16) -> Expected:
    """A serial outside every mix of this seed: what readiness checks ask, so no pass's serial is warm."""
    return Expected(unknown_serials(1, seed)[0], UNKNOWN)


# -- requests ----------------------------------------------------------------------------------------


def ocsp_request(issuer: x509.Certificate, serial: int, signer: x509.Certificate, key: rsa.RSAPrivateKey,
                 nonce: bytes | None) -> bytes:
    """One SHA-1 CertID, optionally a nonce; tbsRequest signed by the verifier, who names itself and
    attaches its certificate (RFC 6960 4.1.2)."""
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        hashlib.sha1(issuer.subject.public_bytes()).digest(), hashlib.sha1(public_key_bits(spki)).digest(),
        serial, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    unsigned = asn1_ocsp.OCSPRequest.load(builder.build().public_bytes(serialization.Encoding.DER))
    signer_asn1 = asn1_x509.Certificate.load(signer.public_bytes(serialization.Encoding.DER))
    tbs = unsigned["tbs_request"]
    tbs["requestor_name"] = asn1_x509.GeneralName(name="directory_name", value=signer_asn1.subject)
    signature = key.sign(tbs.dump(force=True), padding.PKCS1v15(), hashes.SHA256())
    signed = asn1_ocsp.OCSPRequest({
        "tbs_request": tbs,
        "optional_signature": {"signature_algorithm": {"algorithm": "sha256_rsa"}, "signature": signature,
                               "certs": [signer_asn1]},
    })
    return signed.dump()


def _sign_chunk(issuer_der: bytes, signer_der: bytes, key_pem: bytes,
                chunk: list[tuple[int, bytes | None]]) -> list[bytes]:
    issuer = x509.load_der_x509_certificate(issuer_der)
    signer = x509.load_der_x509_certificate(signer_der)
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return [ocsp_request(issuer, serial, signer, key, nonce) for serial, nonce in chunk]


def signed_requests(issuer: x509.Certificate, signer: x509.Certificate, key: rsa.RSAPrivateKey,
                    wanted: list[Expected], processes: int | None = None) -> list[bytes]:
    """The request for each of `wanted` (its serial, its nonce if any), signed in parallel."""
    items = [(e.serial, e.nonce) for e in wanted]
    processes = max(1, min(processes or os.cpu_count() or 1, len(items) // 200 or 1))
    if processes == 1:
        return [ocsp_request(issuer, serial, signer, key, nonce) for serial, nonce in items]
    der = serialization.Encoding.DER
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    size = -(-len(items) // (processes * 4))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    # fork: the workers have this module as it was loaded (by path, under its bench_ name)
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        done = pool.map(_sign_chunk, [issuer.public_bytes(der)] * len(chunks), [signer.public_bytes(der)] * len(chunks),
                        [key_pem] * len(chunks), chunks)
        return [body for part in done for body in part]


def with_nonces(wanted: Iterable[Expected], seed: int = 16) -> list[Expected]:
    """The same serials, each with a 16-byte nonce of its own."""
    rng = random.Random(f"nonce-{seed}")
    return [e.with_nonce(rng.randbytes(16)) for e in wanted]


def write_manifest(path: Path, wanted: list[Expected]) -> None:
    """What each request asks and must get, one line each (for a reader of a kept work directory)."""
    with open(path, "w", encoding="ascii") as f:
        f.write("index\tserial\tstatus\trevoked_at\treason\tnonce\n")
        for i, e in enumerate(wanted):
            f.write(f"{i}\t{e.serial:x}\t{e.status}\t{e.revoked_at.isoformat() if e.revoked_at else ''}\t"
                    f"{e.reason or ''}\t{e.nonce.hex() if e.nonce else ''}\n")


# -- checking answers --------------------------------------------------------------------------------


@dataclasses.dataclass
class Checked:
    """What the answers of one pass were."""

    answered: int = 0
    by_status: dict[str, int] = dataclasses.field(default_factory=dict)
    no_answer: int = 0  # transport errors: connect, reset, timeout
    not_successful: int = 0  # HTTP other than 200, or an OCSP error response (tryLater, internalError...)
    signatures_checked: int = 0


class WrongAnswer(SystemExit):
    pass


def check_answers(answers: Iterable[object], wanted: list[Expected], what: str, *,
                  responder: x509.Certificate | None = None, issuer: x509.Certificate | None = None) -> Checked:
    """Every answer of a pass (bench/ocsp_load.py Answer) against what its request must get.

    An answer that is successful but wrong (another serial or status, a wrong time or reason,
    nonce not echoed, a signature that does not verify, another responder certificate than
    `responder`, or one not issued by `issuer`) stops the bench: WrongAnswer.  Requests with no
    answer, or answered other than HTTP 200 `successful`, are counted; more than 1% of them stop
    it too.  Every distinct answer's signature is verified (a pre-signed answer served again is
    the same bytes, verified once).
    """
    seen: set[bytes] = set()
    known_signers: set[bytes] = set()
    out = Checked()

    def fail(e: Expected, why: str) -> WrongAnswer:
        return WrongAnswer(f"{what}: wrong answer for serial {e.serial:x} ({e.status}): {why}")

    for answer in answers:
        index, status, body = answer.index, answer.status, answer.body  # type: ignore[attr-defined]
        e = wanted[index]
        out.answered += 1
        if status == 0:
            out.no_answer += 1
            continue
        if status != 200:
            out.not_successful += 1
            continue
        try:
            resp = x509_ocsp.load_der_ocsp_response(body)
        except ValueError as exc:
            raise fail(e, f"not an OCSP response: {exc}") from None
        if resp.response_status != x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
            out.not_successful += 1
            continue
        if resp.serial_number != e.serial:
            raise fail(e, f"the answer is for serial {resp.serial_number:x}")
        got = resp.certificate_status
        if got != CERT_STATUS[e.status]:
            raise fail(e, f"answered {got.name}")
        if e.status == REVOKED:
            assert e.revoked_at is not None and e.reason is not None
            if resp.revocation_time_utc != e.revoked_at.replace(microsecond=0):
                raise fail(e, f"revoked at {resp.revocation_time_utc}, expected {e.revoked_at}")
            if resp.revocation_reason != REASON_FLAGS[e.reason]:
                raise fail(e, f"reason {resp.revocation_reason}, expected {REASON_FLAGS[e.reason]}")
        try:
            echoed: bytes | None = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed != e.nonce:
            raise fail(e, f"nonce {echoed!r}, expected {e.nonce!r}")
        out.by_status[e.status] = out.by_status.get(e.status, 0) + 1
        digest = hashlib.sha256(body).digest()
        if digest in seen:
            continue
        seen.add(digest)
        if len(resp.certificates) != 1:
            raise fail(e, f"{len(resp.certificates)} certificates in the response, expected the responder's")
        signer = resp.certificates[0]
        signer_der = signer.public_bytes(serialization.Encoding.DER)
        if signer_der not in known_signers:
            if responder is not None and signer != responder:
                raise fail(e, f"signed by {signer.subject.rfc4514_string()}, not the expected responder certificate")
            if issuer is not None:
                signer.verify_directly_issued_by(issuer)
            known_signers.add(signer_der)
        try:
            verify(signer.public_key(), resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)
        except InvalidSignature:
            raise fail(e, "the signature does not verify") from None
        out.signatures_checked += 1
    if out.answered != len(wanted):
        raise WrongAnswer(f"{what}: {out.answered} answers for {len(wanted)} requests")
    bad = out.no_answer + out.not_successful
    if bad > MAX_ERROR_SHARE * len(wanted):
        raise WrongAnswer(f"{what}: {out.no_answer} requests without an answer and {out.not_successful} answered "
                          f"other than HTTP 200 `successful`, of {len(wanted)} (more than {MAX_ERROR_SHARE:.0%})")
    return out


def verify(public: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None) -> None:
    assert algorithm is not None
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, data, ec.ECDSA(algorithm))
    else:
        raise InvalidSignature(f"unexpected responder key {type(public).__name__}")


def key_name(cert: x509.Certificate) -> str:
    """'RSA-2048', 'P-256', ... of a certificate's public key."""
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA-{public.key_size}"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return {"secp256r1": "P-256", "secp384r1": "P-384"}.get(public.curve.name, public.curve.name)
    return type(public).__name__

