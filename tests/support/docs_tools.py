"""Running the guides in docs/ as written: their marked blocks, in order, in one working directory.

A guide marks what the test runs:

* ```` ```sh test ```` — shell commands, run one complete command at a time (a command may span
  lines: continuations, loops, here-documents).  A command ending in ``&`` is a service: it is
  started in the background with its output in ``logs/``, and the next command waits until it
  answers (its ``--port``, or the line it prints when ready).  Other commands run on a
  pseudo-terminal, where the session types what a person would at the prompts (operator
  passwords, activation shares), and must exit 0 (or N, with ``exit=N`` in the info string).
* ```` ```text output ```` right after a ``sh test`` block — lines that must appear in that block's
  output, in any order; ``...`` stands for anything, runs of spaces for any white space.
* ```` ```LANG test file=PATH ```` — a file (configuration, a Python script) written to PATH.
* ``<!-- doc-test: hook NAME -->`` — a step of the test's own between two blocks (e.g. issuing
  subscriber certificates, which the real CA did years ago and revoca only imports).
* ``<!-- doc-test: run by TEST -->`` — the rest of that ``##`` section is run by another test
  (``run_guide(path, section=...)``), not with the guide: e.g. deployment.md's several nodes,
  which tests/e2e/test_nodes.py builds and drives with hooks of its own.

A plain ``revoca ...`` command (no pipes, redirections or variables, though it may be continued
over lines with ``\\``; not ``init``, which opens the token itself) runs in this process through
the console script's entry point, as support/tools.revoca does, in the session's directory and
environment, with the prompts' answers on standard input: that saves about a second of start-up
per command, and the guides have dozens.  So does one with ``NAME=VALUE`` assignments before it
(in the environment of that command only, as bash puts them), and the first command of a pipeline
``revoca ... | REST`` (its standard output is REST's standard input, REST runs under bash and its
status is the pipeline's, as bash has it).  Services and everything else run under bash.

Before a block runs, the session substitutes the test environment into it: the ports the
guides use (1389, 8443, ...) become free ports, fixed paths become paths in the working
directory, and ``<placeholders>`` (``<serial>``, ``<request-id>``) become values the session
holds; a placeholder it does not know fails the test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import select
import shlex
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

from support.tools import revoca

FENCE = re.compile(r"^```(.*)$")
HOOK = re.compile(r"<!--\s*doc-test:\s*hook\s+([\w-]+)\s*-->")
RUN_BY = re.compile(r"<!--\s*doc-test:\s*run by\s+(\S+)\s*-->")
SECTION = re.compile(r"^## (.*)$")
PLACEHOLDER = re.compile(r"<([a-z][a-z0-9-]*)>")
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
PORT_IN_COMMAND = re.compile(r"--port[ =](\d+)")
SHELL_SYNTAX = re.compile(r"[|&;<>$`\\\n(){}*?]|^\w+=")
SIMPLE_WORDS = re.compile(r"[\w./:=,@%+ -]+")
RESERVED_WORDS = {"!", "case", "coproc", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in",
                  "select", "then", "time", "until", "while", "{", "}"}
# `NAME=VALUE ` before a command: in the environment of that command only (plain values: no quotes or expansions)
ASSIGNMENT = re.compile(r"([A-Za-z_]\w*)=([^\s|&;<>$`\\(){}*?'\"]*)\s+")

# What a person types at a prompt of `revoca` (click prompts, on the terminal).
PROMPTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Password for ([\w.-]+): $"), "password"),
    (re.compile(r"Repeat for confirmation: $"), "repeat"),
    (re.compile(r"Activation share: $"), "share"),
    (re.compile(r"Enter host password for user '([\w.-]+)':$"), "password"),  # curl -u NAME
]
# Lines a background service prints once it serves (for services without a --port).
READY = {"serve hsm": "HSM service listening on", "serve publisher": "publisher: into",
         "serve scheduler": "round done:"}  # the scheduler's first round (catch-up) is over
# Values the session picks up from command output for later <placeholders>.
CAPTURES = {"request-id": re.compile(r'"request_id"\s*:\s*"([0-9a-f-]{36})"')}
SHARE_LINE = re.compile(r"share (\d+) for ([\w.-]+): (RVS1-[0-9a-f-]+)")


@dataclasses.dataclass(frozen=True)
class Block:
    guide: str
    line: int
    info: str
    text: str
    hook: str | None = None
    output: str | None = None
    section: str = ""  # the `## ` heading it is under
    run_by: str | None = None  # the test that runs it instead of the guide's (`doc-test: run by`)

    @property
    def runnable(self) -> bool:
        return "test" in self.info.split()

    @property
    def file(self) -> str | None:
        return next((t[5:] for t in self.info.split() if t.startswith("file=")), None)

    @property
    def exit_code(self) -> int:
        """What every command of the block must exit with (`exit=N` in the info string; 0 by default)."""
        return next((int(t[5:]) for t in self.info.split() if t.startswith("exit=")), 0)

    @property
    def where(self) -> str:
        return f"{self.guide}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    """Every fenced block and hook of a guide, in order, each with its section; an `output` block
    is attached to the block before."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    section, run_by = "", None
    i = 0
    while i < len(lines):
        if heading := SECTION.match(lines[i]):
            section, run_by = heading.group(1).strip(), None
        if owner := RUN_BY.search(lines[i]):
            run_by = owner.group(1)
        hook = HOOK.search(lines[i])
        if hook:
            blocks.append(Block(path.name, i + 1, "", "", hook=hook.group(1), section=section, run_by=run_by))
        fence = FENCE.match(lines[i])
        if fence:
            start, body = i, []
            i += 1
            while i < len(lines) and lines[i] != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise AssertionError(f"{path.name}:{start + 1}: code block never closed")
            block = Block(path.name, start + 1, fence.group(1).strip(), "\n".join(body) + "\n", section=section,
                          run_by=run_by)
            if block.info.split()[1:2] == ["output"]:
                if not blocks or not blocks[-1].runnable or blocks[-1].file:
                    raise AssertionError(f"{block.where}: an output block must follow a `sh test` block")
                blocks[-1] = dataclasses.replace(blocks[-1], output=block.text)
            else:
                blocks.append(block)
        i += 1
    return blocks


