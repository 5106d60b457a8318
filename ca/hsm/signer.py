"""The Signer and KeyStore boundaries, and the bridge that lets cryptography sign through them.

A CA key never leaves the token, yet certificates, CRLs and OCSP responses are built with
pyca/cryptography's builders.  Those builders only ask the private key object for
`sign(data, ...)`, so `as_private_key(signer)` hands them a key object whose sign() is the
token's: cryptography builds and encodes, the token signs, and nothing is hand-encoded.
"""

from __future__ import annotations

import enum
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ca.errors import InvalidInput


class KeyAlgorithm(enum.StrEnum):
    RSA2048 = "rsa2048"
    RSA3072 = "rsa3072"
    RSA4096 = "rsa4096"
    P256 = "p256"
    P384 = "p384"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa")

    @property
    def bits(self) -> int:
        return {"rsa2048": 2048, "rsa3072": 3072, "rsa4096": 4096, "p256": 256, "p384": 384}[self.value]

    @property
    def hash_algorithm(self) -> hashes.SHA256 | hashes.SHA384:
        """sha256WithRSAEncryption / ecdsa-with-SHA256 for all but P-384, which pairs with SHA-384."""
        return hashes.SHA384() if self is KeyAlgorithm.P384 else hashes.SHA256()

    @classmethod
    def of_public_key(cls, key: CertificateIssuerPublicKeyTypes) -> KeyAlgorithm:
        if isinstance(key, rsa.RSAPublicKey) and key.key_size in (2048, 3072, 4096):
            return cls(f"rsa{key.key_size}")
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
            return cls.P256 if key.curve.name == "secp256r1" else cls.P384
        raise InvalidInput(f"unsupported CA key type {type(key).__name__} ({getattr(key, 'key_size', '?')} bits)")


# RSA PKCS#1 v1.5 names its hash in the DigestInfo, so an RSA key may sign with any of these.
SIGNATURE_HASHES = MappingProxyType({"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()})


def signature_hash(algorithm: KeyAlgorithm, wanted: str | hashes.HashAlgorithm | None, *,
                   key_label: str) -> hashes.HashAlgorithm:
    """The hash a key of `algorithm` signs with when asked for `wanted` (None: the algorithm's own).

    Any SHA-2 of SIGNATURE_HASHES for RSA; an ECDSA key keeps its curve's hash, the pairing its
    certificates announce.  Also checks what arrives over the HSM socket, hence the one-line errors.
    """
    if wanted is None:
        return algorithm.hash_algorithm
    name = wanted.name if isinstance(wanted, hashes.HashAlgorithm) else wanted
    chosen = SIGNATURE_HASHES.get(name) if isinstance(name, str) else None
    if chosen is None:
        raise InvalidInput(f"unknown signature hash {name!r:.40} for key {key_label}; use sha256, sha384 or sha512")
    if not algorithm.is_rsa and chosen.name != algorithm.hash_algorithm.name:
        raise InvalidInput(f"key {key_label} is ECDSA {algorithm} and signs with {algorithm.hash_algorithm.name} "
                           f"only, not {chosen.name}; only RSA keys can sign with another hash")
    return chosen


@runtime_checkable
class Signer(Protocol):
    """One private key that can sign; it does not matter where the key lives."""

    @property
    def key_label(self) -> str: ...

    @property
    def algorithm(self) -> KeyAlgorithm: ...

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """The hash sign() and sign_digest() use: `algorithm.hash_algorithm` unless with_hash() chose another."""
        ...

    def public_key(self) -> CertificateIssuerPublicKeyTypes: ...

    def with_hash(self, algorithm: hashes.HashAlgorithm) -> Signer:
        """The same key signing with `algorithm` (see signature_hash: RSA only; InvalidInput otherwise)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign data with hash_algorithm: PKCS#1 v1.5 for RSA, DER ECDSA-Sig-Value for EC."""
        ...

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a digest made with hash_algorithm (for data streamed through the hash, e.g. big CRLs)."""
        ...


@runtime_checkable
class KeyStore(Protocol):
    """Where CA and responder keys are made and used: the PKCS#11 token, directly or via the HSM service."""

    def generate(self, label: str, algorithm: KeyAlgorithm) -> CertificateIssuerPublicKeyTypes: ...

    def signer(self, label: str) -> Signer: ...


class SoftwareSigner:
    """A key held in memory by cryptography.

    For keys that are not CA keys by design: another organisation's CA in cross-certification
    tests, and later the delegated OCSP responder key file.  Never for a revoca CA key.
    """

    def __init__(self, private_key: CertificateIssuerPrivateKeyTypes, label: str = "software", *,
                 hash_algorithm: hashes.HashAlgorithm | None = None) -> None:
        if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise InvalidInput(f"software signer supports RSA and EC keys, not {type(private_key).__name__}")
        self._key = private_key
        self._label = label
        self._algorithm = KeyAlgorithm.of_public_key(private_key.public_key())
        self._hash = signature_hash(self._algorithm, hash_algorithm, key_label=label)

    @property
    def key_label(self) -> str:
        return self._label

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self._algorithm

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self._hash

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        return self._key.public_key()

    def with_hash(self, algorithm: hashes.HashAlgorithm) -> SoftwareSigner:
        return SoftwareSigner(self._key, self._label, hash_algorithm=algorithm)

    def sign(self, data: bytes) -> bytes:
        return self._sign(data, self._hash)

    def sign_digest(self, digest: bytes) -> bytes:
        check_digest(self, digest)
        return self._sign(digest, Prehashed(self._hash))

    def _sign(self, data: bytes, algorithm: hashes.HashAlgorithm | Prehashed) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), algorithm)
        return self._key.sign(data, ec.ECDSA(algorithm))


