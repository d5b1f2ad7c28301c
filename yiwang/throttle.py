"""Throttles for everything a caller could guess: passwords, TOTP codes,
name–number pairs, kiosk sign-in digits. One module, one mechanism.

**Counting is atomic in the database.** Each limit keeps one document per key
(``throttles``: ``{_id: "<limit>:<SM3 of key>", count, window_end}``) that is
changed only with single-document atomic updates (``$inc``), so a limit holds
under any number of concurrent requests and across processes. A window starts
with the first counted attempt and lasts ``Limit.window`` (no clock-aligned
edges); a TTL index removes ended windows.

**Reserve, then check.** :func:`reserve` counts the attempt *before* the secret
is checked; if any limit is then over, the whole reservation is given back and
:class:`~yiwang.errors.RateLimited` is raised, so a refused attempt costs
nothing and checks nothing. A failed check keeps its slot (it was a failure);
a successful one gives back the slots whose limits count failures only
(:meth:`Reservation.release`). Forty concurrent guesses against a limit of five
get five checks and thirty-five 429s.

**Who is calling** is :func:`client_address`, the one function every surface
uses (throttles, audit, request logs): forwarding headers are believed only
when the socket peer is a configured trusted proxy (``TRUSTED_PROXIES``).

The limits themselves are declared at the bottom, in one place, so the policy
reads at a glance; ``docs/security.md`` ("Logins and throttles") explains it.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from yiwang.crypto import token_digest
from yiwang.errors import RateLimited
from yiwang.metrics import THROTTLED
from yiwang.store import Store
from yiwang.timeutil import as_utc, utcnow

COLLECTION = "throttles"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` counted attempts per ``window`` for one key."""

    name: str  # stable: part of the stored key
    limit: int
    window: dt.timedelta


def _doc_id(limit: Limit, key: str) -> str:
    # Keys hold usernames, addresses and blind indexes: stored only as a digest.
    return f"{limit.name}:{token_digest(key)}"


