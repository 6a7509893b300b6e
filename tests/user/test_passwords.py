"""The password policy settings and Argon2id hashing."""

from __future__ import annotations

from pathlib import Path

import pytest

from intellipost.user.config import UserConfig
from intellipost.user.passwords import Passwords, policy_violations
from tests.user.conftest import FAST_ARGON2


def config(tmp_path: Path, **overrides: object) -> UserConfig:
    settings: dict[str, object] = {"var_dir": tmp_path, **FAST_ARGON2, **overrides}
    return UserConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _isolated(isolated_env: Path) -> None:
    pass


def rules(password: str, cfg: UserConfig) -> list[str]:
    return [v.rule for v in policy_violations(password, cfg)]


def test_every_broken_rule_is_reported_at_once(tmp_path: Path) -> None:
    assert rules("", config(tmp_path)) == [
        "min_length",
        "uppercase",
        "lowercase",
        "digit",
        "special",
    ]
    assert rules("Corr3ct-Horse!", config(tmp_path)) == []


@pytest.mark.parametrize(
    ("setting", "rule", "password"),
    [
        ("password_require_uppercase", "uppercase", "lower-case-0nly"),
        ("password_require_lowercase", "lowercase", "UPPER-CASE-0NLY"),
        ("password_require_digit", "digit", "No-Digits-Here"),
        ("password_require_special", "special", "NoSymbols1Here"),
    ],
)
def test_each_require_flag_adds_or_removes_its_rule(
    tmp_path: Path, setting: str, rule: str, password: str
) -> None:
    assert rules(password, config(tmp_path)) == [rule]
    assert rules(password, config(tmp_path, **{setting: False})) == []


def test_min_length_comes_from_the_settings(tmp_path: Path) -> None:
    assert rules("Ab1!xyz", config(tmp_path)) == ["min_length"]
    assert rules("Ab1!xyz", config(tmp_path, password_min_length=6)) == []
    [violation] = policy_violations("Ab1!xyz", config(tmp_path, password_min_length=12))
    assert "12" in violation.message


def test_a_space_is_not_a_symbol_but_any_punctuation_is(tmp_path: Path) -> None:
    assert rules("Has Space 123", config(tmp_path)) == ["special"]
    assert rules("Ñandú·Río9", config(tmp_path)) == []


async def test_hashes_are_argon2id_with_the_configured_cost(tmp_path: Path) -> None:
    passwords = Passwords(
        config(tmp_path, argon2_time_cost=2, argon2_memory_cost_kib=2048, argon2_parallelism=2)
    )
    hashed = await passwords.hash("Corr3ct-Horse!")
    assert hashed.startswith("$argon2id$v=19$m=2048,t=2,p=2$")
    assert await passwords.verify(hashed, "Corr3ct-Horse!")
    assert not await passwords.verify(hashed, "corr3ct-Horse!")
    assert not passwords.needs_rehash(hashed)


async def test_a_hash_with_other_parameters_needs_a_rehash(tmp_path: Path) -> None:
    old = await Passwords(config(tmp_path)).hash("Corr3ct-Horse!")
    stronger = Passwords(config(tmp_path, argon2_time_cost=2))
    assert stronger.needs_rehash(old)
    assert await stronger.verify(old, "Corr3ct-Horse!")  # still verifies until upgraded


async def test_a_corrupt_hash_fails_verification_instead_of_raising(tmp_path: Path) -> None:
    passwords = Passwords(config(tmp_path))
    assert not await passwords.verify("not-a-hash", "Corr3ct-Horse!")
    assert passwords.needs_rehash("not-a-hash")
