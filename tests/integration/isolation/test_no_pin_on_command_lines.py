"""No PIN on any command line while a token is made (issue 12).

Found in an attack: during `revoca init`, `softhsm2-util --init-token ... --so-pin ... --pin ...`
was visible to every local user in the process list, and that PIN alone opened the token and
signed with the bridge key.  The token is now initialised through PKCS#11 in revoca's own
process (ca.hsm.token_init).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pkcs11
import pytest

from ca.config import SOFTHSM_MODULE
from ca.errors import TokenError
from ca.hsm.token import Token, write_softhsm_conf

from support.cli import REVOCA


def _command_lines(root: int) -> dict[int, bytes]:
    """The command line of every process under `root` (other tests run beside this one)."""
    parents, lines = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                lines[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes()
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):  # gone meanwhile
                pass

    def under_root(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 0)
        return False

    return {pid: line for pid, line in lines.items() if under_root(pid)}


def test_init_shows_no_pin_to_other_users(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    env.update(REVOCA_DATA_DIR=str(tmp_path / "var"), REVOCA_HSM_KEY_ALGORITHM="p256",
               REVOCA_HSM_SOCKET=str(tmp_path / "hsm.sock"))
    init = subprocess.Popen([REVOCA, "init", "--demo"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    suspicious: list[bytes] = []
    polls = 0
    while init.poll() is None:  # what `ps` shows to anyone, as often as it can look
        polls += 1
        for argv in _command_lines(init.pid).values():  # init itself and whatever it starts
            if b"pin" in argv.lower() or b"softhsm2-util" in argv:
                suspicious.append(argv)
        time.sleep(0.002)
    out, err = init.communicate()
    assert init.returncode == 0, err.decode()
    assert polls > 20  # the process list was really watched while the token was made
    assert suspicious == []


def test_a_token_made_in_process_opens_with_its_pins_and_only_them(tmp_path: Path) -> None:
    conf = tmp_path / "softhsm2.conf"
    write_softhsm_conf(conf)
    token = Token(SOFTHSM_MODULE, "pin-check", softhsm_conf=conf)
    assert not token.exists()
    token.initialize_softhsm(so_pin="so-secret-4711", user_pin="user-secret-0815")
    assert token.exists()
    session = token.open("user-secret-0815")
    session.close()
    with pytest.raises(TokenError, match="refused"):
        token.open("not-the-user-pin")
    found = pkcs11.lib(SOFTHSM_MODULE).get_token(token_label="pin-check")
    with found.open(rw=True, so_pin="so-secret-4711"):
        pass  # the security officer's PIN was set too
    with pytest.raises(pkcs11.PinIncorrect):
        found.open(rw=True, so_pin="so-secret-0000")
