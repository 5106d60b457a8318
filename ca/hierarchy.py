"""The CA hierarchy: bridge, regional and external CAs with their self-signed, cross, link,
responder, CVS and TLS certificates.

Every function works inside the caller's transaction and signs through a KeyStore, so the
same code runs at the key ceremony (token opened in-process) and later through the HSM
service.  Nothing here decides certificate contents: that is ca.profiles via ca.issuance.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from ca import audit
from ca.config import CAConfig, Settings
from ca.enums import CAKind, CertKind, KeyStatus
from ca.errors import InvalidInput, NotFound
from ca.hsm.signer import KeyAlgorithm, KeyStore
from ca.issuance import Issuer, issue, key_identifier
from ca.lifecycle.key_policy import SETTING, NewKeysRefused
from ca.storage.authorities import spki_der
from ca.storage.models import CertificateAuthority, KeyGeneration
from ca.storage.store import Store
from ca.trusted_time import ClockGuard

_CA_KINDS_SELF = (CertKind.SELF_SIGNED,)


# Labels carry a random suffix: a key made for an operation whose transaction then rolled
# back stays in the token unused, and must not block the retry by taking its label.
def ca_key_label(ca_name: str, generation: int) -> str:
    return f"ca/{ca_name}/{generation}/{secrets.token_hex(4)}"


def ee_key_label(kind: CertKind, ca_name: str, generation: int) -> str:
    return f"{kind.value}/{ca_name}/{generation}/{secrets.token_hex(4)}"


def load_certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """What every hierarchy operation needs: the store, where keys live, the time and who acts."""

    store: Store
    keys: KeyStore
    now: dt.datetime
    actor: str
    # the process's clock check (ca.trusted_time), made where its settings were loaded
    time_guard: ClockGuard
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA2048
    # the delegated OCSP responder keys this context makes ([ocsp] responder_algorithm)
    responder_algorithm: KeyAlgorithm = KeyAlgorithm.P256
    # [ca] new_keys (ca.lifecycle.key_policy): False refuses a rollover; the CLI passes the setting, and
    # audits the refusal before it gets here
    new_keys: bool = True


def issuer_for(keys: KeyStore, ca: CertificateAuthority, key: KeyGeneration) -> Issuer:
    """The CA as an issuer, signing with `key` in the token."""
    if key.key_label is None:
        raise InvalidInput(f"CA {ca.name} is external: revoca holds no key to sign with")
    return Issuer(name=x509.Name.from_rfc4514_string(ca.subject_dn), signer=keys.signer(key.key_label),
                  key_id=key.ski)


def _issuer(ctx: Context, ca: CertificateAuthority, key: KeyGeneration) -> Issuer:
    return issuer_for(ctx.keys, ca, key)


def _self_signed(ctx: Context, ca: CertificateAuthority, key: KeyGeneration) -> x509.Certificate:
    issuer = _issuer(ctx, ca, key)
    cert = issue(CertKind.SELF_SIGNED, issuer=issuer, time_guard=ctx.time_guard, subject=issuer.name,
                 public_key=issuer.signer.public_key(), not_before=ctx.now)
    ctx.store.add_certificate(cert, kind=CertKind.SELF_SIGNED, issuer_key=key, subject_key=key, now=ctx.now)
    return cert


def _new_ca_key(ctx: Context, ca: CertificateAuthority) -> KeyGeneration:
    generation = 1 + max((k.generation for k in ca.keys), default=0)
    label = ca_key_label(ca.name, generation)
    public = ctx.keys.generate(label, ctx.algorithm)
    key = ctx.store.add_key(ca, label=label, algorithm=ctx.algorithm.value, public_key=public,
                            ski=key_identifier(public), now=ctx.now)
    audit.record(ctx.store.session, "ca.key_generated", actor=ctx.actor, ca=ca.name, label=label,
                 algorithm=ctx.algorithm.value)
    return key


def cross_certify(ctx: Context, issuer_ca: CertificateAuthority, subject_ca: CertificateAuthority,
                  *, subject_key: KeyGeneration | None = None) -> x509.Certificate:
    """issuer_ca certifies subject_ca's current key (one half of a cross-certificate pair)."""
    issuer_key = ctx.store.current_key(issuer_ca)
    subject_key = subject_key or ctx.store.current_key(subject_ca)
    public = serialization.load_der_public_key(subject_key.spki_der)
    external = subject_ca.kind is CAKind.EXTERNAL
    cert = issue(CertKind.CROSS, time_guard=ctx.time_guard, issuer=_issuer(ctx, issuer_ca, issuer_key),
                 subject=x509.Name.from_rfc4514_string(subject_ca.subject_dn),
                 public_key=public, not_before=ctx.now,  # type: ignore[arg-type]
                 subject_key_id=subject_key.ski if external else None)
    ctx.store.add_certificate(cert, kind=CertKind.CROSS, issuer_key=issuer_key, subject_key=subject_key,
                              now=ctx.now)
    audit.record(ctx.store.session, "ca.certificate_issued", actor=ctx.actor, kind="cross",
                 issuer=issuer_ca.name, subject=subject_ca.name, serial=format(cert.serial_number, "x"))
    return cert


