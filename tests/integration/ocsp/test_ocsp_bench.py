"""bench/ocsp.py keeps working: its request mix, its C load client and its answer checks against a
real `openssl ocsp` responder (seconds), and the whole bench on a tiny population (slow)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "bench"


def _bench() -> ModuleType:
    """bench/ocsp.py, loaded by its path as bench/ocsp_memory.py does (bench/ is no package)."""
    if "bench_ocsp" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_ocsp", BENCH / "ocsp.py")
        assert spec is not None and spec.loader is not None
        module = sys.modules["bench_ocsp"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["bench_ocsp"]


def test_the_mix_draws_distinct_serials_in_its_shares_from_the_population() -> None:
    bench = _bench()
    req, crl = bench.ocsp_requests, bench.crl_bench
    mix = req.Mix.parse("revoked=60,good=20,unknown=20")
    chosen = req.choose(200, 50, 100, mix, seed=3)

    assert len({e.serial for e in chosen}) == 100
    assert Counter(e.status for e in chosen) == {req.REVOKED: 60, req.GOOD: 20, req.UNKNOWN: 20}
    revoked = {serial: (when, reason) for serial, when, reason in crl.entries(200)}
    good = set(req.good_serials(200, 50))
    for e in chosen:
        if e.status == req.REVOKED:
            assert (e.revoked_at, e.reason) == revoked[e.serial]
        elif e.status == req.GOOD:
            assert e.serial in good
        else:
            assert e.serial not in revoked and e.serial not in good
    assert [e.status for e in chosen] != sorted(e.status for e in chosen)  # shuffled together
    probe = req.probe_serial(3)
    assert probe.serial not in {e.serial for e in chosen} | set(revoked) | good
    assert req.choose(200, 50, 100, mix, seed=3) == chosen
    assert req.choose(200, 50, 100, mix, seed=4) != chosen
    nonces = req.with_nonces(chosen[:10], seed=3)
    assert len({e.nonce for e in nonces}) == 10 and all(len(e.nonce) == 16 for e in nonces)

    assert req.Mix.parse("revoked=75,unknown=25") == req.Mix()
    for bad in ("revoked=70", "bogus=100", "revoked=x"):
        with pytest.raises(ValueError):
            req.Mix.parse(bad)
    with pytest.raises(ValueError, match="need 75 revoked"):
        req.choose(10, 0, 100, req.Mix())


def test_a_tiny_run_against_openssl_sends_each_request_once_and_checks_every_answer(tmp_path: Path) -> None:
    bench = _bench()
    req, load = bench.ocsp_requests, bench.load
    issuer = bench.self_signed("Bench Tokyo", rsa.generate_private_key(65537, 2048))
    responder_key = rsa.generate_private_key(65537, 2048)
    responder = bench.self_signed("Bench Responder", responder_key, ocsp_signing=True)
    verifier_key = rsa.generate_private_key(65537, 2048)
    verifier = bench.self_signed("bench-verifier", verifier_key)
    work = tmp_path / "openssl"
    work.mkdir()
    bench.write_openssl_index(work / "index.txt", 30, good=10)
    (work / "index.txt.attr").write_text("unique_subject = no\n")
    (work / "resp.pem").write_bytes(bench._pem(responder))
    (work / "resp.key").write_bytes(bench._key_pem(responder_key))
    (work / "tokyo.pem").write_bytes(bench._pem(issuer))

    plain = req.choose(30, 10, 20, req.Mix.parse("revoked=50,good=25,unknown=25"), seed=5)
    nonce = req.with_nonces(plain[:8], seed=5)
    probe = req.probe_serial(5)
    bodies = req.signed_requests(issuer, verifier, verifier_key, [probe, *plain, *nonce], processes=1)
    files = {"plain": load.write_bodies(tmp_path / "plain.bin", bodies[1:21]),
             "nonce": load.write_bodies(tmp_path / "nonce.bin", bodies[21:])}
    client = load.build(tmp_path / "client")

    with bench.on_a_free_port(bench.openssl_serve, {}, work, tmp_path / "openssl.log", bodies[0],
                              own_group=True) as (port, _):
        for which, wanted in (("plain", plain), ("nonce", nonce)):
            for keep_alive in (False, True):  # openssl closes after each answer: the client opens another
                done = load.run(client, port, files[which], 4, keep_alive=keep_alive, answers=tmp_path / "a.bin")
                assert (done.requests, done.errors, done.connections) == (len(wanted), 0, len(wanted))
                assert done.rps > 0 and 0 < done.p50_ms <= done.p99_ms
                checked = req.check_answers(done.answers(), wanted, "openssl", responder=responder)
                assert checked.by_status == dict(Counter(e.status for e in wanted))
                assert checked.signatures_checked == len(wanted)
        # a wrong answer stops the bench: here every answer is checked against another request's
        with pytest.raises(req.WrongAnswer, match="wrong answer"):
            req.check_answers(done.answers(), nonce[1:] + nonce[:1], "openssl", responder=responder)
        with pytest.raises(req.WrongAnswer, match="not the expected responder"):
            req.check_answers(done.answers(), nonce, "openssl", responder=verifier)


LINE = re.compile(
    r"^ocsp-realistic serials=20 entries=40 revoca_token_close_rps=(\d+) revoca_file_close_rps=(\d+) "
    r"openssl_close_rps=(\d+) ratio_token_close=([\d.]+) ratio_file_close=([\d.]+) ratio_keepalive=([\d.]+) "
    r"ratio_nonce_p256=([\d.]+) ratio_nonce_token=([\d.]+) p99_ms=([\d.]+) openssl_p99_ms=([\d.]+) "
    r"ratio_token_p256_close=([\d.]+) ratio_nonce_token_p256=([\d.]+) ratio_token_rsa_close=([\d.]+)$")


@pytest.mark.slow
def test_the_whole_bench_on_a_tiny_population_ends_with_its_ratio_line() -> None:
    proc = subprocess.run([sys.executable, str(BENCH / "ocsp.py"), "--entries", "40", "--good-entries", "20",
                           "--serials", "20", "--nonce-serials", "8", "--connections", "4"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert LINE.match(lines[-1]), lines[-1]
    assert "single serial (friendly, not representative)" in proc.stdout
    assert "(12 revoked, 4 good, 4 unknown)" in proc.stdout
    # every answer signed ahead before each responder started: token P-256 (the default), token RSA, RSA key file
    assert proc.stdout.count("serve ocsp-signer --once") == 3 and "answers not signed ahead" not in proc.stdout
