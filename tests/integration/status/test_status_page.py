"""The officers' status page (`revoca serve status`) under gunicorn, loaded by headless Chromium.

The page's figures are checked against the database, counted here in Python from the rows
(not with the page's SQL): CRL/ARL numbers and nextUpdate with the under-24-hours highlight,
waiting requests, revocations per day and reason, OCSP queries per minute, key activation.
Chromium renders it too (a screenshot must come out as a PNG), and the gate is checked with
plain HTTP: 401 with a Basic challenge for missing or wrong credentials, 403 for a role that
may not look.
"""

from __future__ import annotations

import datetime as dt
import html.parser
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from ca.enums import AgentAuthority, Applicant, CAKind, RequestChannel, RequestStatus, Role
from ca.revocation import reasons, workflow
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import Filing
from ca.status_page.auth import CredentialCache, Officer
from ca.storage.engine import make_engine, session_scope
from ca.storage.models import AuditEvent, Certificate, OCSPQuery, Revocation, RevocationRequest
from ca.storage.revocations import RevocationStore
from ca.storage.store import ReadStore

from support.database import Databases
from support.installation import CeremonyTemplates, serving_installation
from support.ra_fixtures import PASSWORD, add_operator, subscribers
from support.settings import make_settings
from support.status_site import (
    CHROMIUM,
    WINDOW_REVOCATIONS,
    PopulatedSite,
    R,
    StatusServer,
    running_site,
    server_for,
)

# --- the installation -------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def officer_site(request: pytest.FixtureRequest, ceremony_templates: CeremonyTemplates,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[PopulatedSite]:
    """A demo hierarchy with CRLs, revocations, waiting requests and OCSP history; officer `olga` (senior
    operator); the status server on a free port with the activated HSM service.  Shared by the module's
    tests: the screenshot only reads, and the page test's one revocation comes after what it checks."""
    root = tmp_path_factory.mktemp(f"officers-{request.param}")
    with serving_installation(ceremony_templates, request.param, root) as made:
        assert made.socket is not None
        add_operator(made.engine, "olga", Role.SENIOR_OPERATOR)
        with running_site(made.settings, made.engine, made.socket, root) as server:
            yield PopulatedSite(server, made.engine)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gate(request: pytest.FixtureRequest, databases: Databases,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatusServer]:
    """An empty installation with people of every kind, and the status server (no HSM service).
    Shared by the module's tests, which only read (the server's credential cache aside)."""
    kind = request.param
    root = tmp_path_factory.mktemp(f"gate-{kind}")
    with databases.fresh(kind, root, template=databases.migrated(kind)) as url:
        engine = make_engine(url)
        server = server_for(make_settings(root, url), root, None).launch()  # comes up while the people are added
        try:
            add_operator(engine, "olga", Role.SENIOR_OPERATOR)
            add_operator(engine, "kim", Role.KEY_MANAGER)
            add_operator(engine, "rita", Role.RECEPTIONIST)
            add_operator(engine, "ivy", Role.INTERNAL_AUDITOR)
            add_operator(engine, "dan", Role.CA_ADMINISTRATOR, disabled=True)
            yield server.wait_until_up()
        finally:
            server.kill()  # no test here is about how it stops
            engine.dispose()


# --- reading what Chromium rendered -------------------------------------------------------------------


