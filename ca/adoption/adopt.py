"""`revoca ca adopt`: record a CA that exists, its key where it is (issue 14; seed 004 1.3.1.2, 6.1.1).

The previous system's CA keeps its key pair, in the token it was generated in (or moved to by
the HSM's own backup and restore), its self-signed certificate, the link certificates of its
earlier rollovers and its cross certificates.  Everything is checked before anything is stored:

- the self-signed certificate is a CA certificate that verifies under its own key, and the
  token's key (found by label or CKA_ID) has exactly that public key, signs, and is sensitive;
- certificates of earlier key generations (`previous`) are self-signed under the same name;
- each link certificate carries one of those keys and is signed by another, under the same name
  (OldWithNew when it carries the older key, NewWithOld when the newer);
- each cross certificate is signed by the adopted CA for a CA revoca knows (or an external CA
  registered in the same act), or by such a CA for the adopted CA's key; names must match;
- each responder, CVS or TLS certificate (`servers`) is signed by one of its keys under its name,
  is no CA certificate, carries its kind's extended key usage (id-kp-OCSPSigning, serverAuth) and
  has not expired; its key, when named, is in the token with exactly its public key and gets a
  label of revoca's (an OCSP responder's then signs OCSP answers, ca.hsm.policy);
- nothing revoca knows already is changed: a name, a subject, a key or a certificate that is
  already recorded for something else stops the adoption.  The same adoption run again with
  the same certificates and key changes nothing and says so; any difference is refused.

External CAs (the government bridge) are kept as external: revoca records their certificates
and never signs for them.  The CA is recorded as ADOPTING: it issues no CRL or ARL until its
revocation history is imported (ca.adoption.history), so its numbers continue the previous
system's.  Last, the key pair gets revoca's label in the token (ca.hsm.existing_keys), inside
the database transaction, so a failure anywhere leaves nothing recorded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from ca import audit, hierarchy
from ca.enums import CAKind, CAStatus, CertKind, KeyStatus
from ca.errors import AlreadyExists, InvalidInput, NotFound
from ca.hsm.existing_keys import ExistingKey
from ca.hsm.signer import KeyAlgorithm, KeyStore
from ca.importing.importer import verify_signed_by
from ca.issuance import key_identifier
from ca.storage.adoption import AdoptionStore
from ca.storage.authorities import spki_der
from ca.trusted_time import ClockGuard

# rows as the stores hand them out (ca.storage.models is the stores' business, tests/unit/test_layering.py)
CARow = Any  # CertificateAuthority
KeyRow = Any  # KeyGeneration
CertificateRow = Any  # Certificate


class AdoptionKeys(KeyStore, Protocol):
    """Where the adopted key is: the HSM service's client, or the token opened in process."""

    def find_key(self, *, label: str | None = None, key_id: bytes | None = None) -> ExistingKey: ...

    def relabel(self, label: str, new_label: str) -> None: ...


SERVER_KINDS = (CertKind.OCSP_RESPONDER, CertKind.CVS_SERVER, CertKind.TLS)
# the extended key usage each must carry (RFC 6960 4.2.2.2; RFC 5280 4.2.1.12); a CVS server's is its profile's
_SERVER_EKU = {CertKind.OCSP_RESPONDER: x509.ExtendedKeyUsageOID.OCSP_SIGNING,
               CertKind.TLS: x509.ExtendedKeyUsageOID.SERVER_AUTH}


@dataclasses.dataclass(frozen=True, slots=True)
class ServerCertificate:
    """A responder, CVS or TLS certificate the adopted CA issued, with its key in the token (by
    label or id) or none: recorded only, so that its status is answered and it can be revoked."""

    kind: CertKind
    certificate: x509.Certificate
    key_label: str | None = None
    key_id: bytes | None = None

    def __post_init__(self) -> None:
        if self.kind not in SERVER_KINDS:
            raise InvalidInput(f"{self.kind} is not a server certificate kind; use one of "
                               f"{', '.join(k.value for k in SERVER_KINDS)}")
        if self.key_label is not None and self.key_id is not None:
            raise InvalidInput("name a server certificate's key by its label or its id, not both")


