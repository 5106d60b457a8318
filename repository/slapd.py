"""A local OpenLDAP slapd that revoca runs itself, on loopback, under its data directory.

The configuration (slapd.conf style, passed with ``-f``) loads the RFC 4523 classes and
attributes from OpenLDAP's core schema (certificationAuthority, cRLDistributionPoint,
cACertificate, crossCertificatePair, authorityRevocationList, certificateRevocationList),
keeps the directory in an mdb database under the data directory, and carries the access
rules of the repository (who may read the CRL: repository/acl.py).

Limits are raised so that a 40 MB CRL can be written in one request and fetched whole.

Searches and binds are written by the accesslog overlay into a second database
(``cn=accesslog``, readable by the rootdn only): revoca reads it for the provision history
(which verifier fetched which CRL, when) and for failed binds.  Passwords are checked by the
argon2 module, so verifier accounts carry ``{ARGON2}`` hashes made by revoca.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ca.errors import ServiceUnavailable
from repository.acl import access_rules
from repository.directory import Endpoint

SLAPD = os.environ.get("REVOCA_SLAPD", "/usr/sbin/slapd")
SLAPPASSWD = os.environ.get("REVOCA_SLAPPASSWD", "/usr/sbin/slappasswd")
SCHEMA_DIR = Path(os.environ.get("REVOCA_LDAP_SCHEMA_DIR", "/etc/ldap/schema"))
MODULE_DIR = Path(os.environ.get("REVOCA_LDAP_MODULE_DIR", "/usr/lib/ldap"))

#: Schema files loaded, in order: core has the PKI classes (RFC 4523), cosine and
#: inetorgperson give the verifier accounts their classes.
SCHEMAS = ("core.schema", "cosine.schema", "inetorgperson.schema")

#: mdb map size: room for many 40 MB CRLs and their old versions awaiting reuse.
MDB_MAXSIZE = 1 << 30
#: The accesslog database: one small entry per search or bind, purged after ACCESSLOG_KEEP.
ACCESSLOG_SUFFIX = "cn=accesslog"
ACCESSLOG_MAXSIZE = 1 << 30
ACCESSLOG_KEEP = "30+00:00 01+00:00"  # keep 30 days, purge once a day (revoca copies it long before)
#: Largest request an authenticated client may send (a 40 MB CRL, BER framing included).
MAX_INCOMING_AUTH = 128 << 20
#: Largest request an anonymous client may send (searches and binds only).
MAX_INCOMING_ANON = 256 << 10

#: The first RDN's attribute type decides the base entry's structural object class.
_BASE_CLASSES = {
    "o": ("organization",),
    "ou": ("organizationalUnit",),
    "c": ("country",),
    "dc": ("dcObject", "organization"),
    "cn": ("applicationProcess",),
}


class SlapdError(ServiceUnavailable):
    """slapd could not be configured, started, stopped or reached; the message says which and why."""


@dataclass(frozen=True)
class SlapdStatus:
    running: bool
    pid: int | None
    answering: bool
    uri: str

    def line(self) -> str:
        if not self.running:
            return f"slapd not running ({self.uri})"
        state = "answering" if self.answering else "NOT answering"
        return f"slapd running pid={self.pid} {state} at {self.uri}"


class LocalSlapd:
    """One slapd on ``127.0.0.1:port`` with its configuration and database under ``directory``.

    ``root_password`` is the rootdn's password; when omitted, the one stored in
    ``directory/rootpw`` (mode 0600) is used, and when there is none a random one is made and
    stored there. The file always holds the password in use, so the tools (``ldapadd -y``)
    and the publisher can read it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        base_dn: str,
        port: int,
        root_password: str | None = None,
        *,
        host: str = "127.0.0.1",
        max_size: int = MDB_MAXSIZE,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise SlapdError(f"the local slapd listens on loopback only, not on {host!r}")
        if not base_dn or "=" not in base_dn:
            raise SlapdError(f"base DN {base_dn!r} is not a DN; set e.g. o=JPKI,c=JP")
        self.directory = Path(directory).resolve()
        self.base_dn = base_dn
        self.port = int(port)
        self.host = host
        self.max_size = int(max_size)
        self._root_password = root_password

    # -- names -----------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ldap://{host}:{self.port}/"

    @property
    def root_dn(self) -> str:
        return f"cn=admin,{self.base_dn}"

    @property
    def verifiers_dn(self) -> str:
        """The container of the verifier accounts."""
        return f"ou=verifiers,{self.base_dn}"

    @property
    def verifiers_group_dn(self) -> str:
        """The group whose members may read certificateRevocationList."""
        return f"cn=verifiers,{self.verifiers_dn}"

    @property
    def accesslog_dn(self) -> str:
        """The suffix of the accesslog database (searches and binds of the directory)."""
        return ACCESSLOG_SUFFIX

    @property
    def conf_path(self) -> Path:
        return self.directory / "slapd.conf"

    @property
    def db_dir(self) -> Path:
        return self.directory / "db"

    @property
    def accesslog_dir(self) -> Path:
        return self.directory / "accesslog"

    @property
    def pid_path(self) -> Path:
        return self.directory / "slapd.pid"

    @property
    def password_path(self) -> Path:
        return self.directory / "rootpw"

    @property
    def log_path(self) -> Path:
        return self.directory / "slapd.log"

    # -- configuration ---------------------------------------------------------------------

    def root_password(self) -> str:
        if self._root_password is None:
            if self.password_path.exists():
                self._root_password = self.password_path.read_text()
            else:
                import secrets

                self._root_password = secrets.token_urlsafe(24)
        return self._root_password

    def endpoint(self, timeout: float = 10.0) -> Endpoint:
        """Where revoca's publisher connects: this slapd, bound as the rootdn."""
        if self._root_password is None and not self.password_path.exists():
            raise SlapdError(f"{self.password_path} missing: start the repository once (`revoca repository start`)")
        return Endpoint(self.host, self.port, self.root_dn, self.root_password(), timeout)

    def _write_private(self, path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)

    def _hash_password(self, password: str) -> str:
        try:
            out = subprocess.run(
                [SLAPPASSWD, "-h", "{SSHA}", "-T", "/dev/stdin"],
                input=password,
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            )
        except FileNotFoundError as exc:
            raise SlapdError(f"{SLAPPASSWD} not found; install Debian's slapd package") from exc
        except subprocess.CalledProcessError as exc:
            raise SlapdError(f"slappasswd failed: {exc.stderr.strip()}") from exc
        return out.stdout.strip()

    def config_text(self, password_hash: str) -> str:
        """The slapd.conf for this instance (``password_hash`` is the rootpw, e.g. ``{SSHA}...``)."""
        for name in SCHEMAS:
            if not (SCHEMA_DIR / name).exists():
                raise SlapdError(f"schema file {SCHEMA_DIR / name} missing; install Debian's slapd package")
        includes = "\n".join(f"include {SCHEMA_DIR / name}" for name in SCHEMAS)
        return f"""\
# Written by revoca (repository/slapd.py); rewritten at each start, do not edit.
{includes}

pidfile {self.pid_path}
argsfile {self.directory / "slapd.args"}

modulepath {MODULE_DIR}
moduleload back_mdb
moduleload accesslog
moduleload argon2

loglevel stats
sizelimit unlimited
timelimit unlimited
sockbuf_max_incoming {MAX_INCOMING_ANON}
sockbuf_max_incoming_auth {MAX_INCOMING_AUTH}
require none
password-hash {{ARGON2}}

# The access log (searches and binds), for the provision history; only the rootdn reads it.
database mdb
suffix "{ACCESSLOG_SUFFIX}"
directory {self.accesslog_dir}
maxsize {ACCESSLOG_MAXSIZE}
index reqStart eq
access to *
    by dn.exact="{self.root_dn}" manage
    by * none

database mdb
suffix "{self.base_dn}"
rootdn "{self.root_dn}"
rootpw {password_hash}
directory {self.db_dir}
maxsize {self.max_size}
limits * size=unlimited time=unlimited
index objectClass eq
index cn eq
index member eq

overlay accesslog
logdb "{ACCESSLOG_SUFFIX}"
logops search bind
logpurge {ACCESSLOG_KEEP}

{access_rules(self.verifiers_dn, self.verifiers_group_dn)}"""

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.db_dir.mkdir(mode=0o700, exist_ok=True)
        self.accesslog_dir.mkdir(mode=0o700, exist_ok=True)
        password = self.root_password()
        self._write_private(self.password_path, password)
        self._write_private(self.conf_path, self.config_text(self._hash_password(password)))
        test = subprocess.run([SLAPD, "-T", "test", "-f", str(self.conf_path), "-u"], capture_output=True, text=True)
        if test.returncode != 0:
            raise SlapdError(f"slapd rejects {self.conf_path}: {_last_lines(test.stderr)}")

    def write_mirror_config(self, *, server_id: int, peers: list[str]) -> Path:
        """`mirror.conf` beside slapd.conf: this slapd made one provider of a mirror-mode set
        (mirror_mode_config), written as slapd.conf is (mode 0600: the rootdn's password)."""
        self.write_config()
        text = mirror_mode_config(self.conf_path.read_text(), server_id=server_id, peers=peers,
                                  root_dn=self.root_dn, root_password=self.root_password(), base_dn=self.base_dn)
        path = self.directory / "mirror.conf"
        self._write_private(path, text)
        return path

    # -- process ---------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of the running slapd of this directory, or None."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def answers(self) -> bool:
        """Whether slapd answers an anonymous search of the root DSE."""
        try:
            res = subprocess.run(
                ["ldapsearch", "-x", "-LLL", "-H", self.uri, "-b", "", "-s", "base", "-o", "nettimeout=2", "1.1"],
                capture_output=True,
                timeout=10,
            )
        except (subprocess.TimeoutExpired, FileNotFoundError):
            return False
        return res.returncode == 0

    def start(self, timeout: float = 20.0, *, run_as: tuple[str, str] | None = None) -> None:
        """Write the configuration, start slapd (as a daemon), wait until it answers, add the base entries.

        `run_as` (user, group): slapd reads its configuration as root, then runs as them (`-u -g`);
        its database directories must be theirs (ca.host.layout)."""
        if not Path(SLAPD).exists():
            raise SlapdError(f"{SLAPD} not found; install Debian's slapd package")
        if shutil.which("ldapsearch") is None:
            raise SlapdError("ldapsearch not found; install ldap-utils")
        if self.pid() is not None:
            raise SlapdError(f"slapd already running (pid {self.pid()}) for {self.directory}")
        self.write_config()
        empty = self._no_database_yet()
        self.pid_path.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            proc = subprocess.run(
                [SLAPD, "-f", str(self.conf_path), "-h", self.uri,
                 *(["-u", run_as[0], "-g", run_as[1]] if run_as else [])],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
            )
        if proc.returncode != 0:
            raise SlapdError(f"slapd exited with {proc.returncode}; see {self.log_path} (port {self.port} in use?)")
        deadline = time.monotonic() + timeout
        while not self.answers():
            if time.monotonic() > deadline:
                self.stop()
                raise SlapdError(f"slapd did not answer at {self.uri} within {timeout:.0f} s; see {self.log_path}")
            if self.pid() is None and self.pid_path.exists():
                raise SlapdError(f"slapd exited during start-up; see {self.log_path}")
            time.sleep(0.05)
        self.ensure_base_entries(empty=empty)

    def _no_database_yet(self) -> bool:
        """Whether the directory's database has not been made yet (slapd makes data.mdb when it
        first opens it); where that cannot be told, it is taken to hold something."""
        try:
            return not (self.db_dir / "data.mdb").exists()
        except OSError:
            return False

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop slapd (SIGTERM, then wait; SIGKILL after ``timeout``). Returns whether one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
            # slapd closes its databases and exits in a few ms: a 50 ms poll made each stop take
            # ~50 ms (each `revoca repository stop`, each restart); kill(pid, 0) costs nothing
            time.sleep(0.005)
        self.pid_path.unlink(missing_ok=True)
        return True

    def status(self) -> SlapdStatus:
        pid = self.pid()
        return SlapdStatus(running=pid is not None, pid=pid, answering=pid is not None and self.answers(), uri=self.uri)

    # -- entries ---------------------------------------------------------------------------

    def tool(self, program: str, *args: str, input: bytes | None = None, check: bool = True):
        """Run an ldap-utils program bound as the rootdn against this slapd."""
        cmd = [program, "-x", "-H", self.uri, "-D", self.root_dn, "-y", str(self.password_path), *args]
        res = subprocess.run(cmd, input=input, capture_output=True, timeout=120)
        if check and res.returncode != 0:
            raise SlapdError(f"{program} failed ({res.returncode}): {_last_lines(res.stderr.decode(errors='replace'))}")
        return res

    def exists(self, dn: str) -> bool:
        res = self.tool("ldapsearch", "-LLL", "-b", dn, "-s", "base", "1.1", check=False)
        if res.returncode == 32:  # noSuchObject
            return False
        if res.returncode != 0:
            raise SlapdError(f"ldapsearch {dn} failed ({res.returncode}): {_last_lines(res.stderr.decode())}")
        return True

    def ensure_base_entries(self, *, empty: bool = False) -> None:
        """Add the base entry, the verifiers container and the verifiers group when missing.

        `empty`: the directory is known to hold nothing yet (its database was made at this start):
        the three go in with one ldapadd, without asking for each first (six ldap-utils runs were
        most of a fresh start's time)."""
        first = self.base_dn.split(",", 1)[0]
        attr, _, value = first.partition("=")
        attr = attr.strip().lower()
        classes = _BASE_CLASSES.get(attr)
        if classes is None:
            raise SlapdError(f"base DN {self.base_dn!r} must start with one of {', '.join(_BASE_CLASSES)}")
        base = [f"dn: {self.base_dn}", *(f"objectClass: {c}" for c in classes), f"{attr}: {value.strip()}"]
        if attr == "dc":
            base.append(f"o: {value.strip()}")
        entries = {
            self.base_dn: base,
            self.verifiers_dn: [f"dn: {self.verifiers_dn}", "objectClass: organizationalUnit", "ou: verifiers"],
            # member is required by groupOfNames: the rootdn stands in, and is never a verifier
            # in effect (the rootdn is beyond access rules anyway).
            self.verifiers_group_dn: [
                f"dn: {self.verifiers_group_dn}",
                "objectClass: groupOfNames",
                "cn: verifiers",
                f"member: {self.root_dn}",
            ],
        }
        if empty:
            self.tool("ldapadd", input="".join("\n".join(lines) + "\n\n" for lines in entries.values()).encode())
            return
        for dn, lines in entries.items():
            if not self.exists(dn):
                self.tool("ldapadd", input=("\n".join(lines) + "\n").encode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is not alive; reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        done = 0
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False
        except OSError:
            return False
    return done == 0


def _last_lines(text: str, n: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) or "(no message)"


def mirror_mode_config(conf: str, *, server_id: int, peers: list[str], root_dn: str, root_password: str,
                       base_dn: str) -> str:
    """revoca's slapd.conf (`LocalSlapd.config_text`) made one provider of a multi-provider set
    (mirror mode, docs/deployment.md section 8): `serverID`, the syncprov overlay, and a syncrepl
    (refreshAndPersist) from each of the other providers (`peers`, ldap:// URLs), bound as the
    rootdn, which every provider shares; the publisher may write to any of them.

    The result holds the rootdn's password in clear (syncrepl `credentials`): keep it mode 0600,
    as revoca keeps slapd.conf.  The access log database stays each provider's own."""
    if "\ndatabase mdb\nsuffix" not in conf or "moduleload argon2\n" not in conf:
        raise SlapdError("not a slapd.conf written by revoca (LocalSlapd.config_text)")
    if not 1 <= server_id <= 4095:
        raise SlapdError(f"serverID {server_id} is not 1 to 4095")
    conf = conf.replace("moduleload argon2\n", "moduleload argon2\nmoduleload syncprov\n", 1)
    conf = conf.replace("\ndatabase mdb\n", f"\nserverID {server_id}\n\ndatabase mdb\n", 1)
    pulls = "".join(f"""
syncrepl rid={rid:03d}
  provider={peer}
  bindmethod=simple
  binddn="{root_dn}"
  credentials="{root_password}"
  searchbase="{base_dn}"
  type=refreshAndPersist
  retry="1 +"
""" for rid, peer in enumerate(peers, start=1))
    return conf.rstrip("\n") + f"""

# multi-provider replication (repository.slapd.mirror_mode_config)
index entryCSN,entryUUID eq
{pulls}
mirrormode on
overlay syncprov
syncprov-checkpoint 100 10
"""
