"""Subscriber certificates for tests, the demo and benchmarks, and the JPKI "basic four" encoding.

revoca never issues the real subscriber certificates (they are on the smart cards and are only
imported), but revocation, CRL and OCSP code must be exercised on certificates that look like
them: kanji basic four information in subjectAltName otherName entries (seed 004 §3.1.2),
3-year validity, RSA 1024/2048 subscriber keys.
"""

from __future__ import annotations

import random
import string
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ca.basic_four import BasicFour
from ca.enums import CertKind
from ca.errors import InvalidInput
from ca.issuance import Issuer, issue
from ca.trusted_time import ClockGuard

SUBSCRIBER_KEY_BITS = (1024, 2048)
KEY_POOL_SIZE = 8

_key_pool: dict[int, tuple[rsa.RSAPrivateKey, ...]] = {}
_key_pool_lock = threading.Lock()


def key_pool(bits: int) -> tuple[rsa.RSAPrivateKey, ...]:
    """A few RSA keys per size, made once per process and shared by all generated subscribers.

    RSA key generation costs tens of milliseconds (2048 bits), so fresh keys would make
    thousands of subscribers take minutes.  Revocation only ever looks at issuer and serial,
    so certificates sharing a key are still distinct; their SKIs repeat, which no revoca
    code relies on for end-entity certificates.
    """
    if bits not in SUBSCRIBER_KEY_BITS:
        raise InvalidInput(f"subscriber keys are RSA {' or '.join(map(str, SUBSCRIBER_KEY_BITS))} bits, not {bits}")
    with _key_pool_lock:
        if bits not in _key_pool:
            _key_pool[bits] = tuple(
                rsa.generate_private_key(public_exponent=65537, key_size=bits) for _ in range(KEY_POOL_SIZE)
            )
        return _key_pool[bits]


# (prefecture as in ca.config.PREFECTURES, its kanji, [(municipality, kanji)])
_PLACES = (
    ("Hokkaido", "北海道", (("Sapporo-shi", "札幌市中央区"), ("Asahikawa-shi", "旭川市"))),
    ("Miyagi", "宮城県", (("Sendai-shi", "仙台市青葉区"), ("Ishinomaki-shi", "石巻市"))),
    ("Tokyo", "東京都", (("Chiyoda-ku", "千代田区"), ("Shinjuku-ku", "新宿区"), ("Hachioji-shi", "八王子市"))),
    ("Kanagawa", "神奈川県", (("Yokohama-shi", "横浜市港北区"), ("Kamakura-shi", "鎌倉市"))),
    ("Aichi", "愛知県", (("Nagoya-shi", "名古屋市中区"), ("Toyota-shi", "豊田市"))),
    ("Kyoto", "京都府", (("Kyoto-shi", "京都市左京区"), ("Uji-shi", "宇治市"))),
    ("Osaka", "大阪府", (("Osaka-shi", "大阪市北区"), ("Sakai-shi", "堺市堺区"), ("Toyonaka-shi", "豊中市"))),
    ("Fukuoka", "福岡県", (("Fukuoka-shi", "福岡市博多区"), ("Kitakyushu-shi", "北九州市小倉北区"))),
    ("Okinawa", "沖縄県", (("Naha-shi", "那覇市"), ("Nago-shi", "名護市"))),
)  # fmt: skip
_TOWNS = ("本町", "中央", "緑町", "栄町", "旭町", "若葉", "桜木町", "東雲", "西新", "霞が関")
# (as registered, as written on the card): the second differs when a character has no JIS
# X 0208/0212 code point and a substitute was used (seed 004 §3.1.8), which sets the note.
_SURNAMES = (
    ("佐藤", "佐藤"), ("鈴木", "鈴木"), ("高橋", "高橋"), ("田中", "田中"), ("伊藤", "伊藤"),
    ("渡辺", "渡辺"), ("山本", "山本"), ("中村", "中村"), ("小林", "小林"), ("加藤", "加藤"),
    ("山田", "山田"), ("斎藤", "斎藤"), ("髙橋", "高橋"), ("𠮷田", "吉田"), ("山﨑", "山崎"),
)  # fmt: skip
_GIVEN_NAMES = (
    ("太郎", "1"), ("健一", "1"), ("翔太", "1"), ("大輔", "1"), ("蓮", "1"), ("誠", "1"),
    ("花子", "2"), ("美咲", "2"), ("陽菜", "2"), ("由美", "2"), ("結衣", "2"), ("恵子", "2"),
)  # fmt: skip
_SUBSTITUTE_NOTE = "代替文字使用"
_KANJI_DIGITS = "〇一二三四五六七八九"
_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
_ID_ALPHABET = string.digits + string.ascii_uppercase


