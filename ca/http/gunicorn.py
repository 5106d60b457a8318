"""gunicorn as a library: the RA, OCSP (with --tls), TSA and status page serve through it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from ca.host import logs


class GunicornServer(BaseApplication):
    """gunicorn with these options, serving what `load` builds in each worker (after the fork, so that
    each worker has its own database pool and HSM connection)."""

    def __init__(self, options: dict[str, Any], load: Callable[[], Any]) -> None:
        self.options = options
        self._load = load
        super().__init__()

    def load_config(self) -> None:
        # gunicorn 23+ opens a control socket in the user's home directory by default, one path
        # shared by every master (the RA's, the TSA's, the status page's...); revoca uses none.
        self.cfg.set("control_socket_disable", True)
        # its lines in revoca's one format, `time service level message` (ca.host.logs)
        self.cfg.set("logconfig_dict", logs.dict_config(logs.current_service()))
        self.cfg.set("access_log_format", logs.ACCESS_FORMAT)
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load()
