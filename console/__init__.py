"""The hall managers' console (/console/): server-rendered pages for managers."""

from __future__ import annotations

from typing import Any

from tornado.web import url

from console import auth, calendar, calls, catalog, figures, fleet, home, images, notices, queue, scenarios


def routes() -> list[Any]:

    content_id = r"([0-9a-f]{32})"
    return [
        url(r"/console/?", home.HomeHandler),
        url(r"/console/login", auth.LoginHandler),
        url(r"/console/login/totp", auth.TotpLoginHandler),
        url(r"/console/logout", auth.LogoutHandler),
        url(r"/console/account", auth.AccountHandler),
        url(r"/console/notices", notices.NoticeListHandler),
        url(r"/console/notices/new", notices.NoticeNewHandler),
        url(rf"/console/notices/{content_id}", notices.NoticeHandler),
        url(rf"/console/notices/{content_id}/(publish|rollback|withdraw)", notices.NoticeActionHandler),
        url(rf"/console/notices/{content_id}/preview", notices.NoticePreviewHandler),
        url(rf"/console/notices/{content_id}/render", notices.NoticeRenderHandler),
        url(rf"/console/api/notices/{content_id}", notices.NoticeAPIHandler),
        url(r"/console/catalog", catalog.CatalogList),
        url(r"/console/catalog/([0-9]{12})", catalog.CatalogItem),
        url(r"/console/scenarios", scenarios.ScenarioList),
        url(r"/console/scenarios/([a-z_]{1,40})", scenarios.ScenarioEdit),
        url(r"/console/scenarios/([a-z_]{1,40})/(publish|rollback|discard)", scenarios.ScenarioAction),
        url(r"/console/scenarios/([a-z_]{1,40})/preview", scenarios.ScenarioPreview),
        url(r"/console/scenarios/([a-z_]{1,40})/render", scenarios.ScenarioRender),
        url(rf"/console/notices/{content_id}/image", images.NoticeImageHandler),
        # Public, under /kiosk/ so device agents proxy and cache it (ids are random, images immutable).
        url(r"/kiosk/media/([0-9a-f]{32})\.jpg", images.ContentImageHandler),
        url(r"/console/halls", catalog.HallList),
        url(r"/console/halls/([a-z0-9-]{1,64})", catalog.HallEdit),
        url(r"/console/figures", figures.FiguresPage),
        url(r"/console/figures/([a-z]{1,20})\.csv", figures.FiguresCSV),
        url(r"/console/fleet", fleet.FleetPage),
        url(r"/console/api/fleet", fleet.FleetAPI),
        url(r"/console/fleet/commands", fleet.CommandHandler),
        url(rf"/console/fleet/commands/{content_id}", fleet.CommandResultHandler),
        url(r"/console/fleet/enrol", fleet.EnrolHandler),
        url(r"/console/calendar", calendar.CalendarPage),
        url(r"/console/queue", queue.QueueHalls),
        url(r"/console/queue/([a-z0-9-]{1,64})", queue.QueueDesk),
        url(r"/console/queue/([a-z0-9-]{1,64})/settings", queue.QueueSettings),
        url(r"/console/queue/([a-z0-9-]{1,64})/door-code", queue.QueueDoorCode),
        url(r"/console/queue/([a-z0-9-]{1,64})/window/([0-9A-Za-z-]{1,16})", queue.QueueWindow),
        url(r"/console/queue/([a-z0-9-]{1,64})/window/([0-9A-Za-z-]{1,16})/(next|call|recall|no_show|finish|transfer)",
            queue.QueueWindow),
        url(r"/console/calls", calls.CallsPage),
        url(r"/console/api/calls", calls.CallsAPI),
        url(r"/console/calls/([0-9a-f]{32})/acknowledge", calls.AcknowledgeHandler),
    ]
