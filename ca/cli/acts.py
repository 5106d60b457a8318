"""Who may run each `revoca` command: the trusted roles of seed 004 5.2.1 and the number of
people 5.2.2 asks for, as one table that the login gate (ca.cli.gate) enforces and
docs/roles.md shows.

A command without a row here cannot run at all (the gate refuses to load it), so a new command
is never open by omission.  Each row says how the command is admitted:

- OPEN: changes nothing and shows nothing personal (public certificates, the health summary);
- SYSTEM: installation and services, run by root or the service manager as the service's own
  identity, never by a person at the keyboard (`serve`, `db upgrade`);
- CEREMONY: the key ceremony, which creates the first officers; refused once any exist;
- SHARES: the key managers present their M-of-N activation shares to the HSM service, which is
  itself the authentication;
- HSM: the HSM service checks the people itself (M different key managers' names and passwords
  travel to it, the trust boundary): the command reads the passwords and sends them, the gate
  logs no one in;
- OPERATORS: one login per person, each holding a role of its slot; `key_managers` adds M
  different key managers, M being the threshold of the token's activation shares;
- NOBODY: no role may, whatever the logins (the row says why).
"""

from __future__ import annotations

import dataclasses
import enum

from ca.enums import Role


class Admission(enum.StrEnum):
    OPEN = "open"
    SYSTEM = "system"
    CEREMONY = "ceremony"
    SHARES = "shares"
    HSM = "hsm"
    OPERATORS = "operators"
    NOBODY = "nobody"


@dataclasses.dataclass(frozen=True)
class Act:
    """How one command is admitted.  `people` has one entry per person: the roles any of which
    that person must hold; the same operator never fills two entries."""

    admission: Admission
    why: str
    people: tuple[frozenset[Role], ...] = ()
    key_managers: bool = False  # plus M different key managers (M = the share set's threshold)
    personal_data: bool = False  # shows subscribers' personal data: the read itself is audited
    # admits a password past its maximum age ([operators]): the act that sets a new one
    allows_expired_password: bool = False

    @property
    def needs_login(self) -> bool:
        return self.admission is Admission.OPERATORS


def _roles(*roles: Role) -> frozenset[Role]:
    return frozenset(roles)


def by(*roles: Role, why: str, people: int = 1, personal_data: bool = False) -> Act:
    """`people` different operators, each holding one of `roles`."""
    return Act(Admission.OPERATORS, why, people=(_roles(*roles),) * people, personal_data=personal_data)


def key_managers(why: str, *also: frozenset[Role]) -> Act:
    """M different key managers (seed 004 5.2.2, 6.2.2), and whoever `also` names."""
    return Act(Admission.OPERATORS, why, people=tuple(also), key_managers=True)


def open_(why: str) -> Act:
    return Act(Admission.OPEN, why)


def system(why: str) -> Act:
    return Act(Admission.SYSTEM, why)


R = Role
STAFF = (R.CA_ADMINISTRATOR, R.SENIOR_OPERATOR, R.OPERATOR)
AUDITORS = (R.INTERNAL_AUDITOR, R.CA_ADMINISTRATOR)
SENIOR_PAIR = "5.2.2: senior operators work in pairs"
# a change to the staff: a senior operator and a second, different senior operator or CA administrator
STAFF_CHANGE = (_roles(R.SENIOR_OPERATOR), _roles(R.SENIOR_OPERATOR, R.CA_ADMINISTRATOR))

# 9.4.7.1 and 5.2.1: the receptionist (3) receives the subscriber's request and hands over the papers; the CA
# administrator (1) manages the answer to disclosure requests ("認証業務情報開示請求に対する対応の管理").  Two
# people: one of them alone never reads a subscriber's whole record out.
DISCLOSURE_WHY = ("9.4.7.1, 5.2.1 (1), (3): the receptionist receives the subscriber's request and hands over the "
                  "bundle; the CA administrator manages the answer (two people: a read of personal data in bulk)")
DISCLOSURE_PEOPLE = (_roles(R.CA_ADMINISTRATOR), _roles(R.RECEPTIONIST))

