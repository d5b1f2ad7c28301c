"""Identity verification providers: is this name the holder of this number?

In production this is the public-security verification service (公安部人口库
核验); here :class:`DemoPopulationVerifier` accepts the residents registered
from ``data/demo/residents.json`` (and any resident in the ``residents``
collection) whose recorded name matches, and rejects everyone else.

The provider is a resource of the process, chosen at boot (``yiwang.boot``); tests swap
in their own with ``services.resources.replace(provider, IdentityVerifier)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

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


def verifier(services: Services) -> IdentityVerifier:
    """The process's verification provider (chosen at boot, ``yiwang.boot``)."""
    return services.resources.get(IdentityVerifier)  # type: ignore[type-abstract]
