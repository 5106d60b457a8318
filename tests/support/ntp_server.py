"""A real NTP server (RFC 5905 server mode) on a loopback UDP port, its clock off by a chosen offset.

Answers real packets built with struct (not with ntplib, which revoca's client uses), so the
client's parsing and checks run as against a real server.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

NTP_EPOCH = 2208988800  # 1900-01-01 to 1970-01-01 in seconds


class LoopbackNTP:
    """`address` is "127.0.0.1:PORT"; `offset_s` may be changed while it runs; use as a context manager.

    `leap=3` plays a server whose own clock is not set; `echo=False` one that does not echo
    the client's transmit time (a replayed or forged answer).
    """

    def __init__(self, offset_s: float = 0.0, *, leap: int = 0, echo: bool = True) -> None:
        self.offset_s, self.leap, self.echo = offset_s, leap, echo
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> LoopbackNTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> bytes:
        t = time.time() + self.offset_s + NTP_EPOCH
        return struct.pack("!II", int(t), int((t % 1) * 2**32))

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            received = self._now()
            if len(data) < 48:
                continue
            self.queries += 1
            version = (data[0] >> 3) & 7
            origin = data[40:48] if self.echo else b"\0" * 8
            header = struct.pack("!BBbbII4s", (self.leap << 6) | (version << 3) | 4, 2, 6, -20, 0, 0, b"LOOP")
            self.sock.sendto(header + received + origin + received + self._now(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