@dataclasses.dataclass(frozen=True, slots=True)
class AdoptionRequest:
    """What the operators hand over for one CA; validated on construction."""

    name: str
    kind: CAKind
    certificate: x509.Certificate  # the self-signed certificate of the current key
    key_label: str | None = None
    key_id: bytes | None = None
    previous: tuple[x509.Certificate, ...] = ()  # self-signed certificates of earlier key generations
    links: tuple[x509.Certificate, ...] = ()
    crosses: tuple[x509.Certificate, ...] = ()
    externals: tuple[tuple[str, x509.Certificate], ...] = ()  # (name, self-signed) of external CAs
    servers: tuple[ServerCertificate, ...] = ()  # responder, CVS and TLS certificates it issued

    def __post_init__(self) -> None:
        if self.kind not in (CAKind.BRIDGE, CAKind.REGIONAL):
            raise InvalidInput(f"a CA revoca runs is a bridge or a regional CA, not {self.kind}; external CAs are "
                               "given with --external")
        if (self.key_label is None) == (self.key_id is None):
            raise InvalidInput("name the CA's key in the token by its label (--key-label) or its id (--key-id)")
        for name in (self.name, *(n for n, _ in self.externals)):
            if not name or not name.replace("-", "").replace("_", "").isalnum() or len(name) > 64:
                raise InvalidInput(f"CA name {name!r}: use letters, digits, - and _ (at most 64)")


@dataclasses.dataclass(frozen=True, slots=True)
class AdoptionResult:
    ca: str
    key_label: str  # revoca's label of the key in the token now
    found_as: str  # the label the key had
    generation: int
    certificates: int  # stored in this act (0 when nothing changed)
    changed: bool
    warnings: tuple[str, ...] = ()

    def line(self) -> str:
        if not self.changed:
            return f"CA {self.ca} is already adopted with this key and these certificates; nothing changed"
        return (f"CA {self.ca} adopted: key {self.found_as!r} is now {self.key_label!r} (generation "
                f"{self.generation}), {self.certificates} certificate(s) recorded; import its revocation history "
                f"next (`revoca crl import-history --ca {self.ca}`): until then it issues no CRL or ARL")


def fingerprint(cert: x509.Certificate) -> bytes:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def _spki(cert: x509.Certificate) -> bytes:
    return spki_der(cert.public_key())


