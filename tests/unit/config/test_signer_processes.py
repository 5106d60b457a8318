"""`[hsm] signer_processes`: how many processes of the HSM service sign (ca.hsm.pool; issue 16)."""

from __future__ import annotations

import os

import pytest

from ca.config import load_settings, settings_from_dict
from ca.errors import ConfigError


def test_the_default_is_one_process_per_cpu() -> None:
    hsm = settings_from_dict({}).hsm
    assert hsm.signer_processes == 0
    assert hsm.signer_pool_size == len(os.sched_getaffinity(0))


def test_one_signs_in_the_service_itself_and_a_number_is_kept() -> None:
    assert settings_from_dict({"hsm": {"signer_processes": 1}}).hsm.signer_pool_size == 1
    assert settings_from_dict({"hsm": {"signer_processes": 6}}).hsm.signer_pool_size == 6


def test_the_environment_sets_it() -> None:
    assert load_settings(env={"REVOCA_HSM_SIGNER_PROCESSES": "3"}).hsm.signer_pool_size == 3


@pytest.mark.parametrize("value", [-1, 257, "4", True, 2.5])
def test_anything_else_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="hsm.signer_processes must be a number from 0"):
        settings_from_dict({"hsm": {"signer_processes": value}})