def verify_signature(public_key: object, signature: bytes, data: bytes,
                     algorithm: hashes.HashAlgorithm | Prehashed) -> None:
    """Check an RSA PKCS#1 v1.5 or ECDSA signature; raises InvalidSignature, or InvalidInput
    for another kind of key. (What every signing path checks before it releases a signature.)"""
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(algorithm))
    else:
        raise InvalidInput(f"unsupported key type {type(public_key).__name__}: only RSA and ECDSA")


def check_digest(signer: Signer, digest: bytes) -> None:
    if len(digest) != signer.hash_algorithm.digest_size:
        raise InvalidInput(f"key {signer.key_label} signs {signer.hash_algorithm.name} digests "
                           f"of {signer.hash_algorithm.digest_size} bytes, not {len(digest)}")


def _check_hash(signer: Signer, algorithm: object) -> None:
    if isinstance(algorithm, Prehashed) or not isinstance(algorithm, hashes.HashAlgorithm):
        raise InvalidInput("signing a pre-hashed value is not supported through a Signer")
    if algorithm.name != signer.hash_algorithm.name:
        raise InvalidInput(
            f"key {signer.key_label} signs with {signer.hash_algorithm.name}, "
            f"not {algorithm.name}; pass signer.hash_algorithm to the builder"
        )


class _RSASignerKey(rsa.RSAPrivateKey):
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def sign(self, data: bytes, padding_: padding.AsymmetricPadding, algorithm: object) -> bytes:
        if not isinstance(padding_, padding.PKCS1v15):
            raise InvalidInput(f"key {self._signer.key_label} signs with PKCS#1 v1.5 only, not {padding_.name}")
        _check_hash(self._signer, algorithm)
        return self._signer.sign(data)

    def public_key(self) -> rsa.RSAPublicKey:
        key = self._signer.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        return key

    @property
    def key_size(self) -> int:
        return self.public_key().key_size

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        raise NotImplementedError("token keys are for signing only")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise NotImplementedError("token keys cannot be exported")

    def private_bytes(self, *args: object, **kwargs: object) -> bytes:
        raise NotImplementedError("token keys cannot be exported")

    def __copy__(self) -> _RSASignerKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> _RSASignerKey:
        return self


class _ECSignerKey(ec.EllipticCurvePrivateKey):
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def sign(self, data: bytes | bytearray | memoryview,
             signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise InvalidInput(f"key {self._signer.key_label} signs with ECDSA only")
        _check_hash(self._signer, signature_algorithm.algorithm)
        return self._signer.sign(bytes(data))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        key = self._signer.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    @property
    def curve(self) -> ec.EllipticCurve:
        return self.public_key().curve

    @property
    def key_size(self) -> int:
        return self.curve.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise NotImplementedError("token keys are for signing only")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise NotImplementedError("token keys cannot be exported")

    def private_bytes(self, *args: object, **kwargs: object) -> bytes:
        raise NotImplementedError("token keys cannot be exported")

    def __copy__(self) -> _ECSignerKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> _ECSignerKey:
        return self


def as_private_key(signer: Signer) -> CertificateIssuerPrivateKeyTypes:
    """A cryptography private-key object whose sign() goes to `signer` (for the x509 builders)."""
    return _RSASignerKey(signer) if signer.algorithm.is_rsa else _ECSignerKey(signer)
