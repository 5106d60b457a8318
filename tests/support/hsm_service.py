"""An installation whose HSM service runs in this process, activated, with the service itself at
hand (tests/integration/hsm: the multi-person acts on the HSM, deactivation and key destruction)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socketserver
import tempfile
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from ca.hsm import token_for
from ca.hsm.client import HSMClient
from ca.hsm.ledger import SignatureLedger
from ca.hsm.service import HSMService, serve_in_thread

from support.installation import CeremonyTemplates, Installation, demo_installation
from support.officers import KEY_MANAGERS
from support.tools import serve_hsm_in_thread


@dataclasses.dataclass
class RunningHSM:
    """The installation, its HSM service (activated with two of the three demo shares), the socket
    and a client of the admin identity (this process: root or the service's own user)."""

    installation: Installation
    socket: Path
    clients_gid: int | None = None
    service: HSMService = dataclasses.field(init=False)
    client: HSMClient = dataclasses.field(init=False)
    _server: socketserver.BaseServer = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.start()

    @property
    def engine(self) -> sa.Engine:
        return self.installation.engine

    def start(self) -> None:
        self.service = HSMService(token_for(self.installation.settings), self.engine,
                                  ledger=SignatureLedger(self.engine, thread=False))
        if self.clients_gid is None:
            self._server = serve_hsm_in_thread(self.socket, self.service)
        else:
            self._server, _thread = serve_in_thread(self.socket, self.service, clients_gid=self.clients_gid)
        self.client = HSMClient(self.socket)
        for _, share in self.installation.result.shares[:2]:
            self.client.activate(share.encode())
        # the officers' client: two key managers' ceremony session (ca.hsm.sessions), which
        # certificates, key generation and destruction need; `bare()` is a client without one
        self.client.open_ceremony(self.key_managers())

    def key_managers(self, *names: str) -> list[tuple[str, str]]:
        return [(name, self.password(name)) for name in names or KEY_MANAGERS[:2]]

    def bare(self) -> HSMClient:
        """A client of the admin identity (root) with no ceremony session."""
        return HSMClient(self.socket)

    def stop(self) -> None:
        self.client.close()
        self._server.shutdown()
        self._server.server_close()
        self.service.close()
        self.socket.unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def env(self) -> dict[str, str]:
        return self.installation.env(REVOCA_HSM_SOCKET=str(self.socket))

    def password(self, name: str) -> str:
        assert name in KEY_MANAGERS
        path = self.installation.settings.demo_shares_dir / f"{name}.password"
        return path.read_text(encoding="utf-8").splitlines()[-1]

    def passwords(self, *names: str) -> str:
        """Standard input for `revoca`: one password line per name, in order."""
        return "".join(self.password(name) + "\n" for name in names)


@contextlib.contextmanager
def running_hsm(ceremony_templates: CeremonyTemplates, kind: str, root: Path, *,
                clients_gid: int | None = None) -> Iterator[RunningHSM]:
    directory = Path(tempfile.mkdtemp(prefix="rvdk"))  # Unix socket paths must stay short
    if clients_gid is not None:
        os.chmod(directory, 0o755)  # other identities reach the socket through the group (0750 run/)
    with demo_installation(ceremony_templates, kind, root, with_keys=False) as made:
        running = RunningHSM(made, directory / "run" / "hsm.sock", clients_gid)
        try:
            yield running
        finally:
            running.stop()
