"""How every other process reaches the HSM service: a KeyStore and Signers over its socket."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from ca.errors import ServiceUnavailable
from ca.hsm import protocol
from ca.hsm.existing_keys import ExistingKey
from ca.hsm.signer import KeyAlgorithm, check_digest, signature_hash


class HSMClient:
    """One connection to the service, reused for every call (a lock keeps calls in order).

    With `key_managers` ((name, password) of M different key managers, who logged in for the act:
    ca.cli.gate), every connection this client makes opens a ceremony session first
    (ca.hsm.sessions), which certificate signatures, key generation and destruction need."""

    def __init__(self, path: Path, *, timeout: float = 60.0,
                 key_managers: Sequence[tuple[str, str]] = ()) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._key_managers = tuple(key_managers)
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the passwords
        return f"HSMClient({str(self.path)!r}, key_managers={[name for name, _ in self._key_managers]})"

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            raise ServiceUnavailable(
                f"the HSM service is not running on {self.path}; start it with `revoca serve hsm`") from exc
        file = sock.makefile("rwb")
        if self._key_managers:
            try:
                file.write(protocol.encode({"op": "ceremony_open", "operators": _people(self._key_managers)}))
                file.flush()
                reply = file.readline(protocol.MAX_LINE + 1)
                if not reply:
                    raise ServiceUnavailable(f"the HSM service on {self.path} closed the connection")
                protocol.raise_for(protocol.decode(reply))
            except BaseException as exc:
                file.close()
                sock.close()
                if isinstance(exc, OSError):
                    raise ServiceUnavailable(f"lost the connection to the HSM service on {self.path}") from exc
                raise
        self._sock, self._file = sock, file

    def open_ceremony(self, key_managers: Sequence[tuple[str, str]]) -> None:
        """Open a ceremony session now (and again on every reconnection) with these key managers."""
        self.close()
        self._key_managers = tuple(key_managers)
        with self._lock:
            self._connect()

    def close_ceremony(self) -> None:
        """End the session (audited by the service); later calls have none."""
        self._key_managers = ()
        if self._sock is not None:
            self.call("ceremony_close")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._file.close()
                self._sock.close()
                self._sock = self._file = None

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            for attempt in (1, 2):  # one reconnect if the service restarted since the last call
                if self._sock is None:
                    self._connect()
                try:
                    self._file.write(protocol.encode({"op": op, **fields}))
                    self._file.flush()
                    line = self._file.readline(protocol.MAX_LINE + 1)
                    if not line:
                        raise ConnectionError("HSM service closed the connection")
                    break
                except OSError as exc:
                    self._sock = self._file = None
                    if attempt == 2 or op in _NOT_REPEATED:
                        raise ServiceUnavailable(f"lost the connection to the HSM service on {self.path}") from exc
        return protocol.raise_for(protocol.decode(line))

    def stream(self, op: str, length: int, feed: Callable[[Callable[[Any], object]], None],
               **fields: Any) -> dict[str, Any]:
        """A request followed by `length` raw bytes, which `feed` writes through the function it is
        given once the service has answered `ready` (ca.hsm.crl_stream); the final reply."""
        with self._lock:
            if self._sock is None:
                self._connect()
            try:
                self._file.write(protocol.encode({"op": op, "length": length, **fields}))
                self._file.flush()
                protocol.raise_for(self._reply())
                feed(self._file.write)
                self._file.flush()
                return protocol.raise_for(self._reply())
            except OSError as exc:
                self._drop()
                raise ServiceUnavailable(f"lost the connection to the HSM service on {self.path}") from exc
            except BaseException:
                self._drop()  # stopped in the middle of the bytes: this connection is out of step
                raise

    def _reply(self) -> dict[str, Any]:
        line = self._file.readline(protocol.MAX_LINE + 1)
        if not line:
            raise ConnectionError("HSM service closed the connection")
        return protocol.decode(line)

    def _drop(self) -> None:
        if self._sock is not None:
            self._file.close()
            self._sock.close()
        self._sock = self._file = None

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def activate(self, share: str) -> dict[str, Any]:
        return self.call("activate", share=share)

    def deactivate(self, key_managers: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """Close the token: (name, password) of M different key managers, checked by the service."""
        return self.call("deactivate", operators=_people(key_managers))

    def destroy(self, label: str, *, by: Sequence[str] = ()) -> int:
        """Destroy a key's objects in the token (ca.hsm.destruction decides whether it may be);
        how many objects the token removed."""
        return int(self.call("destroy", label=label, by=list(by))["objects"])

    # adoption (ca.adoption): a key another system put in the token
    def find_key(self, *, label: str | None = None, key_id: bytes | None = None) -> ExistingKey:
        fields = {"id": key_id.hex()} if key_id is not None else {"label": label}
        return ExistingKey.from_wire(self.call("find_key", **fields))

    def relabel(self, label: str, new_label: str) -> None:
        self.call("relabel", label=label, new_label=new_label)

    # KeyStore
    def generate(self, label: str, algorithm: KeyAlgorithm) -> CertificateIssuerPublicKeyTypes:
        reply = self.call("generate", label=label, algorithm=algorithm.value)
        return serialization.load_der_public_key(base64.b64decode(reply["spki"]))  # type: ignore[return-value]

    def signer(self, label: str) -> ServiceSigner:
        reply = self.call("public_key", label=label)
        public = serialization.load_der_public_key(base64.b64decode(reply["spki"]))
        return ServiceSigner(self, label, KeyAlgorithm(reply["algorithm"]), public)  # type: ignore[arg-type]


# requests that must not be sent twice after a lost connection (they change the token or the service)
_NOT_REPEATED = frozenset({"activate", "deactivate", "generate", "relabel", "destroy", "ceremony_open",
                           "ceremony_close"})


def _people(key_managers: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "password": password} for name, password in key_managers]


class ServiceSigner:
    def __init__(self, client: HSMClient, label: str, algorithm: KeyAlgorithm,
                 public: CertificateIssuerPublicKeyTypes, hash_algorithm: hashes.HashAlgorithm | None = None) -> None:
        self._client = client
        self._label = label
        self._algorithm = algorithm
        self._public = public
        self._hash = signature_hash(algorithm, hash_algorithm, key_label=label)

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

    def with_hash(self, algorithm: hashes.HashAlgorithm) -> ServiceSigner:
        return ServiceSigner(self._client, self._label, self._algorithm, self._public, algorithm)

    def _hash_field(self) -> dict[str, str]:
        """The request's `hash`, only when not the key's default: default requests stay what old clients send."""
        return {} if self._hash.name == self._algorithm.hash_algorithm.name else {"hash": self._hash.name}

    def sign(self, data: bytes) -> bytes:
        reply = self._client.call("sign", label=self._label, data=base64.b64encode(data).decode(),
                                  **self._hash_field())
        return base64.b64decode(reply["signature"])

    def sign_list(self, length: int, feed: Callable[[Callable[[Any], object]], None]) -> bytes:
        """Sign a CRL or ARL's TBSCertList of `length` bytes, which `feed` writes (in blocks) through
        the function it is given: the service judges the list while hashing it (ca.hsm.crl_stream)."""
        reply = self._client.stream("sign_list", length, feed, label=self._label, **self._hash_field())
        return base64.b64decode(reply["signature"])

    def sign_digest(self, digest: bytes) -> bytes:
        check_digest(self, digest)
        reply = self._client.call("sign_digest", label=self._label, digest=base64.b64encode(digest).decode(),
                                  **self._hash_field())
        return base64.b64decode(reply["signature"])
