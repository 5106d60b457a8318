"""The one place certificates are built: a profile, the caller's values, and the issuer's Signer.

Everything a profile fixes comes from `ca.profiles`; this module only checks the caller's
values against it and lets cryptography encode, so no certificate field is written by hand.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from ca.enums import CertKind
from ca.errors import InvalidInput, TokenError
from ca.hsm.signer import Signer, as_private_key, verify_signature
from ca.profiles import PROFILES, AltNames, Profile

if TYPE_CHECKING:
    from ca.basic_four import BasicFour
    from ca.trusted_time import ClockGuard

# RFC 5280 4.1.2.2: at most 20 octets; cryptography caps positive serials at 159 bits.
MAX_SERIAL_BITS = 159

_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)


def key_identifier(public_key: CertificatePublicKeyTypes) -> bytes:
    """RFC 5280 4.2.1.2 method 1, so a CA's SKI and its subjects' AKI agree without a lookup."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key).digest


@dataclass(frozen=True, slots=True)
class Issuer:
    """The CA that signs: its name, its key, and the key identifier its subjects' AKI carries."""

    name: x509.Name
    signer: Signer
    key_id: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.name, x509.Name) or not self.name.rdns:
            raise InvalidInput("issuer name must be a non-empty X.509 Name (RFC 5280 4.1.2.4)")
        if not isinstance(self.signer, Signer):
            raise InvalidInput(f"issuer signer must be a Signer, not {type(self.signer).__name__}")
        if not isinstance(self.key_id, bytes) or not self.key_id:
            raise InvalidInput("issuer key_id must be non-empty bytes")

    @classmethod
    def from_signer(cls, name: x509.Name, signer: Signer) -> Issuer:
        return cls(name=name, signer=signer, key_id=key_identifier(signer.public_key()))


