"""Keys are made inside a real SoftHSM2 token, stay there, and sign correctly."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from ca.config import SOFTHSM_MODULE
from ca.errors import AlreadyExists, NotFound, TokenError
from ca.hsm.signer import KeyAlgorithm
from ca.hsm.token import Token, TokenSession

PIN = "0123456789abcdef"


def _new_token(directory: Path, label: str) -> Token:
    token = Token(SOFTHSM_MODULE, label, softhsm_conf=directory / "softhsm2.conf")
    token.initialize_softhsm(so_pin="so-" + PIN, user_pin=PIN)
    return token


@pytest.fixture
def session(tmp_path: Path) -> Iterator[TokenSession]:
    s = _new_token(tmp_path, "unit").open(PIN)
    yield s
    s.close()


@pytest.fixture(scope="module")
def keys_token(tmp_path_factory: pytest.TempPathFactory) -> Token:
    """One token for the module's tests of signing with a key of each algorithm: each key is generated
    once (an RSA-4096 key pair takes SoftHSM2 seconds) by the test of generation, and the test that
    only signs with it takes it from there."""
    return _new_token(tmp_path_factory.mktemp("keys"), "keys")


@pytest.fixture
def keys(keys_token: Token) -> Iterator[TokenSession]:
    """`keys_token` opened for this test (a token made meanwhile ends every session of the process)."""
    s = keys_token.open(PIN)
    yield s
    s.close()


def _has(session: TokenSession, label: str) -> bool:
    try:
        session.signer(label)
    except NotFound:
        return False
    return True


def _key_of(session: TokenSession, algorithm: KeyAlgorithm) -> CertificateIssuerPublicKeyTypes:
    """The module token's key of `algorithm`, made by the test of its generation above; generated
    here where that test ran in another worker or was not selected."""
    if _has(session, f"k-{algorithm}"):
        return session.signer(f"k-{algorithm}").public_key()
    return session.generate(f"k-{algorithm}", algorithm)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_generated_key_signs_what_the_public_key_verifies(keys: TokenSession, algorithm: KeyAlgorithm) -> None:
    session = keys
    label = f"k-{algorithm}"
    while _has(session, label):  # the signing test below ran first here and made it: a label of its own
        label += "+"
    public = session.generate(label, algorithm)
    signer = session.signer(label)
    assert signer.algorithm is algorithm
    sig = signer.sign(b"tbs bytes")
    if algorithm.is_rsa:
        public.verify(sig, b"tbs bytes", padding.PKCS1v15(), algorithm.hash_algorithm)
        assert public.key_size == algorithm.bits
    else:
        public.verify(sig, b"tbs bytes", ec.ECDSA(algorithm.hash_algorithm))


def test_private_key_is_sensitive_and_not_extractable(session: TokenSession) -> None:
    session.generate("ca-key", KeyAlgorithm.RSA2048)
    attrs = session.key_attributes("ca-key")
    assert attrs == {"sensitive": True, "extractable": False, "always_sensitive": True, "never_extractable": True}
    with pytest.raises(TokenError, match="refused to export"):
        session.export_private_value("ca-key")


def test_label_cannot_be_taken_twice(session: TokenSession) -> None:
    session.generate("dup", KeyAlgorithm.P256)
    with pytest.raises(AlreadyExists, match="dup"):
        session.generate("dup", KeyAlgorithm.P256)


def test_unknown_label_is_not_found(session: TokenSession) -> None:
    with pytest.raises(NotFound, match="no key labelled 'missing'"):
        session.signer("missing")


def test_wrong_pin_is_refused(tmp_path: Path) -> None:
    token = Token(SOFTHSM_MODULE, "pin", softhsm_conf=tmp_path / "softhsm2.conf")
    token.initialize_softhsm(so_pin="so-" + PIN, user_pin=PIN)
    with pytest.raises(TokenError, match="refused the activation secret"):
        token.open("not-the-pin-at-all")


def test_missing_module_is_one_clear_error(tmp_path: Path) -> None:
    token = Token("/nonexistent/libpkcs11.so", "x", softhsm_conf=tmp_path / "c.conf")
    with pytest.raises(TokenError, match="not found"):
        token.open(PIN)


def test_missing_token_is_one_clear_error(tmp_path: Path) -> None:
    conf = tmp_path / "softhsm2.conf"
    Token(SOFTHSM_MODULE, "other", softhsm_conf=conf).initialize_softhsm(so_pin="so-" + PIN, user_pin=PIN)
    with pytest.raises(TokenError, match="no token labelled 'absent'.*revoca init"):
        Token(SOFTHSM_MODULE, "absent", softhsm_conf=conf).open(PIN)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_signing_a_streamed_digest_equals_signing_the_data(keys: TokenSession, algorithm: KeyAlgorithm) -> None:
    from cryptography.hazmat.primitives import hashes

    public = _key_of(keys, algorithm)  # signing is the subject here, not generating
    signer = keys.signer(f"k-{algorithm}")
    h = hashes.Hash(algorithm.hash_algorithm)
    for chunk in (b"part one, ", b"part two"):
        h.update(chunk)
    sig = signer.sign_digest(h.finalize())
    if algorithm.is_rsa:
        assert sig == signer.sign(b"part one, part two")  # PKCS#1 v1.5 is deterministic
        public.verify(sig, b"part one, part two", padding.PKCS1v15(), algorithm.hash_algorithm)
    else:
        public.verify(sig, b"part one, part two", ec.ECDSA(algorithm.hash_algorithm))


def test_digest_of_the_wrong_length_is_refused(session: TokenSession) -> None:
    from ca.errors import InvalidInput

    session.generate("w", KeyAlgorithm.P384)
    with pytest.raises(InvalidInput, match="sha384 digests of 48 bytes, not 32"):
        session.signer("w").sign_digest(b"\0" * 32)
