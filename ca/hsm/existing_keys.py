"""Keys another system put in the token, found by label or CKA_ID, and renamed when adopted (issue 14).

`revoca ca adopt` takes over a CA whose key pair already lives in the token: generated there
by the previous system's tools, or moved in by the HSM vendor's backup and restore.  The key
is never read, exported or copied; revoca only needs

- to find it (by CKA_LABEL or CKA_ID, as the previous system's records name it) with its
  public key object, its algorithm and its protection attributes;
- to give both objects revoca's own label (`ca/<name>/<generation>/adopted-<ski>`): revoca's
  signer finds keys by label, and the HSM service's policy (ca.hsm.policy) tells a CA key by
  that label's prefix.  CKA_ID is left as it was.

Used by TokenSession (in process) and through it by the HSM service's `find_key` and
`relabel` operations, which only the officers' CLI may ask (ca.hsm.service).
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pkcs11
from cryptography.hazmat.primitives import serialization
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_ec_public_key
from pkcs11.util.rsa import encode_rsa_public_key

from ca.errors import AlreadyExists, InvalidInput, NotFound, TokenError
from ca.hsm.signer import KeyAlgorithm


@dataclasses.dataclass(frozen=True, slots=True)
class ExistingKey:
    """What the token says about one key pair; never its private value."""

    label: str
    key_id: bytes  # CKA_ID, as the previous system set it (may be empty)
    algorithm: KeyAlgorithm
    spki: bytes  # the public key object's SubjectPublicKeyInfo, DER
    sensitive: bool  # CKA_SENSITIVE: the value never leaves the token in clear
    extractable: bool  # CKA_EXTRACTABLE: it may leave wrapped (a backup under another key)
    can_sign: bool  # CKA_SIGN

    def to_wire(self) -> dict[str, Any]:
        return {"label": self.label, "id": self.key_id.hex(), "algorithm": self.algorithm.value,
                "spki": base64.b64encode(self.spki).decode(), "sensitive": self.sensitive,
                "extractable": self.extractable, "sign": self.can_sign}

    @classmethod
    def from_wire(cls, reply: dict[str, Any]) -> ExistingKey:
        return cls(label=str(reply["label"]), key_id=bytes.fromhex(str(reply["id"])),
                   algorithm=KeyAlgorithm(str(reply["algorithm"])), spki=base64.b64decode(str(reply["spki"])),
                   sensitive=bool(reply["sensitive"]), extractable=bool(reply["extractable"]),
                   can_sign=bool(reply["sign"]))


def _named(label: str | None, key_id: bytes | None) -> str:
    return f"labelled {label!r}" if label is not None else f"with id {key_id.hex() if key_id else ''!r}"


def _one(session: pkcs11.Session, template: dict[Attribute, Any], what: str) -> Any:
    found = list(session.get_objects(template))
    if not found:
        raise NotFound(f"the token holds no {what}")
    if len(found) > 1:
        raise TokenError(f"the token holds {len(found)} objects for one {what}; name the key by its id "
                         "(--key-id) or fix the token with its own tools")
    return found[0]


def find(session: pkcs11.Session, *, label: str | None = None, key_id: bytes | None = None) -> ExistingKey:
    """The private key with that label or CKA_ID, and the public key object beside it (same CKA_ID)."""
    if (label is None) == (key_id is None):
        raise InvalidInput("name the key by its label or by its id, one of the two")
    template: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
    template[Attribute.LABEL if label is not None else Attribute.ID] = label if label is not None else key_id
    try:
        private = _one(session, template, f"private key {_named(label, key_id)}")
        own_id = bytes(private[Attribute.ID])
        own_label = str(private[Attribute.LABEL])
        public = _public_object(session, own_id, own_label)
        if private.key_type == KeyType.RSA:
            spki_source = encode_rsa_public_key(public)
            algorithm_name = f"rsa{public.key_length}"
        elif private.key_type == KeyType.EC:
            spki_source = encode_ec_public_key(public)
            algorithm_name = ""
        else:
            raise InvalidInput(f"key {own_label!r} is a {private.key_type.name} key; revoca signs with RSA or EC keys")
        public_key = serialization.load_der_public_key(spki_source)
        try:
            algorithm = KeyAlgorithm(algorithm_name) if algorithm_name else KeyAlgorithm.of_public_key(public_key)  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidInput(f"key {own_label!r} ({algorithm_name}) is not a size revoca signs with "
                               f"({', '.join(a.value for a in KeyAlgorithm)})") from exc
        spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return ExistingKey(label=own_label, key_id=own_id, algorithm=algorithm, spki=spki,
                           sensitive=_flag(private, Attribute.SENSITIVE),
                           extractable=_flag(private, Attribute.EXTRACTABLE),
                           can_sign=_flag(private, Attribute.SIGN))
    except pkcs11.PKCS11Error as exc:
        raise TokenError(f"the token could not be searched for the key {_named(label, key_id)}: "
                         f"{type(exc).__name__}") from exc


def _public_object(session: pkcs11.Session, key_id: bytes, label: str) -> Any:
    """The public key object of the pair: same CKA_ID (PKCS#11 convention), else same label."""
    by_id = list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key_id})) if key_id else []
    found = by_id or list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label}))
    if not found:
        raise NotFound(f"the token holds the private key {label!r} but no public key object beside it (same "
                       "CKA_ID); write the public key into the token with the HSM's own tools first")
    if len(found) > 1:
        raise TokenError(f"the token holds {len(found)} public key objects for key {label!r}; fix the token "
                         "with its own tools")
    return found[0]


def _flag(obj: Any, attribute: Attribute) -> bool:
    try:
        return bool(obj[attribute])
    except pkcs11.PKCS11Error:  # an attribute the module does not report counts as not set
        return False


def relabel(session: pkcs11.Session, label: str, new_label: str) -> None:
    """Give the private and public key objects labelled (or with the CKA_ID of) `label` the label
    `new_label`; nothing when they have it already.  Refused if another object holds `new_label`."""
    if label == new_label:
        return
    key = find(session, label=label)
    taken = [o for o in session.get_objects({Attribute.LABEL: new_label})]
    if taken:
        raise AlreadyExists(f"the token already holds an object labelled {new_label!r}")
    private = _one(session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label},
                   f"private key labelled {label!r}")
    public = _public_object(session, key.key_id, label)
    try:
        private[Attribute.LABEL] = new_label
        public[Attribute.LABEL] = new_label
    except pkcs11.PKCS11Error as exc:
        raise TokenError(f"the token refused to relabel key {label!r} as {new_label!r}: {type(exc).__name__}") from exc
