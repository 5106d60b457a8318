"""When an account counts as a person of its own (seed 004 5.2.2: key managers and senior operators
act in numbers; 5.2.4 (3): the senior operator registers the staff, under the procedure).

An act of several people is only worth its number if each account is a different person.  An
account counts for such an act when a second person approved its creation (`revoca operator add`
needs a senior operator and a second, different senior operator or CA administrator) or the key
ceremony made it.  Accounts from before revision 0007, which one person could create alone, are
not approved: they still log in for acts of one person, and `revoca operator approve` adopts them.

Nobody takes part in changing their own account: an operator is never one of the people who
add, grant, revoke a role of, enable or approve themself.
"""

from __future__ import annotations

from collections.abc import Sequence

from ca.enums import Role
from ca.errors import PermissionDenied


def check_counts(name: str, *, approved: bool, people: int) -> None:
    """PermissionDenied when an act of `people` (2 or more) people would count an unapproved account."""
    if people >= 2 and not approved:
        raise PermissionDenied(
            f"operator {name}'s account was never approved by a second person, so it cannot be one of the "
            f"{people} people this act needs; have it adopted with `revoca operator approve {name}` "
            "(see `revoca operator list`)")


def check_not_self(name: str, people: Sequence[str]) -> None:
    """PermissionDenied when `name` is among the people changing `name`'s account."""
    if name in people:
        raise PermissionDenied(f"operator {name} cannot take part in changing their own account; "
                               "two other people must do it")


def registrar_and_approver(people: Sequence[tuple[str, frozenset[Role]]]) -> tuple[str, str]:
    """Of the two people of a staff change (a senior operator, then a second senior operator or CA
    administrator, in any order on the command line): (who registers, who approves).  The login gate
    has matched them to those slots already."""
    if len(people) != 2:
        raise ValueError(f"a staff change is made by two people, not {len(people)}")
    (first, first_roles), (second, second_roles) = people
    if Role.SENIOR_OPERATOR in first_roles and second_roles & {Role.SENIOR_OPERATOR, Role.CA_ADMINISTRATOR}:
        return first, second
    if Role.SENIOR_OPERATOR in second_roles and first_roles & {Role.SENIOR_OPERATOR, Role.CA_ADMINISTRATOR}:
        return second, first
    raise PermissionDenied("a staff change needs a senior operator and a second senior operator or CA administrator")