def _ms(moment: dt.datetime) -> dt.datetime:
    """BSON dates keep milliseconds: what is stored is what we match on later."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _seconds_until(moment: dt.datetime, now: dt.datetime) -> int:
    return max(1, math.ceil((as_utc(moment) - now).total_seconds()))


async def count(store: Store, limit: Limit, key: str) -> tuple[int, dt.datetime]:
    """Count one attempt for ``key``: (the count in the current window, when that window ends)."""
    now = utcnow()
    coll = store[COLLECTION]
    doc_id = _doc_id(limit, key)
    for _ in range(5):
        doc = await coll.find_one_and_update(
            {"_id": doc_id, "window_end": {"$gt": now}}, {"$inc": {"count": 1}}, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            return int(doc["count"]), as_utc(doc["window_end"])
        end = _ms(now + limit.window)
        # The window ended (or never began): start a new one. Only one concurrent reset can match.
        reset = await coll.find_one_and_update(
            {"_id": doc_id, "window_end": {"$lte": now}},
            {"$set": {"count": 1, "window_end": end}},
            return_document=ReturnDocument.AFTER,
        )
        if reset is not None:
            return 1, end
        try:
            await coll.insert_one({"_id": doc_id, "count": 1, "window_end": end})
        except DuplicateKeyError:
            continue  # another request started the window: count in it
        return 1, end
    raise RuntimeError("throttle window kept changing")  # pragma: no cover - five lost races in a row


async def uncount(store: Store, limit: Limit, key: str, window_end: dt.datetime) -> None:
    """Give one attempt counted in the window ending at ``window_end`` back (not into a newer window)."""
    await store[COLLECTION].update_one(
        {"_id": _doc_id(limit, key), "count": {"$gt": 0}, "window_end": window_end}, {"$inc": {"count": -1}}
    )


async def peek(store: Store, limit: Limit, key: str) -> tuple[int, int]:
    """The current count without counting: (count, seconds until the window ends; 0 when none)."""
    now = utcnow()
    doc = await store[COLLECTION].find_one({"_id": _doc_id(limit, key), "window_end": {"$gt": now}})
    if doc is None:
        return 0, 0
    return int(doc["count"]), _seconds_until(doc["window_end"], now)


async def clear(store: Store, limits: Iterable[Limit], key: str) -> None:
    """Forget the counts of ``key`` (after a completed login, or by an operator)."""
    await store[COLLECTION].delete_many({"_id": {"$in": [_doc_id(limit, key) for limit in limits]}})


@dataclass
class Reservation:
    """Attempts counted by :func:`reserve`; give back the ones that turn out not to be failures."""

    store: Store
    held: list[tuple[Limit, str, dt.datetime]] = field(default_factory=list)

    async def release(self, *limits: Limit) -> None:
        """Give back the slots of ``limits`` (all of them when none is named)."""
        keep: list[tuple[Limit, str, dt.datetime]] = []
        for limit, key, window_end in self.held:
            if not limits or limit in limits:
                await uncount(self.store, limit, key, window_end)
            else:
                keep.append((limit, key, window_end))
        self.held = keep


def refusal(code: str, message: str, retry_after: int) -> RateLimited:
    """The 429: ``{message}`` may hold ``{minutes}``; Retry-After is set from ``retry_after`` by web.base."""
    minutes = max(1, math.ceil(retry_after / 60))
    THROTTLED.labels(code).inc()
    return RateLimited(code, message.format(minutes=minutes), retry_after=retry_after)


async def reserve(store: Store, checks: Sequence[tuple[Limit, str]], *, code: str, message: str) -> Reservation:
    """Count one attempt against every (limit, key), in order; all within their limits, or
    nothing counted and a 429 saying when the first limit that is over lets the next one in."""
    reservation = Reservation(store)
    for limit, key in checks:
        counted, window_end = await count(store, limit, key)
        reservation.held.append((limit, key, window_end))
        if counted > limit.limit:
            await reservation.release()
            raise refusal(code, message, _seconds_until(window_end, utcnow()))
    return reservation


# ---- who is calling -------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parsed once per distinct text (every request parses its peer's address, and a few callers are many)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def peer_is_trusted(peer: str | None, trusted: Sequence[IPNetwork]) -> bool:
    """Is the socket peer one of the configured trusted proxies?"""
    found = _ip(peer or "")
    return found is not None and _trusted(found, trusted)


def client_address(
    peer: str | None, forwarded_for: str | None, real_ip: str | None, trusted: Sequence[IPNetwork]
) -> str:
    """The caller's address: the socket peer, unless the peer is a trusted proxy.

    From a trusted proxy, ``X-Forwarded-For`` is read from the right (each hop
    appends the address it received from) past every trusted hop; the first
    untrusted hop is the client. Without that header, ``X-Real-IP`` is used.
    A malformed entry stops the walk at the hop that sent it.
    """
    current = _ip(peer or "")
    if current is None:
        return peer or "unknown"
    if not _trusted(current, trusted):
        return str(current)
    hops = [h for h in (forwarded_for or "").split(",") if h.strip()] if forwarded_for else []
    if not hops and real_ip:
        hops = [real_ip]
    for hop in reversed(hops):
        if not _trusted(current, trusted):
            break
        found = _ip(hop)
        if found is None:
            break
        current = found
    return str(current)


def address_key(address: str) -> str:
    """What per-address limits count by: the address, or its /64 for IPv6 (one host holds a whole /64)."""
    found = _ip(address)
    if isinstance(found, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{found}/64", strict=False))
    return str(found) if found is not None else address


# ---- the policy -------------------------------------------------------------------------

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)

# Console and staff passwords. Per (username, address) pair, growing delays: 5 failures
# free, then the rest of a minute; 10 → the rest of 15 minutes; 20 → the rest of a day.
LOGIN_PAIR = (
    Limit("login.pair.1m", 5, MINUTE),
    Limit("login.pair.15m", 10, 15 * MINUTE),
    Limit("login.pair.1d", 20, 24 * HOUR),
)
# One address, any usernames (password spraying). Successful logins give their slot back.
LOGIN_ADDRESS = Limit("login.address", 30, 15 * MINUTE)
# Checked wrong passwords for one username from every address together. Above it, a
# correct password alone no longer signs in; a correct password plus TOTP still does.
LOGIN_ACCOUNT_CEILING = Limit("login.account", 20, 15 * MINUTE)
# Second factor: wrong codes per account (only someone who had the password gets here).
LOGIN_TOTP = Limit("login.totp", 5, 15 * MINUTE)

# Real-name binding (name + ID number against the population database).
IDENTITY_ACCOUNT = Limit("identity.account", 5, HOUR)  # checks per account, successes included
IDENTITY_NUMBER = Limit("identity.number", 5, HOUR)  # failures per ID number (its blind index)
IDENTITY_ADDRESS = Limit("identity.address", 20, HOUR)  # failures per address (carrier NAT: shared)

# Kiosk agent sign-in: wrong 6-digit codes per kiosk (each request also allows 5).
KIOSK_SIGN_IN_DEVICE = Limit("kiosk.sign_in.device", 10, 15 * MINUTE)
