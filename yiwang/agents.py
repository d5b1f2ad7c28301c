"""Village agents (帮办代办员) and the authorisations residents give them.

* An agent belongs to a village and a supervising office; their mini-program
  account becomes an agent account with a one-time activation code issued by
  the supervising office (:func:`issue_activation_code`).
* An agent acts for a resident only under an authorisation the resident gave
  (in their own mini-program, or at a kiosk with the ID card:
  :func:`grant_authorisation` with ``channel="kiosk"``), scoped to items and a
  period, revocable at any time.
* Everything an agent does is recorded as "agent X for resident Y" (audit
  ``on_behalf_of`` and the authorisation's ``activity``), which the resident
  sees. Agents never list a resident's certificates: they can only attach, by
  id, a certificate of the type an authorised item's material needs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from yiwang import audit
from yiwang.accounts import set_agent
from yiwang.applications import Applicant, detail_view, list_for_agent, view
from yiwang.crypto import constant_time_equal, random_token, token_digest
from yiwang.errors import Forbidden, InvalidInput, NotFound
from yiwang.identity import mask_name, mask_phone
from yiwang.people import NAME_PURPOSE, PHONE_PURPOSE, registered_name
from yiwang.timeutil import local_today, utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services
    from yiwang.store import Document

log = logging.getLogger(__name__)

DEMO_ACCOUNTS = Path(__file__).resolve().parent.parent / "data" / "demo" / "accounts.json"
MAX_ITEMS = 20
MAX_DAYS = 366
ACTIVATION_TTL = dt.timedelta(days=7)


async def load_demo_agents(services: Services) -> int:
    """Upsert the agents of data/demo/accounts.json (idempotent); returns how many."""
    agents = json.loads(DEMO_ACCOUNTS.read_text(encoding="utf-8")).get("agents", [])
    for entry in agents:
        await services.store["agents"].update_one(
            {"_id": entry["code"]},
            {
                "$set": {
                    "name": {
                        "sealed": services.cipher.seal(NAME_PURPOSE, entry["name"]),
                        "masked": mask_name(entry["name"]),
                    },
                    "phone": {
                        "sealed": services.cipher.seal(PHONE_PURPOSE, entry["phone"]),
                        "masked": mask_phone(entry["phone"]),
                    },
                    "village": entry["village"],
                    "region": entry["region"],
                    "supervising_office": entry["supervising_office"],
                    "active": True,
                },
                "$setOnInsert": {"account_id": None, "activation": None, "created_at": utcnow()},
            },
            upsert=True,
        )
    return len(agents)


async def agent(services: Services, code: Any) -> Document:
    doc = await services.store["agents"].find_one({"_id": code}) if isinstance(code, str) else None
    if doc is None or not doc.get("active", True):
        raise NotFound("agent.not_found", "找不到该代办员")
    return doc


def agent_view(doc: Document) -> dict[str, Any]:
    return {
        "code": doc["_id"],
        "name": doc["name"]["masked"],
        "village": doc["village"],
        "region": doc["region"],
        "supervising_office": doc["supervising_office"],
    }


def agent_actor(doc: Document) -> audit.Actor:
    return audit.Actor("agent", doc["_id"], f"代办员 {doc['name']['masked']}（{doc['village']}）")


async def issue_activation_code(services: Services, agent_code: str, actor: audit.Actor = audit.SYSTEM) -> str:
    """A one-time code (valid 7 days) the agent enters in the mini-program to become an agent account."""
    await agent(services, agent_code)
    code = random_token(12)
    await services.store["agents"].update_one(
        {"_id": agent_code},
        {"$set": {"activation": {"digest": token_digest(code), "expires_at": utcnow() + ACTIVATION_TTL}}},
    )
    await audit.record(services.store, actor, "agent.activation_issued", agent_code, channel="console")
    return code


async def activate(
    services: Services, account_id: str, actor: audit.Actor, agent_code: Any, code: Any
) -> dict[str, Any]:

    if not isinstance(code, str) or not isinstance(agent_code, str):
        raise InvalidInput(
            "agent.activation_invalid", "请填写代办员编号和激活码", fields={"agent": "必填", "activation_code": "必填"}
        )
    doc = await services.store["agents"].find_one({"_id": agent_code})
    activation = (doc or {}).get("activation") or {}
    if (
        doc is None
        or not activation
        or activation["expires_at"] <= utcnow()
        or not constant_time_equal(activation["digest"], token_digest(code))
    ):
        raise Forbidden("agent.activation_invalid", "激活码无效或已过期")
    claimed = await services.store["agents"].find_one_and_update(
        {"_id": agent_code, "activation.digest": activation["digest"]},
        {"$set": {"activation": None, "account_id": account_id}},
        return_document=ReturnDocument.AFTER,
    )
    if claimed is None:
        raise Forbidden("agent.activation_invalid", "激活码无效或已过期")
    await set_agent(services, account_id, agent_code)
    await audit.record(services.store, actor, "agent.activated", agent_code, channel="mobile")
    return agent_view(claimed)


# ---- authorisations ------------------------------------------------------------


async def _validate_scope(services: Services, items: Any, until: Any) -> tuple[list[str], dt.date]:
    problems: dict[str, str] = {}
    clean_items: list[str] = []
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        problems["items"] = f"请选择 1–{MAX_ITEMS} 个事项"
    else:
        snapshot = await services.catalog.snapshot()
        for code in items:
            if not isinstance(code, str) or code not in snapshot.items:
                problems["items"] = "事项编码无效"
            elif code not in clean_items:
                clean_items.append(code)
    today = local_today()
    end = today
    if isinstance(until, dt.date):
        end = until
    elif isinstance(until, str):
        try:
            end = dt.date.fromisoformat(until)
        except ValueError:
            problems["until"] = "日期格式应为 YYYY-MM-DD"
    else:
        problems["until"] = "请填写授权截止日期"
    if "until" not in problems and not today <= end <= today + dt.timedelta(days=MAX_DAYS):
        problems["until"] = "截止日期须在今天到一年之内"
    if problems:
        raise InvalidInput("authorisation.invalid", "授权内容有误", fields=problems)
    return clean_items, end


async def grant_authorisation(
    services: Services,
    resident_index: str,
    agent_code: Any,
    items: Any,
    until: Any,
    *,
    channel: str = "kiosk",
    actor: audit.Actor | None = None,
    resident_account_id: str | None = None,
) -> dict[str, Any]:
    """The resident authorises the agent for ``items`` until ``until`` (inclusive).

    ``channel`` is "mobile" (the resident's own mini-program) or "kiosk"
    (at a kiosk, after reading the ID card). The resident must be registered
    (``residents``); the agent never learns more than the masked name."""
    if channel not in ("mobile", "kiosk"):
        raise InvalidInput("authorisation.channel_invalid", "授权渠道无效")
    found = await agent(services, agent_code)
    clean_items, end = await _validate_scope(services, items, until)
    resident = await services.store["residents"].find_one({"number.index": resident_index})
    if resident is None:
        raise NotFound("person.not_found", "找不到该居民的实名信息")
    now = utcnow()
    doc: Document = {
        "_id": uuid.uuid4().hex,
        "agent": found["_id"],
        "resident_index": resident_index,
        "resident": {"number": resident["number"], "masked_name": resident["name"]["masked"]},
        "resident_account_id": resident_account_id,
        "items": clean_items,
        "from": now,
        "until": end.isoformat(),
        "channel": channel,
        "status": "active",
        "created_at": now,
        "revoked_at": None,
        "activity": [],
    }
    pending = audit.intent(
        actor or audit.Actor("resident", resident_index[:16], "本人"),
        "authorisation.grant",
        doc["_id"],
        channel=channel,
        on_behalf_of=resident_index,
        detail={"agent": found["_id"], "items": clean_items, "until": doc["until"]},
    )
    doc[audit.PENDING_FIELD] = [pending]  # the grant and its audit entry are one write
    await services.store["authorisations"].insert_one(doc)
    await audit.settle(services.store, "authorisations", doc, pending)
    return authorisation_view(doc, found)


async def revoke_authorisation(
    services: Services,
    resident_index: str,
    authorisation_id: Any,
    actor: audit.Actor | None = None,
    channel: str = "mobile",
) -> dict[str, Any]:
    if not isinstance(authorisation_id, str):
        raise NotFound("authorisation.not_found", "找不到该授权")
    pending = audit.intent(
        actor or audit.Actor("resident", resident_index[:16], "本人"),
        "authorisation.revoke",
        authorisation_id,
        channel=channel,
        on_behalf_of=resident_index,
    )
    updated = await services.store["authorisations"].find_one_and_update(
        {"_id": authorisation_id, "resident_index": resident_index, "status": "active"},
        {"$set": {"status": "revoked", "revoked_at": utcnow()}, "$push": audit.pending_push(pending)},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise NotFound("authorisation.not_found", "找不到有效的授权")
    await audit.settle(services.store, "authorisations", updated, pending)
    return authorisation_view(updated, await agent(services, updated["agent"]))


def _is_active(doc: Document) -> bool:
    return doc["status"] == "active" and doc["until"] >= local_today().isoformat()


def authorisation_view(doc: Document, agent_doc: Document | None = None) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "agent": agent_view(agent_doc) if agent_doc else {"code": doc["agent"]},
        "resident": {"name": doc["resident"]["masked_name"], "id_number": doc["resident"]["number"]["masked"]},
        "items": list(doc["items"]),
        "from": doc["from"],
        "until": doc["until"],
        "channel": doc["channel"],
        "status": "active" if _is_active(doc) else ("revoked" if doc["status"] == "revoked" else "expired"),
        "activity": [dict(a) for a in doc.get("activity", [])],
    }


async def authorisations_for_resident(services: Services, resident_index: str) -> list[dict[str, Any]]:
    cursor = services.store["authorisations"].find(
        {"resident_index": resident_index}, sort=[("created_at", -1)], limit=100
    )
    out = []
    async for doc in cursor:
        found = await services.store["agents"].find_one({"_id": doc["agent"]})
        out.append(authorisation_view(doc, found))
    return out


async def _live_for_agent(services: Services, agent_code: str) -> list[Document]:
    """The agent's authorisations that are live right now (read fresh on every request: a
    revocation takes effect on the agent's next request, in every process)."""
    cursor = services.store["authorisations"].find(
        {"agent": agent_code, "status": "active"}, sort=[("created_at", -1)], limit=200
    )
    return [doc async for doc in cursor if _is_active(doc)]


async def authorisations_for_agent(services: Services, agent_code: str) -> list[dict[str, Any]]:
    return [authorisation_view(doc) for doc in await _live_for_agent(services, agent_code)]


async def require_authorisation(services: Services, agent_code: str, authorisation_id: Any, item: Any) -> Document:
    """The active authorisation that lets this agent act on ``item``; Forbidden otherwise."""
    doc = None
    if isinstance(authorisation_id, str):
        doc = await services.store["authorisations"].find_one({"_id": authorisation_id, "agent": agent_code})
    if doc is None or not _is_active(doc):
        raise Forbidden("agent.not_authorised", "没有该居民的有效授权，或授权已撤销、已过期")
    if item is not None and item not in doc["items"]:
        raise Forbidden("agent.item_not_authorised", "该居民没有授权您代办此事项")
    return doc


async def record_activity(services: Services, authorisation_id: str, action: str, subject: str) -> None:
    """Append "what the agent did" to the authorisation, for the resident to see. It follows a
    change that is already durable (and audited), so a failure here is logged, never the answer."""
    try:
        await services.store["authorisations"].update_one(
            {"_id": authorisation_id},
            {"$push": {"activity": {"at": utcnow(), "action": action, "subject": subject}}},
        )
    except Exception:
        log.warning("agent activity not recorded", extra={"fields": {"action": action}})


async def applicant_for(services: Services, agent_doc: Document, authorisation_id: Any, item: Any) -> Any:
    """The resident as an applicant for an agent acting under ``authorisation_id``."""

    auth = await require_authorisation(services, agent_doc["_id"], authorisation_id, item)
    return Applicant(
        name=await registered_name(services.store, services.cipher, auth["resident_index"]),
        index=auth["resident_index"],
        number=auth["resident"]["number"],
        masked_name=auth["resident"]["masked_name"],
        account_id=auth.get("resident_account_id"),
        actor=agent_actor(agent_doc),
        agent=agent_doc["_id"],
        authorisation=auth["_id"],
    )


async def queue(services: Services, agent_doc: Document) -> dict[str, Any]:
    """The agent's queue: what they filed, its state, and what waits for the resident."""

    live = await _live_for_agent(services, agent_doc["_id"])
    apps = await list_for_agent(services, agent_doc["_id"], [a["_id"] for a in live])
    rendered = []
    for app in apps:
        shown = view(services, app)
        shown["waiting_for_resident"] = app["status"] == "returned"
        rendered.append(shown)
    return {
        "agent": agent_view(agent_doc),
        "applications": rendered,
        "authorisations": [authorisation_view(doc) for doc in live],
    }


async def agent_application(services: Services, agent_doc: Document, application_id: Any) -> dict[str, Any]:
    """One application the agent filed (form and materials included; never the certificates' contents)."""

    doc = None
    if isinstance(application_id, str):
        doc = await services.store["applications"].find_one({"_id": application_id, "agent": agent_doc["_id"]})
    if doc is None:
        raise NotFound("application.not_found", "找不到该申请")
    await require_authorisation(services, agent_doc["_id"], doc.get("authorisation"), None)
    await audit.record(
        services.store,
        agent_actor(agent_doc),
        "application.read",
        doc["_id"],
        channel="agent",
        on_behalf_of=doc["applicant"]["index"],
    )
    return await detail_view(services, doc)