def _ski(cert: x509.Certificate) -> bytes:
    """The key identifier the CA's own certificates use (its subjects' AKI must find it), else method 1."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return key_identifier(cert.public_key())


def _signed_by(cert: x509.Certificate, public_spki: bytes) -> bool:
    return verify_signed_by(cert, serialization.load_der_public_key(public_spki))


def _describe(cert: x509.Certificate) -> str:
    return f"{cert.subject.rfc4514_string()} (serial {cert.serial_number:#x})"


def check_self_signed(cert: x509.Certificate, *, what: str) -> None:
    """A CA certificate that verifies under its own key, with the key usages a CA signs with."""
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise InvalidInput(f"{what} {_describe(cert)} is not self-signed: {exc or 'its signature does not verify'}"
                           ) from exc
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise InvalidInput(f"{what} {_describe(cert)} is not a CA certificate (basicConstraints cA missing)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not (usage.key_cert_sign and usage.crl_sign):
        raise InvalidInput(f"{what} {_describe(cert)} lacks keyCertSign or cRLSign in keyUsage")


def adopt(store: AdoptionStore, keys: AdoptionKeys, request: AdoptionRequest, *, now: dt.datetime,
          actor: str, time_guard: ClockGuard) -> AdoptionResult:
    """Check everything, then record the CA and relabel its key, in the caller's transaction.
    `time_guard` is the process's clock check (ca.trusted_time) for anything signed on the way."""
    current = request.certificate
    check_self_signed(current, what="the self-signed certificate")
    if current.not_valid_after_utc <= now:
        raise InvalidInput(f"the self-signed certificate {_describe(current)} expired on "
                           f"{current.not_valid_after_utc:%Y-%m-%d}; an expired CA cannot be adopted")
    previous = sorted(request.previous, key=lambda c: c.not_valid_before_utc)
    for old in previous:
        check_self_signed(old, what="the earlier self-signed certificate")
        if old.subject != current.subject:
            raise InvalidInput(f"the earlier self-signed certificate {_describe(old)} names another CA than "
                               f"{current.subject.rfc4514_string()}")
    generations = [*previous, current]  # oldest first; the last is the key in the token
    spkis = [_spki(c) for c in generations]
    if len(set(spkis)) != len(spkis):
        raise InvalidInput("two of the self-signed certificates carry the same key; give each key generation once")

    try:
        existing = store.ca(request.name)
    except NotFound:
        existing = None
    if existing is not None:
        return _same_again(store, keys, request, existing, generations)

    key = _token_key(keys, request, _target_label(request.name, len(generations), _ski(current)))
    if key.spki != spkis[-1]:
        raise InvalidInput(f"the token's key {key.label!r} is not the key of {_describe(current)}: their public keys "
                           "differ; name the right key (--key-label / --key-id)")
    if not key.can_sign:
        raise InvalidInput(f"the token's key {key.label!r} may not sign (CKA_SIGN is false)")
    if not key.sensitive:
        raise InvalidInput(f"the token's key {key.label!r} is not sensitive (CKA_SENSITIVE false: its value can be "
                           "read in clear); protect it with the HSM's own tools before adopting it")
    warnings: tuple[str, ...] = ()
    if key.extractable:
        warnings = (f"key {key.label!r} is extractable (CKA_EXTRACTABLE): it can leave the token wrapped under "
                    "another key; clear it with the HSM's own tools unless that is your backup",)

    subject_dn = current.subject.rfc4514_string()
    if store.ca_by_subject(subject_dn) is not None:
        raise AlreadyExists(f"a CA with subject {subject_dn} is already recorded; nothing adopted")
    if request.kind is CAKind.BRIDGE and store.cas(CAKind.BRIDGE):
        raise AlreadyExists(f"revoca already has a bridge CA ({store.bridge().name}); nothing adopted")
    for spki in spkis:
        known = store.key_by_spki(spki)
        if known is not None:
            raise AlreadyExists(f"a key of {_describe(generations[spkis.index(spki)])} is already recorded for CA "
                                f"{known.ca.name}; nothing adopted")
    given = [*generations, *request.links, *request.crosses, *(c for _, c in request.externals),
             *(s.certificate for s in request.servers)]
    for cert in given:
        if store.certificate_by_fingerprint(fingerprint(cert)) is not None:
            raise AlreadyExists(f"certificate {_describe(cert)} is already recorded; nothing adopted")

    links = [_link_kind(link, current.subject, spkis) for link in request.links]
    ctx = hierarchy.Context(store=store, keys=keys, now=now, actor=actor, time_guard=time_guard)
    externals = [_external(ctx, name, cert) for name, cert in request.externals]
    crosses = [_cross_partner(store, cross, current.subject, spkis, externals) for cross in request.crosses]
    servers = [_server(keys, server, current.subject, spkis, now, request.name) for server in request.servers]

    # checked: record
    target = _target_label(request.name, len(generations), _ski(current))
    ca = store.add_ca(name=request.name, kind=request.kind, subject=current.subject, now=now)
    ca.status = CAStatus.ADOPTING
    rows: list[KeyRow] = []
    for n, cert in enumerate(generations, start=1):
        rows.append(store.add_key(ca, label=target if n == len(generations) else None,
                                  algorithm=KeyAlgorithm.of_public_key(cert.public_key()).value,  # type: ignore[arg-type]
                                  public_key=cert.public_key(), ski=_ski(cert), now=cert.not_valid_before_utc))
        if n < len(generations):
            rows[-1].status = KeyStatus.RETIRED
    stored = 0
    for cert, row in zip(generations, rows, strict=True):
        store.add_certificate(cert, kind=CertKind.SELF_SIGNED, issuer_key=row, subject_key=row, now=now)
        stored += 1
    for link, (kind, subject_index, signer_index) in zip(request.links, links, strict=True):
        store.add_certificate(link, kind=kind, issuer_key=rows[signer_index], subject_key=rows[subject_index], now=now)
        stored += 1
    for cross, (partner_key, ours_index, ours_issued) in zip(request.crosses, crosses, strict=True):
        issuer_key, subject_key = (rows[ours_index], partner_key) if ours_issued else (partner_key, rows[ours_index])
        store.add_certificate(cross, kind=CertKind.CROSS, issuer_key=issuer_key, subject_key=subject_key, now=now)
        stored += 1
    for server, (signer_index, server_key, server_label) in zip(request.servers, servers, strict=True):
        store.add_certificate(server.certificate, kind=server.kind, issuer_key=rows[signer_index],
                              key_label=server_label if server_key is not None else None, now=now)
        stored += 1
    audit.record(store.session, "ca.adopted", actor=actor, at=now, ca=request.name, kind=request.kind.value,
                 subject=subject_dn, key_found_as=key.label, key_id=key.key_id.hex(), key_label=target,
                 key_extractable=key.extractable, generations=len(generations),
                 certificates=[fingerprint(c).hex() for c in (*generations, *request.links, *request.crosses,
                                                              *(s.certificate for s in request.servers))],
                 externals=[n for n, _ in request.externals],
                 server_keys={label: found.label for _, found, label in servers if found is not None})
    for _, server_key, server_label in servers:  # last, with the CA key: a failure rolls the records back
        if server_key is not None and server_key.label != server_label:
            keys.relabel(server_key.label, server_label)
    keys.relabel(key.label, target)
    return AdoptionResult(ca=request.name, key_label=target, found_as=key.label, generation=len(generations),
                          certificates=stored, changed=True, warnings=warnings)


