from __future__ import annotations

from typing import Any

from kiosk import handlers as h
from kiosk import queue as q


def routes() -> list[Any]:
    return [
        (r"/kiosk/?", h.HomePage),
        (r"/kiosk/offline", h.OfflinePage),
        (r"/kiosk/scenarios/([a-z_]{1,40})", h.ScenarioPage),
        (r"/kiosk/scenarios/([a-z_]{1,40})/checklist", h.ChecklistPage),
        (r"/kiosk/scenarios/([a-z_]{1,40})/checklist\.pdf", h.ChecklistPdf),
        (r"/kiosk/items/([0-9]{12})", h.ItemPage),
        (r"/kiosk/search", h.SearchPage),
        (r"/kiosk/api/search", h.SearchAPI),
        (r"/kiosk/browse", h.BrowsePage),
        (r"/kiosk/browse/departments/([a-z0-9-]{1,40})", h.DepartmentItemsPage),
        (r"/kiosk/browse/themes/([a-z]{1,20})", h.ThemeItemsPage),
        (r"/kiosk/identify", h.IdentifyPage),
        (r"/kiosk/certificates", h.CertificatesPage),
        (r"/kiosk/certificates/([0-9a-f]{32})", h.CertificatePage),
        (r"/kiosk/certificates/([0-9a-f]{32})/print\.pdf", h.CertificatePrintPdf),
        (r"/kiosk/certificates/([0-9a-f]{32})/pickup", h.CertificatePickupPage),
        (r"/kiosk/redeem", h.RedeemPage),
        (r"/kiosk/rebind", h.RebindPage),
        (r"/kiosk/agent", h.AgentPage),
        (r"/kiosk/agent/sign-in", h.AgentSignInPage),
        (r"/kiosk/agent/scope", h.AgentScopePage),
        (r"/kiosk/agent/applications", h.AgentApplicationPage),
        (r"/kiosk/api/id-card", h.IdCardHandler),
        (r"/kiosk/api/session", h.SessionHandler),
        (r"/kiosk/api/staff-call", h.StaffCallHandler),
        (r"/kiosk/api/staff-call/([0-9a-f]{32})", h.StaffCallStatusHandler),
        (r"/kiosk/api/consent/([0-9a-f]{32})/wait", h.ConsentWaitHandler),
        (r"/kiosk/api/pickups/([0-9a-f]{32})/wait", h.PickupWaitHandler),
        (r"/kiosk/api/session/adopt", h.AdoptSessionHandler),
        (r"/kiosk/api/session/end", h.EndSessionHandler),
        (r"/kiosk/api/offline-manifest", h.OfflineManifestHandler),
        (r"/kiosk/queue", q.QueuePage),
        (r"/kiosk/queue/tickets/([0-9a-f]{32})", q.TicketPage),
        (r"/kiosk/queue/tickets/([0-9a-f]{32})\.pdf", q.TicketPdf),
    ]
