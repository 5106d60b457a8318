"""The HSM's multi-person acts as rows of the login table and rules of the signer (issue 13):
deactivation is checked by the HSM service itself, key destruction needs M key managers, and a
destroyed key signs nothing for anyone."""

from __future__ import annotations

import click
import pytest

from ca.cli import cli
from ca.cli.acts import ACTS, Admission
from ca.errors import PermissionDenied
from ca.hsm.policy import Caller, Signed, SigningPolicy


def test_destroy_key_needs_m_key_managers_and_nobody_else() -> None:
    act = ACTS["ca destroy-key"]
    assert act.admission is Admission.OPERATORS and act.key_managers and act.people == ()
    assert "6.2.10" in act.why


def test_deactivation_is_admitted_by_the_hsm_service_itself() -> None:
    assert ACTS["hsm deactivate"].admission is Admission.HSM
    assert not ACTS["hsm deactivate"].needs_login


def _command(*path: str) -> click.Command:
    ctx = click.Context(cli, info_name="revoca")
    command: click.Command | None = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.get_command(ctx, name)
    assert command is not None
    return command


def test_the_gate_leaves_the_deactivation_logins_to_the_command() -> None:
    options = {p.name: p for p in _command("hsm", "deactivate").params}
    assert "logins" not in options  # the gate added nothing
    key_managers = options["key_managers"]
    assert isinstance(key_managers, click.Option) and key_managers.multiple and key_managers.required


def test_the_gate_logs_in_the_key_managers_of_destroy_key() -> None:
    names = {p.name for p in _command("ca", "destroy-key").params}
    assert {"logins", "ca_name", "key_ref"} <= names


@pytest.mark.parametrize("caller", list(Caller))
@pytest.mark.parametrize("signed", [Signed.CRL, Signed.CERTIFICATE, Signed.OCSP_RESPONSE, Signed.CRL_DIGEST])
def test_a_destroyed_key_signs_nothing_for_anyone(caller: Caller, signed: Signed) -> None:
    policy = SigningPolicy(ocsp_ca_keys=True).with_destroyed(["ca/tokyo/1/abcd"])
    with pytest.raises(PermissionDenied, match=r"key ca/tokyo/1/abcd was destroyed"):
        policy.check(caller, signed, "ca/tokyo/1/abcd")


def test_other_keys_are_judged_as_before() -> None:
    policy = SigningPolicy().with_destroyed(["ca/tokyo/1/abcd"])
    policy.check(Caller.ADMIN, Signed.CERTIFICATE, "ca/tokyo/2/ef01")
    policy.check(Caller.SCHEDULER, Signed.CRL, "ca/tokyo/2/ef01")
    with pytest.raises(PermissionDenied, match="may not sign"):
        policy.check(Caller.OCSP, Signed.CRL, "ca/tokyo/2/ef01")
    assert policy.with_destroyed(["x"]).destroyed == {"ca/tokyo/1/abcd", "x"}
