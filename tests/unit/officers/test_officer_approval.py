"""Approval (ca.officers.approval): who counts as a person in acts of several people, and that
nobody takes part in changing their own account."""

from __future__ import annotations

import pytest

from ca.enums import Role
from ca.errors import PermissionDenied
from ca.officers.approval import check_counts, check_not_self, registrar_and_approver

R = Role


def test_an_unapproved_account_counts_for_acts_of_one_person_only() -> None:
    check_counts("old", approved=False, people=1)
    check_counts("new", approved=True, people=3)
    with pytest.raises(PermissionDenied, match=r"old's account was never approved .* one of the 2 people .*"
                                               r"`revoca operator approve old`"):
        check_counts("old", approved=False, people=2)


def test_nobody_is_among_the_people_changing_their_own_account() -> None:
    check_not_self("ann", ["bob", "cy"])
    with pytest.raises(PermissionDenied, match="ann cannot take part in changing their own account"):
        check_not_self("ann", ["bob", "ann"])


@pytest.mark.parametrize(("people", "expected"), [
    ((("s1", {R.SENIOR_OPERATOR}), ("s2", {R.SENIOR_OPERATOR})), ("s1", "s2")),
    ((("s1", {R.SENIOR_OPERATOR}), ("a", {R.CA_ADMINISTRATOR})), ("s1", "a")),
    ((("a", {R.CA_ADMINISTRATOR}), ("s1", {R.SENIOR_OPERATOR})), ("s1", "a")),
])
def test_the_senior_operator_registers_and_the_other_approves(people: tuple[tuple[str, set[Role]], ...],
                                                              expected: tuple[str, str]) -> None:
    assert registrar_and_approver([(n, frozenset(r)) for n, r in people]) == expected


def test_a_staff_change_without_a_senior_operator_is_refused() -> None:
    with pytest.raises(PermissionDenied):
        registrar_and_approver([("a", frozenset({R.CA_ADMINISTRATOR})), ("b", frozenset({R.CA_ADMINISTRATOR}))])
