# SPDX-License-Identifier: MIT
"""Single-flight execution: concurrent callers share one run of a coroutine.

OAuth2 authorisers run every authorisation through a :class:`SingleFlight`, so 100 concurrent requests that
find an expired token cause exactly one token request; the callers that arrive while it runs receive its result
(or its exception). The flight belongs to the event loop it started on, so an authoriser built outside a loop,
or reused by a later ``asyncio.run``, never awaits a task of another loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _retrieve(task: asyncio.Task[Any]) -> None:
    # The waiters may all have gone; mark the exception as seen so asyncio does not log it at garbage collection.
    if not task.cancelled():
        task.exception()


class SingleFlight(Generic[T]):
    """Share one in-flight run of ``factory()`` between concurrent callers on the same event loop."""

    __slots__ = ("_loop", "_task", "_waiters")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[T] | None = None
        self._waiters = 0

    @property
    def running(self) -> bool:
        """True while a run is in flight."""
        return self._task is not None and not self._task.done()

    async def run(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Join the run in flight on this loop, or start ``factory()`` when there is none."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or self._loop is not loop:
            task = loop.create_task(factory())
            task.add_done_callback(_retrieve)
            self._task, self._loop, self._waiters = task, loop, 0
        self._waiters += 1
        try:
            # shield: one caller's cancellation must not cancel the work the other callers wait for.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if self._task is task and self._waiters == 1 and not task.done():
                # The last caller gave up: nobody wants the result any more (e.g. a browser flow), so stop it.
                task.cancel()
            raise
        finally:
            if self._task is task:
                self._waiters -= 1