class Figures(html.parser.HTMLParser):
    """The page's figures: text of `data-figure` elements, `data-state` of list rows, chart bars."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.list_states: dict[str, str] = {}
        self.bars: dict[tuple[str, str], int] = {}
        self.text: list[str] = []
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("data-list") and a.get("data-state"):
            self.list_states[a["data-list"]] = a["data-state"]  # type: ignore[index]
        if tag == "rect" and a.get("data-day"):
            self.bars[(a["data-day"], a["data-reason"])] = int(a["data-count"])  # type: ignore[index,arg-type]
        self._open.append((tag, a.get("data-figure")))
        if a.get("data-figure"):
            self.figures[a["data-figure"]] = ""  # type: ignore[index]

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for _, figure in self._open:
            if figure:
                self.figures[figure] += data

    def figure(self, name: str) -> str:
        return " ".join(self.figures[name].split())


def chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian package chromium; `make test` installs it)")
    profile = tmp_path / "chromium-profile"  # its own profile: parallel test workers must not share one
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def when(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


# --- the page --------------------------------------------------------------------------------------


def test_the_page_shows_what_the_database_holds(officer_site: PopulatedSite, tmp_path: Path) -> None:
    engine = officer_site.engine
    run = chromium("--dump-dom", officer_site.server.url("/", ("olga", PASSWORD)), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    page = Figures()
    page.feed(run.stdout)
    now = dt.datetime.strptime(page.figure("now"), "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=dt.UTC)

    with session_scope(engine) as s:
        store = ReadStore(s)
        names = {ca.id: ca.name for ca in store.cas()}
        issuing = [ca.name for ca in store.cas() if ca.kind is not CAKind.EXTERNAL]
        latest = {(names[ca_id], t.value): row for (ca_id, t), row in store.latest_issued_crls().items()}
        waiting = s.scalars(sa.select(RevocationRequest.status).where(RevocationRequest.status.in_(
            [RequestStatus.PENDING_REVIEW, RequestStatus.PENDING_APPROVAL]))).all()
        revoked = s.execute(sa.select(Revocation.revocation_time, Revocation.reason)).all()
        queried = s.scalars(sa.select(OCSPQuery.at)).all()
        event_types = set(s.scalars(sa.select(AuditEvent.event_type)).all())

    # every CA's CRL and ARL: number, nextUpdate, and the highlight when less than 24 h are left
    assert len(latest) == 2 * len(issuing) == len(page.list_states)
    for (ca, list_type), row in latest.items():
        assert page.figure(f"number:{ca}:{list_type}") == str(row.number)
        assert page.figure(f"next-update:{ca}:{list_type}") == when(row.next_update)
        assert page.figure(f"this-update:{ca}:{list_type}") == when(row.this_update)
        expected = "soon" if row.next_update - now < dt.timedelta(hours=24) else "ok"
        assert page.list_states[f"{ca}:{list_type}"] == expected, (ca, list_type)
    assert page.figure("number:tokyo:crl") == "2" and page.list_states["tokyo:crl"] == "ok"
    assert page.list_states["osaka:crl"] == "soon"
    assert page.figure("lists-attention") == str(2 * len(issuing) - 1)

    assert page.figure("waiting") == str(len(waiting)) == "3"
    assert page.figure("hsm") == "activated"

    # revocations per day and reason over the 30 days ending today (UTC), counted here from the rows
    first = now.date() - dt.timedelta(days=29)
    per_day: dict[tuple[str, str], int] = {}
    for at, reason in revoked:
        if at.date() >= first:
            key = (at.date().isoformat(), reasons.RFC_NAME[RevocationReason(reason)])
            per_day[key] = per_day.get(key, 0) + 1
    assert page.bars == per_day
    for reason in RevocationReason:
        name = reasons.RFC_NAME[reason]
        assert page.figure(f"reason-total:{name}") == str(sum(n for (_, r), n in per_day.items() if r == name))
    assert page.figure("revocations-total") == str(len(WINDOW_REVOCATIONS) - 1)  # the one 40 days ago is out

    # OCSP queries in each minute shown
    shown = {k.split(":", 1)[1]: int(page.figure(k)) for k in page.figures if k.startswith("ocsp-minute:")}
    counted = {f"{m:%H:%M}": sum(1 for at in queried if at.replace(second=0, microsecond=0) == m)
               for m in (now.replace(second=0, microsecond=0) - dt.timedelta(minutes=i) for i in range(11))}
    assert shown == counted and sum(shown.values()) == len(queried) == 11

    # nothing of the audit log: no event type appears anywhere on the page
    text = " ".join(page.text)
    assert not [t for t in event_types if t in text]

    # a revocation made after that load is in the next one (the chart counts only new rows)
    ref = subscribers(engine, "osaka")[0]
    with session_scope(engine) as s:
        workflow.file_request(RevocationStore(s), Filing(
            RequestChannel.RA_WINDOW, s.get(Certificate, ref.id), R.CESSATION_OF_OPERATION,
            applicant=Applicant.AGENT, agent_authority=AgentAuthority.POWER_OF_ATTORNEY,
            identity_document_checked=True), dt.datetime.now(dt.UTC), actor="test")
    http = requests.Session()
    http.trust_env = False
    again = Figures()
    again.feed(http.get(officer_site.server.url("/"), auth=("olga", PASSWORD), timeout=30).text)
    assert again.figure("reason-total:cessationOfOperation") == str(int(page.figure(
        "reason-total:cessationOfOperation")) + 1)
    assert again.figure("revocations-total") == str(len(WINDOW_REVOCATIONS))


def test_a_screenshot_of_the_page_is_a_png_of_the_window_size(officer_site: PopulatedSite, tmp_path: Path) -> None:
    shot = tmp_path / "status.png"
    run = chromium(f"--screenshot={shot}", "--window-size=1280,2200", "--hide-scrollbars",
                   officer_site.server.url("/", ("olga", PASSWORD)), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR" and struct.unpack(">II", data[16:24]) == (1280, 2200)
    assert len(data) > 50_000  # a rendered page, not an empty or error canvas


# --- who may look -----------------------------------------------------------------------------------


def test_missing_or_wrong_credentials_get_401_with_a_basic_challenge(gate: StatusServer) -> None:
    http = requests.Session()
    http.trust_env = False
    for auth in (None, ("olga", "not the password"), ("nobody", PASSWORD), ("dan", PASSWORD)):
        answer = http.get(gate.url("/"), auth=auth, timeout=30)
        assert answer.status_code == 401, auth
        assert answer.headers["WWW-Authenticate"].startswith('Basic realm="revoca officers"')
        assert "CRLs and ARLs" not in answer.text
    assert http.get(gate.url("/"), auth=("olga", PASSWORD), timeout=30).status_code == 200
    assert http.get(gate.url("/"), auth=("kim", PASSWORD), timeout=30).status_code == 200


def test_a_wrong_password_is_refused_even_after_the_right_one_was_remembered(gate: StatusServer) -> None:
    http = requests.Session()
    http.trust_env = False
    assert http.get(gate.url("/"), auth=("olga", PASSWORD), timeout=30).status_code == 200
    assert http.get(gate.url("/"), auth=("olga", PASSWORD + "x"), timeout=30).status_code == 401


@pytest.mark.parametrize("name", ["rita", "ivy"])
def test_an_operator_without_a_ca_officer_role_is_refused(gate: StatusServer, name: str, tmp_path: Path) -> None:
    http = requests.Session()
    http.trust_env = False
    answer = http.get(gate.url("/"), auth=(name, PASSWORD), timeout=30)
    assert answer.status_code == 403
    assert "no role that may see the status page" in answer.text
    run = chromium("--dump-dom", gate.url("/", (name, PASSWORD)), tmp_path=tmp_path)
    assert "CRLs and ARLs" not in run.stdout and "Not for this role" in run.stdout


def test_the_page_of_an_empty_installation_says_so(gate: StatusServer) -> None:
    http = requests.Session()
    http.trust_env = False
    answer = http.get(gate.url("/"), auth=("olga", PASSWORD), timeout=30)
    assert answer.status_code == 200
    assert "No CA yet" in answer.text and 'data-state="unreachable"' in answer.text


# --- the credential cache -----------------------------------------------------------------------------


class TestCredentialCache:
    def test_a_remembered_check_expires(self) -> None:
        clock = [100.0]
        cache = CredentialCache(30, clock=lambda: clock[0])
        cache.put("olga", PASSWORD, Officer("olga", ("senior-operator",)))
        assert cache.get("olga", PASSWORD) == Officer("olga", ("senior-operator",))
        clock[0] += 30
        assert cache.get("olga", PASSWORD) is None

    def test_only_the_same_name_and_password_hit(self) -> None:
        cache = CredentialCache(30)
        cache.put("olga", PASSWORD, Officer("olga", ("senior-operator",)))
        assert cache.get("olga", PASSWORD + " ") is None
        assert cache.get("olga2", PASSWORD) is None
