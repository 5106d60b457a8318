"""The HSM service's judge of a streamed CRL/ARL (ca.hsm.crl_stream), on bytes alone: what it lets
through is exactly what ca.crl.tbs makes, and a list that says something else is refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ca.crl.tbs import CRLFields
from ca.enums import ListType
from ca.errors import InvalidInput
from ca.hsm import crl_stream
from ca.hsm.signer import KeyAlgorithm
from ca.revocation.crl_entry import encode_entry

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
ISSUER = bytes.fromhex("3020310b3009060355040613024a503111300f06035504030c08546f6b796f204341")  # C=JP, CN=Tokyo CA
OTHER = bytes.fromhex("3020310b3009060355040613024a503111300f06035504030c084f73616b61204341")  # C=JP, CN=Osaka CA
SKI = bytes(range(20))
FIELDS = CRLFields(issuer=ISSUER, this_update=NOW, next_update=NOW + dt.timedelta(hours=72), number=7,
                   authority_key_id=SKI, list_type=ListType.CRL, algorithm=KeyAlgorithm.RSA2048)
TOKYO = crl_stream.ListIssuer(frozenset({ISSUER}), SKI)


def entries(n: int) -> bytes:
    return b"".join(encode_entry(0x1000 + i, NOW - dt.timedelta(days=1), 1 + i % 5) for i in range(n))


def tbs(fields: CRLFields, body: bytes, count: int) -> bytes:
    return fields.tbs_prefix(len(body), count) + body + fields.tbs_suffix


def judge(data: bytes, *, now: dt.datetime | None = NOW, issuer: crl_stream.ListIssuer = TOKYO) -> tuple[int, int]:
    digest = hashlib.sha256()
    result = crl_stream.judge(crl_stream.Source(io.BytesIO(data).read, len(data), digest.update), issuer=issuer,
                              signature_algo="rsassa_pkcs1v15", hash_name="sha256", now=now)
    assert digest.digest() == hashlib.sha256(data).digest()  # every byte hashed, once
    return result


def test_a_list_of_more_than_one_block_passes_with_its_entries_counted() -> None:
    count = 30_000  # about 1.3 MiB: entries cross the block boundary
    assert judge(tbs(FIELDS, entries(count), count)) == (count, 7)


@pytest.mark.parametrize("list_type", [ListType.CRL, ListType.ARL])
def test_an_empty_list_passes(list_type: ListType) -> None:
    assert judge(tbs(dataclasses.replace(FIELDS, list_type=list_type), b"", 0)) == (0, 7)


def test_a_broken_entry_in_the_second_block_is_found() -> None:
    body = bytearray(entries(30_000))
    body[1_200_000:1_200_000 + 60] = b"\x04" * 60  # OCTET STRING bytes where entries should be
    with pytest.raises(InvalidInput, match="entry"):
        judge(tbs(FIELDS, bytes(body), 30_000))


@pytest.mark.parametrize(("change", "why"), [
    ({"issuer": OTHER}, "issuer is not the CA"),
    ({"authority_key_id": b"\x01" * 20}, "authority key identifier"),
    ({"algorithm": KeyAlgorithm.P256}, "not rsassa_pkcs1v15 with sha256"),
    ({"this_update": NOW - dt.timedelta(hours=3), "next_update": NOW + dt.timedelta(hours=69)}, "is not now"),
    ({"this_update": NOW + dt.timedelta(minutes=10), "next_update": NOW + dt.timedelta(hours=72)}, "is not now"),
    ({"next_update": NOW + dt.timedelta(days=32)}, "within 31 days"),
])
def test_a_list_that_says_something_else_is_refused(change: dict[str, object], why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        judge(tbs(dataclasses.replace(FIELDS, **change), entries(3), 3))  # type: ignore[arg-type]


def test_without_a_clock_only_the_dates_order_is_checked() -> None:
    old = dataclasses.replace(FIELDS, this_update=NOW - dt.timedelta(days=400),
                              next_update=NOW - dt.timedelta(days=397))
    assert judge(tbs(old, entries(2), 2), now=None) == (2, 7)


@pytest.mark.parametrize("cut", [1, 40, 200])
def test_a_list_cut_short_or_with_bytes_after_it_is_refused(cut: int) -> None:
    good = tbs(FIELDS, entries(10), 10)
    for data in (good[:-cut], good + b"\x00" * cut):
        with pytest.raises(InvalidInput):
            judge(data)


def test_a_serial_longer_than_20_octets_is_refused() -> None:
    entry = b"\x30\x2f\x02\x1e" + b"\x01" * 30 + b"\x17\x0d" + b"261201000000Z"
    with pytest.raises(InvalidInput, match="at most 20 octets"):
        judge(tbs(FIELDS, entry, 1))


# --- the framing's fast runs (a regular expression) agree with the entry-by-entry step ----------------

def _framed_by_steps(block: bytes, *, final: bool) -> tuple[int, int]:
    at = count = 0
    while (stop := crl_stream._step(block, at, len(block))) is not None:
        at, count = stop, count + 1
    if final and at != len(block):
        raise InvalidInput("the list's last entry is cut short")
    return at, count


def _outcome(frame, block: bytes, final: bool) -> object:  # type: ignore[no-untyped-def]
    try:
        return frame(block, final=final)
    except InvalidInput:
        return "refused"


_times = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1)).map(
    lambda t: t.replace(microsecond=0, tzinfo=dt.UTC))
_revoca_entries = st.builds(encode_entry, st.integers(1, (1 << 160) - 1), _times, st.integers(1, 5))
_other_entries = st.one_of(
    st.builds(lambda e: e[:1] + bytes([e[1] - 14]) + e[2:-14], _revoca_entries),  # no extensions
    st.builds(lambda e: e[:-1] + b"\x09", _revoca_entries),  # a reason code revoca never writes
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_revoca_entries, _revoca_entries, _other_entries), max_size=30), st.data())
def test_fast_runs_frame_exactly_as_the_step_does(entries: list[bytes], data: st.DataObject) -> None:
    block = bytearray(b"".join(entries))
    for _ in range(data.draw(st.integers(0, 2))):  # mutate, cut
        if not block:
            break
        kind = data.draw(st.sampled_from(["flip", "cut", "truncate"]))
        at = data.draw(st.integers(0, len(block) - 1))
        if kind == "flip":
            block[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del block[at:at + data.draw(st.integers(1, 4))]
        else:
            del block[at:]
    final = data.draw(st.booleans())
    assert _outcome(crl_stream._frame, bytes(block), final) == _outcome(_framed_by_steps, bytes(block), final)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_are_framed_alike(block: bytes, final: bool) -> None:
    assert _outcome(crl_stream._frame, block, final) == _outcome(_framed_by_steps, block, final)


def test_revocas_own_entries_are_one_fast_run() -> None:
    block = entries(300) + encode_entry((1 << 160) - 1, dt.datetime(2051, 1, 1, tzinfo=dt.UTC), 3)  # GeneralizedTime
    assert crl_stream._RUN.match(block).end() == len(block)  # type: ignore[union-attr]
    assert crl_stream._frame(block, final=True) == (len(block), 301)
