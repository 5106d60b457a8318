"""Headless Chromium for the web repository's tests: screenshots kept as artifacts, and the DOM
as the browser built it.  The pages carry no script (the tests count <script> tags, and the web
service's Content-Security-Policy forbids any); scripts are not switched off in the browser,
because headless Chromium's own screenshot machinery needs them.

Chromium is Debian's `chromium` (the Makefile's APT_PACKAGES).  Each call is its own browser
process with its own throwaway profile; as root it needs --no-sandbox.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _run(url: str, *flags: str, timeout: float = 90) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM, "chromium not installed (apt-get install chromium)"
    with tempfile.TemporaryDirectory(prefix="rv-chromium-") as profile:
        argv = [CHROMIUM, "--headless", "--disable-gpu", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={profile}", "--hide-scrollbars",
                *(["--no-sandbox"] if os.geteuid() == 0 else []), *flags, url]
        return subprocess.run(argv, capture_output=True, timeout=timeout, check=False)


def screenshot(url: str, path: Path, *, width: int = 1280, height: int = 1600) -> Path:
    """A PNG of the page as Chromium renders it; fails unless a real PNG came out."""
    fonts = subprocess.run(["fc-list", ":lang=ja"], capture_output=True, text=True, check=False).stdout
    assert fonts.strip(), "no Japanese font: the screenshot would show boxes (apt-get install fonts-ipafont-gothic)"
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = _run(url, f"--screenshot={path}", f"--window-size={width},{height}")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", proc.stderr.decode(errors="replace")
    return path


def dump_dom(url: str) -> str:
    """The DOM Chromium built from the page (serialised)."""
    proc = _run(url, "--dump-dom")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode("utf-8")


class Links(HTMLParser):
    """The links of a page: every href, and which of them carry `download`."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.downloads: list[str] = []
        self.langs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if values.get("lang"):
            self.langs.append(str(values["lang"]))
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
            if "download" in values:
                self.downloads.append(str(values["href"]))


def links(html: str) -> Links:
    parser = Links()
    parser.feed(html)
    return parser
