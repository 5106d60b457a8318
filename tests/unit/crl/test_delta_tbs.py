"""The two delta CRL extensions as ca.crl.tbs writes them (RFC 5280 5.2.4 DeltaCRLIndicator,
5.2.6 Freshest CRL), byte for byte against cryptography's CRL builder (RSA signatures are
deterministic, so whole files compare), and the values CRLFields refuses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from test_crl_tbs import FLAGS, NAME, NEXT, SIGNERS, THIS, fields, ours, revocations  # type: ignore[import-not-found]

from ca.crl.freshest import DeltaPolicy, ca_entry_dn
from ca.crl.tbs import CRLFields
from ca.enums import ListType
from ca.errors import InvalidInput
from ca.hsm.signer import as_private_key

URL = DeltaPolicy("o=JPKI,c=JP", "ldap.example.jp").url("tokyo", "CN=Governor of Tokyo,OU=Tokyo,O=JPKI,C=JP")


def delta_fields(number: int, base: int | None, list_type: ListType = ListType.DELTA) -> CRLFields:
    f = fields(SIGNERS["rsa2048"])
    return CRLFields(issuer=f.issuer, this_update=THIS, next_update=NEXT, number=number,
                     authority_key_id=f.authority_key_id, list_type=list_type, algorithm=f.algorithm, delta_base=base)


def theirs(f: object, rows: list, *, delta_base: int | None = None, freshest: str | None = None) -> bytes:
    signer = SIGNERS["rsa2048"]
    builder = (x509.CertificateRevocationListBuilder().issuer_name(NAME).last_update(THIS).next_update(NEXT)
               .add_extension(x509.AuthorityKeyIdentifier(f.authority_key_id, None, None), critical=False)  # type: ignore[attr-defined]
               .add_extension(x509.CRLNumber(f.number), critical=False))  # type: ignore[attr-defined]
    if delta_base is not None:
        builder = builder.add_extension(x509.DeltaCRLIndicator(delta_base), critical=True)
    builder = builder.add_extension(x509.IssuingDistributionPoint(
        full_name=None, relative_name=None, only_contains_user_certs=True, only_contains_ca_certs=False,
        only_some_reasons=None, indirect_crl=False, only_contains_attribute_certs=False), critical=True)
    if freshest is not None:
        builder = builder.add_extension(x509.FreshestCRL([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(freshest)], None, None, None)]), critical=False)
    for serial, when, reason in rows:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            .add_extension(x509.CRLReason(FLAGS[reason - 1]), critical=False).build())
    return builder.sign(as_private_key(signer), signer.algorithm.hash_algorithm).public_bytes(Encoding.DER)


def test_a_base_with_freshest_crl_equals_cryptographys(tmp_path: Path) -> None:
    signer = SIGNERS["rsa2048"]
    rows = revocations(4)
    f = dataclasses.replace(fields(signer), freshest_crl=URL)
    assert ours(tmp_path, f, signer, rows) == theirs(f, rows, freshest=URL)


@pytest.mark.parametrize("base", [6, 1 << 70])
def test_a_delta_equals_cryptographys(tmp_path: Path, base: int) -> None:
    signer = SIGNERS["rsa2048"]
    rows = revocations(3)
    f = delta_fields(base + 1, base)
    data = ours(tmp_path, f, signer, rows)
    assert data == theirs(f, rows, delta_base=base)
    assert x509.load_der_x509_crl(data).extensions.get_extension_for_class(x509.DeltaCRLIndicator).critical


def test_fields_a_delta_cannot_have_are_refused() -> None:
    signer = SIGNERS["p256"]
    with pytest.raises(InvalidInput, match="names the number of its base"):
        delta_fields(5, None)  # no base
    with pytest.raises(InvalidInput, match="names the number of its base"):
        delta_fields(5, 3, ListType.CRL)  # a complete CRL with a base
    with pytest.raises(InvalidInput, match="a base comes before its deltas"):
        delta_fields(5, 5)
    with pytest.raises(InvalidInput, match="only a complete CRL points at its delta"):
        dataclasses.replace(fields(signer, ListType.ARL), freshest_crl=URL)


def test_the_pointer_names_the_entry_the_publisher_writes_to() -> None:
    assert ca_entry_dn("tokyo", "CN=Governor of Tokyo,OU=Tokyo,O=JPKI,C=JP", "o=JPKI,c=JP") == \
        "CN=Governor of Tokyo,OU=Tokyo,O=JPKI,C=JP"
    assert ca_entry_dn("bridge", "CN=Bridge,O=Elsewhere", "o=JPKI,c=JP") == "cn=bridge,o=JPKI,c=JP"
    assert URL == ("ldap://ldap.example.jp/CN=Governor%20of%20Tokyo,OU=Tokyo,O=JPKI,C=JP"
                   "?deltaRevocationList;binary")
