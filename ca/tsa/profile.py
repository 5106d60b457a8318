"""What seed 000 section 9 fixes about every time-stamp token revoca issues, as data.

One screen to compare with the practice statement: accepted imprint hashes, accuracy,
ordering, the policy and the TSA certificate's name and key.
"""

from __future__ import annotations

from types import MappingProxyType

from cryptography.hazmat.primitives import hashes

from ca.hsm.signer import KeyAlgorithm

# TSAPolicyId of seed 000 section 9 (its 1.2.2: "time-stamp policy Type A2"). revoca implements
# that practice statement, so its tokens name that policy.
TSA_POLICY_OID = "1.3.6.1.4.1.1291.1.1.1.1"

# messageImprint hash algorithms of section 9; anything else (SHA-1, MD5, ...) is badAlg.
IMPRINT_HASHES = MappingProxyType({
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
})  # fmt: skip

ACCURACY_SECONDS = 1  # "時刻精度 1000msec"
ORDERING = False  # "順序性の有無 false"
GEN_TIME_DIGITS = 3  # genTime carries at most milliseconds ("小数点以下 3桁まで")
MAX_NONCE_BITS = 256  # openssl sends 64; anything far longer is not a nonce but abuse

# The TSA certificate: issued by the bridge CA, key made in the token. Seed 000 6.1: the TSU
# key is RSA 2048; a larger configured RSA size is kept, a configured EC algorithm is not.
TSA_SUBJECT = "CN=Time-Stamp Authority,OU=Bridge CA,O=JPKI,C=JP"
DEFAULT_KEY_ALGORITHM = KeyAlgorithm.RSA2048


def key_algorithm(configured: KeyAlgorithm) -> KeyAlgorithm:
    """The TSA key is RSA (seed 000 6.1, RSASSA-PKCS1-v1_5): the configured size if RSA, else 2048."""
    return configured if configured.is_rsa else DEFAULT_KEY_ALGORITHM