def issue_end_entity(ctx: Context, ca: CertificateAuthority, kind: CertKind, *, subject: x509.Name,
                     dns_names: tuple[str, ...] = (), issuer_key: KeyGeneration | None = None) -> x509.Certificate:
    """A responder, CVS, TLS, receipt or TSA certificate whose key is made in the token for it, issued
    by the CA's current key or `issuer_key` (an older key's OCSP responder: RFC 6960 4.2.2.2)."""
    if kind not in (CertKind.OCSP_RESPONDER, CertKind.CVS_SERVER, CertKind.TLS, CertKind.RECEIPT_SIGNER,
                    CertKind.TSA):
        raise InvalidInput(f"{kind} is not an end-entity kind revoca makes keys for")
    issuer_key = issuer_key or ctx.store.current_key(ca)
    n = 1 + ctx.store.count_certificates(ca, kind)
    label = ee_key_label(kind, ca.name, n)
    public = ctx.keys.generate(label, ctx.responder_algorithm if kind is CertKind.OCSP_RESPONDER else ctx.algorithm)
    cert = issue(kind, time_guard=ctx.time_guard, issuer=_issuer(ctx, ca, issuer_key), subject=subject,
                 public_key=public,
                 not_before=ctx.now, dns_names=dns_names)
    ctx.store.add_certificate(cert, kind=kind, issuer_key=issuer_key, key_label=label, now=ctx.now)
    audit.record(ctx.store.session, "ca.certificate_issued", actor=ctx.actor, kind=kind.value, issuer=ca.name,
                 serial=format(cert.serial_number, "x"))
    return cert


def responder_subject(ca: CertificateAuthority) -> x509.Name:
    base = x509.Name.from_rfc4514_string(ca.subject_dn)
    kept = [rdn for rdn in base.rdns if rdn.get_attributes_for_oid(x509.NameOID.COMMON_NAME) == []]
    cn = x509.RelativeDistinguishedName([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"OCSP Responder {ca.name}")])
    return x509.Name([*kept, cn])


def create_ca(ctx: Context, config: CAConfig, kind: CAKind) -> CertificateAuthority:
    """A new CA: key in the token, self-signed certificate and its OCSP responder certificate."""
    ca = ctx.store.add_ca(name=config.name, kind=kind, subject=x509.Name.from_rfc4514_string(config.subject),
                          now=ctx.now)
    key = _new_ca_key(ctx, ca)
    _self_signed(ctx, ca, key)
    issue_end_entity(ctx, ca, CertKind.OCSP_RESPONDER, subject=responder_subject(ca))
    audit.record(ctx.store.session, "ca.created", actor=ctx.actor, ca=ca.name, kind=kind.value)
    return ca