ACTS: dict[str, Act] = {
    # the archive: personal data of subscribers and requesters
    "archive export": by(*AUDITORS, why="5.5: archive contents hold personal data", personal_data=True),
    "archive stamp": by(*STAFF, why="5.5: operation and maintenance"),
    "archive verify": by(*AUDITORS, why="5.5.2: integrity checks of the archive"),
    # the audit log: the internal auditor's alone (5.2.1 (8))
    "audit checkpoint": by(R.INTERNAL_AUDITOR, why="5.2.1 (8): inspection of the audit log"),
    "audit prune": by(R.INTERNAL_AUDITOR, why="5.2.1 (8): deletion of audited logs"),
    "audit show": by(R.INTERNAL_AUDITOR, why="5.2.1 (8): the log names people and subscribers",
                     personal_data=True),
    "audit verify": by(R.INTERNAL_AUDITOR, why="5.2.1 (8): inspection of the audit log"),
    # backups (5.4.5, 5.5.4, 5.5.7.2): taken by root, which alone reads every service's files
    "backup check": by(*STAFF, why="5.5.7.2: the yearly readability check, recorded with who did it"),
    "backup create": system("reads every service's files (token store, TLS keys): root or its timer"),
    "backup list": system("the backup directory is root's"),
    "backup purge-key": key_managers("6.2.10.1, 5.2.2: copies of a destroyed private key are destroyed likewise, "
                                     "by several key managers; root reads the backups"),
    "backup mark-offsite": by(*STAFF, why="5.5.4: the monthly copy to external media, recorded with who did it"),
    "backup verify": system("reads every service's files: root"),
    "restore": system("5.7: on a fresh machine, before any operator exists there; only into an empty place"),
    "serve backup": system("a service, run by the service manager as root (it reads every service's files)"),
    # CAs
    "ca compromise": by(R.SENIOR_OPERATOR, people=2, why="4.9.1, 5.7.3: revokes everything the key signed"),
    "ca cross-certify": key_managers("5.2.1 (2), (6): a CA key signs; key managers operate the HSM, "
                                     "a senior operator owns the act", _roles(R.SENIOR_OPERATOR)),
    "ca destroy-key": key_managers("6.2.10.1, 5.2.2: several key managers destroy a private key in the HSM"),
    "ca adopt": key_managers("6.1.1, 1.3.1.2: an existing key is put under M-of-N control"),
    "ca list": open_("CA names and certificates are public (2.2)"),
    "ca rollover": key_managers("5.2.1 (2), 6.1.1: key pair generation in the HSM"),
    "ca show": open_("CA certificates are public (2.2)"),
    "ca terminate": key_managers("5.8: the CA ends; its key signs the final CRL and ARL, key managers operate the "
                                 "HSM, a senior operator owns the act", _roles(R.SENIOR_OPERATOR)),
    # certificates
    "cert disclose": Act(Admission.OPERATORS, DISCLOSURE_WHY, people=DISCLOSURE_PEOPLE, personal_data=True),
    "cert import": by(R.SENIOR_OPERATOR, R.OPERATOR, why="5.2.1 (6), (7): operation; holds personal data",
                      personal_data=True),
    "cert list": by(*STAFF, why="subscribers' basic four data (personal)", personal_data=True),
    "cert show": by(*STAFF, why="subscribers' basic four data (personal)", personal_data=True),
    "cert unrevoke": Act(Admission.NOBODY, "3.4.3, 4.9.13-4.9.16: no suspension (certificateHold), so a "
                         "revocation is final and nothing takes it back"),
    # disclosure to the subscriber (9.4.7) and their correction requests, under dual control
    "disclose records": Act(Admission.OPERATORS, DISCLOSURE_WHY, people=DISCLOSURE_PEOPLE, personal_data=True),
    "disclose correct": by(R.RECEPTIONIST, why="9.4.7.2, 5.2.1 (3): the receptionist receives the request after "
                           "the identity check", personal_data=True),
    "disclose review": by(R.REVIEWER, why="9.4.7.2, 5.2.1 (4): reviewed by another person"),
    "disclose decide": by(R.CA_ADMINISTRATOR, why="9.4.7.2, 5.2.1 (1): 認証業務情報訂正等請求に対する対応の管理; "
                          "a third person"),
    "disclose corrections": by(R.RECEPTIONIST, R.REVIEWER, R.CA_ADMINISTRATOR, why="the queue of correction requests"),
    # CRLs and ARLs
    "crl issue": by(R.SENIOR_OPERATOR, R.OPERATOR, why="5.2.1 (6), (7): CA key use by the operators"),
    "crl import-history": by(R.SENIOR_OPERATOR, people=2,
                             why=f"5.2.1 (6): revocation records the CA key will sign (no HSM act, so not the key "
                                 f"managers'); {SENIOR_PAIR}"),
    "crl list": open_("numbers and dates of lists already published"),
    "crl show": by(*STAFF, why="entries carry reasons, which only verifiers may see (2.4)"),
    # the database schema
    "db grant": system("installation: PostgreSQL roles per service"),
    "db upgrade": system("installation: schema migrations, before any operator can exist"),
    # the HSM
    "hsm activate": Act(Admission.SHARES, "6.2.8: M of N key managers present their shares"),
    "hsm deactivate": Act(Admission.HSM, "6.2.9: several key managers; the HSM service checks their "
                          "passwords itself"),
    "hsm status": open_("activated or not, and how many shares are still needed"),
    "init": Act(Admission.CEREMONY, "6.1.1: the key ceremony creates the keys and the first officers"),
    # OCSP responder keys are CA private keys in the seed's sense (5.2.1 (2))
    "ocsp key-file": key_managers("5.2.1 (2): OCSP responder keys are the key managers'"),
    "ocsp renew": key_managers("5.2.1 (2), 6.3.2: a responder key/certificate is made with the CA key"),
    # operators (5.2.4 (3): the senior operator registers staff; a second person approves)
    # (ca.officers: approvals, role exclusivity, password age; docs/officers.md)
    "operator add": Act(Admission.OPERATORS, "5.2.4 (3), 5.2.2: registered by a senior operator, "
                        "approved by a second person", people=STAFF_CHANGE),
    "operator approve": key_managers("transition (issue 13): an account from before revision 0007 was made by "
                                     "one person alone; the key managers, whom the key ceremony made, adopt it"),
    "operator disable": by(R.SENIOR_OPERATOR, R.CA_ADMINISTRATOR,
                           why="5.2.4 (2), (3): protective, so one person may stop an account at once"),
    "operator enable": Act(Admission.OPERATORS, "5.2.4 (3), 5.2.2: as registering it", people=STAFF_CHANGE),
    "operator grant": Act(Admission.OPERATORS, "5.2.4 (3), 5.2.2: authority given by a senior operator, "
                          "approved by a second person", people=STAFF_CHANGE),
    "operator list": by(R.SENIOR_OPERATOR, R.CA_ADMINISTRATOR, R.INTERNAL_AUDITOR,
                        why="staff names are personal data of the staff"),
    "operator passwd": Act(Admission.OPERATORS, "5.2.3: each person changes their own password periodically",
                           people=(frozenset(Role),), allows_expired_password=True),
    "operator revoke-role": Act(Admission.OPERATORS, "5.2.4 (3), 5.2.2: as granting it", people=STAFF_CHANGE),
    # RA terminals at municipal windows
    "ra add": Act(Admission.OPERATORS, f"5.2.4 (3): registration of equipment; {SENIOR_PAIR}; 5.2.1 (2): the "
                  "bridge CA key signs its certificate, in the key managers' ceremony session",
                  people=(_roles(R.SENIOR_OPERATOR),) * 2, key_managers=True),
    "ra disable": by(R.SENIOR_OPERATOR, R.CA_ADMINISTRATOR,
                     why="5.2.1 (1), 5.2.4 (3): protective, so one person stops a lost or stolen terminal at once"),
    "ra scope": by(R.SENIOR_OPERATOR, people=2, why=f"5.2.4 (3): which CAs a terminal acts for; {SENIOR_PAIR}"),
    "ra list": by(*STAFF, why="operation"),
    # reports (5.2.1 (1): the CA administrator makes and publishes the provision status report)
    "report provision": by(R.CA_ADMINISTRATOR, why="5.2.1 (1), 9.3.3: 失効情報等の提供状況報告書の作成と公示"),
    # the repository
    "repository fetches": by(*STAFF, R.INTERNAL_AUDITOR, why="who read what, per verifier"),
    "repository mirror-config": system("slapd's configuration, written by root on a provider host"),
    "repository publish": by(R.SENIOR_OPERATOR, R.OPERATOR, why="5.2.1 (6): repository operation"),
    "repository queue": by(*STAFF, why="operation"),
    "repository start": system("the slapd service, run by the service manager"),
    "repository status": open_("whether slapd runs"),
    "repository stop": system("the slapd service, run by the service manager"),
    # dual control for CA-level certificates (5.2.1 (3)-(5)); the workflow keeps the three apart
    "revocation approve": by(R.APPROVER, why="5.2.1 (5)"),
    "revocation file": by(R.RECEPTIONIST, why="5.2.1 (3)"),
    "revocation pending": by(R.RECEPTIONIST, R.REVIEWER, R.APPROVER, why="the queue of dual control"),
    "revocation review": by(R.REVIEWER, why="5.2.1 (4)"),
    # services
    "run": system("the whole service on one machine, started by root"),
    "serve cvs": system("a service, run by the service manager as its own identity"),
    "serve hsm": system("a service, run by the service manager as its own identity"),
    "serve ocsp": system("a service, run by the service manager as its own identity"),
    "serve ocsp-signer": system("a service, run by the service manager as the OCSP identity"),
    "serve publisher": system("a service, run by the service manager as its own identity"),
    "serve ra": system("a service, run by the service manager as its own identity"),
    "serve scheduler": system("a service, run by the service manager as its own identity"),
    "serve status": system("a service, run by the service manager as its own identity"),
    "serve tsa": system("a service, run by the service manager as its own identity"),
    "serve web": system("a service, run by the service manager as its own identity"),
    "status": open_("health only: no personal data"),
    # the HTTPS servers' certificate (ca.cli.tls_cmds)
    "tls issue": key_managers("5.2.1 (2): the bridge CA key signs the RA's and OCSP's TLS certificate"),
    # the time-stamp authority
    "tsa certificate": key_managers("5.2.1 (2): a key generated in the HSM"),
    "tsa stamp": by(*STAFF, why="the TSA key signs"),
    "tsa verify": open_("checks a token against public certificates"),
    # registered verifiers (repository settings, 5.2.1 (6))
    "verifier add": Act(Admission.OPERATORS, f"5.2.1 (6): repository settings; {SENIOR_PAIR}; 5.2.1 (2): the "
                        "bridge CA key signs its certificate, in the key managers' ceremony session",
                        people=(_roles(R.SENIOR_OPERATOR),) * 2, key_managers=True),
    "verifier list": by(*STAFF, why="repository settings"),
    "verifier remove": by(R.SENIOR_OPERATOR, people=2, why=f"5.2.1 (6): repository settings; {SENIOR_PAIR}"),
    # the public web repository (2.2, 2.3, 9.3.3)
    "web build": open_("writes the public pages: only what 2.2 and 9.3.3 publish to everyone, changes nothing"),
}


