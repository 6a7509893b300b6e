"""Background work after the response: tracked tasks, their claims, and recovery after a crash.

A product in ``processing`` or ``publishing`` is claimed by the process doing the work
(``worker_id``) until ``lease_expires_at``, which that process renews while it lives. When a
process dies (a crash, SIGKILL, a lost node) its claims run out, and any replica (the
restarted one first of all, at startup) moves those products to ``failed`` with a reason,
so the seller can retry: nothing is left stranded in ``processing``. The seller's token
that the work needs is gone with the request, so the work is not resumed on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from intellipost.product.repository import ProductRepository
from intellipost.shared.db import Database
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("product")

INTERRUPTED_BY_RESTART = "Interrupted by a restart of the product service; retry."
INTERRUPTED_BY_SHUTDOWN = "Interrupted by a shutdown of the product service; retry."


def utcnow() -> datetime:
    return datetime.now(UTC)


class BackgroundWork:
    def __init__(
        self,
        database: Database,
        *,
        lease_seconds: float,
        drain_seconds: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.lease = timedelta(seconds=lease_seconds)
        self.drain_seconds = drain_seconds
        self.clock = clock
        # New at every start, so a restarted process never mistakes its predecessor's claims
        # for its own.
        self.worker_id = str(uuid.uuid4())
        self._tasks: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._repeating: list[asyncio.Task[None]] = []

    def lease_until(self) -> datetime:
        return self.clock() + self.lease

    def spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        """Runs ``work`` after the response; it inherits the request's context (ids, token)."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error(
                "background work failed",
                task=task.get_name(),
                error=type(exc).__name__,
                detail=str(exc)[:300],
            )

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        await self.recover()
        self._keeper = asyncio.create_task(self._keep_claims(), name="product-claims")

    def every(
        self,
        name: str,
        period_seconds: float,
        job: Callable[[], Awaitable[object]],
        *,
        first_after_seconds: float,
    ) -> None:
        """Runs ``job`` every ``period_seconds`` until :meth:`stop`; a failure waits a round."""
        task = asyncio.create_task(
            self._repeat(name, period_seconds, job, first_after_seconds), name=name
        )
        self._repeating.append(task)

    @staticmethod
    async def _repeat(
        name: str, period: float, job: Callable[[], Awaitable[object]], first_after: float
    ) -> None:
        await asyncio.sleep(first_after)
        while True:
            try:
                await job()
            except Exception as exc:  # storage or database briefly away: the next round retries
                log.warning("housekeeping failed", job=name, error=type(exc).__name__)
            await asyncio.sleep(period)

    async def stop(self) -> None:
        for task in [self._keeper, *self._repeating]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._repeating.clear()
        if self._tasks:
            # Work that finishes soon is better than work to retry.
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.drain_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        try:
            async with self.database.session() as session:
                released = await ProductRepository(session).fail_abandoned(
                    self.clock(), INTERRUPTED_BY_SHUTDOWN, worker_id=self.worker_id
                )
                await session.commit()
        except Exception as exc:  # the claims run out on their own; a replica fails them then
            log.warning("could not release work claims at shutdown", error=type(exc).__name__)
            return
        for product_id, owner_id in released:
            log.warning("work interrupted by shutdown", product_id=product_id, owner_id=owner_id)

    async def recover(self) -> int:
        """Fails every product whose claim ran out (its process died); returns how many."""
        async with self.database.session() as session:
            failed = await ProductRepository(session).fail_abandoned(
                self.clock(), INTERRUPTED_BY_RESTART
            )
            await session.commit()
        for product_id, owner_id in failed:
            log.warning("abandoned work moved to failed", product_id=product_id, owner_id=owner_id)
        return len(failed)

    async def _keep_claims(self) -> None:
        period = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            try:
                async with self.database.session() as session:
                    await ProductRepository(session).renew_claims(
                        self.worker_id, self.lease_until()
                    )
                    await session.commit()
                await self.recover()
            except Exception as exc:  # the database may be briefly away; try again next round
                log.warning("could not renew work claims", error=type(exc).__name__)