def _target_label(name: str, generation: int, ski: bytes) -> str:
    """revoca's label for an adopted CA key: a CA key to the signer's policy (ca.hsm.policy), and
    the same on every run, so that a run interrupted after the relabel finds the key again."""
    return f"ca/{name}/{generation}/adopted-{ski.hex()[:16]}"


def _token_key(keys: AdoptionKeys, request: AdoptionRequest, target: str) -> ExistingKey:
    try:
        return keys.find_key(label=request.key_label, key_id=request.key_id)
    except NotFound:
        if request.key_label is None:
            raise
        try:  # relabelled by an earlier run whose database transaction then failed
            return keys.find_key(label=target)
        except NotFound:
            pass
        raise


def _link_kind(link: x509.Certificate, name: x509.Name, spkis: list[bytes]) -> tuple[CertKind, int, int]:
    """(kind, index of the key it carries, index of the key that signed it) among the generations."""
    if link.subject != name or link.issuer != name:
        raise InvalidInput(f"link certificate {_describe(link)} does not name the adopted CA as subject and issuer")
    carried = _spki(link)
    if carried not in spkis:
        raise InvalidInput(f"link certificate {_describe(link)} carries a key that is none of the CA's key "
                           "generations (give its self-signed certificate with --previous-certificate)")
    subject_index = spkis.index(carried)
    for signer_index, spki in enumerate(spkis):
        if signer_index != subject_index and _signed_by(link, spki):
            kind = CertKind.LINK_OLD_WITH_NEW if subject_index < signer_index else CertKind.LINK_NEW_WITH_OLD
            return kind, subject_index, signer_index
    raise InvalidInput(f"link certificate {_describe(link)} is not signed by another of the CA's key generations")


def _external(ctx: hierarchy.Context, name: str, cert: x509.Certificate) -> CARow:
    """An external CA (the government bridge) registered from its self-signed certificate, kept external."""
    store = ctx.store
    try:
        found = store.ca(name)
    except NotFound:
        return hierarchy.import_external_ca(ctx, name, cert)
    raise AlreadyExists(f"CA {found.name} is already recorded; give --external only for a CA revoca does not know")


def _cross_partner(store: AdoptionStore, cross: x509.Certificate, name: x509.Name, spkis: list[bytes],
                   externals: list[CARow]) -> tuple[KeyRow, int, bool]:
    """(the partner CA's key, index of our key generation, whether we issued it) of a cross certificate."""
    carried = _spki(cross)
    if cross.issuer == name and carried not in spkis:  # issued by the adopted CA to a partner
        partner = store.key_by_spki(carried)
        if partner is None:
            raise InvalidInput(f"cross certificate {_describe(cross)} certifies a key revoca does not know; adopt that "
                               "CA first, or register it with --external")
        if partner.ca.subject_dn != cross.subject.rfc4514_string():
            raise InvalidInput(f"cross certificate {_describe(cross)} names {cross.subject.rfc4514_string()} but "
                               f"certifies the key of {partner.ca.subject_dn}")
        for index, spki in enumerate(spkis):
            if _signed_by(cross, spki):
                return partner, index, True
        raise InvalidInput(f"cross certificate {_describe(cross)} names the adopted CA as issuer but is not signed by "
                           "any of its keys")
    if cross.subject == name and carried in spkis:  # issued by a partner to the adopted CA
        issuer_dn = cross.issuer.rfc4514_string()
        partner_ca = store.ca_by_subject(issuer_dn) or next(
            (e for e in externals if e.subject_dn == issuer_dn), None)
        if partner_ca is None:
            raise InvalidInput(f"cross certificate {_describe(cross)} is issued by {issuer_dn}, a CA revoca does not "
                               "know; adopt it first, or register it with --external")
        for partner in partner_ca.keys:
            if _signed_by(cross, partner.spki_der):
                return partner, spkis.index(carried), False
        raise InvalidInput(f"cross certificate {_describe(cross)} is not signed by any key of {partner_ca.name}")
    raise InvalidInput(f"cross certificate {_describe(cross)} neither certifies the adopted CA's key nor is issued by "
                       "it under its name")


