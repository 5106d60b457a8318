"""revoca's own check of a time-stamp token (for `revoca audit verify`, `revoca archive verify`, tests).

Independent of how ca.tsa.token built it: parse, then check every link from the TSA
certificate to the imprint, and raise InvalidTimeStamp naming the first broken one.  Path
validation of the TSA certificate up to a trust anchor is the caller's (or `openssl ts -verify`'s).
"""

from __future__ import annotations

import datetime as dt

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from ca.der.parse_errors import PARSE_ERRORS
from ca.errors import InvalidInput
from ca.hsm.signer import verify_signature
from ca.tsa.errors import InvalidTimeStamp
from ca.tsa.profile import IMPRINT_HASHES

_SIGNATURE_ALGORITHMS = {f"{h}_{kind}" for h in IMPRINT_HASHES for kind in ("rsa", "ecdsa")} | {"rsassa_pkcs1v15"}


def verify_token(token_der: bytes, tsa_certificate: x509.Certificate, imprint: bytes, hash_name: str) -> dt.datetime:
    """The token's genTime (aware UTC) if `tsa_certificate` signed it over `imprint`; InvalidTimeStamp otherwise."""
    who = f"TSA certificate {tsa_certificate.serial_number:x} ({tsa_certificate.subject.rfc4514_string()})"
    check_tsa_certificate(tsa_certificate)
    signer_info, content, tst_info = _parse(token_der)
    attrs = _signed_attributes(signer_info)
    _check_signing_certificate(attrs, tsa_certificate, who)
    sid = signer_info["sid"]
    if sid.name != "issuer_and_serial_number" or not _is_issuer_serial(sid.chosen, tsa_certificate):
        raise InvalidTimeStamp(f"the token's signer is not the {who}; verify with the TSA certificate it names")
    hash_algorithm = _digest_algorithm(signer_info)
    digest = hashes.Hash(hash_algorithm)
    digest.update(content)
    if attrs.get("content_type") != "tst_info":
        raise InvalidTimeStamp("the token's contentType attribute is not id-ct-TSTInfo; it is not a time-stamp token")
    if attrs.get("message_digest") != digest.finalize():
        raise InvalidTimeStamp("the token's TSTInfo was altered: its messageDigest does not match; the token is void")
    signed = signer_info["signed_attrs"].dump()
    signed = b"\x31" + signed[1:]  # signed as a SET OF, carried as [0] IMPLICIT (RFC 5652 5.4)
    try:
        verify_signature(tsa_certificate.public_key(), signer_info["signature"].native, signed, hash_algorithm)
    except (InvalidSignature, InvalidInput) as exc:
        raise InvalidTimeStamp(f"bad signature: the token was altered or not signed with the key of the {who}") \
            from exc
    return _check_tst_info(tst_info, imprint, hash_name, tsa_certificate, who)


def token_imprint_hash(token_der: bytes) -> str:
    """The hash algorithm of the imprint a token stamps (to know how to hash the data before verify_token)."""
    _signer_info, _content, tst_info = _parse(token_der)
    return str(tst_info["message_imprint"]["hash_algorithm"]["algorithm"].native)


