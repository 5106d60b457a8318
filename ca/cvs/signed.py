"""The signed answer: CMS SignedData (RFC 5652) over the answer document, by the CVS-server key.

eContentType is CVS_ANSWER (not id-data), so the HSM signer can tell these signed attributes
from a receipt's or a time stamp's and lets the `cvs` identity sign nothing else
(ca.hsm.policy).  Signed attributes: contentType, signingTime, messageDigest.  The SignedData
carries the CVS-server certificate and the bridge certificate above it, so that

    openssl cms -verify -inform DER -in answer.p7 -CAfile bridge.pem -purpose any

checks it against the bridge root alone (-purpose any: the certificate's EKU is scvpServer,
not S/MIME).  Built by ca.der.cms, the one CMS builder.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509

from ca.cvs.answer import CVS_ANSWER
from ca.der.cms import SignedAttributes, signed_data
from ca.hsm.signer import Signer


def sign_answer(content: bytes, *, certificate: x509.Certificate, signer: Signer,
                chain: Sequence[x509.Certificate] = (), now: dt.datetime) -> bytes:
    """ContentInfo (DER) of a SignedData that encapsulates `content`."""
    return signed_data(CVS_ANSWER, content, certificate=certificate, signer=signer,
                       attributes=SignedAttributes(signing_time=now), extra_certificates=chain, what="answer")
