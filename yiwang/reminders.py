"""The resident's own page (市民个人网页) and a company's page (企业专属网页):
applications, certificates and reminders (a certificate expiring within 90
and 30 days, a 补正 request waiting, an evaluation due)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pymongo.errors import DuplicateKeyError

from yiwang import certificates
from yiwang.accounts import accounts_for_person
from yiwang.applications import COMPLETED, list_for_applicant, view
from yiwang.errors import NotFound
from yiwang.notifications import enqueue
from yiwang.people import companies_represented_by
from yiwang.timeutil import local_today, utcnow

if TYPE_CHECKING:
    from yiwang.runtime import Services

EXPIRY_WINDOWS = (30, 90)


def certificate_reminders(certs: list[dict[str, Any]], today: dt.date | None = None) -> list[dict[str, Any]]:
    today = today or local_today()
    out = []
    for cert in certs:
        until = cert.get("valid_until")
        if cert.get("status") != "valid" or not until:
            continue
        days = (dt.date.fromisoformat(until) - today).days
        window = next((w for w in EXPIRY_WINDOWS if 0 <= days <= w), None)
        if window is not None:
            out.append(
                {
                    "kind": f"certificate_expiring_{window}",
                    "message": f"您的{cert['name']}将于 {until} 到期（还有 {days} 天），请及时办理换证",
                    "certificate": cert["id"],
                    "due": until,
                }
            )
    return out


def application_reminders(apps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for app in apps:
        if app["status"] == "returned":
            out.append(
                {
                    "kind": "correction_waiting",
                    "message": f"「{app['item_name']}」需要补正材料，请一次性补齐后提交",
                    "application": app["_id"],
                    "due": None,
                }
            )
        elif app["status"] in COMPLETED and not app.get("evaluation"):
            out.append(
                {
                    "kind": "evaluation_due",
                    "message": f"「{app['item_name']}」已办结，欢迎评价",
                    "application": app["_id"],
                    "due": None,
                }
            )
    return out


async def personal_page(services: Services, account: dict[str, Any], person_index: str) -> dict[str, Any]:
    apps = await list_for_applicant(services, person_index)
    certs = await certificates.list_for_holder(services.store, person_index)
    companies = await companies_represented_by(services.store, person_index)
    return {
        "account": account,
        "applications": [view(services, a) for a in apps],
        "certificates": certs,
        "companies": [{"id": c["_id"], "name": c["name"], "credit_code": c["number"]["masked"]} for c in companies],
        "reminders": certificate_reminders(certs) + application_reminders(apps),
    }


async def company_page(services: Services, person_index: str, company_id: str) -> dict[str, Any]:
    """Only for the company's legal representative; anybody else gets NotFound."""
    company = next(
        (c for c in await companies_represented_by(services.store, person_index) if c["_id"] == company_id), None
    )
    if company is None:
        raise NotFound("company.not_found", "找不到该企业，或您不是其法定代表人")
    index = company["number"]["index"]
    apps = await list_for_applicant(services, index)
    certs = await certificates.list_for_holder(services.store, index)
    return {
        "company": {
            "id": company["_id"],
            "name": company["name"],
            "credit_code": company["number"]["masked"],
            "region": company["region"],
        },
        "applications": [view(services, a) for a in apps],
        "certificates": certs,
        "reminders": certificate_reminders(certs) + application_reminders(apps),
    }


async def push_expiry_reminders(services: Services, today: dt.date | None = None) -> int:
    """Push a WeChat reminder to the holder of each certificate that comes within 90, then within
    30, days of lapsing: once per certificate and window, whichever process runs the job first."""

    today = today or local_today()
    last_day = today + dt.timedelta(days=max(EXPIRY_WINDOWS))
    pushed = 0
    for cert in await certificates.expiring(services.store, today.isoformat(), last_day.isoformat()):
        days = (dt.date.fromisoformat(cert["valid_until"]) - today).days
        window = min(w for w in EXPIRY_WINDOWS if days <= w)
        try:  # the claim: one reminder per certificate and window, across processes
            await services.store["expiry_reminders"].insert_one(
                {"_id": f"{cert['id']}:{window}", "certificate": cert["id"], "window": window, "at": utcnow()}
            )
        except DuplicateKeyError:
            continue
        for account in await accounts_for_person(services, cert["holder_index"]):
            queued = await enqueue(
                services,
                account["_id"],
                "certificate_expiry",
                {
                    "certificate": cert["name"],
                    "valid_until": cert["valid_until"],
                    "hint": f"还有 {days} 天到期，请及时换证",
                },
                f"pages/certificates/detail?id={cert['id']}",
                cert["id"],
            )
            pushed += int(queued)
    return pushed
