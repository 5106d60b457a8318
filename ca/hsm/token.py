"""The PKCS#11 token that holds every revoca key (SoftHSM2 here, a real HSM in production).

Keys are generated inside the token as sensitive and not extractable, and are only ever
used through C_Sign.  The token PIN is not known to anyone: it is derived from the M-of-N
activation secret (ca.hsm.shares), so the token opens only when key managers combine shares.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from ca.errors import AlreadyExists, InvalidInput, NotFound, TokenError
from ca.hsm import existing_keys
from ca.hsm.existing_keys import ExistingKey
from ca.hsm.signer import KeyAlgorithm, check_digest, signature_hash
from ca.hsm.token_init import init_token

if TYPE_CHECKING:
    # pkcs11.lib is a loader function; the class it returns lives in the extension module.
    from pkcs11._pkcs11 import lib as Pkcs11Lib

_CURVE_OIDS = {KeyAlgorithm.P256: "1.2.840.10045.3.1.7", KeyAlgorithm.P384: "1.3.132.0.34"}
_RSA_MECHANISM = {"sha256": Mechanism.SHA256_RSA_PKCS, "sha384": Mechanism.SHA384_RSA_PKCS,
                  "sha512": Mechanism.SHA512_RSA_PKCS}

# DER of DigestInfo up to the digest octets (RFC 8017 9.2 note 1), for CKM_RSA_PKCS.
_DIGEST_INFO_PREFIX = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}

_lib_lock = threading.Lock()
_libs: dict[str, tuple[Pkcs11Lib, str | None]] = {}


def ecdsa_der(raw: bytes) -> bytes:
    """PKCS#11's r||s as the DER ECDSA-Sig-Value X.509 carries (RFC 3279 2.2.3), by cryptography's
    encoder: a tenth of the time python-pkcs11's asn1crypto one took per OCSP signature."""
    half = len(raw) // 2
    return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


def _load_lib(module: str, softhsm_conf: Path | None) -> Pkcs11Lib:
    """Load (once per process) the PKCS#11 module.

    SoftHSM2 reads SOFTHSM2_CONF when C_Initialize runs, so a change of configuration (tests
    use several token directories) re-initialises the library.
    """
    if not Path(module).exists():
        raise TokenError(f"PKCS#11 module {module} not found; install softhsm2 or set hsm.module")
    conf = str(softhsm_conf.resolve()) if softhsm_conf else None
    with _lib_lock:
        if conf:
            os.environ["SOFTHSM2_CONF"] = conf
        cached = _libs.get(module)
        if cached is not None:
            lib, loaded_conf = cached
            if loaded_conf != conf:
                lib.reinitialize()
                _libs[module] = (lib, conf)
            return lib
        try:
            lib = pkcs11.lib(module)
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"PKCS#11 module {module} failed to load: {type(exc).__name__}") from exc
        _libs[module] = (lib, conf)
        return lib


def write_softhsm_conf(conf: Path) -> None:
    """A SoftHSM2 configuration whose tokens live in a directory beside it (0700)."""
    tokens = conf.parent / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf.write_text(
        f"# SoftHSM2 token store of revoca (embedded default; production uses a real HSM)\n"
        f"directories.tokendir = {tokens.resolve()}\n"
        "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
        encoding="utf-8",
    )