def split_commands(script: str) -> list[str]:
    """Complete shell commands, as bash parses them (loops, continuations, here-documents kept whole)."""
    commands, pending = [], []
    for line in script.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending.append(line)
        text = "\n".join(pending)
        if line.endswith("\\") or _open_heredoc(text):
            continue
        if _simple_command(text) or subprocess.run(["bash", "-n", "-c", text], capture_output=True).returncode == 0:
            commands.append(text)
            pending = []
    if pending:
        raise AssertionError(f"incomplete shell command:\n{chr(10).join(pending)}")
    return commands


def _simple_command(text: str) -> bool:
    """Words without quotes, expansions or operators, the first no reserved word: a whole command as
    bash parses it, without asking a bash (half the guides' lines; a bash costs some milliseconds)."""
    return SIMPLE_WORDS.fullmatch(text) is not None and text.split()[0] not in RESERVED_WORDS


def _open_heredoc(text: str) -> bool:
    lines = text.splitlines()
    for n, line in enumerate(lines):
        for delimiter in HEREDOC.findall(line):
            if delimiter not in (ln.strip() for ln in lines[n + 1:]):
                return True
    return False


def expect_lines(expected: str, actual: str, where: str) -> None:
    """Each expected line must match a line of the output (`...` is anything, spaces are any white space)."""
    missing = []
    for line in (ln.strip() for ln in expected.splitlines()):
        if not line:
            continue
        pattern = r"\s+".join(".*".join(re.escape(part) for part in word.split("...")) for word in line.split())
        if not re.search(pattern, actual, re.MULTILINE):
            missing.append(line)
    if missing:
        raise AssertionError(f"{where}: output lacks\n  " + "\n  ".join(missing) + f"\n--- output ---\n{actual}")


def _plain_revoca(line: str) -> tuple[list[str], dict[str, str]] | None:
    """(ARGS, assignments) of `[NAME=VALUE ...] revoca ARGS` with nothing else for bash to do; None for
    anything else, and for `revoca init` (it opens the token itself: it runs as a process of its own)."""
    line, assigned = line.strip(), {}
    while m := ASSIGNMENT.match(line):
        assigned[m.group(1)] = m.group(2)
        line = line[m.end():]
    argv = shlex.split(line) if not SHELL_SYNTAX.search(line) else []
    if argv[:1] != ["revoca"] or argv[1:2] == ["init"]:
        return None
    return argv[1:], assigned