def build(ctx: Context, settings: Settings) -> list[CertificateAuthority]:
    """Create whatever CAs of revoca.toml do not exist yet, cross-certified with the bridge."""
    existing = {c.name for c in ctx.store.cas()}
    made: list[CertificateAuthority] = []
    h = settings.hierarchy
    if h.bridge.name not in existing:
        bridge = create_ca(ctx, h.bridge, CAKind.BRIDGE)
        for kind, label in ((CertKind.CVS_SERVER, "CVS Server"), (CertKind.TLS, "TLS")):
            subject = x509.Name.from_rfc4514_string(f"CN={h.server_name} {label},O=JPKI,C=JP")
            issue_end_entity(ctx, bridge, kind, subject=subject, dns_names=(h.server_name,))
        made.append(bridge)
    else:
        bridge = ctx.store.ca(h.bridge.name)
    if not ctx.store.certificates(issuer=bridge, kinds=[CertKind.RECEIPT_SIGNER]):
        issue_end_entity(ctx, bridge, CertKind.RECEIPT_SIGNER,
                         subject=x509.Name.from_rfc4514_string("CN=Revocation Receipts,OU=Bridge CA,O=JPKI,C=JP"))
    for regional_config in h.regional:
        if regional_config.name in existing:
            continue
        regional = create_ca(ctx, regional_config, CAKind.REGIONAL)
        cross_certify(ctx, bridge, regional)
        cross_certify(ctx, regional, bridge)
        made.append(regional)
    return made


def rollover(ctx: Context, ca_name: str) -> KeyGeneration:
    """New key, self-signed certificate and the OldWithNew / NewWithOld link certificates (seed 7.1(4)).

    Links: OldWithNew carries the old key signed by the new one, valid from the old key's
    generation to the old self-signed certificate's end; NewWithOld carries the new key signed
    by the old one, from the new key's generation to the same end.  Cross-certificates with
    the bridge (or, for the bridge, with every regional CA) are issued anew for the new key.
    """
    if not ctx.new_keys:
        raise NewKeysRefused(f"key rollover of CA {ca_name} refused: this installation renews no keys "
                             f"({SETTING}, seed 004 5.6)")
    ca = ctx.store.ca(ca_name)
    if ca.kind is CAKind.EXTERNAL:
        raise InvalidInput(f"CA {ca.name} is external; its owner rolls its key over")
    old_key = ctx.store.current_key(ca)
    old_self = next((c for c in ctx.store.certificates(issuer=ca, kinds=_CA_KINDS_SELF)
                     if c.subject_key_id == old_key.id), None)
    if old_self is None:
        raise NotFound(f"CA {ca.name} has no self-signed certificate for key generation {old_key.generation}")
    new_key = _new_ca_key(ctx, ca)
    old_key.status = KeyStatus.RETIRED
    _self_signed(ctx, ca, new_key)
    name = x509.Name.from_rfc4514_string(ca.subject_dn)
    old_pub = serialization.load_der_public_key(old_key.spki_der)
    new_pub = serialization.load_der_public_key(new_key.spki_der)
    links = (
        (CertKind.LINK_OLD_WITH_NEW, new_key, old_key, old_pub, old_key.created_at),
        (CertKind.LINK_NEW_WITH_OLD, old_key, new_key, new_pub, new_key.created_at),
    )
    for kind, signing_key, subject_key, public, not_before in links:
        cert = issue(kind, time_guard=ctx.time_guard, issuer=_issuer(ctx, ca, signing_key), subject=name,
                     public_key=public,  # type: ignore[arg-type]
                     not_before=not_before, not_after=old_self.not_after)
        ctx.store.add_certificate(cert, kind=kind, issuer_key=signing_key, subject_key=subject_key, now=ctx.now)
        audit.record(ctx.store.session, "ca.certificate_issued", actor=ctx.actor, kind=kind.value, issuer=ca.name,
                     serial=format(cert.serial_number, "x"))
    partners = ([c for c in ctx.store.cas(CAKind.REGIONAL)] if ca.kind is CAKind.BRIDGE
                else [ctx.store.bridge()])
    for partner in partners:
        cross_certify(ctx, partner, ca, subject_key=new_key)
        cross_certify(ctx, ca, partner)
    issue_end_entity(ctx, ca, CertKind.OCSP_RESPONDER, subject=responder_subject(ca))
    audit.record(ctx.store.session, "ca.rollover", actor=ctx.actor, ca=ca.name, old=old_key.generation,
                 new=new_key.generation)
    return new_key


