"""RFC 5280 path validation of one submitted certificate, by pyhanko-certvalidator (never by hand).

Trust anchors are revoca's own self-signed certificates; the bridge's cross certificates (to
external CAs such as the government PKI) and link certificates are the intermediates, with
whatever the requester sent along.  Revocation is "require": every certificate of the path
below its anchor must be decided by a CRL or ARL revoca holds (its archive, and the external
CAs' lists put in the CVS directory), nothing is fetched.  The outcome, and the path tried:

    validates                          valid
    RevokedError                       revoked, with the reason and time from the list
    no revocation data decides it      unknown (none held, stale, or its signature fails)
    no path to an anchor               invalid: "no path"
    expired, not yet valid, a broken
    signature, a constraint violated   invalid, with the library's one-line reason
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Sequence

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.validate import async_validate_path

from ca.cvs.answer import Answer, RevocationData, Status


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _camel(name: str) -> str:
    """asn1crypto's "key_compromise" as RFC 5280 spells it, "keyCompromise"."""
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


class Validator:
    """One snapshot of the trust material; `check` may be called from many threads."""

    def __init__(self, anchors: Sequence[x509.Certificate], intermediates: Sequence[x509.Certificate],
                 lists: Sequence[x509.CertificateRevocationList]) -> None:
        self.anchors = tuple(anchors)
        self.intermediates = tuple(intermediates)
        self.lists = tuple(lists)
        self._asn1_anchors = [_asn1(c) for c in self.anchors]
        self._asn1_intermediates = [_asn1(c) for c in self.intermediates]
        self._asn1_lists = [asn1_crl.CertificateList.load(c.public_bytes(Encoding.DER)) for c in self.lists]
        # (list index, issuing certificate's DER) -> whether that key signed the list: a national CRL is
        # tens of MB, hashed once per snapshot rather than once per answer
        self._signed_by: dict[tuple[int, bytes], bool] = {}

    def check(self, certificate: x509.Certificate, submitted: Sequence[x509.Certificate], now: dt.datetime) -> Answer:
        return asyncio.run(self._check(certificate, submitted, now))

    async def _check(self, certificate: x509.Certificate, submitted: Sequence[x509.Certificate],
                     now: dt.datetime) -> Answer:
        context = ValidationContext(
            trust_roots=self._asn1_anchors, other_certs=[*self._asn1_intermediates, *(_asn1(c) for c in submitted)],
            crls=self._asn1_lists, revocation_mode="require", allow_fetching=False, moment=now)
        leaf = _asn1(certificate)
        tried: list[tuple[ValidationPath, ValidationError]] = []
        paths = context.path_builder.async_build_paths_lazy(leaf)
        try:
            async for path in paths:
                try:
                    await async_validate_path(context, path)
                except ValidationError as exc:
                    tried.append((path, exc))
                    continue
                return self._answer(Status.VALID, certificate, now, path)
        except PathBuildingError:
            return Answer(Status.INVALID, certificate, now,
                          why="no path from the certificate to a trust anchor of this CA (bridge or regional "
                              "self-signed certificate) through the certificates held and those submitted")
        finally:
            await paths.cancel()
        if not tried:
            return Answer(Status.INVALID, certificate, now, why="no path to a trust anchor of this CA")
        path, failure = _most_telling(tried)
        return self._failed(certificate, now, path, failure)

    def _failed(self, certificate: x509.Certificate, now: dt.datetime, path: ValidationPath,
                exc: ValidationError) -> Answer:
        why = _one_line(exc)
        if isinstance(exc, RevokedError):
            return self._answer(Status.REVOKED, certificate, now, path, why=why,
                                reason=_camel(exc.reason.native), time=exc.revocation_dt)
        if isinstance(exc, InsufficientRevinfoError):
            return self._answer(Status.UNKNOWN, certificate, now, path, why=why)
        if isinstance(exc, ExpiredError):
            why = f"expired: {why}"
        elif isinstance(exc, NotYetValidError):
            why = f"not yet valid: {why}"
        return self._answer(Status.INVALID, certificate, now, path, why=why)

    def _answer(self, status: Status, certificate: x509.Certificate, now: dt.datetime, path: ValidationPath, *,
                why: str = "", reason: str | None = None, time: dt.datetime | None = None) -> Answer:
        chain = tuple(x509.load_der_x509_certificate(c.dump()) for c in path.iter_certs(include_root=True))
        return Answer(status, certificate, now, why=why, path=chain, revocation_data=self._lists_for(chain),
                      revocation_reason=reason, revocation_time=time)

    def _lists_for(self, chain: Sequence[x509.Certificate]) -> tuple[RevocationData, ...]:
        """The held lists that decide a certificate of `chain` below its anchor: issued under its
        issuer's name and signed by the key of the certificate above it."""
        found: list[RevocationData] = []
        for above, cert in zip(chain, chain[1:], strict=False):
            for index, held in enumerate(self.lists):
                if held.issuer != cert.issuer or not self._is_signed_by(index, above):
                    continue
                try:
                    number: int | None = held.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
                except x509.ExtensionNotFound:
                    number = None
                found.append(RevocationData(held.issuer.rfc4514_string(), number, held.last_update_utc,
                                            held.next_update_utc))
        return tuple(found)

    def _is_signed_by(self, index: int, issuer: x509.Certificate) -> bool:
        key = (index, issuer.public_bytes(Encoding.DER))
        if key not in self._signed_by:
            try:
                self._signed_by[key] = self.lists[index].is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            except (TypeError, ValueError):  # a key type that cannot sign lists
                self._signed_by[key] = False
        return self._signed_by[key]


def _most_telling(tried: list[tuple[ValidationPath, ValidationError]]) -> tuple[ValidationPath, ValidationError]:
    """Of the paths that failed, the one whose failure says most: a revocation, then a failure
    that is not about a signature (as pyhanko-certvalidator's own find_valid_path), then the first."""
    for pair in tried:
        if isinstance(pair[1], RevokedError):
            return pair
    for pair in tried:
        if isinstance(pair[1], PathValidationError) and "signature" not in str(pair[1]):
            return pair
    return tried[0]


def _one_line(exc: Exception) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip()[:500] or type(exc).__name__