def random_basic_four(rng: random.Random, *, prefecture: str, municipality: str, born_before: date) -> BasicFour:
    """A plausible holder living in the given place (kanji names), born 1930..born_before."""
    registered, written = rng.choice(_SURNAMES)
    given, gender = rng.choice(_GIVEN_NAMES)
    start = date(1930, 1, 1)
    born = start + timedelta(days=rng.randrange(max(1, (born_before - start).days)))
    chome = _KANJI_DIGITS[rng.randint(1, 9)]
    number = f"{rng.randint(1, 30)}番{rng.randint(1, 20)}号".translate(_FULL_WIDTH)
    address = f"{prefecture}{municipality}{rng.choice(_TOWNS)}{chome}丁目{number}"
    return BasicFour(
        name=f"{written}\u3000{given}",
        name_substitute_note=_SUBSTITUTE_NOTE if written != registered else None,
        gender=gender,
        date_of_birth=born,
        address=address,
    )


def generate_subscribers(
    issuer: Issuer,
    count: int,
    *,
    key_bits: int = 2048,
    rng: random.Random | None = None,
    now: datetime | None = None,
    time_guard: ClockGuard,
) -> Iterator[tuple[x509.Certificate, rsa.RSAPrivateKey]]:
    """`count` subscriber certificates issued by `issuer` at `now`, each with its private key.

    With a seeded `rng` the names, subjects and serials repeat between runs (keys come from
    `key_pool` and do not), so a benchmark or demo can be rebuilt with the same serials.
    """
    if count < 0:
        raise InvalidInput(f"count must not be negative, not {count}")
    keys = key_pool(key_bits)  # checks key_bits now rather than at the first next()
    return _generate(issuer, count, keys, rng or random.Random(), now or datetime.now(UTC), time_guard)


def _generate(
    issuer: Issuer, count: int, keys: tuple[rsa.RSAPrivateKey, ...], rng: random.Random, now: datetime,
    time_guard: ClockGuard,
) -> Iterator[tuple[x509.Certificate, rsa.RSAPrivateKey]]:
    not_before = now.replace(microsecond=0)
    born_before = not_before.date() - timedelta(days=15 * 365)  # card holders are 15 or older
    for i in range(count):
        prefecture, pref_kanji, places = rng.choice(_PLACES)
        municipality, muni_kanji = rng.choice(places)
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, prefecture),
            x509.NameAttribute(NameOID.LOCALITY_NAME, municipality),
            x509.NameAttribute(NameOID.COMMON_NAME, "".join(rng.choices(_ID_ALPHABET, k=20))),
        ])  # fmt: skip
        key = keys[i % len(keys)]
        certificate = issue(
            CertKind.SUBSCRIBER,
            issuer=issuer,
            time_guard=time_guard,
            subject=subject,
            public_key=key.public_key(),
            not_before=not_before,
            serial=rng.getrandbits(159) or 1,
            basic_four=random_basic_four(rng, prefecture=pref_kanji, municipality=muni_kanji, born_before=born_before),
        )
        yield certificate, key
