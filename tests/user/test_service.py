"""The user service's rules on a real database, SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import jwt
import pytest
from alembic import command
from sqlalchemy import func, inspect, select

from intellipost.shared.errors import ProblemError
from intellipost.user.models import RefreshToken, User
from intellipost.user.repository import Repository
from intellipost.user.service import IssuedTokens
from tests.user.conftest import GOOD_PASSWORD, Stack


def email() -> str:
    return f"ana.{uuid.uuid4().hex[:8]}@example.com"


async def register(stack: Stack, address: str | None = None, password: str = GOOD_PASSWORD) -> str:
    address = address or email()
    await stack.service.register(address, password, "Ana", "Díaz")
    return address


async def login(stack: Stack, address: str, password: str = GOOD_PASSWORD, **kw: Any) -> Any:
    return await stack.service.login(address, password, remember_me=kw.get("remember_me", False))


def claims(stack: Stack, tokens: IssuedTokens) -> dict[str, Any]:
    return jwt.decode(
        tokens.access_token,
        stack.keyring.signing_key.public_key(),
        algorithms=[stack.keyring.alg],
        audience="intellipost",
        issuer="intellipost-user",
    )


async def users_named(stack: Stack, address: str) -> list[User]:
    async with stack.database.session() as session:
        return list((await session.execute(select(User).where(User.email == address))).scalars())


async def family(stack: Stack, family_id: str) -> list[RefreshToken]:
    async with stack.database.session() as session:
        rows = await session.execute(
            select(RefreshToken).where(RefreshToken.family_id == uuid.UUID(family_id))
        )
        return list(rows.scalars())


async def refused(awaitable: Any) -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        await awaitable
    return caught.value


# --- registration ------------------------------------------------------------------------


async def test_register_normalises_the_email_and_keeps_only_an_argon2id_hash(stack: Stack) -> None:
    local = uuid.uuid4().hex[:8]
    user = await stack.service.register(f"  Ana.{local}@Example.COM ", GOOD_PASSWORD, "Ana", "Díaz")
    assert user.email == f"ana.{local}@example.com"
    [stored] = await users_named(stack, user.email)
    assert stored.password_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert GOOD_PASSWORD not in stored.password_hash


async def test_the_same_email_in_another_case_is_a_409_and_adds_nobody(stack: Stack) -> None:
    address = await register(stack)
    problem = await refused(register(stack, f" {address.upper()} "))
    assert problem.status == 409
    assert problem.type.endswith("/email-taken")
    assert len(await users_named(stack, address)) == 1


async def test_concurrent_registrations_of_one_email_create_one_account(stack: Stack) -> None:
    address = email()
    results = await asyncio.gather(
        *(register(stack, address) for _ in range(4)), return_exceptions=True
    )
    conflicts = [r for r in results if isinstance(r, ProblemError)]
    assert len(conflicts) == 3
    assert all(c.status == 409 for c in conflicts)
    assert len(await users_named(stack, address)) == 1


async def test_register_lists_every_broken_rule_in_one_422_and_stores_nothing(
    stack: Stack,
) -> None:
    problem = await refused(stack.service.register("not-an-email", "short", "Ana", "Díaz"))
    assert problem.status == 422
    errors = problem.extra["errors"]
    assert {(e["field"], e["type"]) for e in errors} == {
        ("email", "email"),
        ("password", "password_policy.min_length"),
        ("password", "password_policy.uppercase"),
        ("password", "password_policy.digit"),
        ("password", "password_policy.special"),
    }
    assert "short" not in str(problem.extra)
    assert await users_named(stack, "not-an-email") == []


async def test_registration_can_be_closed(stack: Stack) -> None:
    closed = stack.variant(registration_enabled=False)
    address = email()
    problem = await refused(closed.register(address, GOOD_PASSWORD, "Ana", "Díaz"))
    assert problem.status == 403
    assert await users_named(stack, address) == []


def test_registration_is_open_by_default_except_in_production() -> None:
    from intellipost.user.config import UserConfig

    assert UserConfig(environment="development").registration_open
    assert UserConfig(environment="staging").registration_open
    production = UserConfig.model_construct(environment="production", registration_enabled=None)
    assert not production.registration_open
    opened = UserConfig.model_construct(environment="production", registration_enabled=True)
    assert opened.registration_open


# --- sign-in -----------------------------------------------------------------------------


async def test_login_gives_a_signed_access_token_and_an_opaque_256_bit_refresh_token(
    stack: Stack,
) -> None:
    address = await register(stack)
    tokens = await login(stack, address)
    header = jwt.get_unverified_header(tokens.access_token)
    assert header["kid"] == stack.keyring.kid
    assert header["alg"] == "EdDSA"
    body = claims(stack, tokens)
    assert set(body) >= {"iss", "aud", "sub", "exp", "iat", "jti", "sid"}
    assert body["sub"] == str(tokens.user_id)
    assert body["exp"] - body["iat"] == stack.config.jwt_expire_minutes * 60
    assert tokens.expires_in == stack.config.jwt_expire_minutes * 60
    assert len(tokens.refresh_token) >= 43  # 32 random bytes, base64url
    [row] = await family(stack, body["sid"])
    # Only the hash is stored.
    assert row.token_hash == hashlib.sha256(tokens.refresh_token.encode()).hexdigest()
    assert tokens.refresh_token not in {row.token_hash, str(row.id), str(row.family_id)}


async def test_login_normalises_the_email_like_registration(stack: Stack) -> None:
    address = await register(stack)
    tokens = await login(stack, f"  {address.upper()}")
    assert claims(stack, tokens)["sub"] == str(tokens.user_id)


async def test_unknown_email_and_wrong_password_fail_alike_with_the_same_work(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = await register(stack)
    passwords = stack.service.passwords
    checks: list[str] = []
    real_verify = passwords._verify

    def counting(password_hash: str, password: str) -> bool:
        checks.append(password_hash)
        return real_verify(password_hash, password)

    monkeypatch.setattr(passwords, "_verify", counting)
    wrong_password = await refused(login(stack, address, "Wrong-passw0rd!"))
    unknown_email = await refused(login(stack, email(), "Wrong-passw0rd!"))
    assert (wrong_password.status, wrong_password.detail, wrong_password.headers) == (
        unknown_email.status,
        unknown_email.detail,
        unknown_email.headers,
    )
    assert wrong_password.status == 401
    # Each answer cost one full Argon2id verification (the unknown email: a dummy hash
    # with the same parameters), so neither answers faster.
    assert len(checks) == 2
    assert all(h.startswith("$argon2id$v=19$m=1024,t=1,p=1$") for h in checks)


async def test_the_account_locks_after_max_attempts_and_the_lock_lifts_by_itself(
    stack: Stack,
) -> None:
    address = await register(stack)
    for _ in range(stack.config.max_login_attempts - 1):
        assert (await refused(login(stack, address, "Wrong-passw0rd!"))).status == 401
    locking = await refused(login(stack, address, "Wrong-passw0rd!"))
    assert locking.status == 423
    assert locking.headers["Retry-After"] == str(stack.config.lockout_duration_minutes * 60)
    # While locked, even the right password is refused, and the wait counts down.
    stack.clock.advance(minutes=5)
    still = await refused(login(stack, address))
    assert still.status == 423
    assert still.headers["Retry-After"] == str(10 * 60)
    stack.clock.advance(minutes=10, seconds=1)
    tokens = await login(stack, address)
    assert tokens.access_token


async def test_a_lock_is_shared_by_replicas_through_the_database(stack: Stack) -> None:
    address = await register(stack)
    replicas = [stack.service, stack.variant(), stack.variant()]
    results = [
        await refused(replica.login(address, "Wrong-passw0rd!", remember_me=False))
        for replica in replicas
    ]
    assert [r.status for r in results] == [401, 401, 423]
    assert (
        await refused(stack.variant().login(address, GOOD_PASSWORD, remember_me=False))
    ).status == 423


async def test_an_unknown_email_locks_exactly_like_a_real_one(stack: Stack) -> None:
    nobody = email()
    statuses = [
        (await refused(login(stack, nobody, "Wrong-passw0rd!"))).status
        for _ in range(stack.config.max_login_attempts + 1)
    ]
    assert statuses == [401, 401, 423, 423]


async def test_failures_spread_wider_than_the_window_do_not_lock(stack: Stack) -> None:
    address = await register(stack)
    for _ in range(5):
        assert (await refused(login(stack, address, "Wrong-passw0rd!"))).status == 401
        stack.clock.advance(minutes=stack.config.lockout_duration_minutes, seconds=1)
    assert await login(stack, address)


async def test_a_successful_login_resets_the_failure_count(stack: Stack) -> None:
    address = await register(stack)
    for _ in range(2):
        for _ in range(stack.config.max_login_attempts - 1):
            await refused(login(stack, address, "Wrong-passw0rd!"))
        assert await login(stack, address)


async def test_remember_me_chooses_the_session_lifetime(stack: Stack) -> None:
    address = await register(stack)
    short = await login(stack, address)
    long = await login(stack, address, remember_me=True)
    assert short.refresh_expires_in == stack.config.session_expire_hours * 3600
    assert long.refresh_expires_in == stack.config.remember_me_expire_days * 86400


async def test_a_hash_made_with_old_parameters_is_upgraded_at_the_next_login(
    stack: Stack,
) -> None:
    address = await register(stack)  # t=1
    stronger = stack.variant(argon2_time_cost=2, argon2_memory_cost_kib=2048)
    await refused(stronger.login(address, "Wrong-passw0rd!", remember_me=False))
    [user] = await users_named(stack, address)
    assert user.password_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")  # not on failure
    await stronger.login(address, GOOD_PASSWORD, remember_me=False)
    [user] = await users_named(stack, address)
    assert user.password_hash.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    assert await stronger.login(address, GOOD_PASSWORD, remember_me=False)


# --- refresh-token rotation --------------------------------------------------------------


async def test_refresh_rotates_the_pair_and_the_used_token_stops_working(stack: Stack) -> None:
    address = await register(stack)
    first = await login(stack, address)
    second = await stack.service.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert claims(stack, second)["sid"] == claims(stack, first)["sid"]
    assert claims(stack, second)["jti"] != claims(stack, first)["jti"]
    third = await stack.service.refresh(second.refresh_token)
    assert third.access_token


async def test_presenting_a_rotated_token_ends_the_whole_family(stack: Stack) -> None:
    address = await register(stack)
    first = await login(stack, address)
    other_session = await login(stack, address)
    second = await stack.service.refresh(first.refresh_token)
    reuse = await refused(stack.service.refresh(first.refresh_token))
    assert reuse.status == 401
    # The successor dies with it: whoever holds it may be the thief.
    assert (await refused(stack.service.refresh(second.refresh_token))).status == 401
    rows = await family(stack, claims(stack, first)["sid"])
    assert {r.revoked_reason for r in rows} == {"reuse"}
    # Other sessions of the user are not touched.
    assert await stack.service.refresh(other_session.refresh_token)


async def test_concurrent_refreshes_with_one_token_let_exactly_one_through(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = await register(stack)
    tokens = await login(stack, address)
    racers = 6
    # Hold every refresh at the claim until all of them have read the token as unused:
    # the database alone then decides who wins, as with requests arriving together.
    barrier = asyncio.Barrier(racers)
    claim = Repository.claim_refresh_token

    async def claim_together(self: Repository, token_id: uuid.UUID, now: Any) -> bool:
        await barrier.wait()
        return await claim(self, token_id, now)

    monkeypatch.setattr(Repository, "claim_refresh_token", claim_together)
    replicas = [stack.variant() for _ in range(racers)]
    results = await asyncio.gather(
        *(r.refresh(tokens.refresh_token) for r in replicas), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, IssuedTokens)]
    losers = [r for r in results if isinstance(r, ProblemError)]
    assert len(winners) == 1, results
    assert len(losers) == racers - 1
    assert all(p.status == 401 for p in losers)
    rows = await family(stack, claims(stack, tokens)["sid"])
    # One successor was issued, never two.
    assert len(rows) == 2
    assert sum(r.rotated_at is not None for r in rows) == 1


async def test_an_unknown_refresh_token_is_refused(stack: Stack) -> None:
    problem = await refused(stack.service.refresh("x" * 43))
    assert problem.status == 401
    assert problem.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_a_session_expires_at_its_fixed_end_however_often_it_is_refreshed(
    stack: Stack,
) -> None:
    address = await register(stack)
    tokens = await login(stack, address)
    stack.clock.advance(hours=23)
    tokens = await stack.service.refresh(tokens.refresh_token)
    assert tokens.refresh_expires_in == 3600
    stack.clock.advance(hours=1, seconds=1)
    assert (await refused(stack.service.refresh(tokens.refresh_token))).status == 401


# --- logout, profile, password -----------------------------------------------------------


async def test_logout_ends_only_the_current_session(stack: Stack) -> None:
    address = await register(stack)
    here = await login(stack, address)
    elsewhere = await login(stack, address)
    body = claims(stack, here)
    await stack.service.logout(body["sub"], body["sid"])
    assert (await refused(stack.service.refresh(here.refresh_token))).status == 401
    assert await stack.service.refresh(elsewhere.refresh_token)


async def test_logout_cannot_end_another_users_session(stack: Stack) -> None:
    victim = await login(stack, await register(stack))
    attacker = claims(stack, await login(stack, await register(stack)))
    await stack.service.logout(attacker["sub"], claims(stack, victim)["sid"])
    assert await stack.service.refresh(victim.refresh_token)


async def test_profile_update_changes_the_names_only(stack: Stack) -> None:
    address = await register(stack)
    user_id = claims(stack, await login(stack, address))["sub"]
    stack.clock.advance(minutes=1)
    updated = await stack.service.update_profile(user_id, first_name="Ana María", last_name=None)
    assert (updated.first_name, updated.last_name, updated.email) == ("Ana María", "Díaz", address)
    assert updated.updated_at > updated.created_at
    assert (await stack.service.profile(user_id)).first_name == "Ana María"


async def test_a_token_for_an_account_that_does_not_exist_gets_401(stack: Stack) -> None:
    assert (await refused(stack.service.profile(str(uuid.uuid4())))).status == 401
    assert (await refused(stack.service.profile("not-a-uuid"))).status == 401


async def test_password_change_needs_the_current_password_and_counts_toward_lockout(
    stack: Stack,
) -> None:
    address = await register(stack)
    body = claims(stack, await login(stack, address))
    [before] = await users_named(stack, address)
    change = stack.service.change_password
    wrong = await refused(change(body["sub"], body["sid"], "Not-the-0ne!", "N3w-password!"))
    assert wrong.status == 403
    [after] = await users_named(stack, address)
    assert after.password_hash == before.password_hash
    await refused(change(body["sub"], body["sid"], "Not-the-0ne!", "N3w-password!"))
    locked = await refused(change(body["sub"], body["sid"], "Not-the-0ne!", "N3w-password!"))
    assert locked.status == 423
    # The lock is the account's: sign-in is locked too.
    assert (await refused(login(stack, address))).status == 423


async def test_password_change_applies_the_policy_to_the_new_password(stack: Stack) -> None:
    address = await register(stack)
    body = claims(stack, await login(stack, address))
    problem = await refused(
        stack.service.change_password(body["sub"], body["sid"], GOOD_PASSWORD, "alllowercase")
    )
    assert problem.status == 422
    assert {e["field"] for e in problem.extra["errors"]} == {"new_password"}
    same = await refused(
        stack.service.change_password(body["sub"], body["sid"], GOOD_PASSWORD, GOOD_PASSWORD)
    )
    assert [e["type"] for e in same.extra["errors"]] == ["reused"]


async def test_password_change_ends_every_other_session(stack: Stack) -> None:
    address = await register(stack)
    current = await login(stack, address)
    others = [await login(stack, address), await login(stack, address, remember_me=True)]
    body = claims(stack, current)
    ended = await stack.service.change_password(
        body["sub"], body["sid"], GOOD_PASSWORD, "N3w-password!"
    )
    assert ended == 2
    for other in others:
        assert (await refused(stack.service.refresh(other.refresh_token))).status == 401
    assert await stack.service.refresh(current.refresh_token)
    assert (await refused(login(stack, address))).status == 401
    assert await login(stack, address, "N3w-password!")


async def test_password_change_from_a_logged_out_session_is_refused(stack: Stack) -> None:
    address = await register(stack)
    body = claims(stack, await login(stack, address))
    await stack.service.logout(body["sub"], body["sid"])
    problem = await refused(
        stack.service.change_password(body["sub"], body["sid"], GOOD_PASSWORD, "N3w-password!")
    )
    assert problem.status == 401
    assert await login(stack, address)


# --- schema ------------------------------------------------------------------------------


async def test_migrations_go_down_to_the_baseline_and_up_again(stack: Stack) -> None:
    cfg = stack.database.alembic_config()

    async def tables() -> set[str]:
        async with stack.database.engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

    assert {"users", "refresh_tokens", "login_throttle"} <= await tables()
    await asyncio.to_thread(command.downgrade, cfg, "user_0001")
    assert not {"users", "refresh_tokens", "login_throttle"} & await tables()
    await asyncio.to_thread(command.upgrade, cfg, "head")
    assert await stack.database.check_migrated() == "revision user_0002"
    async with stack.database.session() as session:
        assert (await session.execute(select(func.count()).select_from(User))).scalar() == 0
