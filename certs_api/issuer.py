"""同步签发: departments push, re-issue and revoke certificates."""

from __future__ import annotations

from typing import Any

from certs_api.auth import issuer_department
from web.base import APIHandler
from yiwang import certificates

IDENTIFIER = r"([0-9A-Za-z.]{1,120})"


class IssueHandler(APIHandler):
    async def post(self) -> None:
        department = await issuer_department(self)
        result = await certificates.issue(
            self.services,
            department.department,
            self.json_body(),
            idempotency_key=self.request.headers.get("Idempotency-Key", ""),
        )
        if result.replayed:
            self.set_header("Idempotent-Replayed", "true")
        self.write_json(certificates.summary(result.certificate), status=200 if result.replayed else 201)


class CertificateHandler(APIHandler):
    async def get(self, identifier: str) -> None:
        department = await issuer_department(self)
        doc = await certificates.issued_by(self.services.store, department.department, identifier)
        self.write_json(certificates.summary(doc))


class StatusHandler(APIHandler):
    async def post(self, identifier: str) -> None:
        department = await issuer_department(self)
        body = self.json_body()
        doc = await certificates.change_status(
            self.services, department.department, identifier, body.get("status"), body.get("reason")
        )
        self.write_json(certificates.summary(doc))


class ReissueHandler(APIHandler):
    async def post(self, identifier: str) -> None:
        department = await issuer_department(self)
        doc = await certificates.reissue(self.services, department.department, identifier, self.json_body())
        self.write_json(certificates.summary(doc), status=201)


def routes() -> list[Any]:
    return [
        (r"/api/issuer/v1/certificates", IssueHandler),
        (rf"/api/issuer/v1/certificates/{IDENTIFIER}/status", StatusHandler),
        (rf"/api/issuer/v1/certificates/{IDENTIFIER}/reissue", ReissueHandler),
        (rf"/api/issuer/v1/certificates/{IDENTIFIER}", CertificateHandler),
    ]
