"""Roles one person may not hold together: separation of duties (seed 004 5.2.4 (1): duties are
separated and the facility is run by several people, each given their own authority; 6.5.1: the
system enforces it with access control over identified staff).

One table, RULES: a role and the roles its holder may not also hold, with the seed section.
A conflict is symmetric (the key manager may not be a reviewer, so the reviewer may not be a key
manager); `conflicts` finds every pair a set of roles breaks.  `revoca operator add` and
`revoca operator grant` refuse a set of roles with a conflict, and so does `revoca operator
approve` for an account made before these rules; docs/officers.md shows the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ca.enums import Role
from ca.errors import InvalidInput

R = Role
EVERY_ROLE = frozenset(Role)


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    role: Role
    excludes: frozenset[Role]
    section: str  # where the seeds say so
    why: str

    def __post_init__(self) -> None:
        if self.role in self.excludes:
            raise ValueError(f"{self.role} cannot exclude itself")
        if not self.excludes:
            raise ValueError(f"a rule for {self.role} must exclude at least one role")


RULES: tuple[Rule, ...] = (
    Rule(R.INTERNAL_AUDITOR, EVERY_ROLE - {R.INTERNAL_AUDITOR}, "seed 004 5.2.1 (8), 5.2.4 (1)",
         "the internal auditor inspects the audit log of everyone's acts and deletes audited logs; "
         "nobody audits their own acts"),
    Rule(R.CA_ADMINISTRATOR, EVERY_ROLE - {R.CA_ADMINISTRATOR}, "seed 004 5.2.1 (1), 5.2.4 (2); seed 003 3.2.4",
         "the CA administrator directs the officers' important work, checks its results and approves "
         "their registration; the one in charge holds no other role"),
    Rule(R.KEY_MANAGER, frozenset({R.RECEPTIONIST, R.REVIEWER, R.APPROVER}), "seed 004 5.2.1 (2)-(5), 5.2.4 (1)",
         "those who operate the CA keys in the HSM do not also decide which CA-level certificates are revoked"),
    Rule(R.RECEPTIONIST, frozenset({R.REVIEWER, R.APPROVER}), "seed 004 5.2.1 (3)-(5)",
         "a CA-level revocation is received, reviewed and approved by three different people"),
    Rule(R.REVIEWER, frozenset({R.APPROVER}), "seed 004 5.2.1 (4), (5)",
         "the approver approves the reviewer's review: two people"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Conflict:
    """Two roles one person holds against `rule`."""

    rule: Rule
    other: Role

    def line(self) -> str:
        return f"{self.rule.role} cannot be held together with {self.other}: {self.rule.why} ({self.rule.section})"


def conflicts(roles: Iterable[Role]) -> list[Conflict]:
    """Every pair of roles in one person's set that a rule forbids, each pair once, in table order
    (empty: none)."""
    held = frozenset(roles)
    found: list[Conflict] = []
    seen: set[frozenset[Role]] = set()
    for rule in RULES:
        if rule.role not in held:
            continue
        for other in sorted(held & rule.excludes):
            if (pair := frozenset({rule.role, other})) not in seen:
                seen.add(pair)
                found.append(Conflict(rule, other))
    return found


def check(name: str, roles: Iterable[Role]) -> None:
    """InvalidInput naming the first conflict when `name` would hold `roles`."""
    found = conflicts(roles)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise InvalidInput(f"operator {name} would hold conflicting roles: {found[0].line()}{more}; "
                           "give that role to another person")


def excluded_by(role: Role) -> frozenset[Role]:
    """The roles a holder of `role` may not also hold, whichever side of a rule names them."""
    out: set[Role] = set()
    for rule in RULES:
        if rule.role is role:
            out |= rule.excludes
        elif role in rule.excludes:
            out.add(rule.role)
    return frozenset(out)
