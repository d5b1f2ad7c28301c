"""A bounded thread pool for blocking work (Pillow, pyzbar, WeChat's requests,
crypto on large data), so none of it runs on the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Offloader:
    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="yiwang-blocking")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        call: Callable[[], Any] = functools.partial(fn, *args, **kwargs)
        return await loop.run_in_executor(self._pool, call)  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
