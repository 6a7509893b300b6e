"""Password hashing (Argon2id) and the password policy."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from intellipost.user.config import UserConfig


@dataclass(frozen=True, slots=True)
class PolicyViolation:
    rule: str
    message: str


def policy_violations(password: str, config: UserConfig) -> list[PolicyViolation]:
    """Every rule of the configured policy that ``password`` breaks (empty when it is fine)."""
    found: list[PolicyViolation] = []
    if len(password) < config.password_min_length:
        found.append(
            PolicyViolation(
                "min_length", f"must be at least {config.password_min_length} characters long"
            )
        )
    if config.password_require_uppercase and not any(c.isupper() for c in password):
        found.append(PolicyViolation("uppercase", "must contain an uppercase letter"))
    if config.password_require_lowercase and not any(c.islower() for c in password):
        found.append(PolicyViolation("lowercase", "must contain a lowercase letter"))
    if config.password_require_digit and not any(c.isdigit() for c in password):
        found.append(PolicyViolation("digit", "must contain a digit"))
    if config.password_require_special and not any(
        not c.isalnum() and not c.isspace() for c in password
    ):
        found.append(PolicyViolation("special", "must contain a symbol (such as ! ? # or %)"))
    return found


class Passwords:
    """Argon2id with the configured cost; the hashing runs off the event loop.

    ``verify_dummy`` spends the same work as a real check, so an unknown email costs a
    login attempt as much time as a wrong password does.
    """

    def __init__(self, config: UserConfig) -> None:
        self.hasher = PasswordHasher(
            time_cost=config.argon2_time_cost,
            memory_cost=config.argon2_memory_cost_kib,
            parallelism=config.argon2_parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(24))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

    async def verify_dummy(self, password: str) -> None:
        await asyncio.to_thread(self._verify, self._dummy_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the configured ones."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