def import_external_ca(ctx: Context, name: str, their_cert: x509.Certificate) -> CertificateAuthority:
    """Register another PKI's CA (e.g. the government bridge) from its self-signed certificate."""
    public: CertificateIssuerPublicKeyTypes = their_cert.public_key()  # type: ignore[assignment]
    try:
        their_cert.verify_directly_issued_by(their_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise InvalidInput(f"{name}: the certificate given is not a valid self-signed CA certificate: {exc}") from exc
    try:
        is_ca = their_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise InvalidInput(f"{name}: the certificate given is not a CA certificate (basicConstraints cA missing)")
    ca = ctx.store.add_ca(name=name, kind=CAKind.EXTERNAL, subject=their_cert.subject, now=ctx.now)
    # Keep the key identifier the external CA itself uses (it may not be RFC 5280 method 1):
    # its certificates carry it as AKI, so our cross certificate's SKI must equal it.
    try:
        ski = their_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = key_identifier(public)
    key = ctx.store.add_key(ca, label=None, algorithm=KeyAlgorithm.of_public_key(public).value,
                            public_key=public, ski=ski, now=ctx.now)
    ctx.store.add_certificate(their_cert, kind=CertKind.SELF_SIGNED, issuer_key=key, subject_key=key, now=ctx.now)
    audit.record(ctx.store.session, "ca.external_imported", actor=ctx.actor, ca=name,
                 subject=their_cert.subject.rfc4514_string())
    return ca


def import_their_cross(ctx: Context, external: CertificateAuthority, cert: x509.Certificate) -> None:
    """Store the cross certificate the external CA issued to our bridge, after checking it."""
    bridge = ctx.store.bridge()
    bridge_key = ctx.store.current_key(bridge)
    their_key = ctx.store.current_key(external)
    if spki_der(cert.public_key()) != bridge_key.spki_der:
        raise InvalidInput(f"the cross certificate from {external.name} does not certify our bridge's current key")
    their_self = load_certificate(ctx.store.certificates(issuer=external, kinds=_CA_KINDS_SELF)[-1].der)
    try:
        cert.verify_directly_issued_by(their_self)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise InvalidInput(f"the cross certificate is not signed by {external.name}'s key: {exc}") from exc
    ctx.store.add_certificate(cert, kind=CertKind.CROSS, issuer_key=their_key, subject_key=bridge_key, now=ctx.now)
    audit.record(ctx.store.session, "ca.cross_imported", actor=ctx.actor, ca=external.name,
                 serial=format(cert.serial_number, "x"))


def issue_with_key_file(ctx: Context, ca: CertificateAuthority, kind: CertKind, *, subject: x509.Name,
                        key_path: Path, dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = (),
                        algorithm: KeyAlgorithm = KeyAlgorithm.P256, passphrase: bytes | None = None,
                        key_label: str | None = None, issuer_key: KeyGeneration | None = None) -> x509.Certificate:
    """A TLS server, RA terminal, verifier or OCSP responder certificate whose key is a file, not a token key.

    TLS stacks (gunicorn, curl, the terminals' and verifiers' own software) need the key as a
    file, and a delegated OCSP responder may sign faster in process than through the token;
    these are short-lived, revocable end-entity keys, never CA keys.  With `passphrase` the
    file is encrypted (PKCS#8).  `key_label` is recorded on the certificate row.  `issuer_key`:
    as issue_end_entity's.
    """
    if kind not in (CertKind.TLS, CertKind.RA_TERMINAL, CertKind.VERIFIER, CertKind.OCSP_RESPONDER):
        raise InvalidInput(f"{kind} keys are kept in the token, not in files")
    private = (rsa.generate_private_key(65537, algorithm.bits) if algorithm.is_rsa
               else ec.generate_private_key(ec.SECP384R1() if algorithm is KeyAlgorithm.P384 else ec.SECP256R1()))
    issuer_key = issuer_key or ctx.store.current_key(ca)
    cert = issue(kind, time_guard=ctx.time_guard, issuer=_issuer(ctx, ca, issuer_key), subject=subject,
                 public_key=private.public_key(),
                 not_before=ctx.now, dns_names=dns_names,
                 ip_addresses=tuple(ipaddress.ip_address(ip) for ip in ip_addresses))
    ctx.store.add_certificate(cert, kind=kind, issuer_key=issuer_key, key_label=key_label, now=ctx.now)
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path.touch(mode=0o600, exist_ok=True)
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    key_path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               encryption))
    audit.record(ctx.store.session, "ca.certificate_issued", actor=ctx.actor, kind=kind.value, issuer=ca.name,
                 serial=format(cert.serial_number, "x"), subject=subject.rfc4514_string(), key="file")
    return cert
