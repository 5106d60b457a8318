"""Role exclusivity (ca.officers.exclusivity): the table of seed 004 5.2.1, 5.2.4, 6.5.1 and seed
003 3.2.4, read as one person's set of roles."""

from __future__ import annotations

import itertools

import pytest

from ca.enums import Role
from ca.errors import InvalidInput
from ca.officers.exclusivity import RULES, Rule, check, conflicts, excluded_by

R = Role


@pytest.mark.parametrize("role", list(Role))
def test_any_single_role_is_allowed(role: Role) -> None:
    assert conflicts([role]) == []
    check("someone", [role])


@pytest.mark.parametrize("other", sorted(set(Role) - {R.INTERNAL_AUDITOR}))
def test_the_internal_auditor_holds_no_other_role(other: Role) -> None:
    [found] = conflicts([R.INTERNAL_AUDITOR, other])
    assert {found.rule.role, found.other} == {R.INTERNAL_AUDITOR, other}


@pytest.mark.parametrize("other", sorted(set(Role) - {R.CA_ADMINISTRATOR}))
def test_the_ca_administrator_holds_no_other_role(other: Role) -> None:
    assert conflicts([R.CA_ADMINISTRATOR, other])


@pytest.mark.parametrize("other", [R.RECEPTIONIST, R.REVIEWER, R.APPROVER])
def test_a_key_manager_takes_no_part_in_dual_control(other: Role) -> None:
    [found] = conflicts([R.KEY_MANAGER, other])
    assert "5.2.1 (2)-(5)" in found.rule.section


@pytest.mark.parametrize("pair", [(R.RECEPTIONIST, R.REVIEWER), (R.RECEPTIONIST, R.APPROVER), (R.REVIEWER, R.APPROVER)])
def test_the_three_stages_of_dual_control_are_three_people(pair: tuple[Role, Role]) -> None:
    assert len(conflicts(pair)) == 1


@pytest.mark.parametrize("roles", [
    (R.SENIOR_OPERATOR, R.OPERATOR), (R.KEY_MANAGER, R.SENIOR_OPERATOR), (R.KEY_MANAGER, R.OPERATOR),
    (R.RECEPTIONIST, R.OPERATOR), (R.REVIEWER, R.SENIOR_OPERATOR), (R.APPROVER, R.OPERATOR)])
def test_combinations_no_rule_forbids_are_allowed(roles: tuple[Role, ...]) -> None:
    assert conflicts(roles) == []


def test_a_pair_named_by_two_rules_is_reported_once() -> None:
    found = conflicts([R.INTERNAL_AUDITOR, R.CA_ADMINISTRATOR])
    assert len(found) == 1 and found[0].rule.role is R.INTERNAL_AUDITOR


def test_every_conflict_of_a_set_is_found() -> None:
    found = conflicts([R.KEY_MANAGER, R.RECEPTIONIST, R.REVIEWER])
    assert {frozenset({c.rule.role, c.other}) for c in found} == {
        frozenset({R.KEY_MANAGER, R.RECEPTIONIST}), frozenset({R.KEY_MANAGER, R.REVIEWER}),
        frozenset({R.RECEPTIONIST, R.REVIEWER})}


def test_check_names_the_conflict_and_its_section_on_one_line() -> None:
    with pytest.raises(InvalidInput) as err:
        check("erin", [R.KEY_MANAGER, R.APPROVER, R.REVIEWER])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("operator erin would hold conflicting roles: key-manager cannot be held together "
                              "with approver")
    assert "(seed 004 5.2.1 (2)-(5), 5.2.4 (1))" in message and "(and 2 more)" in message


def test_conflicts_are_symmetric() -> None:
    for a, b in itertools.permutations(Role, 2):
        assert bool(conflicts([a, b])) == bool(conflicts([b, a])) == (b in excluded_by(a)) == (a in excluded_by(b))


def test_every_rule_cites_a_seed_section() -> None:
    assert all(rule.section.startswith("seed 00") and rule.why for rule in RULES)


def test_a_rule_cannot_exclude_its_own_role() -> None:
    with pytest.raises(ValueError):
        Rule(R.REVIEWER, frozenset({R.REVIEWER}), "seed 004 5.2.1", "no")
