"""The hall managers' console (/console/): server-rendered pages for managers."""

from __future__ import annotations

from typing import Any

from tornado.web import url


def routes() -> list[Any]:
    from console import auth, home, notices

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
    ]
