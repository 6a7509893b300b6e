"""All SQL of the user service: accounts, refresh-token families, the sign-in throttle."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, CursorResult, case, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from intellipost.shared.db import UTCDateTime
from intellipost.user.models import LoginThrottle, RefreshToken, User


class EmailTakenError(Exception):
    pass


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- users ---------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        self.session.add(user)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            # The unique index decides, so two registrations racing for one email can't both win.
            await self.session.rollback()
            raise EmailTakenError from exc

    async def user_by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(User.email == email))
        return result.scalar_one_or_none()

    async def user_by_id(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    # --- sign-in throttle ----------------------------------------------------------------

    async def locked_until(self, key: str, now: datetime) -> datetime | None:
        result = await self.session.execute(
            select(LoginThrottle.locked_until).where(
                LoginThrottle.key == key, LoginThrottle.locked_until > _at(now)
            )
        )
        return result.scalar_one_or_none()

    async def record_failure(
        self,
        key: str,
        now: datetime,
        *,
        max_attempts: int,
        lock_for: timedelta,
        window: timedelta,
    ) -> tuple[datetime | None, bool]:
        """Count a failed sign-in; returns (locked until, whether this failure locked it).

        One atomic upsert, so failures counted by replicas at the same moment all add up.
        Failures older than ``window`` no longer count, and the count starts again after a
        lock, so a lifted lock gives a full set of attempts.
        """
        table = LoginThrottle
        at = _at(now)
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        still_locked = (table.locked_until.is_not(None)) & (table.locked_until > at)
        stmt = (
            insert(table)
            .values(key=key, failures=1, last_failure_at=now, locked_until=None)
            .on_conflict_do_update(
                index_elements=[table.key],
                set_={
                    "failures": case(
                        (still_locked, table.failures),
                        (table.last_failure_at < _at(now - window), 1),
                        else_=table.failures + 1,
                    ),
                    "last_failure_at": at,
                },
            )
            .returning(table.failures, table.locked_until)
        )
        failures, locked = (await self.session.execute(stmt)).one()
        if locked is not None and locked > now:
            return locked, False
        if failures < max_attempts:
            return None, False
        until = now + lock_for
        await self.session.execute(
            update(table).where(table.key == key).values(failures=0, locked_until=until)
        )
        return until, True

    async def clear_failures(self, key: str) -> None:
        await self.session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == key)
            .values(failures=0, locked_until=None)
        )

    # --- refresh tokens ------------------------------------------------------------------

    def add_refresh_token(self, token: RefreshToken) -> None:
        self.session.add(token)

    async def refresh_token_by_hash(self, token_hash: str) -> RefreshToken | None:
        result = await self.session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )
        return result.scalar_one_or_none()

    async def claim_refresh_token(self, token_id: uuid.UUID, now: datetime) -> bool:
        """Mark a token used; True for exactly one caller however many race for it.

        The condition is re-checked by the database under the row's write lock (PostgreSQL)
        or the database write lock (SQLite), so the loser sees zero rows changed.
        """
        result = await self.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.id == token_id,
                RefreshToken.rotated_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(rotated_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def revoke_family(
        self,
        family_id: uuid.UUID,
        now: datetime,
        reason: str,
        *,
        user_id: uuid.UUID | None = None,
    ) -> int:
        """Revoke every token of a family (only if it is ``user_id``'s, when given)."""
        conditions = [RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None)]
        if user_id is not None:
            conditions.append(RefreshToken.user_id == user_id)
        result = await self.session.execute(
            update(RefreshToken)
            .where(*conditions)
            .values(revoked_at=now, revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    async def revoke_user_sessions(
        self,
        user_id: uuid.UUID,
        now: datetime,
        reason: str,
        *,
        keep_family: uuid.UUID | None = None,
    ) -> int:
        """Revoke every live session of a user but ``keep_family``; returns how many."""
        live = (
            RefreshToken.user_id == user_id,
            RefreshToken.revoked_at.is_(None),
            RefreshToken.rotated_at.is_(None),
            RefreshToken.expires_at > _at(now),
        )
        families = select(RefreshToken.family_id).where(*live)
        if keep_family is not None:
            families = families.where(RefreshToken.family_id != keep_family)
        ended = set((await self.session.execute(families)).scalars())
        if not ended:
            return 0
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id.in_(ended), RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )
        return len(ended)

    async def session_is_live(
        self, family_id: uuid.UUID, user_id: uuid.UUID, now: datetime
    ) -> bool:
        """Whether the family still has a usable token (not logged out, revoked or expired)."""
        result = await self.session.execute(
            select(RefreshToken.id)
            .where(
                RefreshToken.family_id == family_id,
                RefreshToken.user_id == user_id,
                RefreshToken.revoked_at.is_(None),
                RefreshToken.rotated_at.is_(None),
                RefreshToken.expires_at > _at(now),
            )
            .limit(1)
        )
        return result.first() is not None


def _at(moment: datetime) -> BindParameter[datetime]:
    # A bound value typed as a UTC column, so SQLite compares it in the stored format.
    return literal(moment, UTCDateTime())


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