class Token:
    """A PKCS#11 token found by label in a module."""

    def __init__(self, module: str, label: str, *, softhsm_conf: Path | None = None) -> None:
        self.module = module
        self.label = label
        self.softhsm_conf = softhsm_conf

    def _lib(self) -> Pkcs11Lib:
        return _load_lib(self.module, self.softhsm_conf)

    def exists(self) -> bool:
        if self.softhsm_conf is not None and not self.softhsm_conf.exists():
            return False
        try:
            self._lib().get_token(token_label=self.label)
        except pkcs11.NoSuchToken:
            return False
        return True

    def initialize_softhsm(self, *, so_pin: str, user_pin: str) -> None:
        """Create the token (SoftHSM2 only; a real HSM's token is made with its vendor's tools).

        The PINs go to C_InitToken/C_InitPIN in this process (ca.hsm.token_init), never on a
        command line.
        """
        if self.softhsm_conf is None:
            raise TokenError("only a SoftHSM2 token can be created by revoca; create the HSM token with its own tools")
        if self.exists():
            raise AlreadyExists(f"token {self.label!r} already exists in {self.softhsm_conf}")
        if not self.softhsm_conf.exists():
            write_softhsm_conf(self.softhsm_conf)
        lib = self._lib()
        lib.reinitialize()  # the token directory as it is now
        free = [slot for slot in lib.get_slots(token_present=True)
                if not slot.get_token().flags & pkcs11.TokenFlag.TOKEN_INITIALIZED]
        if not free:
            raise TokenError(f"no free slot for token {self.label!r} in {self.softhsm_conf}")
        init_token(self.module, free[0].slot_id, self.label, so_pin=so_pin, user_pin=user_pin)
        lib.reinitialize()  # SoftHSM2 lists a new token only after C_Initialize

    def delete_softhsm(self) -> None:
        """Remove a SoftHSM2 token (undoing a failed ceremony); a no-op if it is not there."""
        tool = shutil.which("softhsm2-util")
        if self.softhsm_conf is None or tool is None or not self.softhsm_conf.exists():
            return
        env = {**os.environ, "SOFTHSM2_CONF": str(self.softhsm_conf.resolve())}
        subprocess.run([tool, "--delete-token", "--token", self.label], env=env, capture_output=True, check=False)
        self._lib().reinitialize()  # drop the slot of the deleted token

    def change_user_pin(self, old_pin: str, new_pin: str) -> None:
        """C_SetPIN as the user: a token revoca takes over (ca.ceremony) gets the PIN revoca derives."""
        try:
            token = self._lib().get_token(token_label=self.label)
            session = token.open(rw=True, user_pin=old_pin)
        except pkcs11.NoSuchToken as exc:
            raise NotFound(f"no token labelled {self.label!r} in {self.module}") from exc
        except pkcs11.PinIncorrect as exc:
            raise TokenError(f"token {self.label!r} refused the user PIN given; nothing changed") from exc
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token {self.label!r} could not be opened: {type(exc).__name__}") from exc
        try:
            session.set_pin(old_pin, new_pin)
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token {self.label!r} refused to change its user PIN: {type(exc).__name__}") from exc
        finally:
            session.close()

    def open(self, user_pin: str) -> TokenSession:
        try:
            token = self._lib().get_token(token_label=self.label)
        except pkcs11.NoSuchToken as exc:
            raise TokenError(f"no token labelled {self.label!r} in {self.module}; run `revoca init` first") from exc
        try:
            session = token.open(rw=True, user_pin=user_pin)
        except pkcs11.PinIncorrect as exc:
            raise TokenError(f"token {self.label!r} refused the activation secret (wrong share set?)") from exc
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token {self.label!r} could not be opened: {type(exc).__name__}") from exc
        return TokenSession(session, self.label)


def _public_key(pub: pkcs11.PublicKey, algorithm: KeyAlgorithm) -> CertificateIssuerPublicKeyTypes:
    """The token's public key as a cryptography object (RSA comes as PKCS#1, EC as SPKI)."""
    der = encode_rsa_public_key(pub) if algorithm.is_rsa else encode_ec_public_key(pub)
    return serialization.load_der_public_key(der)  # type: ignore[return-value]


