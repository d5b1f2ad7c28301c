"""The mini-program's JSON API, versioned under /api/mobile/v1/ (see docs/mobile-api.md)."""

from __future__ import annotations

from typing import Any

from mobile_api import handlers as h
from mobile_api.base import PREFIX
from mobile_api.openapi import DocsHandler, OpenAPIHandler

ID = r"([0-9A-Za-z_.:-]{1,64})"


def routes() -> list[tuple[str, type]]:
    p = PREFIX
    table: list[tuple[str, Any]] = [
        (rf"{p}/openapi\.json", OpenAPIHandler),
        (rf"{p}/docs/?", DocsHandler),
        (rf"{p}/session", h.SessionHandler),
        (rf"{p}/me", h.MeHandler),
        (rf"{p}/me/identity", h.IdentityHandler),
        (rf"{p}/me/phone", h.PhoneHandler),
        (rf"{p}/me/subscriptions", h.SubscriptionsHandler),
        (rf"{p}/me/agent-activation", h.AgentActivationHandler),
        (rf"{p}/me/page", h.PersonalPageHandler),
        (rf"{p}/me/companies/{ID}/page", h.CompanyPageHandler),
        (rf"{p}/items", h.ItemsHandler),
        (rf"{p}/items/{ID}", h.ItemHandler),
        (rf"{p}/scenarios", h.ScenariosHandler),
        (rf"{p}/scenarios/{ID}", h.ScenarioHandler),
        (rf"{p}/scenarios/{ID}/plan", h.PlanHandler),
        (rf"{p}/certificates", h.CertificatesHandler),
        (rf"{p}/certificates/{ID}", h.CertificateHandler),
        (rf"{p}/certificates/{ID}/display-codes", h.DisplayCodeHandler),
        (rf"{p}/certificates/{ID}/access-history", h.AccessHistoryHandler),
        (rf"{p}/certificates/{ID}/file", h.CertificateFileHandler),
        (rf"{p}/display-codes/{ID}/renew", h.DisplayCodeRenewHandler),
        (rf"{p}/consent/describe", h.ConsentDescribeHandler),
        (rf"{p}/consent/release", h.ConsentReleaseHandler),
        (rf"{p}/copies", h.CopiesHandler),
        (rf"{p}/copies/pickup", h.CopyPickupHandler),
        (rf"{p}/copies/{ID}/image", h.CopyImageHandler),
        (rf"{p}/uploads", h.UploadsHandler),
        (rf"{p}/uploads/{ID}", h.UploadHandler),
        (rf"{p}/applications", h.ApplicationsHandler),
        (rf"{p}/applications/{ID}", h.ApplicationHandler),
        (rf"{p}/applications/{ID}/submit", h.SubmitHandler),
        (rf"{p}/applications/{ID}/supplement", h.SupplementHandler),
        (rf"{p}/applications/{ID}/evaluation", h.EvaluationHandler),
        (rf"{p}/evaluation-options", h.EvaluationOptionsHandler),
        (rf"{p}/complaints", h.ComplaintsHandler),
        (rf"{p}/complaints/{ID}", h.ComplaintHandler),
        (rf"{p}/authorisations", h.AuthorisationsHandler),
        (rf"{p}/authorisations/{ID}/revoke", h.AuthorisationRevokeHandler),
        (rf"{p}/agent/queue", h.AgentQueueHandler),
        (rf"{p}/agent/kiosk-sign-in", h.AgentKioskSignInHandler),
        (rf"{p}/agent/uploads", h.AgentUploadsHandler),
        (rf"{p}/agent/applications", h.AgentApplicationsHandler),
        (rf"{p}/agent/applications/{ID}", h.AgentApplicationHandler),
        (rf"{p}/staff/session", h.StaffSessionHandler),
        (rf"{p}/staff/applications", h.StaffApplicationsHandler),
        (rf"{p}/staff/applications/{ID}", h.StaffApplicationHandler),
        (rf"{p}/staff/applications/{ID}/(accept|return|review|approve|refuse|deliver)", h.StaffTransitionHandler),
        (rf"{p}/staff/rectifications", h.StaffRectificationsHandler),
        (rf"{p}/staff/rectifications/{ID}/close", h.StaffRectificationCloseHandler),
        (rf"{p}/staff/complaints", h.StaffComplaintsHandler),
        (rf"{p}/staff/complaints/{ID}", h.StaffComplaintHandler),
        (rf"{p}/staff/complaints/{ID}/answer", h.StaffComplaintAnswerHandler),
    ]
    return table