def issue(
    kind: CertKind,
    *,
    issuer: Issuer,
    time_guard: ClockGuard,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    not_before: datetime,
    not_after: datetime | None = None,
    serial: int | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address] = (),
    basic_four: BasicFour | None = None,
    subject_key_id: bytes | None = None,
) -> x509.Certificate:
    """Build and sign one certificate of `kind`.

    `subject_key_id` is only for a cross certificate to an external CA whose own certificates
    use another key-identifier method: RFC 5280 4.2.1.2 wants the SKI here to equal the AKI in
    the certificates that CA issues.  `time_guard` (the caller's process's, ca.trusted_time) must
    confirm the clock right before the signature.
    """
    profile = PROFILES[kind]
    not_before = _utc_seconds(not_before, "not_before")
    longest = None if profile.validity_years is None else profile.default_not_after(not_before)
    if not_after is None:
        if longest is None:
            raise InvalidInput(f"{kind} certificates have no fixed validity; give not_after")
        not_after = longest
    not_after = _utc_seconds(not_after, "not_after")
    if not_after <= not_before:
        raise InvalidInput(f"not_after {not_after:%Y-%m-%dT%H:%M:%SZ} must be after not_before")
    if longest is not None and not_after > longest:
        raise InvalidInput(f"{kind} certificates are valid at most {profile.validity_years} years")
    serial = x509.random_serial_number() if serial is None else serial
    if not 0 < serial < 1 << MAX_SERIAL_BITS:
        raise InvalidInput(f"serial number must be positive and at most {MAX_SERIAL_BITS} bits")
    if not isinstance(subject, x509.Name) or not subject.rdns:
        raise InvalidInput("subject must be a non-empty X.509 Name")
    _check_names(profile, issuer, subject, public_key)

    if subject_key_id is not None and (kind is not CertKind.CROSS or not subject_key_id):
        raise InvalidInput("subject_key_id may only be given, non-empty, for cross certificates")
    ski = key_identifier(public_key) if subject_key_id is None else subject_key_id
    if profile.self_signed and ski != issuer.key_id:
        raise InvalidInput("self-signed: issuer key_id must be the key identifier of the certified key")

    builder = (
        x509.CertificateBuilder()
        .issuer_name(issuer.name)
        .subject_name(subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in _extensions(profile, ski, issuer.key_id, dns_names, ip_addresses, basic_four,
                                             public_key):
        builder = builder.add_extension(extension, critical=critical)
    time_guard.require(f"{kind} certificate")  # raises, audited, when NTP disagrees with the clock
    certificate = builder.sign(as_private_key(issuer.signer), issuer.signer.algorithm.hash_algorithm)
    _check_signature(certificate, issuer.signer)
    return certificate


def _check_signature(certificate: x509.Certificate, signer: Signer) -> None:
    """Never release a bad signature: a faulty RSA-CRT signature can reveal the token's key."""
    try:
        verify_signature(signer.public_key(), certificate.signature, certificate.tbs_certificate_bytes,
                         signer.algorithm.hash_algorithm)
    except InvalidSignature as exc:
        raise TokenError(
            f"key {signer.key_label} returned a signature that does not verify; certificate withheld, check the token"
        ) from exc


def _utc_seconds(value: datetime, what: str) -> datetime:
    """Aware UTC with whole seconds: X.509 times carry no fraction, so the result equals the cert."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} is a naive datetime; use timezone-aware UTC")
    return value.astimezone(UTC).replace(microsecond=0)


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_names(profile: Profile, issuer: Issuer, subject: x509.Name, public_key: CertificatePublicKeyTypes) -> None:
    """Self-issued kinds certify their own CA's name; the rest must not, or paths would loop."""
    same_name = subject == issuer.name
    if profile.self_issued and not same_name:
        raise InvalidInput(f"{profile.kind}: subject must equal the issuer name")
    if not profile.self_issued and same_name:
        raise InvalidInput(f"{profile.kind}: subject must differ from the issuer name")
    same_key = _spki(public_key) == _spki(issuer.signer.public_key())
    if profile.self_signed and not same_key:
        raise InvalidInput(f"{profile.kind}: public_key must be the issuer signer's key")
    if not profile.self_signed and same_key:
        raise InvalidInput(f"{profile.kind}: public_key must differ from the issuer signer's key")


def _extensions(
    profile: Profile,
    ski: bytes,
    aki: bytes,
    dns_names: Sequence[str],
    ip_addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
    basic_four: BasicFour | None,
    public_key: CertificatePublicKeyTypes,
) -> list[tuple[x509.ExtensionType, bool]]:
    out: list[tuple[x509.ExtensionType, bool]] = []
    if profile.basic_constraints:
        out.append((x509.BasicConstraints(ca=profile.ca, path_length=None), True))
    key_usage = profile.key_usage
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        # RFC 8813 / RFC 5480: an EC key cannot encipher keys; TLS with it uses (EC)DHE.
        key_usage = key_usage - {"keyEncipherment"}
    out.append((_key_usage(key_usage), True))
    if profile.extended_key_usage:
        out.append((x509.ExtendedKeyUsage(list(profile.extended_key_usage)), profile.extended_key_usage_critical))
    if profile.policies:
        policies = [x509.PolicyInformation(oid, None) for oid in profile.policies]
        out.append((x509.CertificatePolicies(policies), False))
    alt_names = _alt_names(profile, dns_names, ip_addresses, basic_four)
    if alt_names:
        out.append((x509.SubjectAlternativeName(alt_names), False))
    if profile.ocsp_no_check:
        out.append((x509.OCSPNoCheck(), False))
    out.append((x509.SubjectKeyIdentifier(ski), False))
    out.append((x509.AuthorityKeyIdentifier(aki, None, None), False))
    return out


def _key_usage(bits: frozenset[str]) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature="digitalSignature" in bits,
        content_commitment="nonRepudiation" in bits,
        key_encipherment="keyEncipherment" in bits,
        data_encipherment="dataEncipherment" in bits,
        key_agreement="keyAgreement" in bits,
        key_cert_sign="keyCertSign" in bits,
        crl_sign="cRLSign" in bits,
        encipher_only="encipherOnly" in bits,
        decipher_only="decipherOnly" in bits,
    )


def _alt_names(profile: Profile, dns_names: Sequence[str],
               ip_addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
               basic_four: BasicFour | None) -> list[x509.GeneralName]:
    if isinstance(dns_names, str):
        raise InvalidInput("dns_names must be a sequence of names, not one string")
    wants_dns = profile.alt_names is AltNames.DNS_NAMES
    wants_four = profile.alt_names is AltNames.BASIC_FOUR
    if (dns_names or ip_addresses) and not wants_dns:
        raise InvalidInput(f"{profile.kind} certificates carry no dNSName; drop dns_names")
    if basic_four is not None and not wants_four:
        raise InvalidInput(f"{profile.kind} certificates carry no basic four information; drop basic_four")
    if wants_dns:
        if not dns_names:
            raise InvalidInput(f"{profile.kind} certificates need at least one DNS name in dns_names")
        for name in dns_names:
            _check_dns_name(name)
        # iPAddress entries let loopback services be reached by address (https://127.0.0.1:...).
        ips = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        names: list[x509.GeneralName] = [x509.DNSName(name.lower()) for name in dns_names]
        return names + ips
    if wants_four:
        if basic_four is None:
            raise InvalidInput(f"{profile.kind} certificates need the holder's basic_four")
        return basic_four.general_names()
    return []


def _check_dns_name(name: str) -> None:
    """Preferred name syntax (RFC 5280 4.2.1.6, RFC 1034 3.5); IDNs must come as A-labels."""
    if (
        not isinstance(name, str)
        or len(name) > 253
        or not all(_DNS_LABEL.fullmatch(label) for label in name.split("."))
    ):
        raise InvalidInput(f"{name!r} is not a DNS host name (letters, digits, '-', dot-separated)")
