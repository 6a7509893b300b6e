"""The user service's rules: registration, sign-in, lockout, session rotation, profile."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from intellipost.shared.auth import unauthorized
from intellipost.shared.context import user_id_var
from intellipost.shared.db import Database
from intellipost.shared.errors import ProblemError
from intellipost.shared.logging import get_structured_logger
from intellipost.user.config import UserConfig
from intellipost.user.keys import KeyRing
from intellipost.user.models import RefreshToken, User
from intellipost.user.passwords import Passwords, policy_violations
from intellipost.user.repository import EmailTakenError, Repository
from intellipost.user.tokens import hash_refresh_token, issue_access_token, new_refresh_token

log = get_structured_logger("user")

# The address syntax browsers accept for <input type=email> (WHATWG), with a dot in the
# domain: strict enough to catch typos, without pretending to check deliverability.
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_BAD_CREDENTIALS = "The email or password is not correct."


def normalize_email(email: str) -> str:
    return email.strip().lower()


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user_id: uuid.UUID


def _field_error(field: str, message: str, type_: str) -> dict[str, Any]:
    return {"loc": ["body", field], "field": field, "message": message, "type": type_}


def _invalid(errors: list[dict[str, Any]]) -> ProblemError:
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return ProblemError(
        422,
        f"Invalid input: {fields}",
        title="Request validation failed",
        slug="validation-error",
        errors=errors,
    )


def _locked(until: datetime, now: datetime) -> ProblemError:
    seconds = max(1, math.ceil((until - now).total_seconds()))
    return ProblemError(
        423,
        f"Too many failed sign-in attempts; try again in {math.ceil(seconds / 60)} minute(s).",
        title="Account locked",
        slug="account-locked",
        headers={"Retry-After": str(seconds)},
        retry_after=seconds,
    )


def _bad_credentials() -> ProblemError:
    return ProblemError(
        401,
        _BAD_CREDENTIALS,
        title="Unauthorized",
        slug="invalid-credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _throttle_key(email: str) -> str:
    return hashlib.sha256(f"login:{email}".encode()).hexdigest()


def _email_ref(email: str) -> str:
    # Lets a log reader group attempts on one address without the address in the log.
    return hashlib.sha256(email.encode()).hexdigest()[:16]


class UserService:
    def __init__(
        self,
        config: UserConfig,
        database: Database,
        keyring: KeyRing,
        passwords: Passwords,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.database = database
        self.keyring = keyring
        self.passwords = passwords
        self.clock = clock

    # --- registration --------------------------------------------------------------------

    async def register(self, email: str, password: str, first_name: str, last_name: str) -> User:
        if not self.config.registration_open:
            raise ProblemError(
                403,
                "Registration of new accounts is closed.",
                title="Registration closed",
                slug="registration-closed",
            )
        email = normalize_email(email)
        errors: list[dict[str, Any]] = []
        if len(email) > 254 or not _EMAIL.fullmatch(email):
            errors.append(_field_error("email", "must be a valid email address", "email"))
        errors.extend(self._password_errors("password", password))
        if errors:
            raise _invalid(errors)
        now = self.clock()
        user = User(
            id=uuid.uuid4(),
            email=email,
            password_hash=await self.passwords.hash(password),
            first_name=first_name,
            last_name=last_name,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
        async with self.database.session() as session:
            try:
                await Repository(session).add_user(user)
            except EmailTakenError:
                raise ProblemError(
                    409,
                    "An account with this email already exists.",
                    title="Email already registered",
                    slug="email-taken",
                ) from None
            await session.commit()
        user_id_var.set(str(user.id))
        log.audit("register", "user", user_id=str(user.id))
        return user

    def _password_errors(self, field: str, password: str) -> list[dict[str, Any]]:
        return [
            _field_error(field, v.message, f"password_policy.{v.rule}")
            for v in policy_violations(password, self.config)
        ]

    # --- sign-in -------------------------------------------------------------------------

    async def login(self, email: str, password: str, *, remember_me: bool) -> IssuedTokens:
        email = normalize_email(email)
        key = _throttle_key(email)
        now = self.clock()
        async with self.database.session() as session:
            repo = Repository(session)
            locked = await repo.locked_until(key, now)
            if locked is not None:
                log.security_event(
                    "login_while_locked", "medium", email_ref=_email_ref(email), locked_until=locked
                )
                raise _locked(locked, now)
            user = await repo.user_by_email(email)
            if user is None:
                # The same Argon2 work as a wrong password: timing must not say which it was.
                await self.passwords.verify_dummy(password)
                verified = False
            else:
                verified = await self.passwords.verify(user.password_hash, password)
            if not verified:
                await self._failed_attempt(repo, key, email, user, now, reason="login")
                await session.commit()
                raise _bad_credentials()
            assert user is not None
            await repo.clear_failures(key)
            if self.passwords.needs_rehash(user.password_hash):
                # Cost parameters were raised since this hash was made: upgrade it now,
                # the one moment the plain password is at hand.
                user.password_hash = await self.passwords.hash(password)
                log.info("password hash upgraded", user_id=str(user.id))
            lifetime = (
                timedelta(days=self.config.remember_me_expire_days)
                if remember_me
                else timedelta(hours=self.config.session_expire_hours)
            )
            family_id = uuid.uuid4()
            refresh_token = new_refresh_token()
            repo.add_refresh_token(
                RefreshToken(
                    id=uuid.uuid4(),
                    family_id=family_id,
                    user_id=user.id,
                    token_hash=hash_refresh_token(refresh_token),
                    remember_me=remember_me,
                    created_at=now,
                    expires_at=now + lifetime,
                )
            )
            await session.commit()
        user_id_var.set(str(user.id))
        log.info("signed in", user_id=str(user.id), family_id=str(family_id))
        return self._issue(user.id, family_id, refresh_token, now + lifetime, now)

    async def _failed_attempt(
        self,
        repo: Repository,
        key: str,
        email: str,
        user: User | None,
        now: datetime,
        *,
        reason: str,
    ) -> None:
        """Count a wrong password; raises 423 when this failure locks the account."""
        lock_for = timedelta(minutes=self.config.lockout_duration_minutes)
        locked, just_locked = await repo.record_failure(
            key,
            now,
            max_attempts=self.config.max_login_attempts,
            lock_for=lock_for,
            window=lock_for,
        )
        user_id = str(user.id) if user is not None else None
        log.security_event(
            "failed_login",
            "medium",
            reason="unknown_email" if user is None else "wrong_password",
            during=reason,
            email_ref=_email_ref(email),
            target_user_id=user_id,
        )
        if locked is None:
            return
        if just_locked:
            log.security_event(
                "account_locked",
                "high",
                email_ref=_email_ref(email),
                target_user_id=user_id,
                locked_until=locked,
                attempts=self.config.max_login_attempts,
            )
        await repo.session.commit()
        raise _locked(locked, now)

    def _issue(
        self,
        user_id: uuid.UUID,
        family_id: uuid.UUID,
        refresh_token: str,
        expires_at: datetime,
        now: datetime,
    ) -> IssuedTokens:
        access = issue_access_token(
            self.keyring, self.config, user_id=user_id, session_id=family_id, now=now
        )
        return IssuedTokens(
            access_token=access,
            expires_in=self.config.jwt_expire_minutes * 60,
            refresh_token=refresh_token,
            refresh_expires_in=max(0, int((expires_at - now).total_seconds())),
            user_id=user_id,
        )

    # --- sessions ------------------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """Rotate: the presented token stops working and its successor joins the family.

        A token that was already rotated is a theft signal (RFC 9700 §4.14.2): either the
        client or an attacker holds a copy. Which one cannot be told, so the whole family
        ends, including the successor. Two concurrent refreshes with one token are the
        same situation: one wins the conditional update, the other is treated as reuse.
        """
        now = self.clock()
        async with self.database.session() as session:
            repo = Repository(session)
            token = await repo.refresh_token_by_hash(hash_refresh_token(refresh_token))
            if token is None:
                log.security_event("invalid_refresh_token", "low", reason="unknown")
                raise unauthorized("The refresh token is not valid.")
            if token.rotated_at is not None:
                await self._reuse_detected(repo, token, now)
            if token.revoked_at is not None or token.expires_at <= now:
                reason = "revoked" if token.revoked_at is not None else "expired"
                log.security_event(
                    "invalid_refresh_token", "low", reason=reason, target_user_id=str(token.user_id)
                )
                raise unauthorized("The session has ended; sign in again.")
            if not await repo.claim_refresh_token(token.id, now):
                await session.rollback()
                await session.refresh(token)
                if token.rotated_at is not None:
                    await self._reuse_detected(repo, token, now, concurrent=True)
                raise unauthorized("The session has ended; sign in again.")
            successor = new_refresh_token()
            repo.add_refresh_token(
                RefreshToken(
                    id=uuid.uuid4(),
                    family_id=token.family_id,
                    user_id=token.user_id,
                    token_hash=hash_refresh_token(successor),
                    remember_me=token.remember_me,
                    created_at=now,
                    expires_at=token.expires_at,
                )
            )
            await session.commit()
        user_id_var.set(str(token.user_id))
        log.info("session refreshed", family_id=str(token.family_id))
        return self._issue(token.user_id, token.family_id, successor, token.expires_at, now)

    async def _reuse_detected(
        self, repo: Repository, token: RefreshToken, now: datetime, *, concurrent: bool = False
    ) -> None:
        revoked = await repo.revoke_family(token.family_id, now, "reuse")
        await repo.session.commit()
        log.security_event(
            "refresh_token_reuse",
            "high",
            target_user_id=str(token.user_id),
            family_id=str(token.family_id),
            concurrent=concurrent,
            tokens_revoked=revoked,
        )
        raise unauthorized("The refresh token was already used; the session has been ended.")

    async def logout(self, user_id: str, session_id: str | None) -> None:
        family = _uuid_or_none(session_id)
        uid = _uuid_or_none(user_id)
        if family is None or uid is None:
            raise unauthorized("The access token names no session.")
        now = self.clock()
        async with self.database.session() as session:
            repo = Repository(session)
            token_user = await repo.user_by_id(uid)
            if token_user is None:
                raise unauthorized("The account no longer exists.")
            # Only the caller's own family: the user id is part of the condition.
            revoked = await repo.revoke_family(family, now, "logout", user_id=uid)
            await session.commit()
        log.audit("logout", "session", user_id=user_id, family_id=session_id, revoked=revoked)

    # --- profile -------------------------------------------------------------------------

    async def profile(self, user_id: str) -> User:
        async with self.database.session() as session:
            return await self._user(Repository(session), user_id)

    async def update_profile(
        self, user_id: str, *, first_name: str | None, last_name: str | None
    ) -> User:
        async with self.database.session() as session:
            user = await self._user(Repository(session), user_id)
            if first_name is None and last_name is None:
                return user
            if first_name is not None:
                user.first_name = first_name
            if last_name is not None:
                user.last_name = last_name
            user.updated_at = self.clock()
            await session.commit()
        log.audit("profile_update", "user", user_id=user_id)
        return user

    async def change_password(
        self, user_id: str, session_id: str | None, current: str, new: str
    ) -> int:
        """Set a new password; every other session ends. Returns how many ended."""
        errors = self._password_errors("new_password", new)
        if new == current:
            errors.append(
                _field_error("new_password", "must differ from the current password", "reused")
            )
        if errors:
            raise _invalid(errors)
        now = self.clock()
        keep = _uuid_or_none(session_id)
        async with self.database.session() as session:
            repo = Repository(session)
            user = await self._user(repo, user_id)
            if keep is None or not await repo.session_is_live(keep, user.id, now):
                raise unauthorized("This session has ended; sign in again.")
            key = _throttle_key(user.email)
            locked = await repo.locked_until(key, now)
            if locked is not None:
                raise _locked(locked, now)
            if not await self.passwords.verify(user.password_hash, current):
                # A stolen access token must not become a password-guessing oracle.
                await self._failed_attempt(repo, key, user.email, user, now, reason="password")
                await session.commit()
                raise ProblemError(
                    403,
                    "The current password is not correct.",
                    title="Forbidden",
                    slug="wrong-password",
                )
            user.password_hash = await self.passwords.hash(new)
            user.password_changed_at = now
            user.updated_at = now
            await repo.clear_failures(key)
            ended = await repo.revoke_user_sessions(
                user.id, now, "password_change", keep_family=keep
            )
            await session.commit()
        log.audit("password_change", "user", user_id=user_id, sessions_ended=ended)
        return ended

    async def _user(self, repo: Repository, user_id: str) -> User:
        uid = _uuid_or_none(user_id)
        user = await repo.user_by_id(uid) if uid is not None else None
        if user is None:
            raise unauthorized("The account no longer exists.")
        return user


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
