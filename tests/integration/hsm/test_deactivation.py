"""Deactivation of the HSM by M key managers (seed 004 6.2.9, 5.2.2; issue 13).

The HSM service is the trust boundary: `revoca hsm deactivate --operator A --operator B` reads the
passwords in order and sends them, and the service checks that they are M different key managers
(M = the active share set's threshold, 2 in the demo) whose passwords match.  Every failure gets
the same answer; the audit record says which it was.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from ca.errors import NotActivated, PermissionDenied
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent

from support.hsm_service import RunningHSM
from support.tools import revoca

REFUSED = r"^deactivation refused: it needs 2 different key managers, each with their own password"


def _ca_label(hsm: RunningHSM) -> str:
    from ca.storage.store import ReadStore

    with session_scope(hsm.engine, readonly=True) as s:
        store = ReadStore(s)
        return store.current_key(store.ca("tokyo")).key_label  # type: ignore[return-value]


def _deactivations(hsm: RunningHSM) -> list[tuple[str, str, dict[str, object]]]:
    with session_scope(hsm.engine, readonly=True) as s:
        return [(e.result, e.actor, json.loads(e.detail)) for e in s.scalars(
            sa.select(AuditEvent).where(AuditEvent.event_type == "hsm.deactivated").order_by(AuditEvent.id))]


@pytest.mark.parametrize("hsm", ["sqlite", "postgresql"], indirect=True)
def test_m_different_key_managers_deactivate_and_it_is_audited(hsm: RunningHSM) -> None:
    signer = hsm.client.signer(_ca_label(hsm))
    signer.sign(b"x")
    status = hsm.client.deactivate([("keymanager3", hsm.password("keymanager3")),
                                    ("keymanager1", hsm.password("keymanager1"))])
    assert (status["activated"], status["needed"]) == (False, 2)
    with pytest.raises(NotActivated, match="2 more"):
        signer.sign(b"x")
    assert _deactivations(hsm)[-1] == ("success", "keymanager3+keymanager1",
                                       {"key_managers": ["keymanager3", "keymanager1"]})


def test_m_minus_one_key_managers_are_refused(hsm: RunningHSM) -> None:
    with pytest.raises(PermissionDenied, match=REFUSED):
        hsm.client.deactivate([("keymanager2", hsm.password("keymanager2"))])
    assert hsm.client.status()["activated"] is True
    result, actor, detail = _deactivations(hsm)[-1]
    assert (result, actor, detail["error"], detail["needed"]) == (
        "failure", "keymanager2", "1 key manager(s) given, 2 needed", 2)


def test_one_key_manager_named_twice_is_refused(hsm: RunningHSM) -> None:
    password = hsm.password("keymanager1")
    with pytest.raises(PermissionDenied, match=REFUSED):
        hsm.client.deactivate([("keymanager1", password), ("keymanager1", password)])
    assert hsm.client.status()["activated"] is True
    assert _deactivations(hsm)[-1][:2] == ("failure", "keymanager1+keymanager1")
    assert _deactivations(hsm)[-1][2]["error"] == "the same key manager was named twice"


def test_every_failure_gets_the_same_answer(hsm: RunningHSM) -> None:
    """A wrong password, someone who is not a key manager, nobody at all: one message, the reason audited."""
    answers = set()
    for people in ([("keymanager1", hsm.password("keymanager1")), ("keymanager2", "not the password")],
                   [("keymanager1", hsm.password("keymanager1")), ("cast-senior1", "cast-senior1 password")],
                   [("keymanager1", hsm.password("keymanager1")), ("nobody-at-all", "whatever it is")],
                   []):
        with pytest.raises(PermissionDenied) as refused:
            hsm.client.deactivate(people)
        answers.add(str(refused.value))
    assert len(answers) == 1
    assert hsm.client.status()["activated"] is True
    errors = [d["error"] for result, _, d in _deactivations(hsm)[-4:] if result == "failure"]
    assert "wrong password" in str(errors[0])
    assert "does not hold the key-manager role" in str(errors[1])
    assert "unknown, disabled or wrong password" in str(errors[2])
    assert errors[3] == "no key managers given"


def test_a_bare_request_of_the_old_kind_is_refused(hsm: RunningHSM) -> None:
    """One key manager's name and password (what `hsm deactivate` used to send) is not enough."""
    with pytest.raises(PermissionDenied, match=REFUSED):
        hsm.client.call("deactivate", operator="keymanager1", password=hsm.password("keymanager1"))
    assert hsm.client.status()["activated"] is True


# --- the command -----------------------------------------------------------------------------------


def test_the_command_sends_m_key_managers_passwords_in_order(hsm: RunningHSM) -> None:
    code, out, err = revoca(hsm.env(), "hsm", "deactivate", "--operator", "keymanager2", "--operator",
                            "keymanager3", stdin=hsm.passwords("keymanager2", "keymanager3"))
    assert code == 0, err
    assert "not activated; 2 more key manager share(s) needed" in out
    assert _deactivations(hsm)[-1][:2] == ("success", "keymanager2+keymanager3")


@pytest.mark.parametrize("names", [("keymanager1",), ("keymanager1", "keymanager1")], ids=["one", "twice"])
def test_the_command_with_fewer_than_m_key_managers_is_refused(hsm: RunningHSM, names: tuple[str, ...]) -> None:
    logins = [a for name in names for a in ("--operator", name)]
    code, _out, err = revoca(hsm.env(), "hsm", "deactivate", *logins, stdin=hsm.passwords(*names))
    assert code == 8, err
    assert err.startswith("revoca: error: deactivation refused: it needs 2 different key managers") and \
        err.count("\n") == 1, err
    assert hsm.client.status()["activated"] is True


def test_the_command_in_the_wrong_order_of_passwords_is_refused(hsm: RunningHSM) -> None:
    code, _out, err = revoca(hsm.env(), "hsm", "deactivate", "--operator", "keymanager1", "--operator",
                             "keymanager2", stdin=hsm.passwords("keymanager2", "keymanager1"))
    assert code == 8, err
    assert hsm.client.status()["activated"] is True
