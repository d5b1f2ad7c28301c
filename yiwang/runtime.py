"""The process's shared resources: the services container every domain function takes.

It imports no domain module (so no domain module's import of it can close a circle).
Long-lived objects (the device hub, the notification sender, the WeChat gateway, the
identity verifier, caches, background jobs) are typed entries of ``services.resources``,
one per type, created and started at boot (``yiwang.boot``) and closed in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from yiwang.blocking import Offloader
from yiwang.catalog import Catalog
from yiwang.config import Config
from yiwang.crypto import FieldCipher
from yiwang.embedded import EmbeddedMongo
from yiwang.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")


class Closable(Protocol):
    async def aclose(self) -> None: ...


class Resources:
    """Typed, named long-lived objects: ``resources.get(WeChatGateway)``. Each is added once at
    boot, in start order; ``aclose`` closes them in reverse, so a sender stops before the
    gateway it sends through."""

    def __init__(self) -> None:
        self._by_kind: dict[type, Any] = {}

    def add(self, resource: T, kind: type[T] | None = None) -> T:
        """Add ``resource`` under its own type, or under ``kind`` (a protocol it fulfils)."""
        key = kind or type(resource)
        if key in self._by_kind:
            raise RuntimeError(f"{key.__name__} is already running in this process")
        self._by_kind[key] = resource
        return resource

    def replace(self, resource: T, kind: type[T] | None = None) -> T:
        """Swap a running resource for another of the same kind (tests plug their fakes in here)."""
        self._by_kind[kind or type(resource)] = resource
        return resource

    def get(self, kind: type[T]) -> T:
        found = self._by_kind.get(kind)
        if found is None:
            raise RuntimeError(f"{kind.__name__} is not running in this process")
        return cast(T, found)

    def find(self, kind: type[T]) -> T | None:
        return cast(T | None, self._by_kind.get(kind))

    def __contains__(self, kind: type) -> bool:
        return kind in self._by_kind

    async def aclose(self) -> None:
        for kind, resource in reversed(list(self._by_kind.items())):
            closer = getattr(resource, "aclose", None)
            if closer is None:
                continue
            try:
                await closer()
            except Exception:
                log.exception("close failed", extra={"fields": {"resource": kind.__name__}})
        self._by_kind.clear()


@dataclass
class Services:
    """Everything a request may need, built once per process by ``yiwang.boot.open_services``."""

    config: Config
    store: Store
    cipher: FieldCipher
    offload: Offloader
    catalog: Catalog
    embedded: EmbeddedMongo | None = None
    resources: Resources = field(default_factory=Resources)

    async def close(self, *, close_store: bool = True) -> None:
        await self.resources.aclose()
        await self.catalog.aclose()
        if close_store:
            await self.store.close()
        self.offload.shutdown()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
