"""`revoca run`: the whole service on one machine with the embedded defaults (what `make run`
starts), each service a `revoca serve ...` process under one supervisor."""

from __future__ import annotations

import signal
import socket
import sys
import time

import click

from ca import ceremony
from ca.cli.common import App, interrupt_on_signals, pass_app, table
from ca.cli.cvs_cmds import DEFAULT_PORT as CVS_PORT
from ca.cli.tsa_cmds import DEFAULT_PORT as TSA_PORT
from ca.cli.tsa_cmds import ensure_demo_tsa
from ca.config import Settings
from ca.demo import CLERK, OPERATOR, TERMINAL, VERIFIER, ensure_demo_operator, ensure_demo_ra, ensure_demo_verifier
from ca.errors import ServiceUnavailable
from ca.host import identities
from ca.host.files import protect_data_dir
from ca.host.layout import give_to_identities
from ca.host.supervisor import Child, DaemonChild, Supervisor, spawn
from ca.hsm.client import HSMClient
from ca.http.server_tls import ensure_server_tls
from ca.storage import grants
from ca.storage.engine import session_scope
from ca.storage.store import Store
from repository.service import local_slapd


def _wait_for_port(host: str, port: int, proc: Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise ServiceUnavailable(
                    f"the service for port {port} exited at start; see its messages above") from None
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"nothing listens on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.2)


def _wait_for_socket(client: HSMClient, proc: Child, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.status()
            return
        except ServiceUnavailable:
            if proc.poll() is not None:
                raise ServiceUnavailable("the HSM service exited at start; see its messages above") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@click.command("run")
@click.option("--ra-port", default=8443, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the RA API (HTTPS) on 127.0.0.1.")
@click.option("--ocsp-port", default=8880, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the OCSP responder (HTTP) on 127.0.0.1.")
@click.option("--tsa-port", default=TSA_PORT, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the RFC 3161 time-stamp authority (HTTP) on 127.0.0.1.")
@click.option("--cvs-port", default=CVS_PORT, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the certificate validation server (HTTP) on 127.0.0.1.")
@click.option("--status-port", default=8090, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the officers' status page and /metrics (HTTP) on 127.0.0.1.")
@click.option("--web-port", default=8070, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the public web repository (HTTP) on 127.0.0.1.")
@pass_app
def run_cmd(app: App, ra_port: int, ocsp_port: int, tsa_port: int, cvs_port: int, status_port: int,
            web_port: int) -> None:
    """The whole service on one machine with the embedded defaults (what `make run` does).

    Initialises a demo hierarchy the first time (reused afterwards), starts the HSM service,
    activates it with the demo shares and runs until Ctrl-C.
    """
    settings = app.settings
    protect_data_dir(settings.data_dir)
    interrupt_on_signals()
    if not ceremony.is_initialized(settings, app.engine):
        click.echo("first run: key ceremony with demo shares (DEMO ONLY)")
        result = ceremony.run(settings, app.engine, demo=True, time_guard=app.time_guard)
        click.echo(f"created CAs: {', '.join(result.cas)}")
    roles = grants.apply_at_start(app.engine, settings.identities,
                                  role_per_service=settings.database_role_per_service)
    if roles is not None:  # PostgreSQL: one role per service, GRANTs for what it uses (ca.storage.grants)
        click.echo(roles)
    slapd = local_slapd(settings)
    supervisor = Supervisor(echo=lambda line: click.echo(line, err=True))
    ids = None
    if identities.wanted(settings.identities):
        unreachable = identities.unreachable(settings.data_dir, settings.hsm_socket.parent)
        if unreachable:
            click.echo(f"WARNING: every service runs as root: other users cannot reach {unreachable[0]} (inside a "
                       "private directory?); install revoca and its data where its users can reach them (e.g. "
                       "`make clean run`, which builds on /usr/bin/python3), or set [identities] mode = \"off\" "
                       "to silence this", err=True)
        else:
            ids = identities.ensure(settings.identities)
    if ids is not None:
        give_to_identities(settings, ids)
        click.echo("services run as their own users: " + ", ".join(f"{s} as {ids[s].user}" for s in
                                                                       ("signer", "ra", "ocsp", "tsa", "scheduler",
                                                                        "publisher", "status", "web", "cvs")))

    def serve(service: str, *args: str) -> Child:
        """`revoca serve ...` in a process group of its own, as the service's own identity (if any)."""
        argv = [sys.executable, "-m", "ca", *_config_args(app), "serve", *args]
        if ids is None:
            return spawn(argv)
        who = ids[service]
        return spawn(argv, user=who.uid, group=who.gid, extra_groups=list(who.groups), umask=0o007)

    def start_slapd() -> Child:
        if ids is not None:  # slapd as its own user: its directories are made and given to it first
            slapd.write_config()
            give_to_identities(settings, ids)
        # as its own user, with the data directory's group so that it may pass through to ldap/
        slapd.start(run_as=(ids["ldap"].user, settings.identities.data_group) if ids is not None else None)
        return DaemonChild(slapd.pid, slapd.stop)

    client = HSMClient(settings.hsm_socket)

    def start_hsm() -> Child:
        """The HSM service, activated with the demo shares (DEMO ONLY: in production key managers
        present theirs again after a restart, `revoca hsm activate`)."""
        hsm = serve("signer", "hsm")
        _wait_for_socket(client, hsm)
        for path in sorted(settings.demo_shares_dir.glob("share-*.txt")):
            status = client.status()
            if status["activated"]:
                break
            status = client.activate(ceremony.read_share_file(path))
            click.echo(f"presented {path.name}: {status['line']}")
        return hsm

    try:
        if slapd.pid() is None:  # a slapd started by someone else is theirs to watch
            supervisor.add("slapd", start_slapd, depended_on=True)
        # stopped after the services that sign through it, which may still need it while they stop
        supervisor.add("HSM service", start_hsm, depended_on=True)
        # certificates are the key managers' business (ca.hsm.sessions): the demo's (terminal,
        # verifier, TSA, the RA's TLS certificate) are made here in a ceremony session the DEMO ONLY
        # key managers open, before the RA starts as an identity that may not have one signed
        setup = HSMClient(settings.hsm_socket, key_managers=ceremony.demo_key_managers(settings))
        try:
            terminal_dir, _clerk_password, serial = ensure_demo_ra(settings, app.engine, setup,
                                                                  time_guard=app.time_guard)
            verifier = ensure_demo_verifier(settings, app.engine, setup, time_guard=app.time_guard)
            operator_password = ensure_demo_operator(settings, app.engine)
            tsa_cert, tsa_roots, tsa_example = ensure_demo_tsa(app, setup)
            ensure_server_tls(settings, app.engine, setup, "127.0.0.1", time_guard=app.time_guard)
        finally:
            setup.close()
        if ids is not None:
            give_to_identities(settings, ids)  # what the demo set-up and the first issue wrote
        ra = supervisor.add("RA API", lambda: serve("ra", "ra", "--host", "127.0.0.1", "--port", str(ra_port),
                                                      "--workers", "2"))
        # the scheduler issues every CA's CRL and ARL at once (catch-up), then every crl.period_hours
        supervisor.add("scheduler", lambda: serve("scheduler", "scheduler"))
        # the publisher puts each CRL/ARL into the directory seconds after it is issued
        supervisor.add("publisher", lambda: serve("publisher", "publisher"))
        ocsp = supervisor.add("OCSP responder", lambda: serve("ocsp", "ocsp", "--host", "127.0.0.1", "--port",
                                                              str(ocsp_port), "--workers", "2"))
        # every certificate's answer signed ahead, so that the responders serve most queries without signing
        supervisor.add("OCSP signer", lambda: serve("ocsp", "ocsp-signer"))
        tsa = supervisor.add("TSA", lambda: serve("tsa", "tsa", "--host", "127.0.0.1", "--port", str(tsa_port),
                                                  "--workers", "1"))
        # officials' certificates checked through the bridge's cross certificates, answers signed (ca.cvs)
        cvs = supervisor.add("CVS", lambda: serve("cvs", "cvs", "--host", "127.0.0.1", "--port", str(cvs_port),
                                                  "--workers", "1"))
        status_page = supervisor.add("status page", lambda: serve("status", "status", "--host", "127.0.0.1",
                                                                  "--port", str(status_port), "--workers", "1"))
        # the public pages, made again whenever what they show changes (ca.web.watch)
        web = supervisor.add("web repository", lambda: serve("web", "web", "--host", "127.0.0.1", "--port",
                                                             str(web_port), "--workers", "1"))
        # root, as in production (deploy/systemd/revoca-backup.service): it copies every service's files
        supervisor.add("backup", lambda: spawn([sys.executable, "-m", "ca", *_config_args(app), "serve", "backup"]))
        _wait_for_port("127.0.0.1", ra_port, ra)
        _wait_for_port("127.0.0.1", ocsp_port, ocsp)
        _wait_for_port("127.0.0.1", tsa_port, tsa)
        _wait_for_port("127.0.0.1", cvs_port, cvs)
        _wait_for_port("127.0.0.1", status_port, status_page)
        _wait_for_port("127.0.0.1", web_port, web)
        with session_scope(app.engine) as session:
            rows = [[ca.name, ca.kind.value, len(ca.keys), ca.subject_dn] for ca in Store(session).cas()]
        click.echo("")
        table(["CA", "KIND", "KEYS", "SUBJECT"], rows)
        click.echo(f"\nHSM service: {settings.hsm_socket}  ({client.status()['line']})")
        click.echo(f"RA API:      https://127.0.0.1:{ra_port}  (OpenAPI at /openapi.json)")
        click.echo(f"database:    {settings.db_url}")
        click.echo(f"clock:       {_clock_line(settings)}")
        click.echo(f"backups:     {settings.backup_dir}  (daily, each verified by a scratch restore; "
                   "`revoca backup list`, docs/backups.md)")
        click.echo(f"CRLs/ARLs:   {settings.data_dir / 'crls'}  (scheduler running; `revoca crl list`)")
        click.echo(f"OCSP:        http://127.0.0.1:{ocsp_port}/  (registered verifiers only; answers signed ahead "
                   "by the OCSP signer)")
        click.echo(f"TSA:         http://127.0.0.1:{tsa_port}/  (RFC 3161; certificate {tsa_cert})")
        click.echo(f"CVS:         http://127.0.0.1:{cvs_port}/  (POST a certificate; signed answer, docs/cvs.md)")
        click.echo(f"status page: http://127.0.0.1:{status_port}/  (log in as keymanager1; its DEMO ONLY password "
                   f"is the last line of {settings.demo_shares_dir / 'keymanager1.password'}: `tail -n 1 FILE`); "
                   "Prometheus metrics at /metrics")
        click.echo(f"web:         http://127.0.0.1:{web_port}/  (public: CA certificates and fingerprints, ARLs, "
                   "notices, provision reports)")
        click.echo(f"LDAP:        {slapd.uri} base {settings.repository.base_dn}  (publisher running; "
                   f"`revoca repository queue --operator {OPERATOR}`)")
        t = terminal_dir
        click.echo("\ntry:  .venv/bin/revoca ca list  |  .venv/bin/revoca ca show tokyo  "
                   "|  .venv/bin/revoca hsm status")
        click.echo("commands that change something or show personal data need the people docs/roles.md names, "
                   f"e.g. the demo operator, whose DEMO ONLY password is the last line of {operator_password}:")
        click.echo(f"  tail -n 1 {operator_password} | .venv/bin/revoca cert list --ca tokyo --operator {OPERATOR}")
        click.echo("revoke a demo subscriber certificate from the demo RA terminal (DEMO ONLY credentials; "
                   f"curl asks for the clerk's password, the last line of {t}/{CLERK}.password):")
        click.echo(f"  curl --cacert {t}/bridge-roots.pem --cert {t}/{TERMINAL}.pem --key {t}/{TERMINAL}.key "
                   f"-u {CLERK} -H 'Content-Type: application/json' "
                   f"https://127.0.0.1:{ra_port}/v1/revocations -d '{{\"issuer_ca\": \"tokyo\", \"serial\": "
                   f"\"{serial}\", \"reason\": \"keyCompromise\", \"applicant\": \"self\", "
                   f"\"identity_document_checked\": true, \"idempotency_key\": \"demo-{serial[:12]}\"}}'")
        tokyo_dn = _entry_dn(app, "tokyo")
        if tokyo_dn:
            v = verifier
            click.echo("ask the OCSP responder about that certificate, as the demo verifier (a signed request):")
            click.echo(f"  openssl ocsp -issuer {v}/tokyo.pem -CAfile {v}/tokyo.pem -serial 0x{serial} "
                       f"-url http://127.0.0.1:{ocsp_port}/ -signer {v}/{VERIFIER}.pem -signkey {v}/{VERIFIER}.key")
            click.echo("fetch tokyo's CRL from the LDAP repository as the demo verifier (anonymous gets no CRL):")
            click.echo(f"  ldapsearch -x -LLL -H {slapd.uri} -D cn={VERIFIER},ou=verifiers,"
                       f"{settings.repository.base_dn} -y {verifier}/ldap.password -b '{tokyo_dn}' -s base "
                       f"-t 'certificateRevocationList;binary'")
        q, r = tsa_example.with_suffix(".tsq"), tsa_example.with_suffix(".tsr")
        click.echo("time-stamp a file with the TSA and check the token with openssl:")
        click.echo(f"  openssl ts -query -data {tsa_example} -sha256 -cert -out {q} && curl -s -H 'Content-Type: "
                   f"application/timestamp-query' --data-binary @{q} -o {r} http://127.0.0.1:{tsa_port}/ && "
                   f"openssl ts -verify -data {tsa_example} -in {r} -CAfile {tsa_roots} -untrusted {tsa_cert}")
        stopping = _StopRequest()  # from here on SIGTERM and Ctrl-C set a flag (see _StopRequest)
        click.echo("Ctrl-C stops everything; a service that dies is started again.")
        while not stopping:  # ServiceUnavailable once a service keeps failing
            supervisor.poll()
            time.sleep(0.5)
        click.echo("\nstopping")
    except KeyboardInterrupt:  # during the start
        click.echo("\nstopping")
    finally:
        _StopRequest()  # a second SIGTERM or Ctrl-C does not cut the stop short
        supervisor.stop()


class _StopRequest:
    """SIGTERM and Ctrl-C once the services run: a flag the supervising loop looks at, not a
    KeyboardInterrupt raised wherever the loop happens to be.

    Found stopping `revoca run` right after its start, in a loop: `stop` waited forever for the
    HSM service, a zombie by then, on subprocess's per-child wait lock, which no other thread
    held.  A KeyboardInterrupt raised in the supervisor's poll between subprocess's taking that
    lock and the `try` that gives it back (CPython runs a signal handler as soon as a C call
    returns) leaves it taken; `stop` then finds that child never ending, SIGKILLs it and waits."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, _signum: int, _frame: object) -> None:
        self.requested = True

    def __bool__(self) -> bool:
        return self.requested


def _clock_line(settings: Settings) -> str:
    """Which NTP servers the clock is checked against before signing, and where they came from."""
    time = settings.time
    if not time.ntp_servers:
        return ("checked against no NTP server: the machine's time daemon names none and [time] ntp_servers "
                "is not set, so lists are signed on the system clock unchecked")
    return f"checked against {', '.join(time.ntp_servers)} (from {time.ntp_source}) before anything is signed"


def _entry_dn(app: App, ca_name: str) -> str | None:
    """The directory DN of a CA's entry, or None when the hierarchy has no such CA."""
    from repository.entries import ca_entry_dn

    with session_scope(app.engine) as session:
        cas = [ca for ca in Store(session).cas() if ca.name == ca_name]
        return ca_entry_dn(cas[0], app.settings.repository.base_dn) if cas else None


def _config_args(app: App) -> list[str]:
    return ["--config", app.config_path] if app.config_path else []


def register(cli: click.Group) -> None:
    cli.add_command(run_cmd)