def _controlling_terminal() -> None:
    """In the child: a session of its own with the pty as its terminal, so getpass-style prompts work
    (the pty is its standard output; standard input may be a pipeline's)."""
    os.setsid()
    fcntl.ioctl(1, termios.TIOCSCTTY, 0)


@dataclasses.dataclass
class Service:
    command: str
    proc: subprocess.Popen[bytes]
    log: Path


class Session:
    """One person's terminal in one working directory, for a series of guides."""

    def __init__(self, cwd: Path, env: dict[str, str], *, ports: dict[int, int], paths: dict[str, str],
                 passwords: dict[str, str], hooks: dict[str, Callable[[Session], None]],
                 ready: dict[str, str | Callable[[], bool]] | None = None,
                 after: dict[str, Callable[[Session], None]] | None = None) -> None:
        self.cwd, self.env, self.ports, self.paths = cwd, env, ports, paths
        self.passwords, self.hooks = passwords, hooks
        # steps of the caller's own after each command that starts so (after substitution), once it
        # has exited as the block wants: like a hook, but where the guide has no place for a mark
        self.after = after if after is not None else {}
        # when a service is up, by a part of its command (after substitution): a line it prints or
        # a test of the caller's; before READY's, for a test that needs another moment
        self.ready = ready if ready is not None else {}
        self.values: dict[str, str] = {}
        self.shares: dict[str, str] = {}  # key manager -> share, as `revoca init` printed them
        self.shares_presented = 0
        self.services: list[Service] = []
        self.cleanups: list[Callable[[], None]] = []  # what hooks set up, undone at the end
        # ... of which what no service uses (a database they do not use): undone while they stop
        self.cleanups_meanwhile: list[Callable[[], None]] = []
        (cwd / "logs").mkdir(exist_ok=True)

    # -- substitution ----------------------------------------------------------------------

    def substitute(self, text: str, where: str) -> str:
        for path, here in self.paths.items():
            text = text.replace(path, here)
        if self.ports:
            text = re.sub(r"(?<!\d)(" + "|".join(map(str, self.ports)) + r")(?!\d)",
                          lambda m: str(self.ports[int(m.group(1))]), text)

        def value(m: re.Match[str]) -> str:
            if m.group(1) not in self.values:
                raise AssertionError(f"{where}: placeholder <{m.group(1)}> has no value in the test session")
            return self.values[m.group(1)]

        return PLACEHOLDER.sub(value, text)

    # -- running ---------------------------------------------------------------------------

    def run_guide(self, path: Path, section: str | None = None) -> None:
        """Every block of the guide (`section`: of the `## ` sections whose heading starts so, those
        run by another test included; None: of every section but those)."""
        for block in read_blocks(path):
            if (block.run_by is not None) if section is None else not block.section.startswith(section):
                continue
            if block.hook:
                started = time.monotonic()
                self.hooks[block.hook](self)
                self._timing(started, f"{block.where} hook {block.hook}")
            elif block.runnable:
                self.run_block(block)

    def run_block(self, block: Block) -> None:
        text = self.substitute(block.text, block.where)
        if block.file:
            target = self.cwd / self.substitute(block.file, block.where)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            return
        outputs: list[str] = []
        starting: list[Service] = []
        for command in split_commands(text):
            if command.rstrip().endswith("&"):  # services typed one after another start together
                starting.append(self.start_service(command.rstrip()[:-1].rstrip()))
                continue
            self.wait_ready(starting, block.where)
            starting = []
            started = time.monotonic()
            code, out = self.run_command(command)
            self._timing(started, f"{block.where} {command.splitlines()[0][:100]}")
            outputs.append(out)
            if code != block.exit_code:
                raise AssertionError(f"{block.where}: exit {code} (not {block.exit_code}) from\n{command}\n"
                                     f"--- output ---\n{out}")
            for prefix, step in self.after.items():
                if command.startswith(prefix):
                    started = time.monotonic()
                    step(self)
                    self._timing(started, f"{block.where} after {prefix}")
        self.wait_ready(starting, block.where)
        if block.output is not None:
            expect_lines(self.substitute(block.output, block.where), "".join(outputs), block.where)

    def run_command(self, command: str, timeout: float = 180.0) -> tuple[int, str]:
        # continued lines are one command line, as bash reads them (but inside '...', where it keeps them)
        line = command.replace("\\\n", " ") if "'" not in command else command
        first, bar, rest = line.partition("|")
        if bar and not rest.startswith(("|", "&")) and not re.search(r"['\"]", first):  # `revoca ... | REST`
            plain = _plain_revoca(first)
            if plain is not None:
                code, out, err = self._revoca_in_process(*plain, shown=False)
                self._capture(err)
                code, shown = self._run_on_terminal(rest.strip(), timeout, stdin=out.encode())
                return code, err + shown
        plain = _plain_revoca(line)
        if plain is not None:
            code, out, err = self._revoca_in_process(*plain)
            return code, out + err
        return self._run_on_terminal(command, timeout)

    def _revoca_in_process(self, argv: list[str], assigned: dict[str, str], *, shown: bool = True
                           ) -> tuple[int, str, str]:
        """`revoca ARGV` through the console script's entry point in this process (no second of start-up),
        in the session's directory and environment (with `assigned` too), with the prompts' answers on
        standard input: (exit code, stdout, stderr); `shown`: its output is on the terminal (not a pipe's)."""
        answers = []
        words = argv[2:] if argv[:1] == ["--config"] else argv  # the command after the global option
        # the logins first (ca.cli.gate reads them before the command runs), then what the command asks
        answers += [self.passwords[words[i + 1]] for i, a in enumerate(words[:-1]) if a == "--operator"]
        if words[:2] == ["operator", "add"]:
            answers.append(self.passwords[words[2]])
        if words[:2] == ["hsm", "activate"] and "--share-file" not in words:
            answers.append(self._next_share())
        env = {**{k: None for k in os.environ if k not in self.env}, **self.env, **assigned}
        before = os.getcwd()
        os.chdir(self.cwd)
        try:
            code, out, err = revoca(env, *argv, stdin="".join(a + "\n" for a in answers))  # type: ignore[arg-type]
        finally:
            os.chdir(before)
        if shown:
            self._capture(out + err)
        return code, out, err

    def _next_share(self) -> str:
        holders = list(self.shares)  # the key managers present their shares in turn
        self.shares_presented += 1
        return self.shares[holders[(self.shares_presented - 1) % len(holders)]]

    def _run_on_terminal(self, command: str, timeout: float, stdin: bytes | None = None) -> tuple[int, str]:
        """`command` under bash on a pseudo-terminal (`stdin`: what it reads instead of the terminal)."""
        master, slave = os.openpty()
        # a terminal of a person's size: with none (0 rows) psql and the like page even one line
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        with tempfile.TemporaryFile() if stdin is not None else contextlib.nullcontext() as piped:
            if piped is not None and stdin is not None:
                piped.write(stdin)
                piped.seek(0)
            proc = subprocess.Popen(["bash", "-c", command], cwd=self.cwd, env=self.env,
                                    stdin=slave if piped is None else piped, stdout=slave, stderr=slave,
                                    preexec_fn=_controlling_terminal, close_fds=True)
        os.close(slave)
        raw, typed, last = b"", 0, ""
        deadline = time.monotonic() + timeout
        try:
            while True:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: every writer has closed the terminal
                        chunk = b""
                    raw += chunk
                    answer = self._answer(raw[typed:].decode(errors="replace"), last)
                    if answer is not None:
                        os.write(master, answer.encode() + b"\n")
                        typed, last = len(raw), answer
                    if not chunk and proc.poll() is not None:
                        break
                elif proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    os.killpg(proc.pid, signal.SIGKILL)
                    raise AssertionError(f"no end after {timeout:.0f} s:\n{command}\n--- output ---\n{raw.decode()}")
        finally:
            os.close(master)
        out = raw.decode(errors="replace").replace("\r\n", "\n")
        self._capture(out)
        return proc.wait(), out

    def _answer(self, tail: str, last: str) -> str | None:
        for pattern, kind in PROMPTS:
            m = pattern.search(tail)
            if m is None:
                continue
            if kind == "password":
                return self.passwords[m.group(1)]
            if kind == "repeat":
                return last
            return self._next_share()
        return None

    def _capture(self, out: str) -> None:
        for _index, holder, share in SHARE_LINE.findall(out):
            self.shares[holder] = share
        for name, pattern in CAPTURES.items():
            found = pattern.findall(out)
            if found:
                self.values[name] = found[-1]

    def start_service(self, command: str) -> Service:
        name = re.sub(r"\W+", "-", command)[:60]
        log = self.cwd / "logs" / f"{len(self.services):02d}-{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.cwd, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        service = Service(command, proc, log)
        self.services.append(service)
        return service

    def wait_ready(self, services: list[Service], where: str, timeout: float = 90.0) -> None:
        """Until each service answers: its --port accepts connections, or it has printed its ready line."""
        started = time.monotonic()
        for service in services:
            test = self._up_test(service)
            if test is None:
                raise AssertionError(f"{where}: no way to tell when `{service.command}` is up")
            while not test():
                if service.proc.poll() is not None or time.monotonic() > started + timeout:
                    raise AssertionError(f"{where}: service did not come up: {service.command}\n"
                                         f"{service.log.read_text(errors='replace')}")
                time.sleep(0.02)  # a look costs little (a connection, a small file read): the next command waits
        if services:
            self._timing(started, f"{where} {len(services)} service(s) up")

    def _timing(self, started: float, what: str) -> None:
        """A line of logs/timing.log: where the time goes."""
        with open(self.cwd / "logs" / "timing.log", "a", encoding="utf-8") as timing:
            timing.write(f"{time.monotonic() - started:6.2f} {what}\n")

    def _up_test(self, service: Service) -> Callable[[], bool] | None:
        """The caller's test for this service, else its --port accepting connections, else its ready line."""
        custom = next((test for key, test in self.ready.items() if key in service.command), None)
        if callable(custom):
            return custom
        port = PORT_IN_COMMAND.search(service.command)
        if custom is None and port is not None:
            return lambda: _listens(int(port.group(1)))
        line = custom or next((line for key, line in READY.items() if key in service.command), None)
        if line is None:
            return None
        return lambda: line in service.log.read_text(errors="replace")

    def stop(self) -> None:
        """Stop every service this session started (by process group), then every slapd under its directory.
        What no service uses (`cleanups_meanwhile`) is undone while they stop (each takes a second or two)."""
        for service in reversed(self.services):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.proc.pid, signal.SIGTERM)
        stopping = time.monotonic()
        failed: list[BaseException] = []

        def undo_meanwhile() -> None:
            try:
                self._undo(self.cleanups_meanwhile)
            except BaseException as exc:  # raised below, once the rest is stopped too
                failed.append(exc)

        meanwhile = threading.Thread(target=undo_meanwhile)
        meanwhile.start()
        try:
            self._wait_services_gone(stopping)
        finally:
            meanwhile.join()
        self._undo(self.cleanups)
        started = time.monotonic()
        slapds = []
        for pidfile in self.cwd.rglob("slapd.pid"):  # all told at once: each takes a second or two to go
            with contextlib.suppress(ValueError, ProcessLookupError):
                pid = int(pidfile.read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
                slapds.append((pid, pidfile.parent))
        for pid, where in slapds:
            _wait_gone(pid)
            self._timing(started, f"stop: slapd {where}")
        if failed:
            raise failed[0]

    def _wait_services_gone(self, stopping: float) -> None:
        for service in self.services:
            try:
                service.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.proc.pid, signal.SIGKILL)
                service.proc.wait(timeout=10)
            self._timing(stopping, f"stop: {service.command[:100]} (since the SIGTERMs)")

    def _undo(self, cleanups: list[Callable[[], None]]) -> None:
        """The cleanups, last first."""
        for cleanup in reversed(cleanups):
            started = time.monotonic()
            cleanup()
            self._timing(started, f"stop: cleanup {getattr(cleanup, '__qualname__', cleanup)}")


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _wait_gone(pid: int, timeout: float = 20.0) -> None:
    """Until `pid` (a slapd, which daemonises: not our child) has exited.  A zombie has: whoever
    adopted it (the init process) may take a second or two to reap it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
