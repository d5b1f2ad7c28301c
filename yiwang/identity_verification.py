"""Identity verification providers: is this name the holder of this number?

In production this is the public-security verification service (公安部人口库
核验); here :class:`DemoPopulationVerifier` accepts the residents registered
from ``data/demo/residents.json`` (and any resident in the ``residents``
collection) whose recorded name matches, and rejects everyone else.

The provider is chosen by the ``IDENTITY_VERIFIER`` setting: ``demo`` (the development
default, refused in production), ``off`` (every verification answers 503: no service
configured), or ``package.module:Class`` (a class taking no arguments that implements
:class:`IdentityVerifier`, e.g. the adapter to the public-security service). It is a resource
of the process, built at boot (``yiwang.boot``); tests swap in their own with
``services.resources.replace(provider, IdentityVerifier)``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from yiwang.config import ConfigError
from yiwang.errors import ServiceUnavailable
from yiwang.identity import OneNumber
from yiwang.people import name_matches, stored_person_index

if TYPE_CHECKING:
    from yiwang.runtime import Services

LEVEL_POPULATION_CHECKED = 3


@dataclass(frozen=True)
class Verification:
    verified: bool
    level: int  # assurance level reached when verified
    provider: str


class IdentityVerifier(Protocol):
    async def verify(self, services: Services, name: str, number: OneNumber) -> Verification: ...


class DemoPopulationVerifier:
    """Name + number against the registered residents: level 3 when they match."""

    name = "demo_population"

    async def verify(self, services: Services, name: str, number: OneNumber) -> Verification:
        index = await stored_person_index(services.store, services.cipher, number)
        ok = await name_matches(services.store, services.cipher, index, name)
        return Verification(ok, LEVEL_POPULATION_CHECKED if ok else 1, self.name)

    async def aclose(self) -> None:
        return None


class NoVerifier:
    """``IDENTITY_VERIFIER=off``: no service, so no one is verified (a clear 503, not a silent pass)."""

    name = "off"

    async def verify(self, services: Services, name: str, number: OneNumber) -> Verification:
        raise ServiceUnavailable("identity.verifier_unavailable", "身份核验服务未配置，请到窗口办理")

    async def aclose(self) -> None:
        return None


def build_verifier(setting: str, *, production: bool) -> IdentityVerifier:
    """The provider the setting names (config validation has already checked its form)."""
    if setting == "demo":
        if production:  # config refuses this too: the demo population never verifies anyone in production
            raise ServiceUnavailable("identity.verifier_unavailable", "演示核验不能用于生产环境")
        return DemoPopulationVerifier()
    if setting in ("off", ""):
        return NoVerifier()
    module_name, _, class_name = setting.partition(":")
    try:
        provider: IdentityVerifier = getattr(importlib.import_module(module_name), class_name)()
    except (ImportError, AttributeError, TypeError) as error:
        raise ConfigError(
            [("IDENTITY_VERIFIER", f"无法加载身份核验服务 {setting}：{error}", f"cannot load {setting}: {error}")]
        ) from None
    return provider


def verifier(services: Services) -> IdentityVerifier:
    """The process's verification provider (chosen at boot, ``yiwang.boot``)."""
    return services.resources.get(IdentityVerifier)  # type: ignore[type-abstract]