def _server(keys: AdoptionKeys, server: ServerCertificate, name: x509.Name, spkis: list[bytes], now: dt.datetime,
            ca_name: str) -> tuple[int, ExistingKey | None, str]:
    """(index of the key generation that signed it, its key in the token or None, revoca's label for that key)."""
    cert = server.certificate
    if cert.issuer != name:
        raise InvalidInput(f"{server.kind} certificate {_describe(cert)} is issued by {cert.issuer.rfc4514_string()}, "
                           f"not by the adopted CA")
    signer_index = next((i for i, spki in enumerate(spkis) if _signed_by(cert, spki)), None)
    if signer_index is None:
        raise InvalidInput(f"{server.kind} certificate {_describe(cert)} is not signed by any of the CA's keys")
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise InvalidInput(f"{server.kind} certificate {_describe(cert)} is a CA certificate")
    except x509.ExtensionNotFound:
        pass
    wanted = _SERVER_EKU.get(server.kind)
    if wanted is not None:
        try:
            usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            usages = []
        if wanted not in usages:
            raise InvalidInput(f"{server.kind} certificate {_describe(cert)} lacks the extended key usage "
                               f"{wanted.dotted_string}")
    if cert.not_valid_after_utc <= now:
        raise InvalidInput(f"{server.kind} certificate {_describe(cert)} expired on "
                           f"{cert.not_valid_after_utc:%Y-%m-%d}")
    label = f"{server.kind.value}/{ca_name}/{signer_index + 1}/adopted-{fingerprint(cert).hex()[:16]}"
    if server.key_label is None and server.key_id is None:
        return signer_index, None, label
    found = _server_key(keys, server, label)
    if found.spki != _spki(cert):
        raise InvalidInput(f"the token's key {found.label!r} is not the key of {server.kind} certificate "
                           f"{_describe(cert)}: their public keys differ")
    if not found.can_sign:
        raise InvalidInput(f"the token's key {found.label!r} may not sign (CKA_SIGN is false)")
    if not found.sensitive:
        raise InvalidInput(f"the token's key {found.label!r} is not sensitive; protect it with the HSM's own tools "
                           "before adopting it")
    return signer_index, found, label


def _server_key(keys: AdoptionKeys, server: ServerCertificate, label: str) -> ExistingKey:
    try:
        return keys.find_key(label=server.key_label, key_id=server.key_id)
    except NotFound as missing:
        try:  # relabelled by an earlier run whose database transaction then failed
            return keys.find_key(label=label)
        except NotFound:
            raise missing from None


def _same_again(store: AdoptionStore, keys: AdoptionKeys, request: AdoptionRequest, ca: CARow,
                generations: list[x509.Certificate]) -> AdoptionResult:
    """The CA is recorded already: the same adoption again changes nothing; anything else is refused."""
    differs = f"CA {ca.name} is already recorded"
    if ca.kind is not request.kind:
        raise AlreadyExists(f"{differs} as a {ca.kind} CA, not {request.kind}; nothing changed")
    key = store.crl_signing_key(ca)
    if key.spki_der != _spki(generations[-1]) or len(ca.keys) != len(generations):
        raise AlreadyExists(f"{differs} with other keys than the certificates given carry; nothing changed")
    mine = {row.fingerprint_sha256 for row in _certificates_of(store, ca)}
    mine |= {row.fingerprint_sha256 for row in store.certificates(issuer=ca, kinds=list(SERVER_KINDS))}
    given = [*generations, *request.links, *request.crosses, *(s.certificate for s in request.servers)]
    for cert in given:
        if fingerprint(cert) not in mine:
            raise AlreadyExists(f"{differs} without certificate {_describe(cert)}; a recorded CA is not changed by "
                                "adopting it again (nothing changed)")
    for name, cert in request.externals:
        external = store.ca(name)
        if external.kind is not CAKind.EXTERNAL or fingerprint(cert) not in {
                row.fingerprint_sha256 for row in _certificates_of(store, external)}:
            raise AlreadyExists(f"{differs}, and external CA {name} differs from the certificate given; "
                                "nothing changed")
    assert key.key_label is not None  # crl_signing_key returns keys held in the token
    in_token = keys.find_key(label=key.key_label)
    if in_token.spki != key.spki_der:
        raise AlreadyExists(f"the token's key {key.key_label!r} is no longer the key recorded for CA {ca.name}")
    return AdoptionResult(ca=ca.name, key_label=key.key_label, found_as=key.key_label, generation=key.generation,
                          certificates=0, changed=False)


def _certificates_of(store: AdoptionStore, ca: CARow) -> list[CertificateRow]:
    ca_level = [k for k in CertKind if k.is_ca_certificate]
    return [*store.certificates(issuer=ca, kinds=ca_level), *store.certificates(subject_ca=ca)]
