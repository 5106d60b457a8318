"""Headless Chromium for the web repository's tests: screenshots kept as artifacts, and the DOM
as the browser built it.  The pages carry no script (the tests count <script> tags, and the web
service's Content-Security-Policy forbids any); scripts are not switched off in the browser,
because headless Chromium's own screenshot machinery needs them.

Chromium is Debian's `chromium` (the Makefile's APT_PACKAGES); as root it needs --no-sandbox.
`Browser` is one Chromium process for a test's many pages, driven over the DevTools protocol on
a pipe (--remote-debugging-pipe: JSON messages ending in NUL on its file descriptors 3 and 4, no
port, no websocket): starting Chromium takes a second or more, a page in it a fraction of that.
Its pages load one after another in one tab of a browser context of its own (as incognito: it
keeps nothing), with the cache switched off: every page is fetched from the server, as a new
browser would (the pages set no cookies and run no script, so nothing else carries over).
`screenshot` and `dump_dom` are the same for one page, in a browser of their own.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# what Chromium's own --dump-dom prints: the doctype, if any, and the serialised document
_DOM = ("(document.doctype ? new XMLSerializer().serializeToString(document.doctype) + '\\n' : '')"
        " + document.documentElement.outerHTML")


class Browser:
    """One headless Chromium, its DevTools protocol on a pipe."""

    def __init__(self, *, timeout: float = 90) -> None:
        assert CHROMIUM, "chromium not installed (apt-get install chromium)"
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="rv-chromium-")
        commands_r, self._commands = os.pipe()  # Chromium reads its commands on fd 3
        self._replies, replies_w = os.pipe()  # and writes its answers and events on fd 4
        commands_r, replies_w = (_above_9(fd) for fd in (commands_r, replies_w))  # not moved onto each other
        argv = [CHROMIUM, "--headless", "--disable-gpu", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={self._profile.name}", "--hide-scrollbars", "--remote-debugging-pipe",
                *(["--no-sandbox"] if os.geteuid() == 0 else []), "about:blank"]
        self._stderr = tempfile.TemporaryFile()
        # bash puts the pipe's ends on 3 and 4 (Debian's chromium is a script that execs the browser)
        redirect = f'exec "$@" 3<&{commands_r} 4>&{replies_w} {commands_r}<&- {replies_w}>&-'
        self.proc = subprocess.Popen(["bash", "-c", redirect, "chromium", *argv], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr,
                                     pass_fds=(commands_r, replies_w))
        os.close(commands_r)
        os.close(replies_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._session: str | None = None
        self._size: tuple[int, int] | None = None

    # -- the protocol ----------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._replies], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"no answer from Chromium within {self.timeout:.0f} s{self._said()}")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise AssertionError(f"Chromium closed its DevTools pipe (exit {self.proc.poll()}){self._said()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, **params: object) -> dict[str, Any]:
        """A DevTools command's result; an error answer fails the test with Chromium's message."""
        self._next_id += 1
        message: dict[str, object] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") != self._next_id:
                self._events.append(answer)
                continue
            assert "error" not in answer, f"Chromium: {method} failed: {answer['error']}"
            return answer.get("result", {})

    def _wait_event(self, method: str, session: str) -> None:
        """Until Chromium sends the event `method` of the tab `session` (others are dropped)."""
        deadline = time.monotonic() + self.timeout
        while True:
            events, self._events = self._events, []
            if any(e.get("method") == method and e.get("sessionId") == session for e in events):
                return
            self._events.append(self._read_message(deadline))

    def _said(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return f"\n--- chromium's output ---\n{text}" if text else ""

    # -- pages -----------------------------------------------------------------------------

    def _tab(self, width: int, height: int) -> str:
        """The session of this browser's one tab (made on first use), its window `width`×`height`."""
        if self._session is None:
            context = self.send("Target.createBrowserContext")["browserContextId"]  # as incognito: nothing kept
            target = self.send("Target.createTarget", url="about:blank", browserContextId=context,
                               width=width, height=height)["targetId"]
            self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.send("Network.enable", self._session)
            self.send("Network.setCacheDisabled", self._session, cacheDisabled=True)  # each page from the server
            self.send("Page.enable", self._session)
        if self._size != (width, height):
            self.send("Emulation.setDeviceMetricsOverride", self._session, width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
            self._size = (width, height)
        return self._session

    def page(self, url: str, *, width: int = 1280, height: int = 1600) -> str:
        """`url` loaded in the tab of a `width`×`height` window: the tab's session."""
        session = self._tab(width, height)
        navigated = self.send("Page.navigate", session, url=url)
        assert "errorText" not in navigated, f"{url}: {navigated['errorText']}"
        self._wait_event("Page.loadEventFired", session)
        return session

    def screenshot(self, url: str, path: Path, *, width: int = 1280, height: int = 1600) -> Path:
        """A PNG of the page as Chromium renders it; fails unless a real PNG came out."""
        _japanese_font()
        path.parent.mkdir(parents=True, exist_ok=True)
        session = self.page(url, width=width, height=height)
        data = base64.b64decode(self.send("Page.captureScreenshot", session, format="png")["data"])
        path.write_bytes(data)
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{url}: Chromium's screenshot is not a PNG{self._said()}"
        return path

    def dump_dom(self, url: str) -> str:
        """The DOM Chromium built from the page (serialised, as --dump-dom prints it)."""
        result = self.send("Runtime.evaluate", self.page(url), expression=_DOM, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return str(result["result"]["value"])

    # -- the process -----------------------------------------------------------------------

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError, OSError):
                self.send("Browser.close")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for fd in (self._commands, self._replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._stderr.close()
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def _above_9(fd: int) -> int:
    """`fd` moved to a number of 10 or more (not inherited across exec)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def _japanese_font() -> None:
    fonts = subprocess.run(["fc-list", ":lang=ja"], capture_output=True, text=True, check=False).stdout
    assert fonts.strip(), "no Japanese font: the screenshot would show boxes (apt-get install fonts-ipafont-gothic)"


def screenshot(url: str, path: Path, *, width: int = 1280, height: int = 1600) -> Path:
    """A PNG of the page as Chromium renders it, in a browser of its own; fails unless a real PNG came out."""
    with Browser() as browser:
        return browser.screenshot(url, path, width=width, height=height)


def dump_dom(url: str) -> str:
    """The DOM Chromium built from the page (serialised), in a browser of its own."""
    with Browser() as browser:
        return browser.dump_dom(url)


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
