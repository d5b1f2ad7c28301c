"""Blocking work off the event loop.

* :meth:`Offloader.run`: a bounded thread pool (pyzbar on trusted frames, WeChat's
  ``requests``, crypto on large data, sealing files).
* :meth:`Offloader.run_isolated`: a bounded pool of worker *processes* for decoding what
  strangers send (images, PDFs). A decoder's memory goes back to the system when its
  worker exits (each worker serves :data:`TASKS_PER_WORKER` tasks, then a fresh one
  starts), a decoder crash takes only the worker down, and at most ``isolated_workers``
  decodes run at once, so six image bombs cannot hold six decodes' memory in the server.
  The function must be importable (module level) and take and return plain values;
  domain errors raised in the worker come back as the same error.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar

from yiwang import errors

P = ParamSpec("P")
T = TypeVar("T")

TASKS_PER_WORKER = 1  # a fresh process per decode: nothing of one upload's memory outlives it
# Imported once in the fork server, so a fresh worker starts in milliseconds.
PRELOAD = ["yiwang.uploads", "yiwang.content_images", "yiwang.qrdecode"]


def _isolated_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """In the worker: run, and carry a domain error back whole (code, message, fields)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except errors.YiwangError as error:
        return ("error", type(error), error.code, error.message, error.fields, error.detail)


class Offloader:
    def __init__(self, workers: int, isolated_workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="yiwang-blocking")
        self._isolated_workers = isolated_workers
        self._processes: ProcessPoolExecutor | None = None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        call: Callable[[], Any] = functools.partial(fn, *args, **kwargs)
        return await loop.run_in_executor(self._pool, call)  # type: ignore[no-any-return]

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            self._processes = ProcessPoolExecutor(
                max_workers=self._isolated_workers, mp_context=context, max_tasks_per_child=TASKS_PER_WORKER
            )
        return self._processes

    async def run_isolated(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on untrusted input in a worker process (see the module docstring)."""
        loop = asyncio.get_running_loop()
        pool = self._process_pool()
        try:
            outcome = await loop.run_in_executor(pool, _isolated_call, fn, args, kwargs)
        except BrokenProcessPool:
            # A worker died (out of memory, a decoder crash): this input is refused, the pool rebuilt.
            self._processes = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise errors.InvalidInput("upload.unprocessable", "文件无法处理，请换一个文件再试") from None
        if outcome[0] == "error":
            kind, code, message, fields, detail = outcome[1:]
            raise kind(code, message, fields=fields, detail=detail)
        return outcome[1]  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
            self._processes = None