def check_tsa_certificate(cert: x509.Certificate) -> None:
    """RFC 3161 2.3: exactly one, critical, extendedKeyUsage id-kp-timeStamping."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise InvalidTimeStamp(
            f"certificate {cert.serial_number:x} ({cert.subject.rfc4514_string()}) is not a TSA certificate: it needs "
            "a critical extendedKeyUsage of id-kp-timeStamping only (RFC 3161 2.3); give the TSA's certificate")


def _parse(token_der: bytes) -> tuple[cms.SignerInfo, bytes, tsp.TSTInfo]:
    try:
        info = cms.ContentInfo.load(token_der, strict=True)
        if info["content_type"].native != "signed_data":
            raise ValueError(f"content type {info['content_type'].native}, not signedData")
        signed_data = info["content"]
        encap = signed_data["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise ValueError(f"eContentType {encap['content_type'].native}, not id-ct-TSTInfo")
        content = bytes(encap["content"])
        tst_info = tsp.TSTInfo.load(content, strict=True)
        tst_info.native  # force the lazy parse inside this try  # noqa: B018
        signer_infos = signed_data["signer_infos"]
        signer_infos.native  # noqa: B018
    except PARSE_ERRORS as exc:
        raise InvalidTimeStamp(f"not a time-stamp token (CMS SignedData of TSTInfo): {exc}") from exc
    if len(signer_infos) != 1:
        raise InvalidTimeStamp(f"a time-stamp token has exactly one SignerInfo, this one {len(signer_infos)}")
    return signer_infos[0], content, tst_info


def _signed_attributes(signer_info: cms.SignerInfo) -> dict[str, object]:
    found: dict[str, object] = {}
    for attr in signer_info["signed_attrs"]:
        name = attr["type"].native
        if name in found or len(attr["values"]) != 1:
            raise InvalidTimeStamp(f"the token's signed attribute {name} is repeated or multi-valued; it is void")
        found[name] = attr["values"][0] if name == "signing_certificate_v2" else attr["values"][0].native
    return found


def _check_signing_certificate(attrs: dict[str, object], cert: x509.Certificate, who: str) -> None:
    """RFC 5816 ESSCertIDv2: the first certHash must be the given certificate's."""
    value = attrs.get("signing_certificate_v2")
    if not isinstance(value, tsp.SigningCertificateV2):
        raise InvalidTimeStamp("the token has no signingCertificateV2 attribute (RFC 5816); revoca's tokens always do")
    ess = value["certs"][0]
    name = ess["hash_algorithm"]["algorithm"].native
    algorithm = IMPRINT_HASHES.get(name)
    if algorithm is None:
        raise InvalidTimeStamp(f"the token's ESSCertIDv2 uses {name}; expected SHA-256/384/512")
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    issuer_serial = ess["issuer_serial"]
    if ess["cert_hash"].native != digest.finalize() or (
            issuer_serial.native is not None and not _is_issuer_serial_names(issuer_serial, cert)):
        raise InvalidTimeStamp(f"wrong certificate: the token's signingCertificateV2 names another TSA certificate "
                               f"than the {who}; verify with the certificate the TSA used at that time")


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _is_issuer_serial(issuer_and_serial: cms.IssuerAndSerialNumber, cert: x509.Certificate) -> bool:
    ours = _asn1_cert(cert)
    return (issuer_and_serial["serial_number"].native == ours.serial_number
            and issuer_and_serial["issuer"] == ours.issuer)


def _is_issuer_serial_names(issuer_serial: tsp.IssuerSerial, cert: x509.Certificate) -> bool:
    ours = _asn1_cert(cert)
    names = [g.chosen for g in issuer_serial["issuer"] if g.name == "directory_name"]
    return issuer_serial["serial_number"].native == ours.serial_number and ours.issuer in names


def _digest_algorithm(signer_info: cms.SignerInfo) -> hashes.HashAlgorithm:
    name = signer_info["digest_algorithm"]["algorithm"].native
    algorithm = IMPRINT_HASHES.get(name)
    signature = signer_info["signature_algorithm"]["algorithm"].native
    if algorithm is None or signature not in _SIGNATURE_ALGORITHMS or (
            signature != "rsassa_pkcs1v15" and not signature.startswith(f"{name}_")):
        raise InvalidTimeStamp(f"the token is signed with {signature} over {name}; expected SHA-256/384/512 "
                               "with RSA or ECDSA, the same hash for both")
    return algorithm


def _check_tst_info(tst_info: tsp.TSTInfo, imprint: bytes, hash_name: str, cert: x509.Certificate,
                    who: str) -> dt.datetime:
    stamped = tst_info["message_imprint"]
    stamped_hash = stamped["hash_algorithm"]["algorithm"].native
    stamped_value = stamped["hashed_message"].native
    if stamped_hash != hash_name or stamped_value != imprint:
        raise InvalidTimeStamp(f"imprint mismatch: the token stamps {stamped_hash} {stamped_value.hex()[:16]}…, "
                               f"not {hash_name} {imprint.hex()[:16]}…; it is a time-stamp of other data")
    gen_time = tst_info["gen_time"].native.astimezone(dt.UTC)
    if not cert.not_valid_before_utc <= gen_time <= cert.not_valid_after_utc:
        raise InvalidTimeStamp(f"the token's genTime {gen_time:%Y-%m-%dT%H:%M:%SZ} is outside the validity of the "
                               f"{who}")
    return gen_time