class TokenSession:
    """A logged-in, read-write session: make keys, find them, sign.

    One PKCS#11 session is not safe to use from two threads at once, hence the lock.
    """

    def __init__(self, session: pkcs11.Session, token_label: str) -> None:
        self._session = session
        self._lock = threading.Lock()
        self.token_label = token_label
        self._private: dict[str, tuple[pkcs11.PrivateKey, KeyAlgorithm, CertificateIssuerPublicKeyTypes]] = {}

    def close(self) -> None:
        with self._lock:
            self._private.clear()
            try:
                self._session.close()
            except pkcs11.PKCS11Error:
                pass

    def generate(self, label: str, algorithm: KeyAlgorithm) -> CertificateIssuerPublicKeyTypes:
        with self._lock:
            if any(True for _ in self._session.get_objects({Attribute.LABEL: label})):
                raise AlreadyExists(f"the token already holds a key labelled {label!r}")
            private_template = {
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
                Attribute.DERIVE: False,
            }
            public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False,
                               Attribute.WRAP: False}
            key_id = label.encode()
            try:
                if algorithm.is_rsa:
                    pub, _priv = self._session.generate_keypair(
                        KeyType.RSA, algorithm.bits, id=key_id, label=label, store=True,
                        public_template={**public_template, Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"},
                        private_template=private_template,
                    )
                else:
                    params = self._session.create_domain_parameters(
                        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_OIDS[algorithm])},
                        local=True,
                    )
                    pub, _priv = params.generate_keypair(
                        id=key_id, label=label, store=True,
                        public_template=public_template, private_template=private_template,
                    )
            except pkcs11.PKCS11Error as exc:
                raise TokenError(f"token refused to generate {algorithm} key {label!r}: {type(exc).__name__}") from exc
            return _public_key(pub, algorithm)

    def _find(self, label: str) -> tuple[pkcs11.PrivateKey, KeyAlgorithm, CertificateIssuerPublicKeyTypes]:
        cached = self._private.get(label)
        if cached is not None:
            return cached
        try:
            priv = self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
            pub = self._session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
        except pkcs11.NoSuchKey as exc:
            raise NotFound(f"the token holds no key labelled {label!r}") from exc
        except pkcs11.MultipleObjectsReturned as exc:
            raise TokenError(f"the token holds several keys labelled {label!r}; fix the token by hand") from exc
        # get_key builds the object's class from its CKA_CLASS, which the search fixed.
        assert isinstance(priv, pkcs11.PrivateKey) and isinstance(pub, pkcs11.PublicKey)
        if priv.key_type == KeyType.RSA:
            algorithm = KeyAlgorithm(f"rsa{priv.key_length}")
            public = _public_key(pub, algorithm)
        else:
            public = serialization.load_der_public_key(encode_ec_public_key(pub))  # type: ignore[assignment]
            algorithm = KeyAlgorithm.of_public_key(public)
        self._private[label] = (priv, algorithm, public)
        return self._private[label]

    def signer(self, label: str, *, hash_name: str | None = None) -> TokenSigner:
        """The key's Signer; `hash_name` (sha256/384/512, RSA only) overrides its algorithm's hash."""
        with self._lock:
            _priv, algorithm, public = self._find(label)
        return TokenSigner(self, label, algorithm, public, signature_hash(algorithm, hash_name, key_label=label))

    def key_attributes(self, label: str) -> dict[str, bool]:
        """SENSITIVE / EXTRACTABLE / ALWAYS_SENSITIVE / NEVER_EXTRACTABLE, for tests and `revoca hsm status`."""
        with self._lock:
            priv, _, _ = self._find(label)
            attrs = (Attribute.SENSITIVE, Attribute.EXTRACTABLE, Attribute.ALWAYS_SENSITIVE,
                     Attribute.NEVER_EXTRACTABLE)
            return {a.name.lower(): bool(priv[a]) for a in attrs}

    def export_private_value(self, label: str) -> bytes:
        """Try to read the private key's value; the token must refuse (used by tests to prove it)."""
        with self._lock:
            priv, _, _ = self._find(label)
            try:
                return bytes(priv[Attribute.PRIVATE_EXPONENT if priv.key_type == KeyType.RSA else Attribute.VALUE])
            except pkcs11.PKCS11Error as exc:
                raise TokenError(f"the token refused to export key {label!r}: {type(exc).__name__}") from exc

    def sign(self, label: str, data: bytes, hash_name: str | None = None) -> bytes:
        with self._lock:
            return self._sign(label, data, hash_name)

    def try_sign(self, label: str, data: bytes, hash_name: str | None = None, *, digest: bool = False) -> bytes | None:
        """sign (or sign_digest), or None at once when another thread is signing in this session:
        the HSM service then hands the request to one of its signing processes (ca.hsm.pool)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._sign_digest(label, data, hash_name) if digest else self._sign(label, data, hash_name)
        finally:
            self._lock.release()

    def _sign(self, label: str, data: bytes, hash_name: str | None) -> bytes:
        priv, algorithm, _ = self._find(label)
        assert isinstance(priv, pkcs11.SignMixin)  # generate() sets CKA_SIGN, so get_key adds sign()
        hash_algorithm = signature_hash(algorithm, hash_name, key_label=label)
        try:
            if algorithm.is_rsa:
                return priv.sign(data, mechanism=_RSA_MECHANISM[hash_algorithm.name])
            digest = hashes.Hash(hash_algorithm)
            digest.update(data)
            raw = priv.sign(digest.finalize(), mechanism=Mechanism.ECDSA)
            return ecdsa_der(raw)
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token failed to sign with {label!r}: {type(exc).__name__}") from exc

    def sign_digest(self, label: str, digest: bytes, hash_name: str | None = None) -> bytes:
        """Sign a precomputed digest: RSA as PKCS#1 v1.5 over DigestInfo, ECDSA over the digest."""
        with self._lock:
            return self._sign_digest(label, digest, hash_name)

    def _sign_digest(self, label: str, digest: bytes, hash_name: str | None) -> bytes:
        priv, algorithm, _ = self._find(label)
        assert isinstance(priv, pkcs11.SignMixin)  # generate() sets CKA_SIGN, so get_key adds sign()
        hash_algorithm = signature_hash(algorithm, hash_name, key_label=label)
        if len(digest) != hash_algorithm.digest_size:
            raise InvalidInput(f"key {label} signs {hash_algorithm.name} digests of {hash_algorithm.digest_size} "
                               f"bytes, not {len(digest)}")
        try:
            if algorithm.is_rsa:
                return priv.sign(_DIGEST_INFO_PREFIX[hash_algorithm.name] + digest, mechanism=Mechanism.RSA_PKCS)
            return ecdsa_der(priv.sign(digest, mechanism=Mechanism.ECDSA))
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token failed to sign with {label!r}: {type(exc).__name__}") from exc

    def find_key(self, *, label: str | None = None, key_id: bytes | None = None) -> ExistingKey:
        """A key pair another system put in the token, by label or CKA_ID (ca.hsm.existing_keys)."""
        with self._lock:
            return existing_keys.find(self._session, label=label, key_id=key_id)

    def relabel(self, label: str, new_label: str) -> None:
        """Give an adopted key pair revoca's label (ca.hsm.existing_keys)."""
        with self._lock:
            existing_keys.relabel(self._session, label, new_label)
            self._private.pop(label, None)

    def object_classes(self, label: str) -> list[str]:
        """The classes of the objects labelled `label` ("private_key", "public_key", ...): what a
        key destruction must leave empty."""
        with self._lock:
            return sorted((o.object_class.name if o.object_class is not None else "unknown").lower()
                          for o in self._session.get_objects({Attribute.LABEL: label}))

    def destroy(self, label: str) -> int:
        """C_DestroyObject on every object labelled `label` and on the public key and certificate
        objects sharing its private key's CKA_ID (a pair another system made may label its twin
        otherwise); how many there were.  None left is not an error: a destruction whose record
        was lost is finished by running it again (ca.hsm.destruction)."""
        if not label:
            raise InvalidInput("no key label given to destroy")
        with self._lock:
            self._private.pop(label, None)
            try:
                objects = list(self._session.get_objects({Attribute.LABEL: label}))
                ids = {bytes(o[Attribute.ID]) for o in objects if o.object_class == ObjectClass.PRIVATE_KEY}
                for key_id in ids - {b""}:
                    for cls in (ObjectClass.PUBLIC_KEY, ObjectClass.CERTIFICATE):
                        objects += [o for o in self._session.get_objects({Attribute.CLASS: cls, Attribute.ID: key_id})
                                    if o[Attribute.LABEL] != label]
                for obj in objects:
                    obj.destroy()
            except pkcs11.PKCS11Error as exc:
                raise TokenError(f"token refused to destroy key {label!r}: {type(exc).__name__}") from exc
            return len(objects)

    def labels(self) -> list[str]:
        with self._lock:
            return sorted(
                str(obj[Attribute.LABEL])
                for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
            )


class TokenSigner:
    """A Signer for one key in an open TokenSession."""

    def __init__(self, session: TokenSession, label: str, algorithm: KeyAlgorithm,
                 public: CertificateIssuerPublicKeyTypes, hash_algorithm: hashes.HashAlgorithm) -> None:
        self._session = session
        self._label = label
        self._algorithm = algorithm
        self._public = public
        self._hash = hash_algorithm

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
        return self._public

    def with_hash(self, algorithm: hashes.HashAlgorithm) -> TokenSigner:
        chosen = signature_hash(self._algorithm, algorithm, key_label=self._label)
        return TokenSigner(self._session, self._label, self._algorithm, self._public, chosen)

    def sign(self, data: bytes) -> bytes:
        return self._session.sign(self._label, data, self._hash.name)

    def sign_digest(self, digest: bytes) -> bytes:
        check_digest(self, digest)
        return self._session.sign_digest(self._label, digest, self._hash.name)