# --- the table in docs/roles.md ---------------------------------------------------------------

_NOT_BY_LOGIN = {
    Admission.OPEN: ("anyone", "-"),
    Admission.SYSTEM: ("root or the service manager (no person)", "-"),
    Admission.CEREMONY: ("the key ceremony (refused once officers exist)", "-"),
    Admission.SHARES: ("M × key-manager (their activation shares, no password)", "M"),
    Admission.HSM: ("M × key-manager (passwords checked by the HSM service)", "M"),
    Admission.NOBODY: ("no one, whatever the logins", "-"),
}


def who(act: Act) -> tuple[str, str]:
    """(the people, one entry per person; how many) as docs/roles.md shows them."""
    if act.admission is not Admission.OPERATORS:
        return _NOT_BY_LOGIN[act.admission]
    entries = ["any role" if slot == frozenset(Role) else " or ".join(sorted(r.value for r in slot))
               for slot in act.people]
    counted = [f"{entries.count(entry)} × {entry}" if entries.count(entry) > 1 else entry
               for entry in dict.fromkeys(entries)]
    if act.key_managers:
        counted.append("M × key-manager")
    count = " + ".join(([str(len(act.people))] if act.people else []) + (["M"] if act.key_managers else []))
    return "; ".join(counted), count


def markdown_table() -> str:
    """Every command's row of ACTS as a Markdown table (docs/roles.md embeds it; a test keeps the two equal)."""
    lines = ["| command | admission | who (one entry per person) | people | personal data | why (seed 004) |",
             "|---|---|---|---|---|---|"]
    for path in sorted(ACTS):
        act = ACTS[path]
        people, count = who(act)
        cells = [f"`revoca {path}`", act.admission.value, people, count, "yes" if act.personal_data else "",
                 act.why]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


DOC_BEGIN = "<!-- roles table: generated by ca.cli.acts.markdown_table(); do not edit by hand -->\n"
DOC_END = "<!-- end of roles table -->\n"


def with_table(doc: str) -> str:
    """`doc` (docs/roles.md) with the table between its markers rendered from ACTS again."""
    head, rest = doc.split(DOC_BEGIN, 1)
    return head + DOC_BEGIN + markdown_table() + DOC_END + rest.split(DOC_END, 1)[1]


def rewrite_doc(path: str = "docs/roles.md") -> None:
    """Write the table into docs/roles.md again, after changing a row:
    `python -c 'from ca.cli.acts import rewrite_doc; rewrite_doc()'` (tests/unit/test_roles_doc.py checks it)."""
    from pathlib import Path

    doc = Path(path)
    doc.write_text(with_table(doc.read_text(encoding="utf-8")), encoding="utf-8")
