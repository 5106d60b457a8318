"""The web repository's and the provision report's pure parts: the static file app never leaves
its release, the CSV totals add up, months are calendar months in UTC, and the site directory is
replaced only when revoca wrote it."""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import pytest

from ca.errors import InvalidInput
from ca.reports.provision import month_period, parse, to_csv
from ca.storage.notices import COMPROMISE, TERMINATION, default_text
from ca.storage.provision_reports import Tally
from ca.web.build import MARKER, practice_statement, publish_release, write_tree
from ca.web.server import static_app


def _get(app, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    seen: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO()}, start_response))
    return str(seen["status"]), seen["headers"], body  # type: ignore[return-value]


def test_the_static_app_serves_the_current_release_and_nothing_beside_it(tmp_path: Path) -> None:
    root = tmp_path / "web"
    publish_release({"index.html": b"<p>one</p>", "certs/a.cer": b"\x30\x03"}, root, "r1")
    (tmp_path / "secret.txt").write_text("no")
    app = static_app(root)
    assert _get(app, "/")[0] == "200 OK" and _get(app, "/")[2] == b"<p>one</p>"
    status, headers, body = _get(app, "/certs/a.cer")
    assert body == b"\x30\x03" and headers["Content-Type"] == "application/pkix-cert"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    for bad in ("/../secret.txt", "/../../secret.txt", "/certs/../../secret.txt", f"/{MARKER}", "/nothing.html"):
        assert _get(app, bad)[0] == "404 Not Found", bad
    assert _get(app, "/", "POST")[0] == "405 Method Not Allowed"
    # a new release is what the next request sees; old ones beyond the last few go
    for n in range(2, 6):
        publish_release({"index.html": f"<p>{n}</p>".encode()}, root, f"r{n}")
    assert _get(app, "/")[2] == b"<p>5</p>"
    assert len([p for p in (root / "releases").iterdir() if not p.name.startswith(".")]) == 3


def test_write_tree_replaces_its_own_directory_and_refuses_anyone_elses(tmp_path: Path) -> None:
    out = tmp_path / "site"
    write_tree({"index.html": b"a", "old.html": b"x"}, out)
    write_tree({"index.html": b"b"}, out)
    assert (out / "index.html").read_bytes() == b"b" and not (out / "old.html").exists()
    assert oct(os.stat(out / "index.html").st_mode & 0o777) == "0o644"  # for any web server's user
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="did not write"):
        write_tree({"index.html": b"a"}, foreign)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_months_are_utc_calendar_months() -> None:
    assert month_period("2026-11") == (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert month_period("2026-12")[1] == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    for bad in ("2026-13", "2026-1", "November", "2026-00"):
        with pytest.raises(InvalidInput, match="YYYY-MM"):
            month_period(bad)


def test_the_csv_totals_add_up_per_section_and_outcome() -> None:
    rows = [Tally("crl", "tokyo", "v1", "delivered", 3, (7, 8)), Tally("crl", "osaka", "v1", "delivered", 2, (4,)),
            Tally("crl", "tokyo", "(anonymous)", "denied", 1),
            Tally("ocsp", "tokyo", "v1", "answer:good", 5), Tally("ocsp", "tokyo", "v2", "answer:good", 1)]
    parsed = parse(to_csv(rows))
    assert parsed[0] == {"section": "crl", "ca": "tokyo", "requester": "v1", "outcome": "delivered", "count": "3",
                         "numbers": "7 8"}
    totals = {(r["ca"], r["outcome"]): r["count"] for r in parsed if r["section"] == "total"}
    assert totals == {("crl", "delivered"): "5", ("crl", "denied"): "1", ("ocsp", "answer:good"): "6"}


def test_notice_texts_name_the_ca_and_the_time_in_both_languages() -> None:
    at = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)
    for kind in (COMPROMISE, TERMINATION):
        text = default_text(kind, "osaka", at)
        assert "osaka" in text.summary_ja and "osaka" in text.summary_en
        assert "2026-11-01 10:00:00 UTC" in text.summary_ja and "2026-11-01 10:00:00 UTC" in text.summary_en
        assert text.action_ja and text.action_en
    with pytest.raises(InvalidInput, match="unknown notice kind"):
        default_text("suspension", "osaka", at)


def test_the_practice_statement_is_a_link_or_a_copy(tmp_path: Path) -> None:
    assert practice_statement(None) is None
    linked = practice_statement("https://example.jp/cps.pdf")
    assert linked is not None and linked.url == "https://example.jp/cps.pdf" and linked.text is None
    (tmp_path / "cps.txt").write_text("運用規程", encoding="utf-8")
    copied = practice_statement(str(tmp_path / "cps.txt"))
    assert copied is not None and copied.text == "運用規程"
    with pytest.raises(InvalidInput, match="cannot be read"):
        practice_statement(str(tmp_path / "missing.txt"))
